"""Spans and metrics of ``OtelTelemetry``, through the real SDK with in-memory exporters."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from user_engine.errors import ConflictError, ValidationError
from user_engine_audit_otel import OtelTelemetry


def test_a_successful_operation_is_one_span_and_counted_by_outcome(telemetry_capture: Any) -> None:
    telemetry = telemetry_capture.telemetry

    with telemetry.operation("user.create", tenant_id="acme", principal_kind="tenant-admin") as op:
        op.finish("success")

    [span] = telemetry_capture.spans()
    assert span.name == "user_engine.user.create"
    assert dict(span.attributes) == {
        "user_engine.action": "user.create",
        "user_engine.actor.kind": "tenant-admin",
        "user_engine.tenant.id": "acme",
        "user_engine.outcome": "success",
    }
    assert span.status.status_code is StatusCode.UNSET
    points = telemetry_capture.metric_points()
    [count] = points["user_engine.operations"]
    assert count.value == 1
    assert dict(count.attributes) == {
        "user_engine.action": "user.create",
        "user_engine.actor.kind": "tenant-admin",
        "user_engine.outcome": "success",
    }
    [duration] = points["user_engine.operation.duration"]
    assert duration.count == 1
    assert "user_engine.authorization.denials" not in points


def test_a_denial_sets_error_type_and_counts_a_denial(telemetry_capture: Any) -> None:
    telemetry = telemetry_capture.telemetry

    with telemetry.operation("tenant.suspend", tenant_id=None, principal_kind="user") as op:
        op.finish("denied", "denied.role")

    [span] = telemetry_capture.spans()
    assert span.attributes["error.type"] == "denied.role"
    assert span.attributes["user_engine.outcome"] == "denied"
    assert "user_engine.tenant.id" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is None
    [denial] = telemetry_capture.metric_points()["user_engine.authorization.denials"]
    assert denial.value == 1
    assert denial.attributes["error.type"] == "denied.role"


def test_an_exception_escaping_unfinished_records_only_its_code_or_type(
    telemetry_capture: Any,
) -> None:
    telemetry = telemetry_capture.telemetry

    with (
        pytest.raises(RuntimeError),
        telemetry.operation("user.create", tenant_id="acme", principal_kind="user"),
    ):
        raise RuntimeError("message with canary-runtime-41")
    with (
        pytest.raises(ConflictError),
        telemetry.operation("user.create", tenant_id="acme", principal_kind="user"),
    ):
        raise ConflictError("canary-conflict-42", code="user.exists")

    spans = telemetry_capture.spans()
    assert [span.attributes["error.type"] for span in spans] == ["RuntimeError", "user.exists"]
    assert all(span.events == () or len(span.events) == 0 for span in spans)
    assert "canary" not in telemetry_capture.dump()


def test_tenants_are_left_off_metrics_unless_asked_for(telemetry_capture: Any) -> None:
    with_tenant = OtelTelemetry(
        tracer_provider=telemetry_capture.tracer_provider,
        meter_provider=telemetry_capture.meter_provider,
        tenant_in_metrics=True,
    )

    with telemetry_capture.telemetry.operation("a.b", tenant_id="acme", principal_kind="user"):
        pass
    with with_tenant.operation("c.d", tenant_id="acme", principal_kind="user"):
        pass

    points = {
        p.attributes["user_engine.action"]: p
        for p in telemetry_capture.metric_points()["user_engine.operations"]
    }
    assert "user_engine.tenant.id" not in points["a.b"].attributes
    assert points["c.d"].attributes["user_engine.tenant.id"] == "acme"


def test_relay_progress_counts_events_by_result_and_sets_the_lag(telemetry_capture: Any) -> None:
    telemetry = telemetry_capture.telemetry

    telemetry.relay_progress(published=10, failed=2, dead_lettered=0, lag_seconds=3.5)
    telemetry.relay_progress(published=5, failed=0, dead_lettered=1, lag_seconds=None)

    points = telemetry_capture.metric_points()
    counts = {
        p.attributes["user_engine.relay.result"]: p.value
        for p in points["user_engine.relay.events"]
    }
    assert counts == {"published": 15, "failed": 2, "dead_lettered": 1}
    [lag] = points["user_engine.outbox.lag"]
    assert lag.value == 0.0


@pytest.mark.parametrize(
    "arguments",
    [
        {"published": -1, "failed": 0, "dead_lettered": 0, "lag_seconds": None},
        {"published": "10", "failed": 0, "dead_lettered": 0, "lag_seconds": None},
        {"published": 1, "failed": 0.5, "dead_lettered": 0, "lag_seconds": None},
        {"published": 1, "failed": 0, "dead_lettered": True, "lag_seconds": None},
        {"published": 1, "failed": 0, "dead_lettered": 0, "lag_seconds": float("nan")},
        {"published": 1, "failed": 0, "dead_lettered": 0, "lag_seconds": "3"},
    ],
)
def test_malformed_relay_progress_is_a_validation_error_and_records_nothing(
    telemetry_capture: Any, arguments: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        telemetry_capture.telemetry.relay_progress(**arguments)

    assert telemetry_capture.metric_points() == {}


@pytest.mark.parametrize(
    ("operation", "tenant", "kind"), [(None, "acme", "user"), ("a.b", 7, "user"), ("a.b", None, 3)]
)
def test_a_malformed_operation_is_a_validation_error_before_any_span(
    telemetry_capture: Any, operation: Any, tenant: Any, kind: Any
) -> None:
    with (
        pytest.raises(ValidationError),
        telemetry_capture.telemetry.operation(operation, tenant_id=tenant, principal_kind=kind),
    ):
        pass

    assert telemetry_capture.spans() == []


def test_an_unknown_outcome_is_a_validation_error(telemetry_capture: Any) -> None:
    with (
        pytest.raises(ValidationError),
        telemetry_capture.telemetry.operation("a.b", tenant_id=None, principal_kind="user") as op,
    ):
        op.finish("partly")


def test_without_an_sdk_the_telemetry_is_a_no_op() -> None:
    # A fresh interpreter: no global tracer or meter provider has been set there.
    script = (
        "from user_engine_audit_otel import OtelTelemetry\n"
        "from opentelemetry import trace\n"
        "t = OtelTelemetry()\n"
        "with t.operation('user.create', tenant_id='acme', principal_kind='user') as op:\n"
        "    span = trace.get_current_span()\n"
        "    op.finish('success')\n"
        "t.relay_progress(published=1, failed=0, dead_lettered=0, lag_seconds=1.0)\n"
        "print(span.is_recording())\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == "False"
