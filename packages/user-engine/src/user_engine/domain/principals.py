"""Principals (who calls) and the tenant context every tenant-scoped operation resolves."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from user_engine.domain.limits import check_id, check_slug
from user_engine.errors import ValidationError

__all__ = ["AccessScope", "Principal", "PrincipalKind", "TenantContext"]


class PrincipalKind(enum.StrEnum):
    """The four kinds of caller."""

    USER = "user"
    APPLICATION = "application"
    TENANT_ADMIN = "tenant-admin"
    PLATFORM_OPERATOR = "platform-operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a service operation.

    ``id`` is the user id (for a user), the application id, or the admin's / operator's id.
    ``tenant_id`` is set for a tenant admin (the only tenant it administers), else None.
    """

    kind: PrincipalKind
    id: str
    tenant_id: str | None = None

    @classmethod
    def user(cls, user_id: str) -> Principal:
        """The user ``user_id`` acting on itself."""
        return cls(PrincipalKind.USER, check_id(user_id, "principal id"))

    @classmethod
    def application(cls, application_id: str) -> Principal:
        """The application ``application_id``."""
        return cls(PrincipalKind.APPLICATION, check_slug(application_id, "principal id"))

    @classmethod
    def tenant_admin(cls, admin_id: str, tenant_id: str) -> Principal:
        """An administrator of ``tenant_id`` (and of no other tenant)."""
        return cls(
            PrincipalKind.TENANT_ADMIN,
            check_id(admin_id, "principal id"),
            check_slug(tenant_id, "principal tenant"),
        )

    @classmethod
    def platform_operator(cls, operator_id: str) -> Principal:
        """An operator of the whole platform (may cross tenants)."""
        return cls(PrincipalKind.PLATFORM_OPERATOR, check_id(operator_id, "principal id"))

    def check(self) -> Principal:
        """Return self if well-formed; raise ``ValidationError`` otherwise."""
        if not isinstance(self, Principal) or not isinstance(self.kind, PrincipalKind):
            raise ValidationError("caller must be a Principal", code="validation.principal")
        check_id(self.id, "principal id")
        if self.kind is PrincipalKind.TENANT_ADMIN:
            check_slug(self.tenant_id, "principal tenant")
        elif self.tenant_id is not None:
            raise ValidationError(
                "only a tenant admin principal carries a tenant", code="validation.principal"
            )
        return self

    @property
    def label(self) -> str:
        """``"<kind>:<id>"``, as recorded in audit records."""
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True, slots=True)
class AccessScope:
    """What one store transaction may see.

    ``tenant_id`` set: rows of that tenant (plus platform-scoped rows). ``platform`` True: every
    tenant (platform operator). Neither: platform-scoped rows only. Stores enforce it (the
    Postgres store through row-level security) in addition to the service's checks.
    """

    tenant_id: str | None = None
    platform: bool = False

    @classmethod
    def for_tenant(cls, tenant_id: str) -> AccessScope:
        """Scope of one tenant."""
        return cls(tenant_id=tenant_id)

    @classmethod
    def all_tenants(cls) -> AccessScope:
        """Platform-operator scope: every tenant."""
        return cls(platform=True)

    def allows(self, tenant_id: str | None) -> bool:
        """True if a row of ``tenant_id`` (None: platform row) is visible in this scope."""
        return tenant_id is None or self.platform or tenant_id == self.tenant_id


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The resolved tenant of an operation: who acts, in which tenant, with which scope."""

    principal: Principal
    tenant_id: str | None
    scope: AccessScope
