"""Fixtures: audit records, the SDK's in-memory exporters, a local OTLP receiver, a service."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from user_engine.domain import AuditOutcome, AuditRecord
from user_engine.service import UserEngineService
from user_engine.testing import FixedClock, InMemorySecretStore, SequentialIds
from user_engine_audit_otel import OtelAuditSink, OtelTelemetry
from user_engine_audit_otel.testing import LocalOtlpReceiver
from user_engine_store_memory import MemoryStore

_sequence = itertools.count(1)


def make_record(**overrides: Any) -> AuditRecord:
    """A fully populated audit record (every optional field set), with overrides."""
    number = next(_sequence)
    fields: dict[str, Any] = {
        "id": f"aud_{number:06d}",
        "occurred_at": datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        "tenant_id": "acme",
        "actor_id": "adm-alice",
        "actor_kind": "tenant-admin",
        "action": "profile.write",
        "target_kind": "attribute",
        "target_id": "crm.nickname",
        "outcome": AuditOutcome.SUCCESS,
        "reason_code": "",
        "request_id": f"req-{number}",
        "details": {"layer": "user"},
        "sequence": number,
    }
    fields.update(overrides)
    return AuditRecord(**fields)


@pytest.fixture
def record_factory() -> Callable[..., AuditRecord]:
    """``make_record`` as a fixture."""
    return make_record


@dataclass
class LogCapture:
    """An SDK ``LoggerProvider`` exporting synchronously to memory."""

    provider: LoggerProvider
    exporter: InMemoryLogRecordExporter

    def records(self) -> list[Any]:
        return [item.log_record for item in self.exporter.get_finished_logs()]

    def dump(self) -> str:
        """Everything exported, as text (for canary scans)."""
        return "\n".join(item.to_json() for item in self.exporter.get_finished_logs())


@pytest.fixture
def log_capture() -> Iterator[LogCapture]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield LogCapture(provider, exporter)
    provider.shutdown()


@pytest.fixture
def memory_sink(log_capture: LogCapture) -> Iterator[OtelAuditSink]:
    """The sink over the application-supplied in-memory ``LoggerProvider``."""
    sink = OtelAuditSink(logger_provider=log_capture.provider)
    yield sink
    sink.close()


@dataclass
class TelemetryCapture:
    """SDK tracer and meter providers recording to memory, and the telemetry over them."""

    tracer_provider: TracerProvider
    span_exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    metric_reader: InMemoryMetricReader
    telemetry: OtelTelemetry

    def spans(self) -> list[Any]:
        return list(self.span_exporter.get_finished_spans())

    def metric_points(self) -> dict[str, list[Any]]:
        """Data points by metric name (cumulative)."""
        found: dict[str, list[Any]] = {}
        data = self.metric_reader.get_metrics_data()
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def dump(self) -> str:
        """Every span and metric, as text (for canary scans)."""
        spans = "\n".join(span.to_json() for span in self.spans())
        data = self.metric_reader.get_metrics_data()
        return spans + "\n" + (data.to_json() if data is not None else "")


@pytest.fixture
def telemetry_capture() -> Iterator[TelemetryCapture]:
    span_exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = OtelTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield TelemetryCapture(tracer_provider, span_exporter, meter_provider, reader, telemetry)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def receiver() -> Iterator[LocalOtlpReceiver]:
    """A local OTLP/HTTP logs receiver on 127.0.0.1, stopped at the end."""
    with LocalOtlpReceiver() as running:
        yield running


@pytest.fixture
def make_service() -> Callable[..., UserEngineService]:
    """A service over a fresh memory store, with the given audit sink and telemetry."""

    def build(**ports: Any) -> UserEngineService:
        store = MemoryStore()
        store.migrate()
        return UserEngineService(
            store=store,
            clock=FixedClock(),
            ids=SequentialIds(),
            secrets=InMemorySecretStore(),
            **ports,
        )

    return build
