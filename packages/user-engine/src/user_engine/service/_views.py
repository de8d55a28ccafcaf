"""Result types of the service that are not domain records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from user_engine.domain import (
    Account,
    EffectiveProfile,
    ExternalIdentity,
    Factor,
    OutboxStats,
    TenantAccount,
    User,
)
from user_engine.ports import Readiness

__all__ = ["REDACTED", "Diagnostics", "MeView"]

REDACTED: Final = "[redacted]"
"""Stands in for a ``secret`` value wherever a value would otherwise be returned."""


@dataclass(frozen=True, slots=True)
class MeView:
    """What ``me`` returns: the caller's own records and effective profile."""

    user: User
    accounts: tuple[Account, ...]
    tenant_accounts: tuple[TenantAccount, ...]
    identities: tuple[ExternalIdentity, ...]
    factors: tuple[Factor, ...]
    profile: EffectiveProfile


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Redacted diagnostics: readiness, record counts and outbox figures. Never values."""

    readiness: Readiness
    counts: Mapping[str, int]
    outbox: OutboxStats
    audit_exports_dropped: int
