"""Delivery accounting of the audit sink's own log pipeline (no OpenTelemetry import).

The SDK's batch processor drops silently: a full queue evicts its *oldest* record and a failed
export is only logged. To count every loss, the sink reserves a queue slot here before it
emits (so the SDK queue can never overflow and evict unseen), and the exporter wrapper
settles each batch here as delivered or failed. Failures found in the background are handed
to the next ``export`` result (``take_unreported``), so the engine's dropped-record counter
sees them too.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

__all__ = ["DeliveryLedger"]


class DeliveryLedger:
    """Thread-safe counts of records accepted, delivered, failed and rejected."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.accepted = 0
        self.delivered = 0
        self.failed = 0
        self.rejected = 0
        self._unreported = 0
        self._unreported_reasons: Counter[str] = Counter()
        self._failed_at_last_flush = 0
        self._condition = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Accepted records not yet delivered nor failed (queued or being exported)."""
        return self.accepted - self.delivered - self.failed

    def reserve(self) -> bool:
        """Take a queue slot for one record; False (and counted rejected) if none is free."""
        with self._condition:
            # Records being exported still hold their slot: the SDK queue can then never hold
            # more than ``capacity`` records, so it never evicts one behind our back.
            if self.in_flight >= self.capacity:
                self.rejected += 1
                return False
            self.accepted += 1
            return True

    def cancel(self) -> None:
        """Give back a slot whose record could not be handed to the pipeline after all."""
        with self._condition:
            self.accepted -= 1
            self.rejected += 1
            self._condition.notify_all()

    def settle(self, count: int, *, delivered: bool, reason: str = "") -> None:
        """Record the verdict on ``count`` records handed to the exporter."""
        with self._condition:
            if delivered:
                self.delivered += count
            else:
                self.failed += count
                self._unreported += count
                self._unreported_reasons[reason or "export failed"] += count
            self._condition.notify_all()

    def abandon_in_flight(self, reason: str) -> int:
        """Count every record still in flight as failed (the pipeline is gone); return how many."""
        with self._condition:
            lost = self.in_flight
        if lost > 0:
            self.settle(lost, delivered=False, reason=reason)
        return max(lost, 0)

    def take_unreported(self) -> tuple[int, tuple[str, ...]]:
        """Failures not yet reported in an export result, with their reasons; resets them."""
        with self._condition:
            count, reasons = self._unreported, self._unreported_reasons
            self._unreported, self._unreported_reasons = 0, Counter()
        texts = tuple(
            f"{reason}: {number} record(s) not delivered"
            for reason, number in sorted(reasons.items())
        )
        return count, texts

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every record accepted so far is settled; True if none of those accepted
        since the previous call failed (and all settled in time)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._condition:
            target = self.accepted
            while self.delivered + self.failed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            clean = self.failed == self._failed_at_last_flush
            self._failed_at_last_flush = self.failed
            return clean
