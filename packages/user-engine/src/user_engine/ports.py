"""Ports: the contracts adapters implement. Each docstring is the contract.

No driver, SDK or broker type appears here. Adapters translate their own errors into
``user_engine.errors`` (``raise StoreUnavailableError(...) from error``). The conformance kit
(``user_engine_conformance``) tests every clause written here, by its clause id in brackets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol, runtime_checkable

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
    ExternalIdentity,
    Factor,
    Membership,
    OutboxEvent,
    OutboxStats,
    Principal,
    ProfileKey,
    ProfileValue,
    RetryPolicy,
    Tenant,
    TenantAccount,
    User,
)

__all__ = [
    "RECORD_KINDS",
    "AuditSink",
    "AuthorizationPolicy",
    "AuthorizationTarget",
    "Clock",
    "Decision",
    "DeliveryReport",
    "EventPublisher",
    "ExportResult",
    "IdGenerator",
    "IdentityVerifier",
    "MembershipExporter",
    "OperationRecorder",
    "PendingPublish",
    "PipelinedEventPublisher",
    "Readiness",
    "SecretStore",
    "StoreCapability",
    "StoreTransaction",
    "Telemetry",
    "UserEngineStore",
]


RECORD_KINDS: Final = (
    "tenants",
    "users",
    "accounts",
    "tenant_accounts",
    "memberships",
    "external_identities",
    "factors",
    "applications",
    "application_bindings",
    "catalog_versions",
    "profile_values",
    "audit_records",
    "outbox_events",
)
"""The keys of ``UserEngineStore.record_counts``, one per record kind."""


class StoreCapability:
    """Names of optional store capabilities, declared in ``UserEngineStore.capabilities``.

    The conformance kit skips, with a reason, the clauses of a capability not declared.
    """

    CONCURRENT_WRITERS = "concurrent-writers"
    """Safe under writers in several threads (required of every store we ship)."""
    MULTI_PROCESS = "multi-process"
    """Several processes may share the store (claim is safe across processes)."""
    WAKE_ON_EVENT = "wake-on-event"
    """``wait_for_events`` wakes on commit instead of sleeping out its timeout."""
    ROW_LEVEL_SECURITY = "row-level-security"
    """The database itself enforces the transaction's access scope."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether a store can serve: the schema version against the code's, and any problems.

    ``problems`` are short codes such as ``schema.behind``, ``schema.ahead``, ``schema.dirty``,
    ``rls.missing``, ``store.unreachable``; ``ready`` is True only when there are none.
    """

    ready: bool
    schema_version: int | None
    expected_version: int
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The fate of one published event. ``error`` is empty when delivered.

    ``retriable`` (failures only) is True when the failure is not the event's fault (broker
    unreachable, no acknowledgement in time, queue full, not sent because an earlier event of
    its aggregate failed): the relay backs off and retries without counting towards
    dead-lettering. False (the default) means retrying this event cannot help by itself
    (too large, unserialisable): it counts towards the dead-letter threshold.
    """

    event_id: str
    delivered: bool
    error: str = ""
    retriable: bool = False


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an audit sink did with a batch: how many exported, how many dropped (and why)."""

    exported: int
    dropped: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorizationTarget:
    """What an operation acts on, for the authorization policy."""

    tenant_id: str | None = None
    user_id: str | None = None
    application_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorization decision with a stable reason code (audited either way)."""

    allowed: bool
    reason_code: str


class StoreTransaction(Protocol):
    """One open store transaction, bound to an access scope. Obtained from
    ``UserEngineStore.transaction``; never shared between threads.

    Guarantees every implementation keeps:

    - [store.tx.atomic] everything written through the transaction commits together when the
      ``transaction`` context exits normally, and none of it when it exits with an exception;
    - [store.tx.nested-rollback] ``savepoint`` nests: an exception leaving a savepoint undoes
      only the writes made inside it, and the outer transaction can still commit;
    - [store.tenant.isolation] every read returns only rows the scope allows
      (``AccessScope.allows``); a write of a row outside the scope raises ``NotFoundError``;
    - conflicts are detected by the store itself at write time (unique keys, expected
      versions), never by a separate read, so racing writers get exactly one winner.

    Lists are returned in a stable order (documented per method). ``get_*`` returns None when
    the row does not exist or is not visible in the scope.
    """

    @property
    def scope(self) -> AccessScope:
        """The scope statements run under now (the innermost savepoint's)."""
        ...

    def savepoint(self, scope: AccessScope | None = None) -> AbstractContextManager[None]:
        """Open a nested transaction, optionally under another scope, restored on exit."""
        ...

    # -- tenants ---------------------------------------------------------------------------
    def insert_tenant(self, tenant: Tenant) -> None:
        """Insert; ``ConflictError`` (code ``tenant.exists``) if the id is taken."""
        ...

    def update_tenant(self, tenant: Tenant, *, expected_version: int) -> None:
        """Replace the row if its version is ``expected_version`` (the new row carries the next
        version); ``ConflictError`` (``stale``) otherwise, ``NotFoundError`` if missing."""
        ...

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, if visible."""
        ...

    def list_tenants(self) -> list[Tenant]:
        """Visible tenants by id."""
        ...

    # -- users and accounts ------------------------------------------------------------------
    def insert_user(self, user: User) -> None:
        """Insert; ``ConflictError`` (``user.exists``) if the id is taken."""
        ...

    def update_user(self, user: User, *, expected_version: int) -> None:
        """Conditional replace, as ``update_tenant``."""
        ...

    def get_user(self, user_id: str) -> User | None:
        """The user (users are platform-scoped: visible in every scope)."""
        ...

    def insert_account(self, account: Account) -> None:
        """Insert; ``ConflictError`` (``account.handle_taken``) if the handle is taken
        (handles compare case-insensitively) or ``account.exists`` if the id is."""
        ...

    def update_account(self, account: Account, *, expected_version: int) -> None:
        """Conditional replace, as ``update_tenant``."""
        ...

    def get_account(self, account_id: str) -> Account | None:
        """The account."""
        ...

    def list_accounts(self, user_id: str) -> list[Account]:
        """Accounts of a user, by id."""
        ...

    # -- tenant accounts and memberships ----------------------------------------------------
    def insert_tenant_account(self, tenant_account: TenantAccount) -> None:
        """Insert; ``ConflictError`` (``tenant_account.exists``) if (tenant, user) exists."""
        ...

    def update_tenant_account(
        self, tenant_account: TenantAccount, *, expected_version: int
    ) -> None:
        """Conditional replace, as ``update_tenant``."""
        ...

    def get_tenant_account(self, tenant_id: str, user_id: str) -> TenantAccount | None:
        """The tenant account, if visible."""
        ...

    def list_tenant_accounts_of_tenant(self, tenant_id: str) -> list[TenantAccount]:
        """Tenant accounts of one tenant, by user id."""
        ...

    def list_tenant_accounts_of_user(self, user_id: str) -> list[TenantAccount]:
        """Visible tenant accounts of one user, by tenant id."""
        ...

    def insert_membership(self, membership: Membership) -> None:
        """Insert; ``ConflictError`` (``membership.exists``) if (tenant, user, group) exists."""
        ...

    def delete_membership(self, tenant_id: str, user_id: str, group: str) -> bool:
        """Delete; True if a visible row was deleted."""
        ...

    def list_memberships(self, tenant_id: str, user_id: str | None = None) -> list[Membership]:
        """Memberships of a tenant (optionally of one user), by (user id, group)."""
        ...

    # -- external identities and factors ----------------------------------------------------
    def insert_identity(self, identity: ExternalIdentity) -> None:
        """Link. [store.identity.unique] ``ConflictError`` (``identity.already_linked``) if the
        (issuer, subject) is linked to any user, enforced atomically against racing writers."""
        ...

    def delete_identity(self, issuer: str, subject: str) -> bool:
        """Unlink; True if a row was deleted."""
        ...

    def get_identity(self, issuer: str, subject: str) -> ExternalIdentity | None:
        """The identity linked under (issuer, subject)."""
        ...

    def list_identities(self, user_id: str) -> list[ExternalIdentity]:
        """Identities of a user, by (issuer, subject)."""
        ...

    def insert_factor(self, factor: Factor) -> None:
        """Insert; ``ConflictError`` (``factor.exists``) if the id is taken."""
        ...

    def delete_factor(self, factor_id: str) -> bool:
        """Delete; True if a row was deleted."""
        ...

    def get_factor(self, factor_id: str) -> Factor | None:
        """The factor (its secret reference only)."""
        ...

    def list_factors(self, user_id: str) -> list[Factor]:
        """Factors of a user, by id."""
        ...

    # -- applications, bindings, catalogs ---------------------------------------------------
    def insert_application(self, application: Application) -> None:
        """Insert; ``ConflictError`` (``application.exists``) if the id is taken."""
        ...

    def get_application(self, application_id: str) -> Application | None:
        """The application."""
        ...

    def list_applications(self) -> list[Application]:
        """Applications by id."""
        ...

    def put_binding(self, binding: ApplicationBinding) -> None:
        """Insert or replace the binding of (application, tenant, user)."""
        ...

    def delete_binding(self, application_id: str, tenant_id: str, user_id: str) -> bool:
        """Delete; True if a visible row was deleted."""
        ...

    def get_binding(
        self, application_id: str, tenant_id: str, user_id: str
    ) -> ApplicationBinding | None:
        """The binding, if visible."""
        ...

    def list_bindings_of_user(self, user_id: str) -> list[ApplicationBinding]:
        """Visible bindings of a user, by (application id, tenant id)."""
        ...

    def insert_catalog_version(self, catalog: CatalogVersion) -> None:
        """Publish. [store.catalog.immutable] ``ConflictError`` (``catalog.version_exists``) if
        that (application, version) exists; a published version is never changed."""
        ...

    def get_catalog_version(self, application_id: str, version: int) -> CatalogVersion | None:
        """One published version."""
        ...

    def get_current_catalog(self, application_id: str) -> CatalogVersion | None:
        """The highest published version of an application's catalog."""
        ...

    def list_current_catalogs(self) -> list[CatalogVersion]:
        """The current catalog of every application, by application id."""
        ...

    def list_catalog_versions(self, application_id: str) -> list[CatalogVersion]:
        """Every published version of an application's catalog, oldest first."""
        ...

    # -- profile values ---------------------------------------------------------------------
    def put_profile_value(
        self, value: ProfileValue, *, expected_version: int | None
    ) -> ProfileValue:
        """Write the value at its key and return it as stored, with version = previous + 1
        (1 when new). [store.profile.optimistic] ``expected_version`` None writes
        unconditionally; 0 requires that no value exists; n requires the current version be n;
        otherwise ``ConflictError`` (``profile.stale``). The check and write are one atomic step."""
        ...

    def delete_profile_value(
        self, key: ProfileKey, *, expected_version: int | None
    ) -> ProfileValue | None:
        """Clear; return the removed value, or None if there was none. ``expected_version``
        as in ``put_profile_value`` (``profile.stale`` on mismatch)."""
        ...

    def get_profile_value(self, key: ProfileKey) -> ProfileValue | None:
        """The value stored at exactly this key."""
        ...

    def profile_values_for(self, user_id: str, tenant_id: str | None) -> list[ProfileValue]:
        """Every value that can take part in resolving this user's profile: user layer of the
        user, application defaults and, if ``tenant_id`` is given, the user-in-tenant and
        tenant-default layers of that tenant. In one query where the store can."""
        ...

    # -- audit and outbox, inside the mutation --------------------------------------------
    # Appends return nothing, so that a store may send them without waiting for an answer
    # (they travel with the commit): a mutation then costs no round trip for its audit
    # record and outbox event. An append that fails (a duplicate id) may therefore raise at
    # the next statement that waits, or at commit, which then rolls the transaction back.
    def append_audit(self, record: AuditRecord) -> None:
        """Append in this transaction; the store assigns its ``sequence``
        (``audit_sequences`` tells it after commit)."""
        ...

    def append_event(self, event: OutboxEvent) -> None:
        """Append to the outbox in this transaction; the store assigns its ``sequence``.
        [store.outbox.order-per-key] sequences of one aggregate follow commit order."""
        ...

    def audit_sequences(self) -> Mapping[str, int]:
        """After the transaction committed: the sequence of every audit record appended in
        it, by record id. [store.audit.sequence-after-commit] Records undone by a savepoint
        rollback may be missing (or present: callers never ask for them)."""
        ...


@runtime_checkable
class UserEngineStore(Protocol):
    """Storage of every record kind, the audit log and the transactional outbox.

    A store is created by its adapter factory from a settings mapping, is safe to use from
    several threads, and owns its connections until ``close``.

    Outbox relay contract:

    - [store.outbox.claim] ``claim_events`` hands out pending events whose ``available_at`` has
      passed and that no live lease holds, oldest first, at most ``limit``;
    - [store.outbox.order-per-key] for each aggregate it hands out only a prefix of that
      aggregate's pending events, and nothing of an aggregate whose earlier event is leased by
      another claim or waiting for a retry; so two claimers never hold events of one aggregate;
    - [store.outbox.lease-expiry] a lease that expires makes its events claimable again; acks
      and releases presented with the expired claim's token are then ignored;
    - [store.outbox.ack] ``ack_events`` removes delivered events for good;
    - [store.outbox.release] ``release_events`` counts a failure, stores the error text, and
      makes the event available again after ``policy.delay_after(attempts)``;
    - [store.outbox.dead-letter] once ``policy.is_exhausted(attempts)`` the event is
      dead-lettered instead: never claimed again, listed by ``dead_letters`` until requeued.
      A dead-lettered event does not block later events of its aggregate;
    - [store.outbox.stats] ``outbox_stats`` gives counts and the oldest pending time only.

    Dead-lettered events never block later events of their aggregate, so one poison event
    cannot stop a user's stream; operators requeue or inspect them.
    """

    name: str
    """The adapter name this store registered under (for diagnostics)."""

    capabilities: frozenset[str]
    """``StoreCapability`` names this store supports."""

    def readiness(self) -> Readiness:
        """[store.readiness] Compare the schema version with ``user_engine.migrations``; fail
        closed (``ready`` False) when unreachable, behind, ahead or dirty. Never raises."""
        ...

    def migrate(self) -> int:
        """[store.migrate.idempotent] Bring the schema to the latest version and return it.
        Safe to call repeatedly and from several processes at once."""
        ...

    def transaction(self, scope: AccessScope) -> AbstractContextManager[StoreTransaction]:
        """Begin a new top-level transaction under ``scope`` (see ``StoreTransaction``)."""
        ...

    def append_audit_autonomous(self, record: AuditRecord) -> AuditRecord:
        """[store.audit.denial-survives-rollback] Append and commit at once, independently of
        any open transaction (even one of the calling thread), so the record survives that
        transaction's rollback. Used for authorization denials."""
        ...

    def read_audit(self, audit_filter: AuditFilter, scope: AccessScope) -> AuditPage:
        """[store.audit.order] Records matching the filter, in append order, at most
        ``audit_filter.limit``. [store.audit.isolation] A platform scope sees every record;
        any other scope only records whose ``tenant_id`` equals ``scope.tenant_id``."""
        ...

    def claim_events(self, *, limit: int, lease: timedelta, now: datetime) -> list[ClaimedEvent]:
        """Claim events for publishing (see the relay contract above), in sequence order."""
        ...

    def ack_events(self, claims: Sequence[Claim]) -> int:
        """Mark delivered; return how many live claims were acknowledged."""
        ...

    def release_events(
        self, claims: Sequence[Claim], *, error: str, now: datetime, policy: RetryPolicy
    ) -> int:
        """Record a failed attempt for each live claim; return how many were released."""
        ...

    def pending_events(self, *, limit: int, after_sequence: int = 0) -> list[OutboxEvent]:
        """Pending (not dead) events in sequence order, for inspection."""
        ...

    def dead_letters(self, *, limit: int, after_sequence: int = 0) -> list[OutboxEvent]:
        """Dead-lettered events in sequence order."""
        ...

    def requeue_dead_letters(self, event_ids: Sequence[str], *, now: datetime) -> int:
        """Make dead-lettered events pending again with zero attempts; return how many."""
        ...

    def outbox_stats(self) -> OutboxStats:
        """Counts of pending, leased and dead events and the oldest pending time."""
        ...

    def wait_for_events(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for new outbox events; True if woken early.
        Stores without ``wake-on-event`` may simply sleep and return False."""
        ...

    def record_counts(self) -> Mapping[str, int]:
        """[store.diagnostics.redacted] Number of rows per record kind: counts, never values."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


class EventPublisher(Protocol):
    """Publishes outbox events to a broker.

    - [events.report-per-event] ``publish`` returns exactly one report per event given, in
      the same order, after waiting for the broker's verdict (or ``timeout``);
    - [events.order-per-key] events of one aggregate are delivered in the order given;
    - [events.stable-id] the event id travels with the message so consumers can drop
      duplicates;
    - [events.failure-surfaced] a failure (broker down, message too large) is a report with
      ``delivered`` False and an error text, never a silent success; an event reported
      delivered has been acknowledged by the broker.
    """

    name: str

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        """Publish and wait for a report per event."""
        ...

    def close(self) -> None:
        """Flush and release resources. Idempotent."""
        ...


class PendingPublish(Protocol):
    """Events handed to ``PipelinedEventPublisher.begin_publish``, on their way."""

    def reports(self) -> list[DeliveryReport]:
        """Wait for the broker's verdicts and return one report per event, in order, as
        ``publish`` does; the wait ends ``timeout`` (of ``begin_publish``) after it began.
        Call it once."""
        ...


class PipelinedEventPublisher(EventPublisher, Protocol):
    """An ``EventPublisher`` that lets one thread keep several batches on their way: the
    relay sends the next batch while the broker works on the previous one, with no thread
    per batch. The ``EventPublisher`` clauses hold for each batch; the relay never has
    events of one aggregate in two batches at once (its claims are disjoint).

    - [events.pipelined] batches begun one after the other are all on their way at once,
      and each batch's ``reports()`` are what ``publish`` would return for it.
    """

    def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> PendingPublish:
        """Queue the events for the broker and return without waiting for verdicts.

        ``publish(events, timeout=t)`` is ``begin_publish(events, timeout=t).reports()``.
        Raises what ``publish`` raises for bad arguments.
        """
        ...


class AuditSink(Protocol):
    """Exports audit records to an external pipeline, after they are durable in the store.

    - [audit.fields-mapped] every field of the record is exported;
    - [audit.no-secrets] nothing beyond the record's fields is exported (records never hold
      values, so no secret can leave);
    - [audit.failure-surfaced] a failed export is counted in ``ExportResult.dropped`` with a
      reason, never silently lost. ``exported`` counts records accepted for delivery; a sink
      that delivers in the background reports a later failure in the ``dropped`` of a later
      result, and ``flush`` then returns False. ``export`` does not raise for delivery
      failures.
    """

    name: str

    def export(self, records: Sequence[AuditRecord]) -> ExportResult:
        """Export a batch; return what was exported and what was dropped."""
        ...

    def flush(self, timeout: float) -> bool:
        """Wait until queued records are exported; True if all were."""
        ...

    def close(self) -> None:
        """Flush and release resources. Idempotent."""
        ...


class IdentityVerifier(Protocol):
    """Checks that the caller may link (issuer, subject), e.g. by validating an ID token."""

    def verify(self, issuer: str, subject: str, evidence: str | None) -> bool:
        """True if the evidence proves the identity. Must not log the evidence."""
        ...


class AuthorizationPolicy(Protocol):
    """Decides whether a principal may perform an action on a target. Pure; no I/O needed."""

    def decide(self, principal: Principal, action: str, target: AuthorizationTarget) -> Decision:
        """Return the decision and a stable reason code."""
        ...


class MembershipExporter(Protocol):
    """Pushes a tenant's memberships to an external directory (SCIM, LDAP ...)."""

    def export(self, tenant_id: str, memberships: Sequence[Membership]) -> None:
        """Export the complete membership list of one tenant."""
        ...


class SecretStore(Protocol):
    """Holds factor secrets. The engine stores only the reference returned."""

    def put_secret(self, owner_id: str, secret: bytes) -> str:
        """Store a secret; return an opaque reference that does not reveal it."""
        ...

    def delete_secret(self, reference: str) -> None:
        """Delete the secret; deleting a missing reference is not an error."""
        ...

    def has_secret(self, reference: str) -> bool:
        """True if the reference names a stored secret."""
        ...


class Clock(Protocol):
    """Source of time. Returns timezone-aware UTC datetimes."""

    def now(self) -> datetime:
        """The current time (UTC, aware)."""
        ...


class IdGenerator(Protocol):
    """Source of new ids (users, accounts, factors, audit records, events)."""

    def new_id(self, prefix: str) -> str:
        """A new unique id starting with ``prefix`` (e.g. ``"usr_"``); a valid ``check_id``."""
        ...


class OperationRecorder(Protocol):
    """Handle on one running service operation, for telemetry."""

    def finish(self, outcome: str, error_code: str = "") -> None:
        """Record how the operation ended: ``success``, ``denied`` or ``failed`` and a code."""
        ...


class Telemetry(Protocol):
    """Engine telemetry: spans and metrics. Never receives a profile or secret value.

    - [telemetry.no-values] only operation names, tenant ids, principal kinds, outcomes,
      error codes and counts are passed in; implementations add nothing else.
    """

    name: str

    def operation(
        self, operation: str, *, tenant_id: str | None, principal_kind: str
    ) -> AbstractContextManager[OperationRecorder]:
        """Span (and counters) around one service operation."""
        ...

    def relay_progress(
        self, *, published: int, failed: int, dead_lettered: int, lag_seconds: float | None
    ) -> None:
        """Relay counters since the last call and the current outbox lag."""
        ...
