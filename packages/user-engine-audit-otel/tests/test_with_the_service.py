"""The adapters under the real ``UserEngineService``: export timing, and canary values.

The service exports a denial at once (it is committed on its own, whatever happens to the
surrounding transaction) and every other audit record only after its transaction commits.
Nothing a caller passes as a value (profile values, secrets, evidence, display names,
handles) may appear in any exported log record, span or metric.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from user_engine.config import build_engine, load_config
from user_engine.demo import DEMO_SECRETS, run_demo
from user_engine.domain import AccessScope, AuditFilter, Principal
from user_engine.errors import AuthorizationDenied, ConflictError, ValidationError
from user_engine.inprocess import InProcessEventPublisher
from user_engine.relay import Relay
from user_engine_audit_otel import OtelAuditSink, OtelSettings
from user_engine_audit_otel.testing import LocalOtlpReceiver

OPERATOR = Principal.platform_operator("ops-olga")
ACME_ADMIN = Principal.tenant_admin("adm-alice", "acme")
GLOBEX_ADMIN = Principal.tenant_admin("adm-gus", "globex")
CANARIES = {
    "display_name": "Canary Display 7d1e",
    "handle": "canary-handle-92ab@example.com",
    "evidence": "canary-evidence-eyJhbGciOi-3f4c",
    "factor": "canary-factor-seed-JBSWY3DPEH",
    "nickname": "canary-nick-5b0e",
    "pin": "canary-pin-8c2d",
    "stale": "canary-stale-6a71",
    "denied": "canary-denied-0e93",
    "invalid": "CANARY INVALID PIN 4471",
    "guess": "canary-guess-1f55",
}


@pytest.fixture
def service(
    make_service: Callable[..., Any], memory_sink: OtelAuditSink, telemetry_capture: Any
) -> Any:
    built = make_service(audit_sink=memory_sink, telemetry=telemetry_capture.telemetry)
    built.create_tenant(OPERATOR, "acme", name="Acme")
    built.create_tenant(OPERATOR, "globex", name="Globex")
    return built


def _outcomes(log_capture: Any) -> list[tuple[str, str]]:
    return [
        (log.attributes["user_engine.action"], log.attributes["user_engine.outcome"])
        for log in log_capture.records()
    ]


def test_a_denial_inside_a_rolled_back_transaction_is_exported_exactly_once(
    service: Any, log_capture: Any
) -> None:
    log_capture.exporter.clear()

    def create_two_users_in_one_transaction() -> None:
        with service.transaction():
            service.create_user(ACME_ADMIN, display_name="Kept Back", tenant_id="acme")
            service.create_user(ACME_ADMIN, display_name="Elsewhere", tenant_id="globex")

    with pytest.raises(AuthorizationDenied):
        create_two_users_in_one_transaction()

    assert _outcomes(log_capture) == [("user.create", "denied")]
    stored = service.store.read_audit(AuditFilter(), AccessScope.all_tenants()).records
    [denial] = [record for record in stored if record.outcome.value == "denied"]
    [log] = log_capture.records()
    assert log.attributes["user_engine.audit.record.id"] == denial.id
    assert log.attributes["user_engine.audit.sequence"] == denial.sequence


def test_committed_audit_records_are_exported_only_after_the_commit(
    service: Any, log_capture: Any
) -> None:
    log_capture.exporter.clear()

    with service.transaction():
        service.create_user(ACME_ADMIN, display_name="First", tenant_id="acme")
        service.create_user(ACME_ADMIN, display_name="Second", tenant_id="acme")
        inside = _outcomes(log_capture)

    assert inside == []
    assert _outcomes(log_capture) == [("user.create", "success"), ("user.create", "success")]


def test_a_failed_mutation_is_exported_at_once_with_its_reason(
    service: Any, log_capture: Any
) -> None:
    log_capture.exporter.clear()

    with pytest.raises(ConflictError):
        service.create_tenant(OPERATOR, "acme", name="Again")

    [log] = log_capture.records()
    assert log.attributes["user_engine.outcome"] == "failed"
    assert log.attributes["user_engine.reason_code"] == "tenant.exists"
    assert log.severity_text == "ERROR"


def test_each_operation_span_is_the_parent_of_its_audit_log_record(
    service: Any, log_capture: Any, telemetry_capture: Any
) -> None:
    log_capture.exporter.clear()
    telemetry_capture.span_exporter.clear()

    service.create_user(ACME_ADMIN, display_name="Traced", tenant_id="acme")

    [log] = log_capture.records()
    [span] = telemetry_capture.spans()
    assert span.name == "user_engine.user.create"
    assert (log.trace_id, log.span_id) == (span.context.trace_id, span.context.span_id)


def _canary_scenario(service: Any) -> None:
    crm = Principal.application("crm")
    service.register_application(OPERATOR, "crm", name="CRM")
    service.publish_catalog(
        crm,
        "crm",
        [
            {"name": "nickname", "type": "string", "sensitivity": "public",
             "writers": ["self", "tenant-admin"], "layers": ["user", "tenant-default"]},
            {"name": "pin", "type": "string", "sensitivity": "secret",
             "pattern": "[0-9a-z-]{4,32}", "writers": ["self"], "layers": ["user"]},
        ],
    )  # fmt: skip
    user = service.create_user(ACME_ADMIN, display_name=CANARIES["display_name"], tenant_id="acme")
    me = Principal.user(user.id)
    service.create_account(me, user.id, handle=CANARIES["handle"])
    service.link_identity(
        OPERATOR,
        user.id,
        issuer="https://idp.example",
        subject="s-1",
        evidence=CANARIES["evidence"],
    )
    service.enroll_factor(me, user.id, kind="totp", label="phone", secret=CANARIES["factor"])
    service.bind_application(ACME_ADMIN, "crm", tenant_id="acme", user_id=user.id)
    written = service.write_profile_value(
        me, attribute="crm.nickname", layer="user", user_id=user.id, value=CANARIES["nickname"]
    )
    service.write_profile_value(
        me, attribute="crm.pin", layer="user", user_id=user.id, value=CANARIES["pin"]
    )
    with pytest.raises(ConflictError):
        service.write_profile_value(
            me, attribute="crm.nickname", layer="user", user_id=user.id,
            value=CANARIES["stale"], expected_version=written.version + 5,
        )  # fmt: skip
    with pytest.raises(AuthorizationDenied):
        service.write_profile_value(
            GLOBEX_ADMIN, attribute="crm.nickname", layer="tenant-default", tenant_id="acme",
            value=CANARIES["denied"],
        )  # fmt: skip
    with pytest.raises(ValidationError):
        service.write_profile_value(
            me, attribute="crm.pin", layer="user", user_id=user.id, value=CANARIES["invalid"]
        )
    service.verify_secret_attribute(
        crm, attribute="crm.pin", user_id=user.id, tenant_id="acme", candidate=CANARIES["guess"]
    )
    service.effective_profile(me, user.id, tenant_id="acme", explain=True)
    service.read_audit(OPERATOR, limit=500)


def test_no_value_passed_to_the_service_appears_in_any_log_span_or_metric(
    service: Any, log_capture: Any, telemetry_capture: Any
) -> None:
    _canary_scenario(service)

    exported = log_capture.dump() + telemetry_capture.dump()
    assert len(log_capture.records()) >= 10
    assert len(telemetry_capture.spans()) >= 12
    for name, canary in CANARIES.items():
        assert canary not in exported, f"the {name} value leaked into telemetry"
        assert canary.lower() not in exported.lower(), f"the {name} value leaked (case-folded)"


def test_no_value_reaches_the_otlp_receiver_either(
    make_service: Callable[..., Any], receiver: LocalOtlpReceiver
) -> None:
    sink = OtelAuditSink(
        settings=OtelSettings(provider="own", endpoint=receiver.logs_endpoint, timeout=5)
    )
    service = make_service(audit_sink=sink)
    service.create_tenant(OPERATOR, "acme", name="Acme")
    service.create_tenant(OPERATOR, "globex", name="Globex")

    _canary_scenario(service)
    assert sink.flush(30) is True
    sink.close()

    raw = b"".join(receiver.bodies)
    assert len(receiver.log_records()) >= 12
    for canary in CANARIES.values():
        assert canary.encode() not in raw


def test_the_demo_through_otel_exports_none_of_its_secrets(
    receiver: LocalOtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_ENGINE_AUDIT", "otel")
    monkeypatch.setenv("USER_ENGINE_OTEL__PROVIDER", "own")
    monkeypatch.setenv("USER_ENGINE_OTEL__ENDPOINT", receiver.logs_endpoint)

    with build_engine(load_config()) as engine:
        run_demo(engine, io.StringIO())
        assert engine.audit_sink.flush(30) is True

    raw = b"".join(receiver.bodies)
    arrived = receiver.log_records()
    assert {item.attributes["user_engine.outcome"] for item in arrived} == {
        "success",
        "denied",
        "failed",
    }
    for secret in DEMO_SECRETS:
        assert secret.encode() not in raw


def test_the_relay_reports_throughput_and_lag_through_the_telemetry(
    make_service: Callable[..., Any], telemetry_capture: Any
) -> None:
    service = make_service()
    service.create_tenant(OPERATOR, "acme", name="Acme")
    service.create_user(OPERATOR, display_name="Relayed", tenant_id="acme")
    pending = service.store.outbox_stats().pending
    relay = Relay(service.store, InProcessEventPublisher(), telemetry=telemetry_capture.telemetry)

    relay.drain()
    relay.report_progress(force=True)

    points = telemetry_capture.metric_points()
    counts = {
        p.attributes["user_engine.relay.result"]: p.value
        for p in points["user_engine.relay.events"]
    }
    assert counts == {"published": pending}
    [lag] = points["user_engine.outbox.lag"]
    assert lag.value == 0.0
