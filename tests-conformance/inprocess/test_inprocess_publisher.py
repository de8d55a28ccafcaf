"""The in-process event publisher against the conformance suite, as a third party writes it."""

import pytest
from user_engine.domain import OutboxEvent
from user_engine.inprocess import InProcessEventPublisher
from user_engine.plugins import PluginHost
from user_engine_conformance import (
    EventObserver,
    EventPublisherConformance,
    PollingObserver,
    observed_event,
)


class TestInProcessPublisher(EventPublisherConformance):
    adapter_name = "inprocess"

    @pytest.fixture
    def published_events(self, publisher: InProcessEventPublisher) -> EventObserver:
        # Subscribers see each event as it is delivered: that is this adapter's "broker".
        received: list[OutboxEvent] = []
        publisher.subscribe(received.append)
        return PollingObserver(lambda: [observed_event(e) for e in received])

    @pytest.fixture
    def failing_publisher(self, plugin_host: PluginHost) -> InProcessEventPublisher:
        publisher = plugin_host.create_event_publisher("inprocess", {})
        assert isinstance(publisher, InProcessEventPublisher)

        def reject(event: OutboxEvent) -> None:
            raise ConnectionError("subscriber unavailable")

        publisher.subscribe(reject)
        return publisher
