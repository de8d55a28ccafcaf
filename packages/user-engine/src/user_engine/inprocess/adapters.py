"""Adapters that keep what they receive in memory and hand it to subscribers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from user_engine.domain import AuditRecord, OutboxEvent
from user_engine.ports import DeliveryReport, ExportResult

__all__ = ["InProcessAuditSink", "InProcessEventPublisher"]


class InProcessEventPublisher:
    """``EventPublisher`` that delivers to in-process subscribers and keeps a log.

    A subscriber that raises makes that event's report a failure (with the exception's type),
    so failures are surfaced exactly as a broker's would be.
    """

    def __init__(self, name: str = "inprocess") -> None:
        self.name = name
        self.delivered: list[OutboxEvent] = []
        self._subscribers: list[Callable[[OutboxEvent], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Callable[[OutboxEvent], None]) -> None:
        """Call ``subscriber(event)`` for every event published from now on."""
        self._subscribers.append(subscriber)

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        reports = []
        failed_keys: set[str] = set()
        with self._lock:
            for event in events:
                if event.aggregate_id in failed_keys:
                    # Never deliver past an undelivered earlier event of the same aggregate.
                    reports.append(
                        DeliveryReport(event.id, False, "earlier event of aggregate failed")
                    )
                    continue
                try:
                    for subscriber in self._subscribers:
                        subscriber(event)
                except Exception as error:
                    failed_keys.add(event.aggregate_id)
                    reports.append(DeliveryReport(event.id, False, type(error).__name__))
                    continue
                self.delivered.append(event)
                reports.append(DeliveryReport(event.id, True))
        return reports

    def close(self) -> None:
        """Nothing to release."""


class InProcessAuditSink:
    """``AuditSink`` that keeps exported records in a list (and calls subscribers)."""

    def __init__(self, name: str = "inprocess") -> None:
        self.name = name
        self.exported: list[AuditRecord] = []
        self._subscribers: list[Callable[[AuditRecord], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Callable[[AuditRecord], None]) -> None:
        """Call ``subscriber(record)`` for every record exported from now on."""
        self._subscribers.append(subscriber)

    def export(self, records: Sequence[AuditRecord]) -> ExportResult:
        exported = 0
        errors: list[str] = []
        with self._lock:
            for record in records:
                try:
                    for subscriber in self._subscribers:
                        subscriber(record)
                except Exception as error:
                    errors.append(type(error).__name__)
                    continue
                self.exported.append(record)
                exported += 1
        return ExportResult(exported, len(records) - exported, tuple(errors))

    def flush(self, timeout: float) -> bool:
        """Exports are synchronous: always flushed."""
        return True

    def close(self) -> None:
        """Nothing to release."""
