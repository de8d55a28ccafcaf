"""Audit record -> log record fields: a pure mapping, no OpenTelemetry import.

The mapping is where the adapter's guarantees about *what* leaves the process live:

- every field of ``AuditRecord`` becomes one documented attribute (``conventions``), nothing
  else does; an absent tenant or an empty reason / request id is left out rather than sent
  empty;
- every string attribute is cut to ``max_attribute_length`` characters;
- details pass the ``DetailPolicy`` allow rule: a key must be a plain lower-case name, must
  not look like it names a value (``value``, ``secret``, ``password``, ``token`` ...), and,
  when an explicit list is configured, must be on it; at most ``max_details`` pass. Audit
  records hold only names, ids and codes by contract; the rule is a second line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from user_engine.domain import AuditOutcome, AuditRecord
from user_engine.errors import ValidationError

from user_engine_audit_otel import conventions as names

__all__ = [
    "DEFAULT_MAX_ATTRIBUTE_LENGTH",
    "DEFAULT_MAX_DETAILS",
    "VALUE_LIKE_KEY_PARTS",
    "AuditLogEntry",
    "DetailPolicy",
    "map_audit_record",
]

DEFAULT_MAX_ATTRIBUTE_LENGTH: Final = 256
"""Longest string attribute value exported (characters); longer ones are cut."""
DEFAULT_MAX_DETAILS: Final = 16
"""Most detail attributes exported per record."""
VALUE_LIKE_KEY_PARTS: Final = (
    "value",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
    "evidence",
    "private",
    "cookie",
    "session",
)
"""A detail key containing any of these is never exported: it names a value, not a thing."""

_DETAIL_KEY: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NANOSECONDS_PER_MICROSECOND: Final = 1000


@dataclass(frozen=True, slots=True)
class DetailPolicy:
    """The allow rule for audit record details (see the module docstring).

    :param allowed_keys: if given, only these keys may be exported (each must still pass the
        name and value-like checks).
    :param max_details: most details exported per record.
    """

    allowed_keys: frozenset[str] | None = None
    max_details: int = DEFAULT_MAX_DETAILS

    @classmethod
    def only(cls, keys: Iterable[str], *, max_details: int = DEFAULT_MAX_DETAILS) -> DetailPolicy:
        """A policy exporting only ``keys``."""
        return cls(frozenset(keys), max_details)

    def allows(self, key: str) -> bool:
        """True if a detail named ``key`` may be exported."""
        if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
            return False
        if any(part in key for part in VALUE_LIKE_KEY_PARTS):
            return False
        return self.allowed_keys is None or key in self.allowed_keys


@dataclass(frozen=True, slots=True)
class AuditLogEntry:
    """What one audit record becomes: the fields of an OpenTelemetry log record."""

    event_name: str
    timestamp_ns: int
    severity_number: int
    severity_text: str
    body: str
    attributes: Mapping[str, str | int]


def _bounded(text: object, limit: int) -> str:
    value = text if isinstance(text, str) else str(text)
    return value if len(value) <= limit else value[:limit]


def _timestamp_ns(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp would lose the microseconds of dates after 2255
    # and round others; the record's own time must survive exactly.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return ((aware - _EPOCH) // timedelta(microseconds=1)) * _NANOSECONDS_PER_MICROSECOND


def _check_record(record: object) -> AuditRecord:
    if not isinstance(record, AuditRecord):
        raise ValidationError(
            f"an audit sink exports AuditRecord objects, not {type(record).__name__}",
            code="validation.type",
            details={"field": "records"},
        )
    if not isinstance(record.occurred_at, datetime):
        raise ValidationError(
            "an audit record's occurred_at must be a datetime",
            code="validation.type",
            details={"field": "occurred_at"},
        )
    try:
        AuditOutcome(record.outcome)
    except ValueError as error:
        raise ValidationError(
            "an audit record's outcome must be success, denied or failed",
            code="validation.type",
            details={"field": "outcome"},
        ) from error
    if not isinstance(record.details, Mapping):
        raise ValidationError(
            "an audit record's details must be a mapping",
            code="validation.type",
            details={"field": "details"},
        )
    return record


def map_audit_record(
    record: AuditRecord,
    *,
    policy: DetailPolicy | None = None,
    max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH,
) -> AuditLogEntry:
    """Map one audit record to log record fields, as documented in ``docs/telemetry.md``.

    Raises ``ValidationError`` if ``record`` is not a well-formed ``AuditRecord``.
    """
    record = _check_record(record)
    policy = policy or DetailPolicy()
    limit = max_attribute_length
    outcome = AuditOutcome(record.outcome).value
    severity_number, severity_text = names.SEVERITY_BY_OUTCOME[outcome]
    action = _bounded(record.action, limit)
    attributes: dict[str, str | int] = {
        names.AUDIT_RECORD_ID: _bounded(record.id, limit),
        names.AUDIT_SEQUENCE: int(record.sequence),
        names.AUDIT_SCHEMA_VERSION_ATTRIBUTE: names.AUDIT_SCHEMA_VERSION,
        names.ACTOR_ID: _bounded(record.actor_id, limit),
        names.ACTOR_KIND: _bounded(record.actor_kind, limit),
        names.ACTION: action,
        names.TARGET_KIND: _bounded(record.target_kind, limit),
        names.TARGET_ID: _bounded(record.target_id, limit),
        names.OUTCOME: outcome,
    }
    if record.tenant_id is not None:
        attributes[names.TENANT_ID] = _bounded(record.tenant_id, limit)
    if record.reason_code:
        attributes[names.REASON_CODE] = _bounded(record.reason_code, limit)
    if record.request_id:
        attributes[names.REQUEST_ID] = _bounded(record.request_id, limit)
    exported = dropped = 0
    # Sorted so that which details survive the count bound does not depend on dict order.
    for key in sorted(record.details, key=str):
        if policy.allows(key) and exported < policy.max_details:
            attributes[names.AUDIT_DETAIL_PREFIX + key] = _bounded(record.details[key], limit)
            exported += 1
        else:
            dropped += 1
    if dropped:
        attributes[names.AUDIT_DETAILS_DROPPED] = dropped
    body = f"{action} {outcome}"
    if record.reason_code:
        body += f" ({_bounded(record.reason_code, limit)})"
    return AuditLogEntry(
        event_name=names.AUDIT_EVENT_PREFIX + action,
        timestamp_ns=_timestamp_ns(record.occurred_at),
        severity_number=severity_number,
        severity_text=severity_text,
        body=body,
        attributes=attributes,
    )
