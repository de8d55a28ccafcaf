"""Root conftest: the real servers (PostgreSQL, Kafka-protocol broker) every test tree may use.

Each fixture starts its server lazily, once per session, only when a test asks for it.
"""

pytest_plugins = ["testsupport.postgres", "testsupport.kafka"]
