"""Consumer-side help: drop duplicate deliveries by event id.

Delivery is at-least-once: an event is published again when the relay could not record its
delivery (a crash between the broker's acknowledgement and the ack, a lease that expired, an
acknowledgement that came after the publish deadline). Every copy carries the same
``ce_id``, and a copy is never written before an earlier event of its aggregate, so a
consumer that keeps the **first** copy of each id sees every aggregate in order.

In memory (a restart forgets, so pair it with committed offsets)::

    from user_engine_events_kafka import Deduplicator, decode_message

    seen = Deduplicator(capacity=100_000)
    for message in consumer:                   # any Kafka client
        event = decode_message(message.headers(), message.value())
        if seen.first_time(event.id):
            handle(event)

Durably (exactly-once effects): record the id in the same database transaction as the
effect, under a unique constraint, and skip the effect when the insert conflicts::

    INSERT INTO processed_events (event_id) VALUES (%s) ON CONFLICT DO NOTHING
    -- 0 rows inserted: a duplicate; commit without applying the effect
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from user_engine.errors import ValidationError

__all__ = ["Deduplicator"]


class Deduplicator:
    """Remembers the most recent ``capacity`` event ids; says whether an id is new.

    Duplicates arrive within a bounded window (a lease, a retry backoff, a consumer
    restart), so a bounded memory suffices: size ``capacity`` above the number of events
    the topic carries in that window. Thread-safe.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValidationError("capacity must be a positive integer", code="validation.capacity")
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        """True the first time ``event_id`` is given (and remember it), False afterwards."""
        if not isinstance(event_id, str) or not event_id:
            raise ValidationError("event id must be a non-empty string", code="validation.id")
        with self._lock:
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                return False
            self._seen[event_id] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            return event_id in self._seen

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
