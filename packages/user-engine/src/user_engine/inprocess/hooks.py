"""Registration of the in-process adapters through the ``user_engine`` entry point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from user_engine.hookspecs import Register, hookimpl
from user_engine.inprocess.adapters import InProcessAuditSink, InProcessEventPublisher


def create_event_publisher(settings: Mapping[str, Any]) -> InProcessEventPublisher:
    """Build an in-process publisher (no settings)."""
    return InProcessEventPublisher()


def create_audit_sink(settings: Mapping[str, Any]) -> InProcessAuditSink:
    """Build an in-process audit sink (no settings)."""
    return InProcessAuditSink()


@hookimpl
def user_engine_register_event_publishers(register: Register) -> None:
    """Register ``inprocess``."""
    register("inprocess", create_event_publisher)


@hookimpl
def user_engine_register_audit_sinks(register: Register) -> None:
    """Register ``inprocess``."""
    register("inprocess", create_audit_sink)
