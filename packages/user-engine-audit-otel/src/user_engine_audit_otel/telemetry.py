"""``OtelTelemetry``: the ``Telemetry`` port over the OpenTelemetry *API* only.

Spans and metrics go to whatever tracer and meter providers the application configured (the
global ones unless given); with no SDK configured the API's no-op providers make every call
nearly free. Only what the port passes in is recorded: operation names, tenant ids,
principal kinds, outcomes, error codes and counts ([telemetry.no-values]). Exceptions are not
recorded on spans (their messages are for the caller); only their code or type name is.
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from user_engine.errors import UserEngineError, ValidationError

from user_engine_audit_otel import conventions as names
from user_engine_audit_otel.settings import OtelSettings

__all__ = ["OtelTelemetry"]

_MAX_NAME: Final = 64
_OUTCOMES: Final = frozenset({"success", "denied", "failed"})
_DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def _package_version() -> str:
    try:
        return importlib.metadata.version("user-engine-audit-otel")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _name(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string", code="validation.type", details={"field": field}
        )
    return value[:_MAX_NAME]


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"{field} must be a count, 0 or more", code="validation.type", details={"field": field}
        )
    return value


def _error_type(error: BaseException) -> str:
    if isinstance(error, UserEngineError):
        return error.code[:_MAX_NAME]
    kind = type(error)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


class _Recorder:
    """``OperationRecorder``: remembers how the operation ended (first call wins)."""

    __slots__ = ("error_code", "outcome")

    def __init__(self) -> None:
        self.outcome: str | None = None
        self.error_code = ""

    def finish(self, outcome: str, error_code: str = "") -> None:
        if self.outcome is not None:
            return
        if outcome not in _OUTCOMES:
            raise ValidationError(
                "outcome must be success, denied or failed",
                code="validation.type",
                details={"field": "outcome"},
            )
        self.outcome = outcome
        self.error_code = _name(error_code, "error_code")


class OtelTelemetry:
    """Spans around service operations and engine metrics (see ``docs/telemetry.md``).

    :param tracer_provider: defaults to the global one (a no-op until an SDK is configured).
    :param meter_provider: defaults to the global one.
    :param tenant_in_metrics: also put the tenant id on metrics (off by default: one series
        per tenant can overwhelm a metrics backend; spans always carry it).
    """

    name = "otel"

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        tenant_in_metrics: bool = False,
    ) -> None:
        version = _package_version()
        self._tracer = trace.get_tracer(
            names.INSTRUMENTATION_SCOPE, version, tracer_provider=tracer_provider
        )
        meter = metrics.get_meter(names.INSTRUMENTATION_SCOPE, version, meter_provider)
        self._tenant_in_metrics = tenant_in_metrics
        self._operations = meter.create_counter(
            names.METRIC_OPERATIONS, unit="{operation}", description="Finished service operations."
        )
        self._duration = meter.create_histogram(
            names.METRIC_OPERATION_DURATION,
            unit="s",
            description="Duration of service operations.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self._denials = meter.create_counter(
            names.METRIC_DENIALS, unit="{denial}", description="Authorization denials."
        )
        self._relay_events = meter.create_counter(
            names.METRIC_RELAY_EVENTS,
            unit="{event}",
            description="Outbox events handled by the relay, by result.",
        )
        self._outbox_lag = meter.create_gauge(
            names.METRIC_OUTBOX_LAG,
            unit="s",
            description="Age of the oldest pending outbox event at the relay's last report.",
        )

    @classmethod
    def from_settings(cls, settings: OtelSettings) -> OtelTelemetry:
        """Build from parsed ``[otel]`` settings."""
        return cls(
            tracer_provider=settings.tracer_provider,
            meter_provider=settings.meter_provider,
            tenant_in_metrics=settings.tenant_in_metrics,
        )

    @contextmanager
    def operation(
        self, operation: str, *, tenant_id: str | None, principal_kind: str
    ) -> Iterator[_Recorder]:
        """A span (and counters) around one service operation."""
        action = _name(operation, "operation")
        kind = _name(principal_kind, "principal_kind")
        span_attributes: dict[str, str] = {names.ACTION: action, names.ACTOR_KIND: kind}
        if tenant_id is not None:
            span_attributes[names.TENANT_ID] = _name(tenant_id, "tenant_id")
        recorder = _Recorder()
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            names.SPAN_PREFIX + action,
            kind=SpanKind.INTERNAL,
            attributes=span_attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield recorder
            except BaseException as error:
                # An operation that escapes without finishing (a bug, an interrupt) failed;
                # only the error's code or type name is recorded, never its message.
                recorder.finish("failed", _error_type(error))
                raise
            finally:
                elapsed = time.perf_counter() - started
                outcome = recorder.outcome or "success"
                span.set_attribute(names.OUTCOME, outcome)
                metric_attributes: dict[str, str] = {
                    names.ACTION: action,
                    names.ACTOR_KIND: kind,
                    names.OUTCOME: outcome,
                }
                if recorder.error_code:
                    span.set_attribute(names.ERROR_TYPE, recorder.error_code)
                    metric_attributes[names.ERROR_TYPE] = recorder.error_code
                if outcome != "success":
                    span.set_status(Status(StatusCode.ERROR))
                if self._tenant_in_metrics and names.TENANT_ID in span_attributes:
                    metric_attributes[names.TENANT_ID] = span_attributes[names.TENANT_ID]
                self._operations.add(1, metric_attributes)
                self._duration.record(elapsed, metric_attributes)
                if outcome == "denied":
                    self._denials.add(1, metric_attributes)

    def relay_progress(
        self, *, published: int, failed: int, dead_lettered: int, lag_seconds: float | None
    ) -> None:
        """Add the relay's counts since its last report and set the outbox lag (None: 0)."""
        counts = {
            "published": _count(published, "published"),
            "failed": _count(failed, "failed"),
            "dead_lettered": _count(dead_lettered, "dead_lettered"),
        }
        if lag_seconds is not None and (
            isinstance(lag_seconds, bool)
            or not isinstance(lag_seconds, int | float)
            or not math.isfinite(lag_seconds)
        ):
            raise ValidationError(
                "lag_seconds must be a number of seconds or None",
                code="validation.type",
                details={"field": "lag_seconds"},
            )
        for result, count in counts.items():
            if count:
                self._relay_events.add(count, {names.RELAY_RESULT: result})
        # None means nothing is pending: the lag is then zero, not the last value seen. A lag
        # below zero only means the clocks of writer and relay disagree slightly.
        self._outbox_lag.set(max(float(lag_seconds or 0.0), 0.0))
