"""Fixtures of the end-to-end tests: a store (each shipped store), Kafka publishers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from user_engine.plugins import PluginHost
from user_engine.ports import UserEngineStore
from user_engine_events_kafka import KafkaEventPublisher, create_publisher
from user_engine_store_memory import MemoryStore

PublisherFactory = Callable[..., KafkaEventPublisher]


@pytest.fixture(params=["memory", "postgres"])
def outbox_store(request: pytest.FixtureRequest) -> Iterator[UserEngineStore]:
    """A migrated, empty store of each kind the relay must work with (built through its
    entry point, as ``user-engine relay`` builds it)."""
    if request.param == "memory":
        store: UserEngineStore = MemoryStore()
        store.migrate()
    else:
        settings = request.getfixturevalue("postgres_settings")
        store = PluginHost().create_store("postgres", settings)
    yield store
    store.close()


@pytest.fixture
def kafka_publisher() -> Iterator[PublisherFactory]:
    """``kafka_publisher(bootstrap, topic, **settings)``: closed after the test."""
    made: list[KafkaEventPublisher] = []

    def build(bootstrap: str, topic: str, **settings: Any) -> KafkaEventPublisher:
        publisher = create_publisher({"bootstrap_servers": bootstrap, "topic": topic} | settings)
        made.append(publisher)
        return publisher

    yield build
    for publisher in made:
        publisher.close(timeout=1)
