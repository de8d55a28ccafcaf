"""OpenTelemetry for user-engine: audit records as OTel log records, spans and metrics.

Install with ``pip install "user-engine[otel]"`` and configure ``audit = "otel"`` and
``telemetry = "otel"``; see ``docs/telemetry.md`` for every name emitted.
"""

from user_engine_audit_otel.mapping import AuditLogEntry, DetailPolicy, map_audit_record
from user_engine_audit_otel.settings import OtelSettings, parse_settings
from user_engine_audit_otel.sink import AuditSinkStatistics, OtelAuditSink
from user_engine_audit_otel.telemetry import OtelTelemetry

__all__ = [
    "AuditLogEntry",
    "AuditSinkStatistics",
    "DetailPolicy",
    "OtelAuditSink",
    "OtelSettings",
    "OtelTelemetry",
    "map_audit_record",
    "parse_settings",
]
