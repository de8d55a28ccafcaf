"""Outbox events and the relay contract's value types."""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "Claim",
    "ClaimedEvent",
    "EventStatus",
    "OutboxEvent",
    "OutboxStats",
    "RetryPolicy",
]

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class EventStatus(enum.StrEnum):
    """Where an event is in the relay's life."""

    PENDING = "pending"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A domain event appended in the mutation's transaction.

    ``id`` is stable across redeliveries (consumers drop duplicates by it). ``aggregate_id`` is
    the ordering key: events of one aggregate are delivered in ``sequence`` order. ``payload``
    never contains a ``secret`` value. ``sequence`` is assigned by the store on append.
    """

    id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    tenant_id: str | None
    occurred_at: datetime
    payload: Mapping[str, JsonValue]
    sequence: int = 0
    attempts: int = 0
    last_error: str = ""
    available_at: datetime | None = None
    status: EventStatus = EventStatus.PENDING


@dataclass(frozen=True, slots=True)
class Claim:
    """Proof that a relay holds an event's lease; ack and release need it."""

    event_id: str
    token: str


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """An event handed out by ``claim``, with the lease it is held under."""

    event: OutboxEvent
    claim: Claim
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts for readiness and diagnostics: never payloads."""

    pending: int
    in_flight: int
    dead: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, and the dead-letter threshold.

    The n-th failure (n >= 1) waits ``min(max_delay, base_delay * 2**(n-1))`` scaled by a random
    factor in ``[1 - jitter, 1]``; after ``max_attempts`` failures the event is dead-lettered.
    """

    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay_after(self, attempts: int) -> timedelta:
        """Wait before the next try after ``attempts`` failures."""
        exponent = min(max(attempts - 1, 0), 30)
        raw: timedelta = min(self.max_delay, self.base_delay * (2**exponent))
        factor = 1.0 - self.jitter * self.rng.random()
        return raw * factor

    def is_exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` failures mean dead-letter."""
        return attempts >= self.max_attempts
