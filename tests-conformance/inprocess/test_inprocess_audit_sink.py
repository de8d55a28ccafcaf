"""The in-process audit sink against the conformance suite, as a third party writes it."""

import pytest
from user_engine.domain import AuditRecord
from user_engine.inprocess import InProcessAuditSink
from user_engine.plugins import PluginHost
from user_engine_conformance import (
    AuditObserver,
    AuditSinkConformance,
    PollingObserver,
    audit_record_fields,
)


class TestInProcessAuditSink(AuditSinkConformance):
    adapter_name = "inprocess"

    @pytest.fixture
    def exported_audit(self, audit_sink: InProcessAuditSink) -> AuditObserver:
        received: list[AuditRecord] = []
        audit_sink.subscribe(received.append)
        return PollingObserver(lambda: [audit_record_fields(r) for r in received])

    @pytest.fixture
    def failing_audit_sink(self, plugin_host: PluginHost) -> InProcessAuditSink:
        sink = plugin_host.create_audit_sink("inprocess", {})
        assert isinstance(sink, InProcessAuditSink)

        def reject(record: AuditRecord) -> None:
            raise ConnectionError("pipeline unavailable")

        sink.subscribe(reject)
        return sink
