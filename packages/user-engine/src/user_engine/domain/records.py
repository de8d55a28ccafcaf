"""Immutable records of every kind the engine stores. No I/O, no driver types."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "Account",
    "AccountStatus",
    "Application",
    "ApplicationBinding",
    "ExternalIdentity",
    "Factor",
    "Membership",
    "Tenant",
    "TenantAccount",
    "TenantAccountStatus",
    "TenantStatus",
    "User",
    "UserStatus",
]


class TenantStatus(enum.StrEnum):
    """Lifecycle of a tenant."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class UserStatus(enum.StrEnum):
    """Lifecycle of a user: active <-> suspended -> closed -> erased."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


AccountStatus = UserStatus
"""Accounts share the user lifecycle."""


class TenantAccountStatus(enum.StrEnum):
    """State of a user inside one tenant."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant: the unit of isolation. Its id is a caller-chosen slug."""

    id: str
    name: str
    status: TenantStatus
    created_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class User:
    """A person known to the platform. Platform-scoped; reached by tenants via tenant accounts."""

    id: str
    display_name: str
    status: UserStatus
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class Account:
    """A sign-in account of a user (a handle such as an e-mail), with its own lifecycle."""

    id: str
    user_id: str
    handle: str
    status: AccountStatus
    created_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class TenantAccount:
    """The state of a user inside a tenant, with the tenant roles it holds."""

    tenant_id: str
    user_id: str
    status: TenantAccountStatus
    roles: frozenset[str]
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class Membership:
    """Membership of a user in a named group of a tenant."""

    tenant_id: str
    user_id: str
    group: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """An identity-provider identity (issuer, subject) linked to exactly one user."""

    issuer: str
    subject: str
    user_id: str
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class Factor:
    """An authentication factor. The secret lives behind the secrets port: only its reference."""

    id: str
    user_id: str
    kind: str
    label: str
    secret_ref: str = field(repr=False)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Application:
    """An application of the platform; it publishes the catalog of attributes it owns."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApplicationBinding:
    """A user bound to an application inside a tenant, with the attributes the binding grants.

    ``granted_attributes`` holds qualified names (``"<application>.<attribute>"``).
    """

    application_id: str
    tenant_id: str
    user_id: str
    granted_attributes: frozenset[str]
    created_at: datetime
