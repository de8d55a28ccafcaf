"""The names this adapter emits: event names, attributes, metrics, severities.

Every name here is documented in ``docs/telemetry.md``; a test checks that every attribute the
adapter actually emits appears there. Our own attributes live in the ``user_engine.*``
namespace (lower case, dot-separated, snake_case words, never both a namespace and an
attribute). The one standard attribute used is ``error.type`` on spans and metrics, because it
means exactly what OpenTelemetry defines: the class of error an operation ended with.
``enduser.id`` is deliberately not used: an audit actor is as often an application or an
operator as an end user, and ``enduser.*`` attributes trigger personal-data handling in many
backends for what is here an opaque id.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTION",
    "ACTOR_ID",
    "ACTOR_KIND",
    "AUDIT_DETAILS_DROPPED",
    "AUDIT_DETAIL_PREFIX",
    "AUDIT_EVENT_PREFIX",
    "AUDIT_RECORD_ID",
    "AUDIT_SCHEMA_VERSION",
    "AUDIT_SCHEMA_VERSION_ATTRIBUTE",
    "AUDIT_SEQUENCE",
    "ERROR_TYPE",
    "INSTRUMENTATION_SCOPE",
    "METRIC_DENIALS",
    "METRIC_OPERATIONS",
    "METRIC_OPERATION_DURATION",
    "METRIC_OUTBOX_LAG",
    "METRIC_RELAY_EVENTS",
    "OUTCOME",
    "REASON_CODE",
    "RELAY_RESULT",
    "REQUEST_ID",
    "SEVERITY_BY_OUTCOME",
    "SPAN_PREFIX",
    "TARGET_ID",
    "TARGET_KIND",
    "TENANT_ID",
]

INSTRUMENTATION_SCOPE: Final = "user_engine"
"""Name of the tracer, meter and logger (instrumentation scope) of everything emitted here."""

# -- audit log records ---------------------------------------------------------------------
AUDIT_EVENT_PREFIX: Final = "user_engine.audit."
"""An audit log record's event name is this prefix plus the record's action."""

AUDIT_SCHEMA_VERSION: Final = 1
"""Version of the audit log record layout below; raised when an attribute changes meaning."""

TENANT_ID: Final = "user_engine.tenant.id"
ACTOR_ID: Final = "user_engine.actor.id"
ACTOR_KIND: Final = "user_engine.actor.kind"
ACTION: Final = "user_engine.action"
TARGET_KIND: Final = "user_engine.target.kind"
TARGET_ID: Final = "user_engine.target.id"
OUTCOME: Final = "user_engine.outcome"
REASON_CODE: Final = "user_engine.reason_code"
REQUEST_ID: Final = "user_engine.request.id"
AUDIT_RECORD_ID: Final = "user_engine.audit.record.id"
AUDIT_SEQUENCE: Final = "user_engine.audit.sequence"
AUDIT_SCHEMA_VERSION_ATTRIBUTE: Final = "user_engine.audit.schema_version"
AUDIT_DETAIL_PREFIX: Final = "user_engine.audit.detail."
"""Each allowed detail ``key`` becomes the attribute ``user_engine.audit.detail.<key>``."""
AUDIT_DETAILS_DROPPED: Final = "user_engine.audit.details_dropped"
"""How many details the allow rule or the size bound left out (present only when > 0)."""

SEVERITY_BY_OUTCOME: Final[dict[str, tuple[int, str]]] = {
    # OpenTelemetry severity numbers: INFO = 9, WARN = 13, ERROR = 17.
    "success": (9, "INFO"),
    "denied": (13, "WARN"),
    "failed": (17, "ERROR"),
}
"""Severity number and text of an audit log record, by the record's outcome."""

# -- spans and metrics ---------------------------------------------------------------------
SPAN_PREFIX: Final = "user_engine."
"""A service operation's span is this prefix plus the operation: ``user_engine.user.create``."""

ERROR_TYPE: Final = "error.type"
"""Standard attribute: the error code an operation ended with (absent on success)."""

RELAY_RESULT: Final = "user_engine.relay.result"
"""What became of relayed outbox events: ``published``, ``failed`` or ``dead_lettered``."""

METRIC_OPERATIONS: Final = "user_engine.operations"
"""Counter of finished service operations ({operation})."""
METRIC_OPERATION_DURATION: Final = "user_engine.operation.duration"
"""Histogram of service operation durations (s)."""
METRIC_DENIALS: Final = "user_engine.authorization.denials"
"""Counter of authorization denials ({denial})."""
METRIC_RELAY_EVENTS: Final = "user_engine.relay.events"
"""Counter of outbox events the relay handled ({event}), by ``user_engine.relay.result``."""
METRIC_OUTBOX_LAG: Final = "user_engine.outbox.lag"
"""Gauge: age of the oldest pending outbox event when the relay last reported (s)."""
