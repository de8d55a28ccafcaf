"""Hook specifications of user-engine. Host name ``user_engine`` everywhere.

Adapters register *named factories*. A factory takes the adapter's settings mapping (from the
engine configuration) and returns the adapter. Hooks only ever gain parameters; an
implementation may accept fewer, so old plugins keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from user_engine.ports import AuditSink, EventPublisher, Telemetry, UserEngineStore

__all__ = [
    "PROJECT_NAME",
    "AuditSinkFactory",
    "EventPublisherFactory",
    "Register",
    "StoreFactory",
    "TelemetryFactory",
    "hookimpl",
    "hookspec",
]

PROJECT_NAME = "user_engine"
"""The one host name: plugin manager, markers, entry-point group and hook prefix."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Settings = Mapping[str, Any]
StoreFactory = Callable[[Settings], UserEngineStore]
EventPublisherFactory = Callable[[Settings], EventPublisher]
AuditSinkFactory = Callable[[Settings], AuditSink]
TelemetryFactory = Callable[[Settings], Telemetry]
Register = Callable[[str, Callable[[Settings], Any]], None]


@hookspec
def user_engine_register_stores(register: Register) -> None:
    """Register store factories by name.

    Call ``register(name, factory)`` once per store; ``factory(settings)`` returns a
    ``UserEngineStore``. Names are unique across all installed plugins.

    :param register: callable taking the adapter name and its factory.
    :returns: nothing; registration happens through ``register``.

    .. versionadded:: 0.1
    """


@hookspec
def user_engine_register_event_publishers(register: Register) -> None:
    """Register event publisher factories by name.

    Call ``register(name, factory)``; ``factory(settings)`` returns an ``EventPublisher``.

    :param register: callable taking the adapter name and its factory.
    :returns: nothing; registration happens through ``register``.

    .. versionadded:: 0.1
    """


@hookspec
def user_engine_register_audit_sinks(register: Register) -> None:
    """Register audit sink factories by name.

    Call ``register(name, factory)``; ``factory(settings)`` returns an ``AuditSink``.

    :param register: callable taking the adapter name and its factory.
    :returns: nothing; registration happens through ``register``.

    .. versionadded:: 0.1
    """


@hookspec
def user_engine_register_telemetry(register: Register) -> None:
    """Register telemetry factories by name.

    Call ``register(name, factory)``; ``factory(settings)`` returns a ``Telemetry``. The
    engine uses the one named by the ``telemetry`` setting; without it, telemetry is a no-op.

    :param register: callable taking the adapter name and its factory.
    :returns: nothing; registration happens through ``register``.

    .. versionadded:: 0.1
    """
