"""Every name the adapters emit is documented in docs/telemetry.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from user_engine.domain import AuditOutcome, AuditRecord, Principal
from user_engine.errors import AuthorizationDenied, ConflictError
from user_engine_audit_otel import OtelAuditSink, OtelTelemetry
from user_engine_audit_otel import conventions as names
from user_engine_audit_otel.settings import SETTING_NAMES

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "telemetry.md"
OPERATOR = Principal.platform_operator("ops-olga")


@pytest.fixture(scope="module")
def documented() -> set[str]:
    """Every name written in backticks in the document."""
    return set(re.findall(r"`([^`\n]+)`", DOCUMENT.read_text(encoding="utf-8")))


def _documented_form(attribute: str) -> str:
    if attribute.startswith(names.AUDIT_DETAIL_PREFIX):
        return names.AUDIT_DETAIL_PREFIX + "<key>"
    return attribute


def test_every_log_attribute_the_sink_emits_is_documented(
    memory_sink: OtelAuditSink,
    log_capture: Any,
    record_factory: Callable[..., AuditRecord],
    make_service: Callable[..., Any],
    documented: set[str],
) -> None:
    memory_sink.export(
        [
            record_factory(
                outcome=AuditOutcome.DENIED,
                reason_code="denied.role",
                details={"layer": "user", "secret_value": "x"},
            ),
            record_factory(tenant_id=None),
        ]
    )
    service = make_service(audit_sink=memory_sink)
    service.create_tenant(OPERATOR, "acme", name="Acme")
    with pytest.raises(ConflictError):
        service.create_tenant(OPERATOR, "acme", name="Acme")

    emitted = {_documented_form(key) for log in log_capture.records() for key in log.attributes}

    assert names.AUDIT_DETAILS_DROPPED in emitted
    assert emitted - documented == set()
    assert {log.event_name for log in log_capture.records()} <= {
        names.AUDIT_EVENT_PREFIX + action for action in ("profile.write", "tenant.create")
    }
    assert "user_engine.audit.<action>" in documented


def test_every_span_and_metric_name_and_attribute_is_documented(
    telemetry_capture: Any, make_service: Callable[..., Any], documented: set[str]
) -> None:
    per_tenant = OtelTelemetry(
        tracer_provider=telemetry_capture.tracer_provider,
        meter_provider=telemetry_capture.meter_provider,
        tenant_in_metrics=True,
    )
    service = make_service(telemetry=per_tenant)
    service.create_tenant(OPERATOR, "acme", name="Acme")
    with pytest.raises(AuthorizationDenied):
        service.create_tenant(Principal.tenant_admin("adm-a", "acme"), "other", name="Other")
    with pytest.raises(ConflictError):
        service.create_tenant(OPERATOR, "acme", name="Acme")
    per_tenant.relay_progress(published=3, failed=1, dead_lettered=1, lag_seconds=2.0)

    spans = telemetry_capture.spans()
    points = telemetry_capture.metric_points()
    span_attributes = {key for span in spans for key in span.attributes}
    metric_attributes = {key for found in points.values() for p in found for key in p.attributes}

    assert {span.name for span in spans} == {"user_engine.tenant.create"}
    assert "user_engine.<operation>" in documented
    assert set(points) - documented == set()
    assert set(points) == {
        names.METRIC_OPERATIONS,
        names.METRIC_OPERATION_DURATION,
        names.METRIC_DENIALS,
        names.METRIC_RELAY_EVENTS,
        names.METRIC_OUTBOX_LAG,
    }
    assert span_attributes - documented == set()
    assert metric_attributes - documented == set()
    assert names.ERROR_TYPE in span_attributes
    assert names.TENANT_ID in metric_attributes


def test_every_setting_is_documented(documented: set[str]) -> None:
    assert SETTING_NAMES - documented == set()
