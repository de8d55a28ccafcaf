"""The reference store: every record kind in Python dicts, exact port semantics.

Concurrency model: one re-entrant lock serialises transactions. A top-level transaction holds
it from begin to commit or rollback, so transactions are trivially serialisable and outbox
sequence order is commit order. Rollback replays an undo log; a savepoint remembers the log's
length and undoes back to it. Simple, exact, and fast enough for the demo and the tests.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from user_engine.domain import (
    AccessScope,
    Account,
    Application,
    ApplicationBinding,
    AuditFilter,
    AuditPage,
    AuditRecord,
    CatalogVersion,
    Claim,
    ClaimedEvent,
    EventStatus,
    ExternalIdentity,
    Factor,
    Membership,
    OutboxEvent,
    OutboxStats,
    ProfileKey,
    ProfileValue,
    RetryPolicy,
    Tenant,
    TenantAccount,
    User,
)
from user_engine.errors import ConflictError, NotFoundError, ValidationError
from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine.ports import RECORD_KINDS, Readiness, StoreCapability

__all__ = ["MemoryStore"]

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


@dataclasses.dataclass(slots=True)
class _Lease:
    token: str
    expires_at: datetime


class _Tables:
    """All state; mutated only under the store lock, through the undo-logging helpers."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.users: dict[str, User] = {}
        self.accounts: dict[str, Account] = {}
        self.account_handles: dict[str, str] = {}
        self.tenant_accounts: dict[tuple[str, str], TenantAccount] = {}
        self.memberships: dict[tuple[str, str, str], Membership] = {}
        self.identities: dict[tuple[str, str], ExternalIdentity] = {}
        self.factors: dict[str, Factor] = {}
        self.applications: dict[str, Application] = {}
        self.bindings: dict[tuple[str, str, str], ApplicationBinding] = {}
        self.catalogs: dict[tuple[str, int], CatalogVersion] = {}
        self.current_catalog: dict[str, int] = {}
        self.profile: dict[ProfileKey, ProfileValue] = {}
        self.audit: list[AuditRecord] = []
        self.outbox: dict[str, OutboxEvent] = {}
        self.leases: dict[str, _Lease] = {}


class _MemoryTransaction:
    """``StoreTransaction`` over the shared tables, with an undo log."""

    def __init__(self, store: MemoryStore, scope: AccessScope) -> None:
        self._store = store
        self._t = store._tables
        self._scopes = [scope]
        self._undo: list[Callable[[], None]] = []
        self._audit_sequences: dict[str, int] = {}
        self.appended_events = 0

    # -- transaction mechanics -----------------------------------------------------------
    @property
    def scope(self) -> AccessScope:
        return self._scopes[-1]

    @contextmanager
    def savepoint(self, scope: AccessScope | None = None) -> Iterator[None]:
        mark = len(self._undo)
        events_mark = self.appended_events
        self._scopes.append(scope or self.scope)
        try:
            yield
        except BaseException:
            self.rollback_to(mark)
            self.appended_events = events_mark
            raise
        finally:
            self._scopes.pop()

    def rollback_to(self, mark: int) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()

    def _set(self, table: dict[K, V], key: K, value: V) -> None:
        previous = table.get(key, _MISSING)
        table[key] = value

        def undo() -> None:
            if previous is _MISSING:
                del table[key]
            else:
                table[key] = previous

        self._undo.append(undo)

    def _delete(self, table: dict[K, V], key: K) -> None:
        previous = table.pop(key)
        self._undo.append(lambda: table.__setitem__(key, previous))

    def _visible(self, tenant_id: str | None) -> bool:
        return self.scope.allows(tenant_id)

    def _require_visible(self, tenant_id: str, kind: str) -> None:
        if not self._visible(tenant_id):
            raise NotFoundError(
                f"{kind} is outside the transaction's tenant scope",
                code="tenant.out_of_scope",
                details={"kind": kind},
            )

    def _conditional_replace(
        self, table: dict[K, Any], key: K, row: Any, expected_version: int, kind: str
    ) -> None:
        current = table.get(key)
        if current is None:
            raise NotFoundError(f"{kind} does not exist", code=f"{kind}.not_found")
        if current.version != expected_version:
            raise ConflictError(
                f"{kind} changed since it was read (version {current.version}, expected "
                f"{expected_version}); read it again and retry",
                code="stale",
                details={"kind": kind},
            )
        self._set(table, key, dataclasses.replace(row, version=expected_version + 1))

    # -- tenants -------------------------------------------------------------------------
    def insert_tenant(self, tenant: Tenant) -> None:
        self._require_visible(tenant.id, "tenant")
        if tenant.id in self._t.tenants:
            raise ConflictError(f"tenant {tenant.id} already exists", code="tenant.exists")
        self._set(self._t.tenants, tenant.id, tenant)

    def update_tenant(self, tenant: Tenant, *, expected_version: int) -> None:
        self._require_visible(tenant.id, "tenant")
        self._conditional_replace(self._t.tenants, tenant.id, tenant, expected_version, "tenant")

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        tenant = self._t.tenants.get(tenant_id)
        return tenant if tenant is not None and self._visible(tenant.id) else None

    def list_tenants(self) -> list[Tenant]:
        return [t for _, t in sorted(self._t.tenants.items()) if self._visible(t.id)]

    # -- users and accounts ----------------------------------------------------------------
    def insert_user(self, user: User) -> None:
        if user.id in self._t.users:
            raise ConflictError("user id already exists", code="user.exists")
        self._set(self._t.users, user.id, user)

    def update_user(self, user: User, *, expected_version: int) -> None:
        self._conditional_replace(self._t.users, user.id, user, expected_version, "user")

    def get_user(self, user_id: str) -> User | None:
        return self._t.users.get(user_id)

    def insert_account(self, account: Account) -> None:
        handle = account.handle.casefold()
        if account.id in self._t.accounts:
            raise ConflictError("account id already exists", code="account.exists")
        if handle in self._t.account_handles:
            raise ConflictError("that account handle is taken", code="account.handle_taken")
        self._set(self._t.accounts, account.id, account)
        self._set(self._t.account_handles, handle, account.id)

    def update_account(self, account: Account, *, expected_version: int) -> None:
        current = self._t.accounts.get(account.id)
        if current is not None and current.handle.casefold() != account.handle.casefold():
            raise ValidationError("an account's handle cannot change", code="account.handle")
        self._conditional_replace(
            self._t.accounts, account.id, account, expected_version, "account"
        )

    def get_account(self, account_id: str) -> Account | None:
        return self._t.accounts.get(account_id)

    def list_accounts(self, user_id: str) -> list[Account]:
        return sorted(
            (a for a in self._t.accounts.values() if a.user_id == user_id), key=lambda a: a.id
        )

    # -- tenant accounts and memberships ---------------------------------------------------
    def insert_tenant_account(self, tenant_account: TenantAccount) -> None:
        self._require_visible(tenant_account.tenant_id, "tenant account")
        key = (tenant_account.tenant_id, tenant_account.user_id)
        if key in self._t.tenant_accounts:
            raise ConflictError(
                "the user already has an account in this tenant", code="tenant_account.exists"
            )
        self._set(self._t.tenant_accounts, key, tenant_account)

    def update_tenant_account(
        self, tenant_account: TenantAccount, *, expected_version: int
    ) -> None:
        self._require_visible(tenant_account.tenant_id, "tenant account")
        key = (tenant_account.tenant_id, tenant_account.user_id)
        self._conditional_replace(
            self._t.tenant_accounts, key, tenant_account, expected_version, "tenant_account"
        )

    def get_tenant_account(self, tenant_id: str, user_id: str) -> TenantAccount | None:
        if not self._visible(tenant_id):
            return None
        return self._t.tenant_accounts.get((tenant_id, user_id))

    def list_tenant_accounts_of_tenant(self, tenant_id: str) -> list[TenantAccount]:
        if not self._visible(tenant_id):
            return []
        return [ta for (t, _), ta in sorted(self._t.tenant_accounts.items()) if t == tenant_id]

    def list_tenant_accounts_of_user(self, user_id: str) -> list[TenantAccount]:
        return [
            ta
            for (t, u), ta in sorted(self._t.tenant_accounts.items())
            if u == user_id and self._visible(t)
        ]

    def insert_membership(self, membership: Membership) -> None:
        self._require_visible(membership.tenant_id, "membership")
        key = (membership.tenant_id, membership.user_id, membership.group)
        if key in self._t.memberships:
            raise ConflictError("the membership already exists", code="membership.exists")
        self._set(self._t.memberships, key, membership)

    def delete_membership(self, tenant_id: str, user_id: str, group: str) -> bool:
        key = (tenant_id, user_id, group)
        if not self._visible(tenant_id) or key not in self._t.memberships:
            return False
        self._delete(self._t.memberships, key)
        return True

    def list_memberships(self, tenant_id: str, user_id: str | None = None) -> list[Membership]:
        if not self._visible(tenant_id):
            return []
        return [
            m
            for (t, u, _), m in sorted(self._t.memberships.items())
            if t == tenant_id and (user_id is None or u == user_id)
        ]

    # -- identities and factors ------------------------------------------------------------
    def insert_identity(self, identity: ExternalIdentity) -> None:
        key = (identity.issuer, identity.subject)
        if key in self._t.identities:
            raise ConflictError(
                "this external identity is already linked to a user",
                code="identity.already_linked",
            )
        self._set(self._t.identities, key, identity)

    def delete_identity(self, issuer: str, subject: str) -> bool:
        if (issuer, subject) not in self._t.identities:
            return False
        self._delete(self._t.identities, (issuer, subject))
        return True

    def get_identity(self, issuer: str, subject: str) -> ExternalIdentity | None:
        return self._t.identities.get((issuer, subject))

    def list_identities(self, user_id: str) -> list[ExternalIdentity]:
        return [i for _, i in sorted(self._t.identities.items()) if i.user_id == user_id]

    def insert_factor(self, factor: Factor) -> None:
        if factor.id in self._t.factors:
            raise ConflictError("factor id already exists", code="factor.exists")
        self._set(self._t.factors, factor.id, factor)

    def delete_factor(self, factor_id: str) -> bool:
        if factor_id not in self._t.factors:
            return False
        self._delete(self._t.factors, factor_id)
        return True

    def get_factor(self, factor_id: str) -> Factor | None:
        return self._t.factors.get(factor_id)

    def list_factors(self, user_id: str) -> list[Factor]:
        return [f for _, f in sorted(self._t.factors.items()) if f.user_id == user_id]

    # -- applications, bindings, catalogs --------------------------------------------------
    def insert_application(self, application: Application) -> None:
        if application.id in self._t.applications:
            raise ConflictError(
                f"application {application.id} already exists", code="application.exists"
            )
        self._set(self._t.applications, application.id, application)

    def get_application(self, application_id: str) -> Application | None:
        return self._t.applications.get(application_id)

    def list_applications(self) -> list[Application]:
        return [a for _, a in sorted(self._t.applications.items())]

    def put_binding(self, binding: ApplicationBinding) -> None:
        self._require_visible(binding.tenant_id, "binding")
        key = (binding.application_id, binding.tenant_id, binding.user_id)
        self._set(self._t.bindings, key, binding)

    def delete_binding(self, application_id: str, tenant_id: str, user_id: str) -> bool:
        key = (application_id, tenant_id, user_id)
        if not self._visible(tenant_id) or key not in self._t.bindings:
            return False
        self._delete(self._t.bindings, key)
        return True

    def get_binding(
        self, application_id: str, tenant_id: str, user_id: str
    ) -> ApplicationBinding | None:
        if not self._visible(tenant_id):
            return None
        return self._t.bindings.get((application_id, tenant_id, user_id))

    def list_bindings_of_user(self, user_id: str) -> list[ApplicationBinding]:
        return [
            b
            for (_, t, u), b in sorted(self._t.bindings.items())
            if u == user_id and self._visible(t)
        ]

    def insert_catalog_version(self, catalog: CatalogVersion) -> None:
        key = (catalog.application_id, catalog.version)
        if key in self._t.catalogs:
            raise ConflictError(
                "that catalog version is already published; publish a newer version",
                code="catalog.version_exists",
            )
        self._set(self._t.catalogs, key, catalog)
        if catalog.version > self._t.current_catalog.get(catalog.application_id, 0):
            self._set(self._t.current_catalog, catalog.application_id, catalog.version)

    def get_catalog_version(self, application_id: str, version: int) -> CatalogVersion | None:
        return self._t.catalogs.get((application_id, version))

    def get_current_catalog(self, application_id: str) -> CatalogVersion | None:
        version = self._t.current_catalog.get(application_id)
        return None if version is None else self._t.catalogs[(application_id, version)]

    def list_current_catalogs(self) -> list[CatalogVersion]:
        return [
            self._t.catalogs[(application_id, version)]
            for application_id, version in sorted(self._t.current_catalog.items())
        ]

    def list_catalog_versions(self, application_id: str) -> list[CatalogVersion]:
        return [c for (a, _), c in sorted(self._t.catalogs.items()) if a == application_id]

    # -- profile values --------------------------------------------------------------------
    def _check_profile_scope(self, key: ProfileKey) -> None:
        if key.tenant_id is not None:
            self._require_visible(key.tenant_id, "profile value")

    def _check_expected(self, current: ProfileValue | None, expected: int | None) -> None:
        if expected is None:
            return
        actual = 0 if current is None else current.version
        if actual != expected:
            raise ConflictError(
                f"the value changed since it was read (version {actual}, expected {expected}); "
                "read it again and retry",
                code="profile.stale",
            )

    def put_profile_value(
        self, value: ProfileValue, *, expected_version: int | None
    ) -> ProfileValue:
        self._check_profile_scope(value.key)
        current = self._t.profile.get(value.key)
        self._check_expected(current, expected_version)
        stored = dataclasses.replace(value, version=1 if current is None else current.version + 1)
        self._set(self._t.profile, value.key, stored)
        return stored

    def delete_profile_value(
        self, key: ProfileKey, *, expected_version: int | None
    ) -> ProfileValue | None:
        self._check_profile_scope(key)
        current = self._t.profile.get(key)
        self._check_expected(current, expected_version)
        if current is None:
            return None
        self._delete(self._t.profile, key)
        return current

    def get_profile_value(self, key: ProfileKey) -> ProfileValue | None:
        if key.tenant_id is not None and not self._visible(key.tenant_id):
            return None
        return self._t.profile.get(key)

    def profile_values_for(self, user_id: str, tenant_id: str | None) -> list[ProfileValue]:
        if tenant_id is not None and not self._visible(tenant_id):
            tenant_id = None
        found = []
        for key, value in self._t.profile.items():
            if key.user_id not in (None, user_id):
                continue
            if key.tenant_id is not None and key.tenant_id != tenant_id:
                continue
            found.append(value)
        return sorted(found, key=_profile_sort_key)

    # -- audit and outbox ------------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> None:
        stored = dataclasses.replace(record, sequence=next(self._store._audit_sequence))
        self._t.audit.append(stored)
        self._undo.append(lambda: self._t.audit.remove(stored))
        self._audit_sequences[stored.id] = stored.sequence

    def audit_sequences(self) -> Mapping[str, int]:
        return self._audit_sequences

    def append_event(self, event: OutboxEvent) -> None:
        if event.id in self._t.outbox:
            raise ConflictError("event id already exists", code="event.exists")
        stored = dataclasses.replace(
            event,
            sequence=next(self._store._event_sequence),
            attempts=0,
            last_error="",
            available_at=None,
            status=EventStatus.PENDING,
        )
        self._set(self._t.outbox, stored.id, stored)
        self.appended_events += 1


def _profile_sort_key(value: ProfileValue) -> tuple[str, str, int, str, str]:
    key = value.key
    return (key.application_id, key.attribute, key.layer.precedence, key.tenant_id or "",
            key.user_id or "")  # fmt: skip


class MemoryStore:
    """The reference ``UserEngineStore``: thread-safe, exact semantics, no persistence."""

    capabilities = frozenset({StoreCapability.CONCURRENT_WRITERS, StoreCapability.WAKE_ON_EVENT})

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._lock = threading.RLock()
        self._events_committed = threading.Condition(self._lock)
        self._tables = _Tables()
        self._audit_sequence = itertools.count(1)
        self._event_sequence = itertools.count(1)
        self._schema_version: int | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        problems: tuple[str, ...] = ()
        if self._closed:
            problems = ("store.closed",)
        elif self._schema_version is None or self._schema_version < LATEST_SCHEMA_VERSION:
            problems = ("schema.behind",)
        elif self._schema_version > LATEST_SCHEMA_VERSION:
            problems = ("schema.ahead",)
        return Readiness(
            ready=not problems,
            schema_version=self._schema_version,
            expected_version=LATEST_SCHEMA_VERSION,
            problems=problems,
        )

    def migrate(self) -> int:
        with self._lock:
            self._schema_version = LATEST_SCHEMA_VERSION
            return self._schema_version

    def close(self) -> None:
        self._closed = True

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self, scope: AccessScope) -> Iterator[_MemoryTransaction]:
        with self._lock:
            transaction = _MemoryTransaction(self, scope)
            try:
                yield transaction
            except BaseException:
                transaction.rollback_to(0)
                raise
            if transaction.appended_events:
                self._events_committed.notify_all()

    def append_audit_autonomous(self, record: AuditRecord) -> AuditRecord:
        with self._lock:
            # Written straight to the table, outside any undo log: an enclosing transaction of
            # this thread that rolls back cannot take it with it.
            stored = dataclasses.replace(record, sequence=next(self._audit_sequence))
            self._tables.audit.append(stored)
            return stored

    def read_audit(self, audit_filter: AuditFilter, scope: AccessScope) -> AuditPage:
        limit = audit_filter.limit
        with self._lock:
            matched = []
            for record in self._tables.audit:
                if not (scope.platform or record.tenant_id == scope.tenant_id):
                    continue
                if audit_filter.matches(record):
                    matched.append(record)
                    if len(matched) > limit:
                        break
        page = tuple(matched[:limit])
        more = len(matched) > limit
        return AuditPage(page, page[-1].sequence if more and page else None)

    # -- outbox relay contract -------------------------------------------------------------
    def claim_events(self, *, limit: int, lease: timedelta, now: datetime) -> list[ClaimedEvent]:
        token = uuid.uuid4().hex
        expires_at = now + lease
        held_under = _Lease(token, expires_at)  # one lease object for the whole claim
        claimed: list[ClaimedEvent] = []
        if limit <= 0:
            return claimed
        dead = EventStatus.DEAD
        with self._lock:
            leases = self._tables.leases
            blocked: set[str] = set()
            for event in self._tables.outbox.values():
                if event.status is dead or event.aggregate_id in blocked:
                    continue
                held = leases.get(event.id)
                if (held is not None and held.expires_at > now) or (
                    event.available_at is not None and event.available_at > now
                ):
                    blocked.add(event.aggregate_id)
                    continue
                leases[event.id] = held_under
                claimed.append(ClaimedEvent(event, Claim(event.id, token), expires_at))
                if len(claimed) >= limit:
                    break
        return claimed

    def _live(self, claim: Claim) -> bool:
        lease = self._tables.leases.get(claim.event_id)
        return lease is not None and lease.token == claim.token

    def ack_events(self, claims: Sequence[Claim]) -> int:
        acknowledged = 0
        with self._lock:
            leases = self._tables.leases
            outbox = self._tables.outbox
            for claim in claims:
                lease = leases.get(claim.event_id)
                if lease is not None and lease.token == claim.token:
                    del leases[claim.event_id]
                    del outbox[claim.event_id]
                    acknowledged += 1
        return acknowledged

    def release_events(
        self, claims: Sequence[Claim], *, error: str, now: datetime, policy: RetryPolicy
    ) -> int:
        released = 0
        with self._lock:
            for claim in claims:
                if not self._live(claim):
                    continue
                del self._tables.leases[claim.event_id]
                event = self._tables.outbox[claim.event_id]
                attempts = event.attempts + 1
                dead = policy.is_exhausted(attempts)
                self._tables.outbox[event.id] = dataclasses.replace(
                    event,
                    attempts=attempts,
                    last_error=error[:1000],
                    available_at=None if dead else now + policy.delay_after(attempts),
                    status=EventStatus.DEAD if dead else EventStatus.PENDING,
                )
                released += 1
        return released

    def _events(self, status: EventStatus, limit: int, after: int) -> list[OutboxEvent]:
        with self._lock:
            found = []
            for event in self._tables.outbox.values():
                if event.status is status and event.sequence > after:
                    found.append(event)
                    if len(found) >= limit:
                        break
            return found

    def pending_events(self, *, limit: int, after_sequence: int = 0) -> list[OutboxEvent]:
        return self._events(EventStatus.PENDING, limit, after_sequence)

    def dead_letters(self, *, limit: int, after_sequence: int = 0) -> list[OutboxEvent]:
        return self._events(EventStatus.DEAD, limit, after_sequence)

    def requeue_dead_letters(self, event_ids: Sequence[str], *, now: datetime) -> int:
        requeued = 0
        with self._lock:
            for event_id in event_ids:
                event = self._tables.outbox.get(event_id)
                if event is not None and event.status is EventStatus.DEAD:
                    self._tables.outbox[event_id] = dataclasses.replace(
                        event, status=EventStatus.PENDING, attempts=0, available_at=now
                    )
                    requeued += 1
            if requeued:
                self._events_committed.notify_all()
        return requeued

    def outbox_stats(self) -> OutboxStats:
        with self._lock:
            pending = [e for e in self._tables.outbox.values() if e.status is EventStatus.PENDING]
            dead = len(self._tables.outbox) - len(pending)
            return OutboxStats(
                pending=len(pending),
                in_flight=len(self._tables.leases),
                dead=dead,
                oldest_pending_at=min((e.occurred_at for e in pending), default=None),
            )

    def wait_for_events(self, timeout: float) -> bool:
        with self._events_committed:
            return self._events_committed.wait(timeout)

    def record_counts(self) -> Mapping[str, int]:
        t = self._tables
        with self._lock:
            sizes: tuple[Sized, ...] = (
                t.tenants, t.users, t.accounts, t.tenant_accounts, t.memberships, t.identities,
                t.factors, t.applications, t.bindings, t.catalogs, t.profile, t.audit, t.outbox,
            )  # fmt: skip
            return {kind: len(table) for kind, table in zip(RECORD_KINDS, sizes, strict=True)}
