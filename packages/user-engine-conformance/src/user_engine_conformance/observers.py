"""What an adapter's test class hands the publisher and audit-sink suites so they can see
what reached the broker or the audit pipeline.

A publisher's reports and a sink's export results are the adapter's own word; the clauses
that check what was actually delivered (order, ids, fields) need to look at the other side.
The adapter's author provides that look through a fixture returning an observer; the kit
never talks to a broker or a collector itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from user_engine.domain import AuditRecord, OutboxEvent

__all__ = [
    "AuditObserver",
    "EventObserver",
    "ExportedAudit",
    "ObservedEvent",
    "PollingObserver",
    "audit_record_fields",
    "comparable",
    "observed_event",
]

ExportedAudit = Mapping[str, object]
"""One exported audit record as the pipeline received it, keyed by the record's field names
(``id``, ``occurred_at``, ``tenant_id``, ``actor_id``, ``actor_kind``, ``action``,
``target_kind``, ``target_id``, ``outcome``, ``reason_code``, ``request_id``, ``sequence``,
and ``details.<key>`` per detail). Everything else the export carried goes in under its own
name, so that ``audit.no-secrets`` can see it."""


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    """One message as the broker (or subscriber) received it.

    :param event_id: the event id the message carried (a header, say).
    :param key: the ordering key the message was sent with (the aggregate id).
    :param event_type: the event type it carried.
    :param tenant_id: the tenant it carried, None if none.
    :param payload: the decoded payload.
    """

    event_id: str
    key: str
    event_type: str
    tenant_id: str | None
    payload: Mapping[str, Any]


_Seen = TypeVar("_Seen")


class EventObserver(Protocol):
    """Sees the messages a publisher delivered (the ``published_events`` fixture)."""

    def collect(
        self, match: Callable[[ObservedEvent], bool], count: int, timeout: float
    ) -> list[ObservedEvent]:
        """Every message received so far that ``match`` accepts, in the order the broker
        holds them, once at least ``count`` are there or ``timeout`` seconds have passed."""
        ...


class AuditObserver(Protocol):
    """Sees the records an audit sink exported (the ``exported_audit`` fixture)."""

    def collect(
        self, match: Callable[[ExportedAudit], bool], count: int, timeout: float
    ) -> list[ExportedAudit]:
        """Every exported record so far that ``match`` accepts, in export order, once at
        least ``count`` are there or ``timeout`` seconds have passed."""
        ...


class PollingObserver(Generic[_Seen]):
    """An observer over a function that returns everything received so far.

    ``poll`` is called until enough matching items are there (or the time is up); it may
    read a list an in-process adapter keeps, or consume from a broker and return what it has
    accumulated.
    """

    def __init__(self, poll: Callable[[], Sequence[_Seen]], *, interval: float = 0.02) -> None:
        self._poll = poll
        self._interval = interval

    def collect(self, match: Callable[[_Seen], bool], count: int, timeout: float) -> list[_Seen]:
        """See ``EventObserver.collect``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [item for item in self._poll() if match(item)]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(self._interval)


def observed_event(event: OutboxEvent) -> ObservedEvent:
    """The ``ObservedEvent`` a faithful delivery of ``event`` gives (for in-process
    adapters whose observer reads the events themselves)."""
    return ObservedEvent(
        event.id, event.aggregate_id, event.event_type, event.tenant_id, dict(event.payload)
    )


def audit_record_fields(record: AuditRecord) -> dict[str, object]:
    """The record flattened to ``ExportedAudit`` keys (what a faithful export carries)."""
    fields: dict[str, object] = {
        "id": record.id,
        "occurred_at": record.occurred_at,
        "tenant_id": record.tenant_id,
        "actor_id": record.actor_id,
        "actor_kind": record.actor_kind,
        "action": record.action,
        "target_kind": record.target_kind,
        "target_id": record.target_id,
        "outcome": record.outcome,
        "reason_code": record.reason_code,
        "request_id": record.request_id,
        "sequence": record.sequence,
    }
    fields.update({f"details.{key}": value for key, value in record.details.items()})
    return fields


def comparable(value: object) -> object:
    """A value as the kit compares exported fields: datetimes as UTC ISO text (an exporter
    may hand back a datetime or its ISO text), enums by value, numbers and text as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed.astimezone(UTC).isoformat() if parsed.tzinfo else value
    if isinstance(value, Enum):
        return comparable(value.value)
    if value is None:
        return None
    return str(value)
