"""Audit records: every decision, allowed or denied, durably recorded."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["AuditFilter", "AuditOutcome", "AuditPage", "AuditRecord"]


class AuditOutcome(enum.StrEnum):
    """How an audited operation ended."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited decision. ``details`` holds names, ids and codes only: never values.

    ``sequence`` is assigned by the store on append (strictly increasing, 0 before append).
    """

    id: str
    occurred_at: datetime
    tenant_id: str | None
    actor_id: str
    actor_kind: str
    action: str
    target_kind: str
    target_id: str
    outcome: AuditOutcome
    reason_code: str = ""
    request_id: str = ""
    details: Mapping[str, str] = field(default_factory=dict)
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Audit query: every set field must match. Time bounds are ``since <= t < until``.

    ``after_sequence`` pages forward: records with a larger sequence only.
    """

    tenant_id: str | None = None
    actor_id: str | None = None
    action: str | None = None
    outcome: AuditOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_sequence: int = 0
    limit: int = 100

    def matches(self, record: AuditRecord) -> bool:
        """True if ``record`` passes every set field (limit and paging aside)."""
        return (
            record.sequence > self.after_sequence
            and (self.tenant_id is None or record.tenant_id == self.tenant_id)
            and (self.actor_id is None or record.actor_id == self.actor_id)
            and (self.action is None or record.action == self.action)
            and (self.outcome is None or record.outcome == self.outcome)
            and (self.since is None or record.occurred_at >= self.since)
            and (self.until is None or record.occurred_at < self.until)
        )


@dataclass(frozen=True, slots=True)
class AuditPage:
    """A page of audit records in sequence order; ``next_after`` continues, None at the end."""

    records: tuple[AuditRecord, ...]
    next_after: int | None
