"""Fixtures of the Kafka publisher's tests: outbox events made to order."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from user_engine.domain import OutboxEvent
from user_engine_events_kafka import KafkaEventPublisher, KafkaSettings

EventFactory = Callable[..., OutboxEvent]


@pytest.fixture
def make_event() -> EventFactory:
    """``make_event(aggregate, **fields)``: a new event with the next sequence."""
    counter = itertools.count(1)

    def make(aggregate: str = "usr_1", **fields: Any) -> OutboxEvent:
        number = next(counter)
        values: dict[str, Any] = {
            "id": f"evt_{number:06d}",
            "event_type": "user.updated",
            "aggregate_type": "user",
            "aggregate_id": aggregate,
            "tenant_id": "acme",
            "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
            "payload": {"n": number},
            "sequence": number,
        }
        values.update(fields)
        return OutboxEvent(**values)

    return make


@pytest.fixture
def publisher_for() -> Iterator[Callable[..., KafkaEventPublisher]]:
    """``publisher_for(bootstrap, topic, **settings)``: a publisher closed after the test."""
    made: list[KafkaEventPublisher] = []

    def build(bootstrap: str, topic: str, **settings: Any) -> KafkaEventPublisher:
        table = {"bootstrap_servers": bootstrap, "topic": topic} | settings
        publisher = KafkaEventPublisher(KafkaSettings.from_mapping(table))
        made.append(publisher)
        return publisher

    yield build
    for publisher in made:
        publisher.close(timeout=1)
