"""Every use of the OpenTelemetry logs signal, in one module.

The Python logs API (``opentelemetry._logs``), the logs SDK (``opentelemetry.sdk._logs``) and
the OTLP/HTTP log exporter module (``..._log_exporter``) are still underscore-named: their
names and signatures change between minor releases. Nothing else in this package imports
them, so an upgrade touches this file only; ``pyproject.toml`` pins the range tested here.

Two pipelines:

- ``OwnedLogPipeline``: built by the sink (from settings and the standard ``OTEL_*``
  variables): an SDK ``LoggerProvider`` with a batch processor whose exporter is wrapped to
  count every delivered and failed record (``DeliveryLedger``);
- ``ExternalLogPipeline``: the application's own ``LoggerProvider``. Its processors and
  exporters are the application's; the sink sees only what ``emit`` raises, and never shuts
  the provider down.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry._logs import (
    LoggerProvider,
    LogRecord,
    NoOpLoggerProvider,
    SeverityNumber,
    get_logger_provider,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from user_engine.errors import ConfigurationError

from user_engine_audit_otel import conventions as names
from user_engine_audit_otel._delivery import DeliveryLedger
from user_engine_audit_otel.mapping import AuditLogEntry
from user_engine_audit_otel.settings import OtelSettings

__all__ = [
    "Delivery",
    "ExternalLogPipeline",
    "LogPipeline",
    "LoggerProvider",
    "OwnedLogPipeline",
    "build_log_pipeline",
    "global_logger_provider",
]

logger = logging.getLogger("user_engine_audit_otel")

_DEFAULT_SERVICE_NAME = "user-engine"
_SHUTDOWN_TIMEOUT_MILLIS = 30_000


def _package_version() -> str:
    try:
        return importlib.metadata.version("user-engine-audit-otel")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def global_logger_provider() -> LoggerProvider | None:
    """The application's global ``LoggerProvider``, or None when it never set one."""
    provider = get_logger_provider()
    # Unset, the API hands out a proxy (or a no-op when told to); neither exports anything.
    if isinstance(provider, NoOpLoggerProvider) or type(provider).__name__ == (
        "ProxyLoggerProvider"
    ):
        return None
    return provider


def _to_log_record(entry: AuditLogEntry) -> LogRecord:
    # No explicit context: the current one is used, so a record exported inside a service
    # operation's span carries that span's trace and span ids (correlation for free).
    return LogRecord(
        timestamp=entry.timestamp_ns,
        observed_timestamp=time.time_ns(),
        severity_number=SeverityNumber(entry.severity_number),
        severity_text=entry.severity_text,
        body=entry.body,
        attributes=dict(entry.attributes),
        event_name=entry.event_name,
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one batch: records taken (or, synchronously, delivered), records
    dropped since the previous batch, and a reason per kind of drop."""

    exported: int
    dropped: int
    errors: tuple[str, ...]


def _tally(
    reasons: Counter[str], exported: int, late: tuple[int, tuple[str, ...]] = (0, ())
) -> Delivery:
    errors = tuple(f"{reason}: {count} record(s)" for reason, count in sorted(reasons.items()))
    return Delivery(exported, sum(reasons.values()) + late[0], errors + late[1])


class LogPipeline(Protocol):
    """Where the sink sends log records."""

    def send(self, entries: Sequence[AuditLogEntry]) -> Delivery: ...

    def flush(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class _CountingExporter(LogRecordExporter):
    """Delegates to the real exporter and settles every batch in the ledger."""

    def __init__(self, inner: LogRecordExporter, ledger: DeliveryLedger) -> None:
        self._inner = inner
        self._ledger = ledger

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            result = self._inner.export(batch)
        except Exception as error:  # an exporter bug must not kill the SDK's worker thread
            self._ledger.settle(
                len(batch), delivered=False, reason=f"exporter raised {type(error).__name__}"
            )
            return LogRecordExportResult.FAILURE
        delivered = result is LogRecordExportResult.SUCCESS
        self._ledger.settle(len(batch), delivered=delivered, reason="exporter failure")
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]  # untyped in the SDK


def _resource(settings: OtelSettings) -> Resource:
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; a service name set
    # there wins over ours, and ours (setting, else "user-engine") over the SDK's
    # "unknown_service".
    detected = Resource.create()
    if settings.service_name is not None:
        return detected.merge(Resource({SERVICE_NAME: settings.service_name}))
    current = str(detected.attributes.get(SERVICE_NAME, ""))
    if not current or current.startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: _DEFAULT_SERVICE_NAME}))
    return detected


class OwnedLogPipeline:
    """An SDK ``LoggerProvider`` owned by the sink, exporting through OTLP/HTTP (or the
    exporter given), with every delivery counted."""

    def __init__(self, settings: OtelSettings, exporter: LogRecordExporter | None = None) -> None:
        self.ledger = DeliveryLedger(settings.max_queue_size)
        if exporter is None:
            # Unset arguments fall back to OTEL_EXPORTER_OTLP_(LOGS_)* inside the exporter.
            exporter = OTLPLogExporter(
                endpoint=settings.endpoint,
                headers=dict(settings.headers) or None,
                timeout=settings.timeout,
            )
        batch_options: dict[str, Any] = {"max_queue_size": settings.max_queue_size}
        if settings.max_export_batch_size is not None:
            batch_options["max_export_batch_size"] = settings.max_export_batch_size
        if settings.schedule_delay is not None:
            batch_options["schedule_delay_millis"] = settings.schedule_delay * 1000.0
        try:
            self._processor = BatchLogRecordProcessor(
                _CountingExporter(exporter, self.ledger), **batch_options
            )
        except ValueError as error:  # e.g. an OTEL_BLRP_* batch size above the queue size
            exporter.shutdown()  # type: ignore[no-untyped-call]  # untyped in the SDK
            raise ConfigurationError(
                f"the log batch processor refused its settings: {error}",
                code="configuration.invalid",
                details={"setting": "max_export_batch_size"},
            ) from error
        # No atexit hook: the sink is closed by its owner (Engine.close), and one hook per
        # sink would keep every sink ever built alive until exit.
        self.provider = SdkLoggerProvider(resource=_resource(settings), shutdown_on_exit=False)
        self.provider.add_log_record_processor(self._processor)
        self._logger = self.provider.get_logger(names.INSTRUMENTATION_SCOPE, _package_version())
        self._synchronous = settings.delivery == "sync"
        # In sync mode one batch at a time owns the queue, so the ledger's movement during
        # the call is exactly that batch's fate.
        self._send_lock = threading.Lock()
        self._closed = False

    def _emit(self, entry: AuditLogEntry) -> str | None:
        if self._closed:
            return "sink closed"
        if not self.ledger.reserve():
            return "queue full"
        try:
            self._logger.emit(_to_log_record(entry))
        except Exception as error:  # the SDK does not raise here today; count it if it does
            self.ledger.cancel()
            return f"emit failed: {type(error).__name__}"
        return None

    def _emit_all(self, entries: Sequence[AuditLogEntry]) -> Counter[str]:
        reasons: Counter[str] = Counter()
        for entry in entries:
            reason = self._emit(entry)
            if reason is not None:
                reasons[reason] += 1
        return reasons

    def send(self, entries: Sequence[AuditLogEntry]) -> Delivery:
        if not self._synchronous:
            reasons = self._emit_all(entries)
            taken = len(entries) - sum(reasons.values())
            return _tally(reasons, taken, self.ledger.take_unreported())
        with self._send_lock:
            delivered_before = self.ledger.delivered
            reasons = self._emit_all(entries)
            if not self._closed:
                # Exports everything queued, in this thread, before returning: the verdict
                # of every record of this batch is known when it does.
                self._processor.force_flush()
            delivered = self.ledger.delivered - delivered_before
            return _tally(reasons, delivered, self.ledger.take_unreported())

    def flush(self, timeout: float) -> bool:
        if self._closed:
            return self.ledger.in_flight == 0
        # force_flush exports everything queued, in this thread; each request is bounded by
        # the exporter's own timeout (the SDK does not honour a flush timeout yet).
        self._processor.force_flush(max(int(timeout * 1000), 0))
        return self.ledger.wait_settled(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.provider.shutdown()
        lost = self.ledger.abandon_in_flight("shut down before delivery")
        if lost:
            logger.warning("audit sink closed with %d record(s) undelivered", lost)


class ExternalLogPipeline:
    """The application's ``LoggerProvider``: the sink emits into it and flushes it, no more."""

    def __init__(self, provider: LoggerProvider) -> None:
        self.provider = provider
        self._logger = provider.get_logger(names.INSTRUMENTATION_SCOPE, _package_version())
        self._closed = False

    def send(self, entries: Sequence[AuditLogEntry]) -> Delivery:
        # What the application's exporters lose later is theirs to observe; only a failure
        # raised while emitting reaches us.
        reasons: Counter[str] = Counter()
        for entry in entries:
            if self._closed:
                reasons["sink closed"] += 1
                continue
            try:
                self._logger.emit(_to_log_record(entry))
            except Exception as error:  # a broken application pipeline is a drop, not a crash
                reasons[f"emit failed: {type(error).__name__}"] += 1
        return _tally(reasons, len(entries) - sum(reasons.values()))

    def flush(self, timeout: float) -> bool:
        force_flush = getattr(self.provider, "force_flush", None)
        if force_flush is None:
            return True
        try:
            return bool(force_flush(max(int(timeout * 1000), 0)))
        except Exception:  # flushing is best-effort too
            return False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.flush(_SHUTDOWN_TIMEOUT_MILLIS / 1000)


def build_log_pipeline(
    settings: OtelSettings,
    *,
    logger_provider: LoggerProvider | None = None,
    exporter: LogRecordExporter | None = None,
) -> LogPipeline:
    """Choose the pipeline: an explicit provider, else per ``settings.provider``."""
    explicit = logger_provider if logger_provider is not None else settings.logger_provider
    if explicit is not None:
        if not isinstance(explicit, LoggerProvider):
            raise ConfigurationError(
                "otel setting 'logger_provider' must be an OpenTelemetry LoggerProvider",
                code="configuration.invalid",
                details={"setting": "logger_provider"},
            )
        return ExternalLogPipeline(explicit)
    if exporter is None and settings.provider != "own":
        found = global_logger_provider()
        if found is not None:
            return ExternalLogPipeline(found)
        if settings.provider == "global":
            raise ConfigurationError(
                "otel setting provider = 'global' but the application set no global "
                "LoggerProvider; set one first, or use 'auto' or 'own'",
                code="configuration.invalid",
                details={"setting": "provider"},
            )
    return OwnedLogPipeline(settings, exporter)
