"""The Kafka event publisher against the conformance suite, written as any third party would.

The broker is the session's (``testsupport/kafka.py``: a local tansu broker unless
``USER_ENGINE_KAFKA_BOOTSTRAP`` is set); every test publishes to a topic of its own, and the
observer reads that topic back with a plain consumer, decoding with the package's public
``decode_message``.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from user_engine.plugins import PluginHost
from user_engine.ports import EventPublisher
from user_engine_conformance import (
    EventObserver,
    EventPublisherConformance,
    ObservedEvent,
    PollingObserver,
)
from user_engine_events_kafka import LocalBroker, decode_message


class _TopicReader:
    """Everything a topic holds so far, read partition by partition from the beginning."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.seen: list[ObservedEvent] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "conformance",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "log_level": 0,
            }
        )
        self.assigned = False

    def poll(self) -> list[ObservedEvent]:
        if not self.assigned:
            found = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if found is None or found.error is not None or not found.partitions:
                return []
            self.consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in found.partitions]
            )
            self.assigned = True
        for message in self.consumer.consume(500, 0.1):
            if message.error() is not None:
                continue
            event = decode_message(message.headers(), message.value())
            key = message.key()
            self.seen.append(
                ObservedEvent(
                    event.id,
                    key.decode() if isinstance(key, bytes) else str(key),
                    event.type,
                    event.tenant_id,
                    event.data,
                )
            )
        return self.seen


class TestKafkaPublisher(EventPublisherConformance):
    adapter_name = "kafka"

    @pytest.fixture
    def adapter_settings(self, kafka_bootstrap: str, kafka_topic: str) -> Mapping[str, Any]:
        return {"bootstrap_servers": kafka_bootstrap, "topic": kafka_topic}

    @pytest.fixture
    def published_events(self, adapter_settings: Mapping[str, Any]) -> Iterator[EventObserver]:
        reader = _TopicReader(adapter_settings["bootstrap_servers"], adapter_settings["topic"])
        yield PollingObserver(reader.poll)
        reader.consumer.close()

    @pytest.fixture
    def failing_publisher(self, plugin_host: PluginHost) -> EventPublisher:
        with LocalBroker() as gone:
            address = gone.bootstrap_servers
        # Nothing listens there any more: every delivery times out and must be reported.
        return plugin_host.create_event_publisher(
            "kafka", {"bootstrap_servers": address, "message_timeout_ms": 1000}
        )
