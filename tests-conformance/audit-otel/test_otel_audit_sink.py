"""The OpenTelemetry audit sink against the conformance suite, as a third party writes it.

The sink is built through its ``otel`` entry point and exports over real OTLP/HTTP to a
receiver on 127.0.0.1; the observer decodes what arrived and maps the documented attribute
names (docs/telemetry.md) back to audit record fields. Two classes: ``sync`` delivery, where
an export's result is the receiver's verdict, and the default ``batch`` delivery, where
``export`` only queues and a failure found in the background is counted in the next result.
"""

import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from user_engine.plugins import PluginHost
from user_engine.ports import AuditSink
from user_engine_audit_otel.testing import LocalOtlpReceiver, ReceivedLogRecord
from user_engine_conformance import AuditObserver, AuditSinkConformance, PollingObserver

# The documented attribute of each audit record field.
FIELD_OF_ATTRIBUTE = {
    "user_engine.audit.record.id": "id",
    "user_engine.audit.sequence": "sequence",
    "user_engine.tenant.id": "tenant_id",
    "user_engine.actor.id": "actor_id",
    "user_engine.actor.kind": "actor_kind",
    "user_engine.action": "action",
    "user_engine.target.kind": "target_kind",
    "user_engine.target.id": "target_id",
    "user_engine.outcome": "outcome",
    "user_engine.reason_code": "reason_code",
    "user_engine.request.id": "request_id",
}
DETAIL_PREFIX = "user_engine.audit.detail."
SERVICE_NAME = "conformance-audit-otel"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exported_fields(item: ReceivedLogRecord) -> dict[str, object]:
    """One received log record as the kit's ``ExportedAudit``: record fields under their
    names, and everything else it carried under its own name."""
    fields: dict[str, object] = {}
    for name, value in item.attributes.items():
        if name in FIELD_OF_ATTRIBUTE:
            fields[FIELD_OF_ATTRIBUTE[name]] = value
        elif name.startswith(DETAIL_PREFIX):
            fields["details." + name.removeprefix(DETAIL_PREFIX)] = value
        else:
            fields[name] = value
    fields["occurred_at"] = EPOCH + timedelta(microseconds=item.time_unix_nano // 1000)
    fields["event_name"] = item.event_name
    fields["severity_number"] = item.severity_number
    fields["severity_text"] = item.severity_text
    fields["body"] = item.body
    fields["scope_name"] = item.scope_name
    # The resource describes the exporting process (service name, SDK), the same for every
    # record: kept whole, under one name.
    fields["resource"] = dict(item.resource)
    return fields


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestOtelAuditSink(AuditSinkConformance):
    adapter_name = "otel"
    delivery = "sync"

    # Constants of the mapping and of the deployment, never record data beyond its fields:
    # the schema version, the event name and body (made of the action, outcome and reason),
    # the severity (by outcome), the instrumentation scope and the resource.
    exported_extra_fields = frozenset(
        {
            "user_engine.audit.schema_version",
            "event_name",
            "severity_number",
            "severity_text",
            "body",
            "scope_name",
            "resource",
        }
    )

    @pytest.fixture(scope="class")
    @classmethod
    def receiver(cls) -> Iterator[LocalOtlpReceiver]:
        with LocalOtlpReceiver() as running:
            yield running

    @pytest.fixture
    def adapter_settings(self, receiver: LocalOtlpReceiver) -> Mapping[str, Any]:
        return {
            "provider": "own",
            "delivery": self.delivery,
            "endpoint": receiver.logs_endpoint,
            "timeout": 5,
            "service_name": SERVICE_NAME,
        }

    @pytest.fixture
    def exported_audit(self, receiver: LocalOtlpReceiver) -> AuditObserver:
        return PollingObserver(lambda: [exported_fields(r) for r in receiver.log_records()])

    @pytest.fixture
    def failing_audit_sink(self, plugin_host: PluginHost) -> AuditSink:
        # Nothing listens on the port: every request is refused.
        return plugin_host.create_audit_sink(
            "otel",
            {
                "provider": "own",
                "delivery": self.delivery,
                "endpoint": f"http://127.0.0.1:{unused_port()}/v1/logs",
                "timeout": 0.5,
            },
        )


class TestOtelAuditSinkBatched(TestOtelAuditSink):
    delivery = "batch"
