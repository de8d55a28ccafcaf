"""Fixtures of the PostgreSQL store's tests (the server comes from testsupport/postgres.py)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
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
    ProfileValue,
    Tenant,
    TenantAccount,
    TenantAccountStatus,
    TenantStatus,
    User,
    UserStatus,
)
from user_engine_store_postgres.hooks import create_store
from user_engine_store_postgres.store import PostgresStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Records:
    """Builds records with ids unique to the test (so tests never collide)."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self._n = itertools.count(1)

    def _id(self, prefix: str) -> str:
        return f"{prefix}{self.tag}-{next(self._n)}"

    def tenant(self, tenant_id: str | None = None) -> Tenant:
        tenant_id = tenant_id or f"t{self.tag}-{next(self._n)}"
        return Tenant(tenant_id, "Tenant", TenantStatus.ACTIVE, T0)

    def user(self) -> User:
        return User(self._id("usr_"), "User", UserStatus.ACTIVE, T0, T0)

    def account(self, user: User, handle: str | None = None) -> Account:
        return Account(
            self._id("acc_"), user.id, handle or self._id("h") + "@example.org",
            AccountStatus.ACTIVE, T0,
        )  # fmt: skip

    def tenant_account(self, tenant: Tenant, user: User) -> TenantAccount:
        return TenantAccount(
            tenant.id, user.id, TenantAccountStatus.ACTIVE, frozenset({"member"}), T0, T0
        )

    def membership(self, tenant: Tenant, user: User, group: str = "staff") -> Membership:
        return Membership(tenant.id, user.id, group, T0)

    def identity(self, user: User, subject: str | None = None) -> ExternalIdentity:
        return ExternalIdentity("https://idp.example", subject or self._id("sub-"), user.id, T0)

    def factor(self, user: User) -> Factor:
        return Factor(self._id("fac_"), user.id, "totp", "phone", "ref-" + self.tag, T0)

    def application(self) -> Application:
        return Application(f"a{self.tag}-{next(self._n)}", "App", T0)

    def binding(self, app: Application, tenant: Tenant, user: User) -> ApplicationBinding:
        return ApplicationBinding(app.id, tenant.id, user.id, frozenset({f"{app.id}.nick"}), T0)

    def catalog(self, app: Application, version: int = 1, default: str = "x") -> CatalogVersion:
        attribute = AttributeDefinition(
            "nick", AttributeType.STRING,
            layers=frozenset({Layer.USER, Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT,
                              Layer.APPLICATION_DEFAULT}),
            default=default,
        )  # fmt: skip
        return CatalogVersion(app.id, version, (attribute,), T0, "operator:op")

    def value(
        self,
        app: Application,
        value: object,
        *,
        layer: Layer = Layer.USER,
        user: User | None = None,
        tenant: Tenant | None = None,
    ) -> ProfileValue:
        key = ProfileKey(
            layer, app.id, "nick", tenant.id if tenant else None, user.id if user else None
        )
        return ProfileValue(key, value, 0, 1, "user:x", T0)  # type: ignore[arg-type]

    def audit(self, tenant_id: str | None, action: str = "test.action") -> AuditRecord:
        return AuditRecord(
            self._id("aud_"), T0, tenant_id, "op", "platform-operator", action, "user", "u",
            AuditOutcome.SUCCESS,
        )  # fmt: skip

    def event(self, aggregate: str, tenant_id: str | None = None) -> OutboxEvent:
        return OutboxEvent(
            self._id("evt_"), "test.happened", "user", aggregate, tenant_id, T0, {"n": 1}
        )


@pytest.fixture
def records() -> Records:
    """Record builders with ids unique to this test."""
    return Records()


@pytest.fixture
def store(postgres_settings: Mapping[str, Any]) -> Iterator[PostgresStore]:
    """A store on a fresh migrated database, as the runtime role."""
    store = create_store(postgres_settings)
    yield store
    store.close()


@pytest.fixture
def runtime_connection(postgres_database: Any) -> Iterator[psycopg.Connection[Any]]:
    """A raw autocommit connection as the runtime role: what a bug in the service could do."""
    with psycopg.connect(postgres_database.runtime_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def admin_connection(postgres_database: Any) -> Iterator[psycopg.Connection[Any]]:
    """A raw autocommit superuser connection to the test database."""
    with psycopg.connect(postgres_database.admin_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def two_tenants(store: PostgresStore, records: Records) -> tuple[Tenant, Tenant]:
    """Tenants A and B, each with a tenant account, membership, binding, tenant-layer value,
    audit record and outbox event: tenant-owned rows only."""
    a, b = records.tenant(), records.tenant()
    app = records.application()
    with store.transaction(AccessScope.all_tenants()) as tx:
        tx.insert_application(app)
        tx.insert_catalog_version(records.catalog(app))
        for tenant in (a, b):
            user = records.user()
            tx.insert_tenant(tenant)
            tx.insert_user(user)
            tx.insert_tenant_account(records.tenant_account(tenant, user))
            tx.insert_membership(records.membership(tenant, user))
            tx.put_binding(records.binding(app, tenant, user))
            tx.put_profile_value(
                records.value(app, "v", layer=Layer.USER_IN_TENANT, user=user, tenant=tenant),
                expected_version=None,
            )
            tx.append_audit(records.audit(tenant.id))
            tx.append_event(records.event(user.id, tenant.id))
    return a, b
