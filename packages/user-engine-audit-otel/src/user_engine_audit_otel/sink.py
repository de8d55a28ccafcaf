"""``OtelAuditSink``: the ``AuditSink`` port over OpenTelemetry logs.

Delivery is best-effort and asynchronous; the store's audit log is the source of truth:

- ``export`` maps each record (``mapping.map_audit_record``) and hands it to the log
  pipeline without waiting for the network. ``ExportResult.exported`` counts records the
  pipeline accepted; ``dropped`` counts records given up on since the previous result: those
  of this batch refused at once (queue full, sink closed) plus records of earlier batches the
  exporter failed to deliver in the background. Each drop comes with a reason in ``errors``;
  ``export`` never raises for delivery failures (malformed input is a ``ValidationError``
  and nothing is exported).
- ``flush`` waits for the queue to drain and is True only if nothing accepted since the
  previous flush failed.
- A gap left by an outage is filled from the store: ``user-engine audit export --since ...``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from user_engine.domain import AuditRecord
from user_engine.errors import ValidationError
from user_engine.ports import ExportResult

from user_engine_audit_otel._sdk_logs import OwnedLogPipeline, build_log_pipeline
from user_engine_audit_otel.mapping import AuditLogEntry, map_audit_record
from user_engine_audit_otel.settings import OtelSettings

__all__ = ["AuditSinkStatistics", "OtelAuditSink"]


@dataclass(frozen=True, slots=True)
class AuditSinkStatistics:
    """Counts since the sink was built (counts only, never record content).

    ``delivered``, ``failed`` and ``in_flight`` are known only for the sink's own pipeline;
    with an application ``LoggerProvider`` they are None.
    """

    accepted: int
    dropped: int
    delivered: int | None
    failed: int | None
    in_flight: int | None


class OtelAuditSink:
    """Exports audit records as OpenTelemetry log records (see the module docstring).

    :param logger_provider: the application's ``LoggerProvider``; without it the sink follows
        ``settings.provider`` (the global provider if one is set, else its own pipeline built
        from the standard ``OTEL_*`` variables, exporting OTLP/HTTP).
    :param exporter: a logs SDK exporter for the sink's own pipeline instead of OTLP/HTTP
        (drops are then still counted).
    :param settings: parsed ``[otel]`` settings (defaults otherwise).
    """

    def __init__(
        self,
        *,
        logger_provider: Any = None,
        exporter: Any = None,
        settings: OtelSettings | None = None,
        name: str = "otel",
    ) -> None:
        self.name = name
        self.settings = settings or OtelSettings()
        self._policy = self.settings.detail_policy
        self._pipeline = build_log_pipeline(
            self.settings, logger_provider=logger_provider, exporter=exporter
        )
        self._lock = threading.Lock()
        self._accepted = 0
        self._dropped = 0

    def map(self, record: AuditRecord) -> AuditLogEntry:
        """The log record fields ``record`` is exported as (for inspection and tests)."""
        return map_audit_record(
            record, policy=self._policy, max_attribute_length=self.settings.max_attribute_length
        )

    def export(self, records: Sequence[AuditRecord]) -> ExportResult:
        """Hand a batch to the log pipeline; return what was taken and what was dropped."""
        candidate: object = records
        if isinstance(candidate, str | bytes) or not isinstance(candidate, Sequence):
            raise ValidationError(
                "records must be a sequence of AuditRecord",
                code="validation.type",
                details={"field": "records"},
            )
        # Map everything first: a malformed record fails the call before anything is sent.
        entries = [self.map(record) for record in records]
        delivery = self._pipeline.send(entries)
        with self._lock:
            self._accepted += delivery.exported
            self._dropped += delivery.dropped
        return ExportResult(delivery.exported, delivery.dropped, delivery.errors)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for queued records; True if all were delivered."""
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout < 0
        ):
            raise ValidationError(
                "timeout must be a number of seconds, 0 or more",
                code="validation.type",
                details={"field": "timeout"},
            )
        return self._pipeline.flush(float(timeout))

    def statistics(self) -> AuditSinkStatistics:
        """Counts of accepted, dropped, delivered, failed and queued records."""
        with self._lock:
            accepted, dropped = self._accepted, self._dropped
        pipeline = self._pipeline
        if isinstance(pipeline, OwnedLogPipeline):
            ledger = pipeline.ledger
            return AuditSinkStatistics(
                accepted, dropped, ledger.delivered, ledger.failed, ledger.in_flight
            )
        return AuditSinkStatistics(accepted, dropped, None, None, None)

    def close(self) -> None:
        """Flush what is queued (bounded by the exporter's timeout) and release. Idempotent;
        the application's own ``LoggerProvider`` is flushed, never shut down."""
        self._pipeline.close()
