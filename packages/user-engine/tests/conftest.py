"""The fixture world of the core tests: two tenants, their admins, two applications with
published catalogs, users in each tenant, on the reference memory store.

Every test gets a fresh world (building one costs about a millisecond). ``World.snapshot``
captures everything a test may need to prove that "nothing changed": the store's record
counts, every table of the memory store, the audit log, the outbox and what the audit sink
received.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from user_engine.domain import (
    AccessScope,
    Account,
    AuditFilter,
    AuditRecord,
    Factor,
    OutboxEvent,
    Principal,
    User,
)
from user_engine.inprocess import InProcessAuditSink
from user_engine.service import UserEngineService
from user_engine.testing import (
    FixedClock,
    InMemorySecretStore,
    RecordingMembershipExporter,
    SequentialIds,
)
from user_engine_store_memory import MemoryStore

ISSUER = "https://idp.example"
ALICE_SUBJECT = "alice-sub"
WORLD_FACTOR_SECRET = "world-factor-secret-0001"
ALICE_PIN = "1234"

# fmt: off
CRM_ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "nickname", "type": "string", "sensitivity": "public", "max_length": 64,
     "writers": ["self", "application", "tenant-admin", "platform-operator"],
     "layers": ["user-in-tenant", "user", "tenant-default", "application-default"]},
    {"name": "language", "type": "string", "enum": ["en", "fr", "de"], "default": "en",
     "sensitivity": "public", "writers": ["self", "tenant-admin", "platform-operator"],
     "layers": ["user-in-tenant", "user", "tenant-default"]},
    {"name": "token", "type": "string", "sensitivity": "secret",
     "writers": ["self", "application", "platform-operator"],
     "layers": ["user", "user-in-tenant"]},
    {"name": "pin", "type": "string", "sensitivity": "secret", "pattern": "[0-9]{4,8}",
     "writers": ["self", "platform-operator"], "layers": ["user"]},
    {"name": "age", "type": "integer", "sensitivity": "personal", "minimum": 0, "maximum": 150,
     "writers": ["self", "platform-operator"], "layers": ["user"]},
]
# fmt: on
"""The crm catalog: a string for every layer, an enum with a default, two secrets, a number."""

# fmt: off
BILLING_ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "plan", "type": "string", "enum": ["free", "team", "enterprise"],
     "default": "free", "sensitivity": "internal",
     "writers": ["application", "platform-operator"],
     "layers": ["user-in-tenant", "application-default"]},
    {"name": "seats", "type": "integer", "minimum": 1, "maximum": 10000,
     "sensitivity": "internal", "writers": ["application", "tenant-admin"],
     "layers": ["user-in-tenant", "tenant-default"]},
    {"name": "score", "type": "number", "minimum": 0, "maximum": 1, "sensitivity": "personal",
     "writers": ["application"], "layers": ["user"]},
    {"name": "active", "type": "boolean", "sensitivity": "public", "writers": ["application"],
     "layers": ["user-in-tenant"]},
]
# fmt: on
"""The billing catalog: an enum with a default, integer and number ranges, a boolean."""


@dataclass(frozen=True)
class Snapshot:
    """Everything observable about the engine's state at one moment."""

    counts: Mapping[str, int]
    tables: Mapping[str, object]
    audit: tuple[AuditRecord, ...]
    outbox: tuple[OutboxEvent, ...]
    exported: int

    def domain(self) -> Mapping[str, object]:
        """The tables without the audit log and the outbox."""
        return {k: v for k, v in self.tables.items() if k not in {"audit", "outbox", "leases"}}


class World:
    """Two tenants (acme, globex) and everything the tests act on.

    - acme: alice (roles editor, group staff, bound to crm granting billing.plan, an
      account, a linked identity, a factor, a nickname in acme and a pin), bob;
    - globex: carol (bound to crm in globex);
    - dave: a platform-only user, in no tenant;
    - applications crm and billing, each with its catalog published (version 1).
    """

    def __init__(self, store: MemoryStore | FailingStore | None = None) -> None:
        self.store = store if store is not None else MemoryStore()
        self.store.migrate()
        self.clock = FixedClock()
        self.ids = SequentialIds()
        self.secrets = InMemorySecretStore()
        self.audit_sink = InProcessAuditSink()
        self.exporter = RecordingMembershipExporter()
        self.service = UserEngineService(
            store=self.store,
            clock=self.clock,
            ids=self.ids,
            secrets=self.secrets,
            audit_sink=self.audit_sink,
            membership_exporter=self.exporter,
        )
        self.operator = Principal.platform_operator("ops-root")
        self.acme_admin = Principal.tenant_admin("adm-acme", "acme")
        self.globex_admin = Principal.tenant_admin("adm-globex", "globex")
        self.crm = Principal.application("crm")
        self.billing = Principal.application("billing")
        self._build()

    def _build(self) -> None:
        service, operator = self.service, self.operator
        service.create_tenant(operator, "acme", name="Acme Corp")
        service.create_tenant(operator, "globex", name="Globex Inc")
        service.register_application(operator, "crm", name="Customer Relations")
        service.register_application(operator, "billing", name="Billing")
        service.publish_catalog(self.crm, "crm", CRM_ATTRIBUTES)
        service.publish_catalog(self.billing, "billing", BILLING_ATTRIBUTES)
        self.alice: User = service.create_user(
            self.acme_admin, display_name="Alice", tenant_id="acme", roles=["editor"]
        )
        self.bob: User = service.create_user(self.acme_admin, display_name="Bob", tenant_id="acme")
        self.carol: User = service.create_user(
            self.globex_admin, display_name="Carol", tenant_id="globex"
        )
        self.dave: User = service.create_user(operator, display_name="Dave")
        alice = self.as_user(self.alice)
        self.alice_account: Account = service.create_account(
            alice, self.alice.id, handle="alice@example.com"
        )
        service.link_identity(operator, self.alice.id, issuer=ISSUER, subject=ALICE_SUBJECT)
        self.alice_factor: Factor = service.enroll_factor(
            alice, self.alice.id, kind="totp", label="phone", secret=WORLD_FACTOR_SECRET
        )
        service.add_membership(self.acme_admin, "acme", self.alice.id, "staff")
        service.bind_application(
            self.acme_admin,
            "crm",
            tenant_id="acme",
            user_id=self.alice.id,
            granted_attributes=["billing.plan"],
        )
        service.bind_application(
            self.globex_admin, "crm", tenant_id="globex", user_id=self.carol.id
        )
        service.write_profile_value(
            alice,
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=self.alice.id,
            tenant_id="acme",
            value="ali",
        )
        service.write_profile_value(
            alice, attribute="crm.pin", layer="user", user_id=self.alice.id, value=ALICE_PIN
        )

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def as_user(user: User) -> Principal:
        """The user acting on itself."""
        return Principal.user(user.id)

    def audit_log(self) -> tuple[AuditRecord, ...]:
        """Every audit record, in order (platform scope)."""
        return self.store.read_audit(AuditFilter(limit=1000), AccessScope.all_tenants()).records

    def outbox(self) -> tuple[OutboxEvent, ...]:
        """Every pending outbox event, in order."""
        return tuple(self.store.pending_events(limit=1000))

    def snapshot(self) -> Snapshot:
        """Capture the state (see ``Snapshot``)."""
        tables = {
            name: (dict(value) if isinstance(value, dict) else list(value))
            for name, value in vars(self.store._tables).items()
        }
        return Snapshot(
            counts=dict(self.store.record_counts()),
            tables=tables,
            audit=self.audit_log(),
            outbox=self.outbox(),
            exported=len(self.audit_sink.exported),
        )

    def audit_since(self, before: Snapshot) -> list[AuditRecord]:
        """Audit records appended after ``before`` was taken."""
        last = before.audit[-1].sequence if before.audit else 0
        return [r for r in self.audit_log() if r.sequence > last]

    def events_since(self, before: Snapshot) -> list[OutboxEvent]:
        """Outbox events appended after ``before`` was taken."""
        last = max((e.sequence for e in before.outbox), default=0)
        return [e for e in self.outbox() if e.sequence > last]


class FailingStore:
    """A memory store whose transactions raise ``failure`` from one method once armed.

    Everything else is delegated, so a test can make a mutation fail at any step (after the
    domain write, after the event) and check what the rollback left behind.
    """

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.fail_on: str | None = None
        self.failure: BaseException = RuntimeError("injected failure")

    def arm(self, method: str, failure: BaseException) -> None:
        """Make ``method`` of every transaction raise ``failure`` from now on."""
        self.fail_on, self.failure = method, failure

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self, scope: AccessScope) -> Iterator[object]:
        """The inner store's transaction, wrapped."""
        with self.inner.transaction(scope) as tx:
            yield _FailingTransaction(tx, self)


class _FailingTransaction:
    def __init__(self, tx: Any, store: FailingStore) -> None:
        self._tx, self._store = tx, store

    def __getattr__(self, name: str) -> Any:
        if name == self._store.fail_on:

            def fail(*args: object, **kwargs: object) -> None:
                raise self._store.failure

            return fail
        attribute: Callable[..., Any] = getattr(self._tx, name)
        return attribute


@pytest.fixture
def world() -> Iterator[World]:
    """A fresh fixture world."""
    built = World()
    yield built
    built.store.close()


@pytest.fixture
def failing_world() -> Iterator[World]:
    """A fixture world on a ``FailingStore`` (not armed yet)."""
    built = World(FailingStore())
    yield built
    built.store.close()
