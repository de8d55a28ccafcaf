"""``EventPublisherConformance``: the suite every ``EventPublisher`` adapter runs.

Clauses that look at what the broker received need the ``published_events`` fixture (an
``EventObserver``); ``events.failure-surfaced`` needs ``failing_publisher``. Without them those
clauses are skipped with a reason naming the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
from user_engine.domain import OutboxEvent
from user_engine.plugins import AdapterKind, PluginHost
from user_engine.ports import EventPublisher

from user_engine_conformance._base import ConformanceBase
from user_engine_conformance._samples import Sample, as_json
from user_engine_conformance.clauses import clause
from user_engine_conformance.observers import EventObserver, ObservedEvent

__all__ = ["EventPublisherConformance"]


def _ours(sample: Sample) -> Any:
    return lambda seen: (
        isinstance(seen.payload, Mapping) and seen.payload.get("run") == (sample.token)
    )


class EventPublisherConformance(ConformanceBase):
    """Every clause of the ``EventPublisher`` contract, as pytest tests.

    Set ``adapter_name``; override ``adapter_settings`` for servers and credentials,
    ``published_events`` to let the suite see what the broker received, and
    ``failing_publisher`` to give it a publisher whose deliveries fail.
    """

    adapter_kind: ClassVar[AdapterKind] = "events"

    delivery_timeout: ClassVar[float] = 10.0
    """Seconds ``publish`` may wait for the broker's verdict, and observers for messages."""

    def build_publisher(self, host: PluginHost, settings: Mapping[str, Any]) -> EventPublisher:
        """Build the adapter through its registered factory, failing loudly with guidance."""
        publisher: EventPublisher = self._build(host, settings, host.create_event_publisher)
        return publisher

    @pytest.fixture
    def publisher(
        self, plugin_host: PluginHost, adapter_settings: Mapping[str, Any]
    ) -> Iterator[EventPublisher]:
        """A publisher built by the adapter's factory from ``adapter_settings``."""
        publisher = self.build_publisher(plugin_host, adapter_settings)
        try:
            yield publisher
        finally:
            publisher.close()

    @pytest.fixture
    def published_events(
        self, request: pytest.FixtureRequest, publisher: EventPublisher
    ) -> EventObserver:
        """Override: an ``EventObserver`` of what ``publisher`` delivered (a consumer of the
        topic, a subscriber ...). ``PollingObserver`` helps."""
        self._hook_missing(
            request, "published_events", "return an EventObserver of what the broker received"
        )

    @pytest.fixture
    def failing_publisher(
        self, request: pytest.FixtureRequest, plugin_host: PluginHost
    ) -> EventPublisher:
        """Override: a publisher of this adapter whose deliveries fail (an unreachable
        broker, a rejecting subscriber ...). The suite closes it."""
        self._hook_missing(request, "failing_publisher", "return a publisher whose deliveries fail")

    # -- clauses ----------------------------------------------------------------------------
    def _events(
        self, sample: Sample, aggregates: str, tenant_id: str | None = None
    ) -> list[OutboxEvent]:
        return [
            sample.event(
                aggregate,
                tenant_id=tenant_id,
                payload={"run": sample.token, "n": n, "text": "Zoë 🚀"},
            )
            for n, aggregate in enumerate(aggregates)
        ]

    @clause("events.report-per-event")
    def test_publish_reports_once_per_event_in_order(self, publisher: EventPublisher) -> None:
        sample = Sample()
        events = self._events(sample, "abab")

        reports = publisher.publish(events, timeout=self.delivery_timeout)

        assert [r.event_id for r in reports] == [e.id for e in events]
        assert [(r.delivered, r.error) for r in reports] == [(True, "")] * len(events)
        assert publisher.publish([], timeout=self.delivery_timeout) == []

    @clause("events.order-per-key")
    def test_events_of_one_aggregate_arrive_in_the_order_given(
        self, publisher: EventPublisher, published_events: EventObserver
    ) -> None:
        sample = Sample()
        first = self._events(sample, "abcaab")
        second = [
            sample.event(a, payload={"run": sample.token, "n": 10 + n}) for n, a in enumerate("bca")
        ]
        publisher.publish(first, timeout=self.delivery_timeout)
        publisher.publish(second, timeout=self.delivery_timeout)
        sent = first + second

        seen = published_events.collect(_ours(sample), len(sent), self.delivery_timeout)

        for key in {e.aggregate_id for e in sent}:
            expected = [e.id for e in sent if e.aggregate_id == key]
            assert [s.event_id for s in seen if s.key == key] == expected, (
                f"events of aggregate {key} arrived out of order"
            )

    @clause("events.stable-id")
    def test_the_event_id_travels_with_the_message_on_every_delivery(
        self, publisher: EventPublisher, published_events: EventObserver
    ) -> None:
        sample = Sample()
        events = self._events(sample, "ab")
        publisher.publish(events, timeout=self.delivery_timeout)
        publisher.publish(events[:1], timeout=self.delivery_timeout)  # a redelivery

        seen = published_events.collect(_ours(sample), 3, self.delivery_timeout)

        assert sorted(s.event_id for s in seen) == sorted(
            [events[0].id, events[0].id, events[1].id]
        ), "every delivery carries the event's own id, the same each time"

    @clause("events.fields-mapped")
    def test_type_key_tenant_and_payload_arrive_intact(
        self, publisher: EventPublisher, published_events: EventObserver
    ) -> None:
        sample = Sample()
        events = [
            sample.event(
                "a",
                tenant_id=sample.tenant_id(),
                payload={"run": sample.token, "nested": {"list": [1, 2.5, True, None, "ü"]}},
            ),
            sample.event("b", tenant_id=None, payload={"run": sample.token, "n": 0}),
        ]
        publisher.publish(events, timeout=self.delivery_timeout)

        seen = {
            s.event_id: s for s in published_events.collect(_ours(sample), 2, self.delivery_timeout)
        }

        for event in events:
            assert event.id in seen, f"event {event.id} was reported delivered but not received"
            observed = seen[event.id]
            assert observed == ObservedEvent(
                event.id, event.aggregate_id, event.event_type, event.tenant_id, observed.payload
            )
            assert as_json(observed.payload) == as_json(event.payload)

    @clause("events.failure-surfaced")
    def test_a_failed_delivery_is_reported_never_swallowed(
        self, failing_publisher: EventPublisher
    ) -> None:
        sample = Sample()
        events = self._events(sample, "ab")
        try:
            reports = failing_publisher.publish(events, timeout=self.delivery_timeout)
        finally:
            failing_publisher.close()

        assert [r.event_id for r in reports] == [e.id for e in events]
        for report in reports:
            assert report.delivered is False, f"{report.event_id} reported delivered"
            assert report.error.strip(), "a failed report says why"

    @clause("events.pipelined")
    def test_batches_begun_together_each_report_as_publish_does(
        self, publisher: EventPublisher
    ) -> None:
        begin = getattr(publisher, "begin_publish", None)
        if not callable(begin):
            pytest.skip("not applicable: the publisher offers no begin_publish")
        sample = Sample()
        # Distinct aggregates per batch: the relay never has one aggregate in two batches.
        batches = [self._events(sample, aggregates) for aggregates in ("ab", "cd", "ef")]

        pending = [begin(batch, timeout=self.delivery_timeout) for batch in batches]

        for batch, on_its_way in zip(batches, pending, strict=True):
            reports = on_its_way.reports()
            assert [r.event_id for r in reports] == [e.id for e in batch]
            assert [(r.delivered, r.error) for r in reports] == [(True, "")] * len(batch)
        assert begin([], timeout=self.delivery_timeout).reports() == []

    @clause("events.close-idempotent")
    def test_closing_twice_is_harmless(self, publisher: EventPublisher) -> None:
        publisher.close()
        publisher.close()
