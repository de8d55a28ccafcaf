"""Real OTLP/HTTP export to a local receiver; drops counted when it is down; re-export."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import user_engine.cli
from user_engine.cli import audit as audit_command
from user_engine.cli import main
from user_engine.cli.audit import reexport_audit
from user_engine.domain import AccessScope, AuditFilter, AuditOutcome, AuditRecord, Principal
from user_engine.errors import AuthorizationDenied
from user_engine_audit_otel import OtelAuditSink, OtelSettings
from user_engine_audit_otel.testing import LocalOtlpReceiver

RecordFactory = Callable[..., AuditRecord]
OPERATOR = Principal.platform_operator("ops-olga")
# Upper bound for waiting on background delivery; never a timing assertion.
PATIENCE = 30.0


def _sink(endpoint: str, **overrides: Any) -> OtelAuditSink:
    # provider "own": the test must not depend on whether something set a global provider.
    options: dict[str, Any] = {"provider": "own", "endpoint": endpoint, "timeout": 0.5}
    options.update(overrides)
    return OtelAuditSink(settings=OtelSettings(**options))


@pytest.fixture
def audit_command_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """``user-engine`` with the ``audit`` command (a no-op once the CLI lists it itself)."""
    commands = user_engine.cli._COMMANDS
    if audit_command not in commands:
        monkeypatch.setattr(user_engine.cli, "_COMMANDS", (*commands, audit_command))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_audit_records_arrive_over_otlp_http_exactly_as_mapped(
    receiver: LocalOtlpReceiver, record_factory: RecordFactory
) -> None:
    records = [
        record_factory(),
        record_factory(outcome=AuditOutcome.DENIED, reason_code="denied.role", tenant_id=None),
    ]
    sink = _sink(receiver.logs_endpoint, service_name="identity-platform")

    result = sink.export(records)
    flushed = sink.flush(PATIENCE)
    sink.close()

    assert (result.exported, result.dropped) == (2, 0)
    assert flushed is True
    arrived = receiver.log_records()
    assert [item.attributes["user_engine.audit.record.id"] for item in arrived] == [
        r.id for r in records
    ]
    for item, record in zip(arrived, records, strict=True):
        entry = sink.map(record)
        assert item.attributes == dict(entry.attributes)
        assert item.event_name == entry.event_name == f"user_engine.audit.{record.action}"
        assert item.time_unix_nano == entry.timestamp_ns
        assert (item.severity_number, item.severity_text) == (
            entry.severity_number,
            entry.severity_text,
        )
        assert item.body == entry.body
        assert item.scope_name == "user_engine"
        assert item.resource["service.name"] == "identity-platform"
    assert sink.statistics().delivered == 2


def test_the_service_name_defaults_to_user_engine(
    receiver: LocalOtlpReceiver, record_factory: RecordFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    sink = _sink(receiver.logs_endpoint)

    sink.export([record_factory()])
    sink.flush(PATIENCE)
    sink.close()

    [item] = receiver.log_records()
    assert item.resource["service.name"] == "user-engine"


def test_with_the_receiver_down_drops_are_counted_and_nothing_raises(
    record_factory: RecordFactory,
) -> None:
    sink = _sink(f"http://127.0.0.1:{_free_port()}/v1/logs")
    records = [record_factory() for _ in range(5)]

    first = sink.export(records)
    flushed = sink.flush(PATIENCE)
    later = sink.export([])
    sink.close()

    assert (first.exported, first.dropped) == (5, 0)
    assert flushed is False
    assert later.dropped == 5
    assert later.errors
    assert "not delivered" in later.errors[0]
    statistics = sink.statistics()
    assert (statistics.delivered, statistics.failed, statistics.in_flight) == (0, 5, 0)
    assert statistics.dropped == 5


def test_a_full_queue_drops_the_newest_records_and_counts_them(
    record_factory: RecordFactory,
) -> None:
    # A schedule delay of an hour keeps the worker asleep: the queue only fills.
    sink = _sink(
        f"http://127.0.0.1:{_free_port()}/v1/logs",
        max_queue_size=3,
        max_export_batch_size=3,
        schedule_delay=3600.0,
    )
    records = [record_factory() for _ in range(2)]
    sink.export(records)

    result = sink.export([record_factory() for _ in range(4)])
    sink.close()

    assert result.exported == 1
    assert result.dropped == 3
    assert result.errors == ("queue full: 3 record(s)",)


def test_export_after_close_is_counted_as_dropped(
    receiver: LocalOtlpReceiver, record_factory: RecordFactory
) -> None:
    sink = _sink(receiver.logs_endpoint)
    sink.close()
    sink.close()

    result = sink.export([record_factory()])

    assert (result.exported, result.dropped, result.errors) == (0, 1, ("sink closed: 1 record(s)",))


def test_receiver_down_the_engine_keeps_working_and_reexport_fills_the_gap(
    make_service: Callable[..., Any],
) -> None:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}/v1/logs"
    outage_sink = _sink(endpoint)
    service = make_service(audit_sink=outage_sink)
    started = service.clock.now()

    # The outage: every operation still succeeds (the denial is still raised as such).
    service.create_tenant(OPERATOR, "acme", name="Acme")
    service.create_tenant(OPERATOR, "globex", name="Globex")
    admin = Principal.tenant_admin("adm-gus", "globex")
    with pytest.raises(AuthorizationDenied):
        service.suspend_tenant(admin, "acme")
    assert outage_sink.flush(PATIENCE) is False
    # Drops found in the background reach the engine's counter with the next export.
    service.create_tenant(OPERATOR, "initech", name="Initech")
    assert service.audit_exports_dropped >= 3
    outage_sink.close()
    stored = service.store.read_audit(AuditFilter(limit=100), AccessScope.all_tenants()).records
    assert len(stored) == 4

    # The collector comes back at the same address; the operator re-exports the window.
    with LocalOtlpReceiver(port) as receiver:
        replay_sink = _sink(endpoint)
        progress: list[int] = []
        summary = reexport_audit(
            service.store,
            replay_sink,
            since=started,
            batch_size=3,
            progress=lambda step: progress.append(step.read),
        )
        replay_sink.close()
        arrived = receiver.log_records()

    assert summary.complete
    assert (summary.read, summary.exported, summary.dropped) == (4, 4, 0)
    assert progress == [3, 4]
    assert [item.attributes["user_engine.audit.record.id"] for item in arrived] == [
        record.id for record in stored
    ]
    assert [item.attributes["user_engine.outcome"] for item in arrived].count("denied") == 1


def test_reexport_honours_the_window_and_the_tenant(
    make_service: Callable[..., Any], receiver: LocalOtlpReceiver
) -> None:
    service = make_service()
    service.create_tenant(OPERATOR, "acme", name="Acme")
    service.clock.advance(timedelta(hours=1))
    middle = service.clock.now()
    service.create_tenant(OPERATOR, "globex", name="Globex")
    service.create_user(OPERATOR, display_name="Grace", tenant_id="globex")
    service.create_user(OPERATOR, display_name="Ada", tenant_id="acme")
    service.clock.advance(timedelta(hours=1))
    end = service.clock.now()
    service.create_user(OPERATOR, display_name="Late", tenant_id="globex")
    sink = _sink(receiver.logs_endpoint)

    summary = reexport_audit(service.store, sink, since=middle, until=end, tenant_id="globex")
    sink.close()

    arrived = receiver.log_records()
    assert summary.read == len(arrived) == 2
    assert {item.attributes["user_engine.tenant.id"] for item in arrived} == {"globex"}


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"since": "2026-02-01", "until": "2026-01-01"}, "later than"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"since": "2026-01-01", "tenant": "Not A Slug!"}, "tenant"),
        ({"since": "2026-01-01", "batch_size": 0}, "batch-size"),
        ({"since": "2026-01-01", "batch_size": "ten"}, "batch-size"),
        ({"since": "2026-01-01", "flush_timeout": "-1"}, "flush-timeout"),
    ],
)
def test_the_audit_export_command_refuses_bad_arguments_with_exit_code_2(
    window: dict[str, Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
    audit_command_wired: None,
) -> None:
    argv = ["audit", "export", "--since", window["since"]]
    for key in ("until", "tenant", "batch_size", "flush_timeout"):
        if key in window:
            argv += [f"--{key.replace('_', '-')}", str(window[key])]

    code = main(argv)

    assert code == 2
    assert message in capsys.readouterr().err


def test_the_audit_export_command_prints_progress_and_a_final_count(
    receiver: LocalOtlpReceiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    audit_command_wired: None,
) -> None:
    monkeypatch.setenv("USER_ENGINE_OTEL__PROVIDER", "own")
    monkeypatch.setenv("USER_ENGINE_OTEL__ENDPOINT", receiver.logs_endpoint)
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    code = main(["audit", "export", "--since", since, "--audit", "otel"])

    out = capsys.readouterr().out
    # A fresh memory store holds no audit records: nothing to send, and that is complete.
    assert code == 0
    assert "audit export complete: 0 of 0 record(s)" in out
    assert "exported to otel, 0 dropped, delivery confirmed" in out


def test_sync_delivery_reports_the_verdict_of_the_batch_itself(
    receiver: LocalOtlpReceiver, record_factory: RecordFactory
) -> None:
    sink = _sink(receiver.logs_endpoint, delivery="sync")

    result = sink.export([record_factory() for _ in range(3)])
    arrived_before_flush = len(receiver.log_records())
    sink.close()

    assert (result.exported, result.dropped, result.errors) == (3, 0, ())
    assert arrived_before_flush == 3


def test_sync_delivery_to_a_dead_receiver_reports_every_record_dropped_at_once(
    record_factory: RecordFactory,
) -> None:
    sink = _sink(f"http://127.0.0.1:{_free_port()}/v1/logs", delivery="sync")

    result = sink.export([record_factory() for _ in range(4)])
    sink.close()

    assert (result.exported, result.dropped) == (0, 4)
    # The exporter reports the failure (or, in older SDKs, raises it): either way one reason.
    [error] = result.errors
    assert error.endswith(": 4 record(s) not delivered")
