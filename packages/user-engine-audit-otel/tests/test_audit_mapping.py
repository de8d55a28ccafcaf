"""Every audit field maps to the documented log record field, through the real logs SDK."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from user_engine.domain import AuditOutcome, AuditRecord
from user_engine.errors import ValidationError
from user_engine_audit_otel import DetailPolicy, OtelAuditSink, OtelSettings, map_audit_record
from user_engine_audit_otel import conventions as names

RecordFactory = Callable[..., AuditRecord]


def test_every_audit_field_becomes_its_documented_attribute(
    memory_sink: OtelAuditSink, log_capture: Any, record_factory: RecordFactory
) -> None:
    record = record_factory(
        outcome=AuditOutcome.DENIED,
        reason_code="denied.other_tenant",
        details={"layer": "tenant-default", "issuer": "https://idp.example"},
    )

    result = memory_sink.export([record])

    assert (result.exported, result.dropped, result.errors) == (1, 0, ())
    [log] = log_capture.records()
    assert dict(log.attributes) == {
        "user_engine.audit.record.id": record.id,
        "user_engine.audit.sequence": record.sequence,
        "user_engine.audit.schema_version": 1,
        "user_engine.tenant.id": "acme",
        "user_engine.actor.id": "adm-alice",
        "user_engine.actor.kind": "tenant-admin",
        "user_engine.action": "profile.write",
        "user_engine.target.kind": "attribute",
        "user_engine.target.id": "crm.nickname",
        "user_engine.outcome": "denied",
        "user_engine.reason_code": "denied.other_tenant",
        "user_engine.request.id": record.request_id,
        "user_engine.audit.detail.layer": "tenant-default",
        "user_engine.audit.detail.issuer": "https://idp.example",
    }
    assert log.event_name == "user_engine.audit.profile.write"
    assert log.body == "profile.write denied (denied.other_tenant)"


def test_the_log_record_time_is_the_audit_record_time_to_the_microsecond(
    memory_sink: OtelAuditSink, log_capture: Any, record_factory: RecordFactory
) -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=2)))

    memory_sink.export([record_factory(occurred_at=moment)])

    [log] = log_capture.records()
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    assert log.timestamp == expected
    assert log.observed_timestamp >= log.timestamp


@pytest.mark.parametrize(
    ("outcome", "number", "text"),
    [
        (AuditOutcome.SUCCESS, 9, "INFO"),
        (AuditOutcome.DENIED, 13, "WARN"),
        (AuditOutcome.FAILED, 17, "ERROR"),
    ],
)
def test_severity_follows_the_outcome(
    memory_sink: OtelAuditSink,
    log_capture: Any,
    record_factory: RecordFactory,
    outcome: AuditOutcome,
    number: int,
    text: str,
) -> None:
    memory_sink.export([record_factory(outcome=outcome)])

    [log] = log_capture.records()
    assert (log.severity_number.value, log.severity_text) == (number, text)
    assert names.SEVERITY_BY_OUTCOME[outcome.value] == (number, text)


def test_a_platform_record_without_reason_or_request_leaves_those_attributes_out(
    memory_sink: OtelAuditSink, log_capture: Any, record_factory: RecordFactory
) -> None:
    memory_sink.export([record_factory(tenant_id=None, reason_code="", request_id="", details={})])

    [log] = log_capture.records()
    attributes = dict(log.attributes)
    for absent in (
        names.TENANT_ID,
        names.REASON_CODE,
        names.REQUEST_ID,
        names.AUDIT_DETAILS_DROPPED,
    ):
        assert absent not in attributes
    assert log.body == "profile.write success"


@pytest.mark.parametrize(
    "key",
    [
        "value",
        "new_value",
        "secret",
        "password",
        "api_token",
        "evidence",
        "credential_id",
        "Layer",
        "layer name",
        "9lives",
        "x" * 33,
        "",
    ],
)
def test_a_detail_key_outside_the_allow_rule_is_never_exported(
    memory_sink: OtelAuditSink, log_capture: Any, record_factory: RecordFactory, key: str
) -> None:
    memory_sink.export([record_factory(details={key: "canary-detail", "layer": "user"})])

    [log] = log_capture.records()
    attributes = dict(log.attributes)
    assert "canary-detail" not in attributes.values()
    assert attributes[names.AUDIT_DETAIL_PREFIX + "layer"] == "user"
    assert attributes[names.AUDIT_DETAILS_DROPPED] == 1


def test_an_explicit_detail_key_list_exports_only_those_keys(
    log_capture: Any, record_factory: RecordFactory
) -> None:
    sink = OtelAuditSink(
        logger_provider=log_capture.provider,
        settings=OtelSettings(detail_keys=frozenset({"issuer"})),
    )

    sink.export([record_factory(details={"issuer": "https://idp", "layer": "user"})])

    [log] = log_capture.records()
    attributes = dict(log.attributes)
    assert attributes[names.AUDIT_DETAIL_PREFIX + "issuer"] == "https://idp"
    assert names.AUDIT_DETAIL_PREFIX + "layer" not in attributes
    assert attributes[names.AUDIT_DETAILS_DROPPED] == 1


def test_details_beyond_the_count_bound_are_counted_not_exported(
    record_factory: RecordFactory,
) -> None:
    details = {f"key_{index:02d}": "x" for index in range(20)}

    entry = map_audit_record(record_factory(details=details), policy=DetailPolicy(max_details=4))

    exported = [key for key in entry.attributes if key.startswith(names.AUDIT_DETAIL_PREFIX)]
    assert exported == [names.AUDIT_DETAIL_PREFIX + f"key_{index:02d}" for index in range(4)]
    assert entry.attributes[names.AUDIT_DETAILS_DROPPED] == 16


def test_every_string_attribute_is_cut_to_the_configured_length(
    record_factory: RecordFactory,
) -> None:
    long = "y" * 5000
    record = record_factory(
        actor_id=long, target_id=long, reason_code=long, request_id=long, details={"layer": long}
    )

    entry = map_audit_record(record, max_attribute_length=40)

    assert all(len(value) <= 40 for value in entry.attributes.values() if isinstance(value, str))
    assert len(entry.body) <= 40 * 2 + 16


def test_a_record_exported_inside_a_span_carries_that_span_context(
    memory_sink: OtelAuditSink, log_capture: Any, record_factory: RecordFactory
) -> None:
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("operation") as span:
        memory_sink.export([record_factory()])

    [log] = log_capture.records()
    assert log.trace_id == span.get_span_context().trace_id
    assert log.span_id == span.get_span_context().span_id


@pytest.mark.parametrize(
    "bad",
    [
        "not a batch",
        b"bytes",
        None,
        42,
        [object()],
        [{"id": "aud_1"}],
    ],
)
def test_malformed_input_is_a_validation_error_and_exports_nothing(
    memory_sink: OtelAuditSink, log_capture: Any, bad: Any
) -> None:
    with pytest.raises(ValidationError):
        memory_sink.export(bad)

    assert log_capture.records() == []


def test_one_malformed_record_in_a_batch_exports_none_of_the_batch(
    memory_sink: OtelAuditSink, log_capture: Any, record_factory: RecordFactory
) -> None:
    broken = record_factory(outcome="maybe")

    with pytest.raises(ValidationError) as raised:
        memory_sink.export([record_factory(), broken])

    assert raised.value.code == "validation.type"
    assert log_capture.records() == []


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=600)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    details=st.dictionaries(_text, _text, max_size=24),
    actor=_text,
    target=_text,
    reason=_text,
)
def test_any_record_maps_within_bounds_and_only_to_documented_names(
    record_factory: RecordFactory,
    details: dict[str, str],
    actor: str,
    target: str,
    reason: str,
) -> None:
    record = record_factory(actor_id=actor, target_id=target, reason_code=reason, details=details)

    entry = map_audit_record(record)

    base = {
        names.AUDIT_RECORD_ID,
        names.AUDIT_SEQUENCE,
        names.AUDIT_SCHEMA_VERSION_ATTRIBUTE,
        names.TENANT_ID,
        names.ACTOR_ID,
        names.ACTOR_KIND,
        names.ACTION,
        names.TARGET_KIND,
        names.TARGET_ID,
        names.OUTCOME,
        names.REASON_CODE,
        names.REQUEST_ID,
        names.AUDIT_DETAILS_DROPPED,
    }
    policy = DetailPolicy()
    for key, value in entry.attributes.items():
        if isinstance(value, str):
            assert len(value) <= 256
        if key.startswith(names.AUDIT_DETAIL_PREFIX):
            assert policy.allows(key.removeprefix(names.AUDIT_DETAIL_PREFIX))
        else:
            assert key in base
    exported = sum(1 for key in entry.attributes if key.startswith(names.AUDIT_DETAIL_PREFIX))
    assert exported + int(entry.attributes.get(names.AUDIT_DETAILS_DROPPED, 0)) == len(details)
