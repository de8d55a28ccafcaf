"""Builders of well-formed records with ids unique to one test.

Every test draws its own ``Sample``: ids carry a random token, so tests never see each
other's rows even when an adapter's settings share one database across a whole class.
Related rows are always created (user before account, tenant before tenant account ...), so
stores that enforce references by foreign key accept them.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from user_engine.domain import (
    AccessScope,
    Account,
    AccountStatus,
    Application,
    ApplicationBinding,
    AttributeDefinition,
    AttributeType,
    AuditOutcome,
    AuditRecord,
    CatalogVersion,
    ExternalIdentity,
    Factor,
    Layer,
    Membership,
    OutboxEvent,
    ProfileKey,
    ProfileScalar,
    ProfileValue,
    Sensitivity,
    Tenant,
    TenantAccount,
    TenantAccountStatus,
    TenantStatus,
    User,
    UserStatus,
    WriterRole,
)
from user_engine.ports import StoreTransaction, UserEngineStore

__all__ = [
    "PLATFORM",
    "T0",
    "Rollback",
    "Sample",
    "all_pending",
    "as_json",
    "error_chain_text",
    "pairs",
    "rolls_back",
]

PLATFORM: Final = AccessScope.all_tenants()
"""The platform-operator scope: sees every tenant."""

T0: Final = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
"""A fixed instant with microseconds, so time round trips are checked to the microsecond."""


def as_json(value: object) -> str:
    """Canonical JSON text: tells ``True`` from ``1`` and ``1.0`` from ``1``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def error_chain_text(error: BaseException) -> str:
    """The text of an error and of every error it was raised from (for canary checks)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current!s} {current!r}")
        parts.append(repr(getattr(current, "details", "")))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


class Sample:
    """Records for one test, ids unique to it. ``label`` tells rows of one kind apart."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        self.canary = f"canary-{self.token}-do-not-leak"
        """A value that must never appear in diagnostics, errors or exports."""

    # -- ids ----------------------------------------------------------------------------------
    def tenant_id(self, label: str = "a") -> str:
        """A tenant slug."""
        return f"t-{self.token}-{label}"

    def user_id(self, label: str = "1") -> str:
        """A user id."""
        return f"usr_{self.token}_{label}"

    def application_id(self, label: str = "a") -> str:
        """An application slug."""
        return f"app-{self.token}-{label}"

    def issuer(self, label: str = "a") -> str:
        """An identity provider issuer URL."""
        return f"https://idp-{label}.{self.token}.example"

    def action(self, label: str = "a") -> str:
        """An audit action unique to this test."""
        return f"conformance.{self.token}.{label}"

    def next(self) -> int:
        """A number unique within this sample."""
        return next(self._counter)

    # -- records ------------------------------------------------------------------------------
    def tenant(self, label: str = "a", *, name: str | None = None) -> Tenant:
        """An active tenant."""
        return Tenant(self.tenant_id(label), name or f"Tenant {label}", TenantStatus.ACTIVE, T0)

    def user(self, label: str = "1", *, display_name: str | None = None) -> User:
        """An active user."""
        return User(
            self.user_id(label),
            display_name or f"Person {label}",
            UserStatus.ACTIVE,
            T0,
            T0 + timedelta(seconds=1),
        )

    def account(self, user_id: str, label: str, *, handle: str | None = None) -> Account:
        """An active account of ``user_id``."""
        return Account(
            f"acc_{self.token}_{label}",
            user_id,
            handle or f"{label}.{self.token}@example.com",
            AccountStatus.ACTIVE,
            T0,
        )

    def tenant_account(
        self, tenant_id: str, user_id: str, *, roles: Sequence[str] = ("member",)
    ) -> TenantAccount:
        """An active tenant account."""
        return TenantAccount(
            tenant_id, user_id, TenantAccountStatus.ACTIVE, frozenset(roles), T0, T0
        )

    def membership(self, tenant_id: str, user_id: str, group: str = "staff") -> Membership:
        """A group membership."""
        return Membership(tenant_id, user_id, group, T0)

    def identity(
        self, user_id: str, subject: str, *, issuer: str | None = None
    ) -> ExternalIdentity:
        """An external identity link."""
        return ExternalIdentity(issuer or self.issuer(), subject, user_id, T0)

    def factor(self, user_id: str, label: str) -> Factor:
        """A factor holding only a secret reference."""
        return Factor(
            f"fac_{self.token}_{label}",
            user_id,
            "totp",
            f"Phone {label}",
            f"sec_{self.token}_{label}",
            T0,
        )

    def application(self, label: str = "a") -> Application:
        """An application."""
        return Application(self.application_id(label), f"Application {label}", T0)

    def binding(
        self, application_id: str, tenant_id: str, user_id: str, granted: Sequence[str] = ()
    ) -> ApplicationBinding:
        """A binding granting ``granted`` (qualified names)."""
        return ApplicationBinding(application_id, tenant_id, user_id, frozenset(granted), T0)

    def catalog(
        self,
        application_id: str,
        version: int,
        attributes: Sequence[AttributeDefinition] | None = None,
    ) -> CatalogVersion:
        """A catalog version; by default one string attribute ``nickname``."""
        return CatalogVersion(
            application_id,
            version,
            tuple(attributes)
            if attributes is not None
            else (AttributeDefinition("nickname", AttributeType.STRING),),
            T0 + timedelta(minutes=version),
            f"app:{application_id}",
        )

    def rich_catalog(self, application_id: str, version: int = 1) -> CatalogVersion:
        """A catalog that uses every attribute option, for round trips."""
        return self.catalog(
            application_id,
            version,
            (
                AttributeDefinition(
                    "locale",
                    AttributeType.STRING,
                    Sensitivity.PUBLIC,
                    frozenset({WriterRole.SELF, WriterRole.TENANT_ADMIN}),
                    frozenset({Layer.USER, Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT}),
                    required=True,
                    enum=("de-CH", "en-GB", "fr-FR"),
                    default="en-GB",
                    description="Préférence de langue 🌍",
                ),
                AttributeDefinition(
                    "nickname",
                    AttributeType.STRING,
                    Sensitivity.PERSONAL,
                    min_length=1,
                    max_length=40,
                    pattern=r"[^\s].*",
                ),
                AttributeDefinition(
                    "seats",
                    AttributeType.INTEGER,
                    Sensitivity.INTERNAL,
                    frozenset({WriterRole.APPLICATION}),
                    frozenset({Layer.APPLICATION_DEFAULT, Layer.TENANT_DEFAULT}),
                    enum=(1, 5, 10),
                    default=5,
                ),
                AttributeDefinition(
                    "ratio", AttributeType.NUMBER, minimum=-1.5, maximum=2.25, default=0.5
                ),
                AttributeDefinition("beta", AttributeType.BOOLEAN, default=False),
                AttributeDefinition(
                    "pin",
                    AttributeType.STRING,
                    Sensitivity.SECRET,
                    frozenset({WriterRole.SELF}),
                    frozenset({Layer.USER}),
                ),
            ),
        )

    def profile_key(
        self,
        application_id: str,
        attribute: str = "nickname",
        *,
        layer: Layer = Layer.USER,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> ProfileKey:
        """A profile key; give the tenant and user its layer needs."""
        return ProfileKey(layer, application_id, attribute, tenant_id, user_id)

    def profile_value(
        self, key: ProfileKey, value: ProfileScalar, *, version: int = 1
    ) -> ProfileValue:
        """A value at ``key``, written by its user (or the application)."""
        return ProfileValue(
            key,
            value,
            version,
            1,
            key.user_id or f"app:{key.application_id}",
            T0 + timedelta(seconds=self.next()),
        )

    def audit_record(
        self,
        *,
        tenant_id: str | None = None,
        actor: str = "operator",
        action: str | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        occurred_at: datetime = T0,
        details: Mapping[str, str] | None = None,
    ) -> AuditRecord:
        """An audit record; actor ids are unique to this sample."""
        n = self.next()
        return AuditRecord(
            id=f"aud_{self.token}_{n}",
            occurred_at=occurred_at,
            tenant_id=tenant_id,
            actor_id=f"{actor}_{self.token}",
            actor_kind="platform-operator",
            action=action or self.action(),
            target_kind="user",
            target_id=self.user_id(str(n)),
            outcome=outcome,
            reason_code="" if outcome is AuditOutcome.SUCCESS else "policy.not_allowed",
            request_id=f"req_{self.token}_{n}",
            details=details if details is not None else {"attribute": "app.nickname"},
        )

    def event(
        self,
        aggregate: str = "a",
        *,
        tenant_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        occurred_at: datetime = T0,
    ) -> OutboxEvent:
        """An outbox event of aggregate ``<token>-<aggregate>``."""
        n = self.next()
        return OutboxEvent(
            id=f"evt_{self.token}_{n}",
            event_type="user.updated",
            aggregate_type="user",
            aggregate_id=f"usr_{self.token}_{aggregate}",
            tenant_id=tenant_id,
            occurred_at=occurred_at,
            payload=payload if payload is not None else {"n": n, "run": self.token},
        )

    # -- writing ------------------------------------------------------------------------------
    def write(
        self, store: UserEngineStore, scope: AccessScope = PLATFORM
    ) -> AbstractContextManager[StoreTransaction]:
        """A transaction (platform scope unless told)."""
        return store.transaction(scope)

    def seed_user(
        self, store: UserEngineStore, label: str = "1", *, tenants: Sequence[str] = ()
    ) -> User:
        """Insert a user (and tenant accounts in ``tenants``, which must exist)."""
        user = self.user(label)
        with self.write(store) as tx:
            tx.insert_user(user)
            for tenant_id in tenants:
                tx.insert_tenant_account(self.tenant_account(tenant_id, user.id))
        return user

    def seed_tenants(self, store: UserEngineStore, *labels: str) -> list[Tenant]:
        """Insert tenants."""
        tenants = [self.tenant(label) for label in labels]
        with self.write(store) as tx:
            for tenant in tenants:
                tx.insert_tenant(tenant)
        return tenants

    def seed_application(self, store: UserEngineStore, label: str = "a") -> Application:
        """Insert an application with catalog version 1 (``rich_catalog``)."""
        application = self.application(label)
        with self.write(store) as tx:
            tx.insert_application(application)
            tx.insert_catalog_version(self.rich_catalog(application.id))
        return application


class Rollback(Exception):
    """Raised by a clause to roll back the transaction or savepoint around it."""


class rolls_back:  # noqa: N801 - used like a function: ``with rolls_back(), tx: ...``
    """Expect the block to end with ``Rollback`` (which must pass through the store's
    transaction or savepoint unchanged) and swallow it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        if kind is None:
            raise AssertionError("the block was expected to roll back with Rollback")
        return issubclass(kind, Rollback)


def all_pending(store: UserEngineStore, *, page: int = 500) -> list[OutboxEvent]:
    """Every pending event, paged by sequence (a shared database may hold many)."""
    found: list[OutboxEvent] = []
    after = 0
    while True:
        batch = store.pending_events(limit=page, after_sequence=after)
        found.extend(batch)
        if len(batch) < page or batch[-1].sequence <= after:
            return found
        after = batch[-1].sequence


def pairs(items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """Consecutive pairs."""
    return itertools.pairwise(items)
