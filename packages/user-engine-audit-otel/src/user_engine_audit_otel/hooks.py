"""Registration of the ``otel`` audit sink and telemetry through the ``user_engine`` entry point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from user_engine.hookspecs import Register, hookimpl

from user_engine_audit_otel.settings import parse_settings
from user_engine_audit_otel.sink import OtelAuditSink
from user_engine_audit_otel.telemetry import OtelTelemetry

__all__ = [
    "create_audit_sink",
    "create_telemetry",
    "user_engine_register_audit_sinks",
    "user_engine_register_telemetry",
]


def create_audit_sink(settings: Mapping[str, Any]) -> OtelAuditSink:
    """Build the audit sink from the ``[otel]`` table (``ConfigurationError`` if invalid).

    A ``logger_provider`` entry (set from code) makes the sink use that provider.
    """
    return OtelAuditSink(settings=parse_settings(settings))


def create_telemetry(settings: Mapping[str, Any]) -> OtelTelemetry:
    """Build the telemetry from the same ``[otel]`` table."""
    return OtelTelemetry.from_settings(parse_settings(settings))


@hookimpl
def user_engine_register_audit_sinks(register: Register) -> None:
    """Register the OpenTelemetry audit sink as ``otel``."""
    register("otel", create_audit_sink)


@hookimpl
def user_engine_register_telemetry(register: Register) -> None:
    """Register the OpenTelemetry telemetry as ``otel``."""
    register("otel", create_telemetry)
