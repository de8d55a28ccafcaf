"""``UserEngineService``: the headless API of user-engine.

Every public operation takes the caller (a ``Principal``) first, validates its input before
touching state (``ValidationError``, nothing changed), resolves the tenant context, asks the
authorization policy, and runs in one store transaction that commits the domain change, its
audit record and its outbox event together.

- A denial is appended to the audit log *autonomously* (it survives any enclosing rollback),
  exported at once, emits no event, and raises ``AuthorizationDenied``.
- A mutation that fails on a conflict is audited the same way with outcome ``failed``.
- Reads are audited only when denied: auditing every read would turn each read into a write.
- ``transaction()`` groups several operations into one all-or-nothing unit; operations inside
  it run in savepoints, so a failed operation rolls back only its own part.
- Audit records are exported to the audit sink only after their transaction commits.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, TypeVar

from user_engine.authorization import DefaultAuthorizationPolicy
from user_engine.domain import (
    AccessScope,
    Account,
    Application,
    ApplicationBinding,
    AttributeDefinition,
    AuditFilter,
    AuditOutcome,
    AuditPage,
    AuditRecord,
    CatalogVersion,
    EffectiveProfile,
    ExternalIdentity,
    Factor,
    Layer,
    Membership,
    OutboxEvent,
    OutboxStats,
    Principal,
    PrincipalKind,
    ProfileKey,
    ProfileValue,
    ResolvedAttribute,
    Sensitivity,
    Tenant,
    TenantAccount,
    TenantAccountStatus,
    TenantStatus,
    User,
    UserStatus,
    WriterRole,
    resolve_profile,
    split_qualified_name,
)
from user_engine.domain.limits import (
    MAX_DETAIL_LENGTH,
    MAX_PAGE_SIZE,
    MAX_ROLES,
    MAX_SECRET_BYTES,
    MAX_SUBJECT_LENGTH,
    check_id,
    check_name,
    check_slug,
    check_text,
)
from user_engine.errors import (
    AuthorizationDenied,
    ConflictError,
    NotFoundError,
    UserEngineError,
    ValidationError,
)
from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine.ports import (
    AuditSink,
    AuthorizationPolicy,
    AuthorizationTarget,
    Clock,
    IdentityVerifier,
    IdGenerator,
    MembershipExporter,
    Readiness,
    SecretStore,
    StoreTransaction,
    Telemetry,
    UserEngineStore,
)
from user_engine.telemetry import NoTelemetry
from user_engine.testing.fakes import TrustingIdentityVerifier

__all__ = ["REDACTED", "Diagnostics", "MeView", "UserEngineService"]

T = TypeVar("T")
logger = logging.getLogger("user_engine.service")

REDACTED: Final = "[redacted]"
"""Stands in for a ``secret`` value wherever a value would otherwise be returned."""

_WRITER_ROLE: Final = {
    PrincipalKind.USER: WriterRole.SELF,
    PrincipalKind.APPLICATION: WriterRole.APPLICATION,
    PrincipalKind.TENANT_ADMIN: WriterRole.TENANT_ADMIN,
    PrincipalKind.PLATFORM_OPERATOR: WriterRole.PLATFORM_OPERATOR,
}
_LIFECYCLE: Final = {
    # action: (statuses it may start from, status it leads to)
    "suspend": ({UserStatus.ACTIVE}, UserStatus.SUSPENDED),
    "reactivate": ({UserStatus.SUSPENDED}, UserStatus.ACTIVE),
    "close": ({UserStatus.ACTIVE, UserStatus.SUSPENDED}, UserStatus.CLOSED),
}
_TENANT_ACCOUNT_LIFECYCLE: Final = {
    "suspend": ({TenantAccountStatus.ACTIVE}, TenantAccountStatus.SUSPENDED),
    "reactivate": ({TenantAccountStatus.SUSPENDED}, TenantAccountStatus.ACTIVE),
    "remove": (
        {TenantAccountStatus.ACTIVE, TenantAccountStatus.SUSPENDED},
        TenantAccountStatus.REMOVED,
    ),
}


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


@dataclass(slots=True)
class _Frame:
    """An open ``transaction()`` of this service in the current context."""

    tx: StoreTransaction
    exports: list[AuditRecord] = field(default_factory=list)


def _check_principal(principal: object) -> Principal:
    if not isinstance(principal, Principal):
        raise ValidationError(
            "the caller must be a user_engine.Principal", code="validation.principal"
        )
    return principal.check()


def _check_roles(roles: object) -> frozenset[str]:
    if isinstance(roles, str) or not isinstance(roles, Iterable):
        raise ValidationError(
            "roles must be a list of role names",
            code="validation.type",
            details={"field": "roles"},
        )
    checked = frozenset(check_name(role, "role") for role in roles)
    if len(checked) > MAX_ROLES:
        raise ValidationError(
            f"at most {MAX_ROLES} roles", code="validation.too_many", details={"field": "roles"}
        )
    return checked


def _check_expected_version(expected: object) -> int | None:
    if expected is None:
        return None
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValidationError(
            "expected_version must be a non-negative integer or None",
            code="validation.type",
            details={"field": "expected_version"},
        )
    return expected


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_PAGE_SIZE}",
            code="validation.range",
            details={"field": "limit"},
        )
    return limit


def _check_sequence(after: object, field_name: str) -> int:
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationError(
            f"{field_name} must be a non-negative integer",
            code="validation.type",
            details={"field": field_name},
        )
    return after


def _check_time(value: object, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(
            f"{field_name} must be a timezone-aware datetime",
            code="validation.type",
            details={"field": field_name},
        )
    return value


def _check_layer(layer: object) -> Layer:
    try:
        checked = Layer(str(layer)) if isinstance(layer, str) else Layer("")
    except ValueError as error:
        raise ValidationError(
            "layer must be one of: "
            + ", ".join(v.value for v in Layer if v.value != "catalog-default"),
            code="validation.layer",
            details={"field": "layer"},
        ) from error
    if checked is Layer.CATALOG_DEFAULT:
        raise ValidationError(
            "the catalog default is set by publishing a catalog, not written",
            code="validation.layer",
            details={"field": "layer"},
        )
    return checked


def _redact(value: ProfileValue, definition: AttributeDefinition) -> ProfileValue:
    if definition.sensitivity is Sensitivity.SECRET:
        return replace(value, value=REDACTED)
    return value


class UserEngineService:
    """The headless API. Thread-safe when its store and ports are.

    :param store: the ``UserEngineStore`` holding every record.
    :param audit_sink: where committed audit records are exported (optional).
    :param clock: time source (UTC); ``ids``: id source; ``secrets``: factor secrets.
    :param verifier: checks identity evidence when linking (default: caller vouches).
    :param policy: authorization policy (default: ``DefaultAuthorizationPolicy``).
    :param membership_exporter: receives ``export_memberships`` (optional).
    :param telemetry: spans and metrics (default: none).
    """

    def __init__(
        self,
        *,
        store: UserEngineStore,
        clock: Clock,
        ids: IdGenerator,
        secrets: SecretStore,
        audit_sink: AuditSink | None = None,
        verifier: IdentityVerifier | None = None,
        policy: AuthorizationPolicy | None = None,
        membership_exporter: MembershipExporter | None = None,
        telemetry: Telemetry | None = None,
        source: str = "user-engine",
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.secrets = secrets
        self.audit_sink = audit_sink
        self.verifier: IdentityVerifier = verifier or TrustingIdentityVerifier()
        self.policy: AuthorizationPolicy = policy or DefaultAuthorizationPolicy()
        self.membership_exporter = membership_exporter
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.source = source
        self.audit_exports_dropped = 0
        self._frame: ContextVar[_Frame | None] = ContextVar(
            f"user_engine_frame_{id(self)}", default=None
        )
        self._request_id: ContextVar[str] = ContextVar(
            f"user_engine_request_{id(self)}", default=""
        )

    # ===================================================================== plumbing ======
    @contextmanager
    def request(self, request_id: str) -> Iterator[None]:
        """Tag the audit records of operations inside this block with ``request_id``."""
        token = self._request_id.set(check_id(request_id, "request_id"))
        try:
            yield
        finally:
            self._request_id.reset(token)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the operations inside this block as one all-or-nothing unit.

        Nests: an inner ``transaction()`` is a savepoint. Denials inside stay audited.
        """
        frame = self._frame.get()
        if frame is not None:
            mark = len(frame.exports)
            try:
                with frame.tx.savepoint():
                    yield
            except BaseException:
                del frame.exports[mark:]
                raise
            return
        with self.store.transaction(AccessScope()) as tx:
            frame = _Frame(tx)
            token = self._frame.set(frame)
            try:
                yield
            finally:
                self._frame.reset(token)
        self._export(frame.exports)

    @contextmanager
    def _unit(self, scope: AccessScope) -> Iterator[tuple[StoreTransaction, list[AuditRecord]]]:
        """One operation's transaction: a savepoint inside ``transaction()``, else top level."""
        pending: list[AuditRecord] = []
        frame = self._frame.get()
        if frame is None:
            with self.store.transaction(scope) as tx:
                yield tx, pending
            self._export(pending)
            return
        with frame.tx.savepoint(scope):
            yield frame.tx, pending
        frame.exports.extend(pending)

    def _export(self, records: Sequence[AuditRecord]) -> None:
        if not records or self.audit_sink is None:
            return
        try:
            result = self.audit_sink.export(records)
            dropped = result.dropped
        except Exception as error:  # export is best-effort; the store holds the truth
            dropped = len(records)
            logger.warning("audit export failed: %s", type(error).__name__)
        if dropped:
            self.audit_exports_dropped += dropped
            logger.warning("audit export dropped %d record(s); re-export from the store", dropped)

    def _audit(
        self,
        principal: Principal,
        action: str,
        target: tuple[str, str],
        tenant_id: str | None,
        outcome: AuditOutcome,
        reason_code: str = "",
        details: Mapping[str, str] | None = None,
    ) -> AuditRecord:
        safe_details = {
            str(k)[:MAX_DETAIL_LENGTH]: str(v)[:MAX_DETAIL_LENGTH]
            for k, v in (details or {}).items()
        }
        return AuditRecord(
            id=self.ids.new_id("aud_"),
            occurred_at=self.clock.now(),
            tenant_id=tenant_id,
            actor_id=principal.id,
            actor_kind=principal.kind.value,
            action=action,
            target_kind=target[0],
            target_id=target[1],
            outcome=outcome,
            reason_code=reason_code,
            request_id=self._request_id.get(),
            details=safe_details,
        )

    def _audit_autonomously(self, record: AuditRecord) -> None:
        stored = self.store.append_audit_autonomous(record)
        self._export([stored])

    def _emit(
        self,
        tx: StoreTransaction,
        event_type: str,
        aggregate: tuple[str, str],
        tenant_id: str | None,
        payload: Mapping[str, Any],
    ) -> None:
        tx.append_event(
            OutboxEvent(
                id=self.ids.new_id("evt_"),
                event_type=event_type,
                aggregate_type=aggregate[0],
                aggregate_id=aggregate[1],
                tenant_id=tenant_id,
                occurred_at=self.clock.now(),
                payload=dict(payload),
            )
        )

    def _scope_for(self, principal: Principal, tenant_id: str | None) -> AccessScope:
        if principal.kind is PrincipalKind.PLATFORM_OPERATOR:
            return AccessScope.all_tenants()
        if tenant_id is not None:
            return AccessScope.for_tenant(tenant_id)
        if principal.kind is PrincipalKind.TENANT_ADMIN and principal.tenant_id is not None:
            # A tenant admin acting on a platform-level target (a user) is decided by the
            # user's account in the admin's tenant: the facts must be read in that scope.
            return AccessScope.for_tenant(principal.tenant_id)
        return AccessScope()

    def _run(
        self,
        principal: Principal,
        action: str,
        *,
        target: tuple[str, str],
        tenant_id: str | None = None,
        user_id: str | None = None,
        application_id: str | None = None,
        body: Callable[[StoreTransaction], T],
        facts: Callable[[StoreTransaction], Mapping[str, str]] | None = None,
        resolve_user: Callable[[StoreTransaction], str | None] | None = None,
        mutation: bool = True,
        scope: AccessScope | None = None,
        details: Mapping[str, str] | None = None,
    ) -> T:
        """Authorize, run ``body`` in a unit, audit. See the module docstring."""
        with self.telemetry.operation(
            action, tenant_id=tenant_id, principal_kind=principal.kind.value
        ) as recorder:
            try:
                with self._unit(scope or self._scope_for(principal, tenant_id)) as (tx, pending):
                    if resolve_user is not None:
                        user_id = resolve_user(tx)
                    known = facts(tx) if facts is not None else {}
                    decision = self.policy.decide(
                        principal,
                        action,
                        AuthorizationTarget(tenant_id, user_id, application_id, dict(known)),
                    )
                    if not decision.allowed:
                        self._deny(principal, action, target, tenant_id, decision.reason_code)
                    result = body(tx)
                    if mutation:
                        record = self._audit(
                            principal,
                            action,
                            target,
                            tenant_id,
                            AuditOutcome.SUCCESS,
                            details=details,
                        )
                        pending.append(tx.append_audit(record))
            except AuthorizationDenied as denied:
                recorder.finish("denied", denied.code)
                raise
            except (ConflictError, NotFoundError) as error:
                if mutation:
                    self._audit_autonomously(
                        self._audit(
                            principal,
                            action,
                            target,
                            tenant_id,
                            AuditOutcome.FAILED,
                            reason_code=error.code,
                        )
                    )
                recorder.finish("failed", error.code)
                raise
            except UserEngineError as error:
                recorder.finish("failed", error.code)
                raise
            recorder.finish("success")
            return result

    def _deny(
        self,
        principal: Principal,
        action: str,
        target: tuple[str, str],
        tenant_id: str | None,
        reason_code: str,
    ) -> None:
        self._audit_autonomously(
            self._audit(
                principal,
                action,
                target,
                tenant_id,
                AuditOutcome.DENIED,
                reason_code=reason_code,
            )
        )
        raise AuthorizationDenied(
            f"{principal.kind.value} may not perform {action} here ({reason_code})",
            code=reason_code,
            details={"action": action},
        )

    # -- shared lookups ------------------------------------------------------------------
    def _require_tenant(self, tx: StoreTransaction, tenant_id: str, *, active: bool) -> Tenant:
        tenant = tx.get_tenant(tenant_id)
        if tenant is None:
            raise NotFoundError(f"tenant {tenant_id} does not exist", code="tenant.not_found")
        if active and tenant.status is not TenantStatus.ACTIVE:
            raise ConflictError(f"tenant {tenant_id} is suspended", code="tenant.suspended")
        return tenant

    def _require_user(self, tx: StoreTransaction, user_id: str, *, open_only: bool) -> User:
        user = tx.get_user(user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} does not exist", code="user.not_found")
        if open_only and user.status is UserStatus.CLOSED:
            raise ConflictError(f"user {user_id} is closed", code="user.closed")
        return user

    def _require_application(self, tx: StoreTransaction, application_id: str) -> Application:
        application = tx.get_application(application_id)
        if application is None:
            raise NotFoundError(
                f"application {application_id} does not exist", code="application.not_found"
            )
        return application

    @staticmethod
    def _member_fact(tx: StoreTransaction, tenant_id: str | None, user_id: str) -> str:
        if tenant_id is None:
            return "no"
        account = tx.get_tenant_account(tenant_id, user_id)
        active = account is not None and account.status is TenantAccountStatus.ACTIVE
        return "yes" if active else "no"

    def _membership_facts(
        self, tenant_id: str | None, user_id: str
    ) -> Callable[[StoreTransaction], Mapping[str, str]]:
        return lambda tx: {"member": self._member_fact(tx, tenant_id, user_id)}

    def _tenant_admin_member_facts(
        self, principal: Principal, user_id: str
    ) -> Callable[[StoreTransaction], Mapping[str, str]]:
        """For platform-level targets: is the user in the admin's tenant?"""
        tenant_id = principal.tenant_id if principal.kind is PrincipalKind.TENANT_ADMIN else None
        return self._membership_facts(tenant_id, user_id)

    # ======================================================================== health ======
    def health(self) -> dict[str, str]:
        """Liveness: the process answers. Does not touch the store."""
        return {"status": "ok"}

    def readiness(self) -> Readiness:
        """Readiness: the store's schema version against the code's (fails closed)."""
        try:
            return self.store.readiness()
        except Exception as error:  # readiness must answer, never raise
            logger.warning("readiness check failed: %s", type(error).__name__)
            return Readiness(False, None, LATEST_SCHEMA_VERSION, ("store.unreachable",))

    def diagnostics(self, principal: Principal) -> Diagnostics:
        """Counts only (platform operator). Never a value."""
        principal = _check_principal(principal)
        return self._run(
            principal,
            "diagnostics.read",
            target=("platform", "diagnostics"),
            mutation=False,
            body=lambda tx: Diagnostics(
                readiness=self.readiness(),
                counts=dict(self.store.record_counts()),
                outbox=self.store.outbox_stats(),
                audit_exports_dropped=self.audit_exports_dropped,
            ),
        )

    def me(self, principal: Principal, *, tenant_id: str | None = None) -> MeView:
        """The calling user's own records and effective profile (optionally in a tenant)."""
        principal = _check_principal(principal)
        if tenant_id is not None:
            tenant_id = check_slug(tenant_id, "tenant_id")

        def body(tx: StoreTransaction) -> MeView:
            user = self._require_user(tx, principal.id, open_only=False)
            return MeView(
                user=user,
                accounts=tuple(tx.list_accounts(user.id)),
                tenant_accounts=tuple(tx.list_tenant_accounts_of_user(user.id)),
                identities=tuple(tx.list_identities(user.id)),
                factors=tuple(tx.list_factors(user.id)),
                profile=self._resolve(tx, user.id, tenant_id, explain=False),
            )

        return self._run(
            principal,
            "me",
            target=("user", principal.id),
            tenant_id=tenant_id,
            user_id=principal.id,
            body=body,
            mutation=False,
            facts=self._membership_facts(tenant_id, principal.id),
            scope=AccessScope.all_tenants(),
        )

    # ======================================================================= tenants ======
    def create_tenant(self, principal: Principal, tenant_id: str, *, name: str) -> Tenant:
        """Create a tenant (platform operator). Its id is a lowercase slug."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        name = check_name(name, "name")

        def body(tx: StoreTransaction) -> Tenant:
            tenant = Tenant(tenant_id, name, TenantStatus.ACTIVE, self.clock.now())
            tx.insert_tenant(tenant)
            self._emit(tx, "tenant.created", ("tenant", tenant_id), tenant_id, {"name": name})
            return tenant

        return self._run(
            principal,
            "tenant.create",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            body=body,
        )

    def suspend_tenant(self, principal: Principal, tenant_id: str) -> Tenant:
        """Suspend a tenant (platform operator). New tenant accounts, roles, memberships,
        bindings and profile values in it are refused; removals and clears still work, so its
        admins can wind it down."""
        return self._tenant_status(principal, tenant_id, "suspend", TenantStatus.SUSPENDED)

    def reactivate_tenant(self, principal: Principal, tenant_id: str) -> Tenant:
        """Reactivate a suspended tenant (platform operator)."""
        return self._tenant_status(principal, tenant_id, "reactivate", TenantStatus.ACTIVE)

    def _tenant_status(
        self, principal: Principal, tenant_id: str, verb: str, status: TenantStatus
    ) -> Tenant:
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")

        def body(tx: StoreTransaction) -> Tenant:
            tenant = self._require_tenant(tx, tenant_id, active=False)
            if tenant.status is status:
                raise ConflictError(
                    f"tenant {tenant_id} is already {status.value}", code="tenant.status"
                )
            tx.update_tenant(replace(tenant, status=status), expected_version=tenant.version)
            self._emit(tx, f"tenant.{status.value}", ("tenant", tenant_id), tenant_id, {})
            return replace(tenant, status=status, version=tenant.version + 1)

        return self._run(
            principal,
            f"tenant.{verb}",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            body=body,
        )

    def get_tenant(self, principal: Principal, tenant_id: str) -> Tenant:
        """Read a tenant (its admin or the operator)."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        return self._run(
            principal,
            "tenant.read",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            mutation=False,
            body=lambda tx: self._require_tenant(tx, tenant_id, active=False),
        )

    # ================================================================ users/accounts ======
    def create_user(
        self,
        principal: Principal,
        *,
        display_name: str,
        tenant_id: str | None = None,
        roles: Iterable[str] = (),
    ) -> User:
        """Create a user; with ``tenant_id`` also add it to that tenant (with ``roles``).

        A tenant admin must name its own tenant; the operator may create platform-only users.
        """
        principal = _check_principal(principal)
        display_name = check_name(display_name, "display_name")
        if tenant_id is not None:
            tenant_id = check_slug(tenant_id, "tenant_id")
        checked_roles = _check_roles(roles)
        if checked_roles and tenant_id is None:
            raise ValidationError(
                "roles need a tenant_id", code="validation.roles", details={"field": "roles"}
            )
        user_id = self.ids.new_id("usr_")
        now = self.clock.now()

        def body(tx: StoreTransaction) -> User:
            user = User(user_id, display_name, UserStatus.ACTIVE, now, now)
            tx.insert_user(user)
            self._emit(tx, "user.created", ("user", user_id), None, {"user_id": user_id})
            if tenant_id is not None:
                self._require_tenant(tx, tenant_id, active=True)
                tx.insert_tenant_account(
                    TenantAccount(
                        tenant_id, user_id, TenantAccountStatus.ACTIVE, checked_roles, now, now
                    )
                )
                self._emit(
                    tx,
                    "tenant_account.added",
                    ("user", user_id),
                    tenant_id,
                    {"tenant_id": tenant_id, "roles": sorted(checked_roles)},
                )
            return user

        return self._run(
            principal,
            "user.create",
            target=("user", user_id),
            tenant_id=tenant_id,
            body=body,
        )

    def get_user(self, principal: Principal, user_id: str) -> User:
        """Read a user: itself, an admin of a tenant the user is in, or the operator."""
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        return self._run(
            principal,
            "user.read",
            target=("user", user_id),
            user_id=user_id,
            mutation=False,
            facts=self._tenant_admin_member_facts(principal, user_id),
            body=lambda tx: self._require_user(tx, user_id, open_only=False),
        )

    def suspend_user(self, principal: Principal, user_id: str) -> User:
        """Suspend a user (operator)."""
        return self._user_lifecycle(principal, user_id, "suspend")

    def reactivate_user(self, principal: Principal, user_id: str) -> User:
        """Reactivate a suspended user (operator)."""
        return self._user_lifecycle(principal, user_id, "reactivate")

    def close_user(self, principal: Principal, user_id: str) -> User:
        """Close a user for good (the user itself or the operator)."""
        return self._user_lifecycle(principal, user_id, "close")

    def _user_lifecycle(self, principal: Principal, user_id: str, verb: str) -> User:
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        allowed_from, status = _LIFECYCLE[verb]

        def body(tx: StoreTransaction) -> User:
            user = self._require_user(tx, user_id, open_only=False)
            if user.status not in allowed_from:
                raise ConflictError(
                    f"user {user_id} is {user.status.value}; cannot {verb}", code="user.status"
                )
            updated = replace(user, status=status, updated_at=self.clock.now())
            tx.update_user(updated, expected_version=user.version)
            self._emit(tx, f"user.{status.value}", ("user", user_id), None, {"user_id": user_id})
            return replace(updated, version=user.version + 1)

        return self._run(
            principal, f"user.{verb}", target=("user", user_id), user_id=user_id, body=body
        )

    def create_account(self, principal: Principal, user_id: str, *, handle: str) -> Account:
        """Create a sign-in account (handle unique, case-insensitive) for a user."""
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        handle = check_name(handle, "handle")
        account_id = self.ids.new_id("acc_")

        def body(tx: StoreTransaction) -> Account:
            self._require_user(tx, user_id, open_only=True)
            account = Account(account_id, user_id, handle, UserStatus.ACTIVE, self.clock.now())
            tx.insert_account(account)
            self._emit(tx, "account.created", ("user", user_id), None, {"account_id": account_id})
            return account

        return self._run(
            principal,
            "account.create",
            target=("account", account_id),
            user_id=user_id,
            body=body,
        )

    def suspend_account(self, principal: Principal, account_id: str) -> Account:
        """Suspend an account (operator)."""
        return self._account_lifecycle(principal, account_id, "suspend")

    def reactivate_account(self, principal: Principal, account_id: str) -> Account:
        """Reactivate a suspended account (operator)."""
        return self._account_lifecycle(principal, account_id, "reactivate")

    def close_account(self, principal: Principal, account_id: str) -> Account:
        """Close an account (its user or the operator)."""
        return self._account_lifecycle(principal, account_id, "close")

    def _account_lifecycle(self, principal: Principal, account_id: str, verb: str) -> Account:
        principal = _check_principal(principal)
        account_id = check_id(account_id, "account_id")
        allowed_from, status = _LIFECYCLE[verb]

        def owner(tx: StoreTransaction) -> str | None:
            account = tx.get_account(account_id)
            return account.user_id if account is not None else None

        def body(tx: StoreTransaction) -> Account:
            account = tx.get_account(account_id)
            if account is None:
                raise NotFoundError(
                    f"account {account_id} does not exist", code="account.not_found"
                )
            if account.status not in allowed_from:
                raise ConflictError(
                    f"account is {account.status.value}; cannot {verb}", code="account.status"
                )
            updated = replace(account, status=status)
            tx.update_account(updated, expected_version=account.version)
            self._emit(
                tx,
                f"account.{status.value}",
                ("user", account.user_id),
                None,
                {"account_id": account_id},
            )
            return replace(updated, version=account.version + 1)

        return self._run(
            principal,
            f"account.{verb}",
            target=("account", account_id),
            resolve_user=owner,
            body=body,
        )

    # ============================================================== tenant accounts ======
    def add_to_tenant(
        self, principal: Principal, tenant_id: str, user_id: str, *, roles: Iterable[str] = ()
    ) -> TenantAccount:
        """Give a user an account in a tenant (its admin or the operator)."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        checked_roles = _check_roles(roles)

        def body(tx: StoreTransaction) -> TenantAccount:
            self._require_tenant(tx, tenant_id, active=True)
            self._require_user(tx, user_id, open_only=True)
            now = self.clock.now()
            account = TenantAccount(
                tenant_id, user_id, TenantAccountStatus.ACTIVE, checked_roles, now, now
            )
            existing = tx.get_tenant_account(tenant_id, user_id)
            if existing is not None and existing.status is TenantAccountStatus.REMOVED:
                account = replace(account, created_at=existing.created_at)
                tx.update_tenant_account(account, expected_version=existing.version)
                account = replace(account, version=existing.version + 1)
            else:
                tx.insert_tenant_account(account)
            self._emit(
                tx,
                "tenant_account.added",
                ("user", user_id),
                tenant_id,
                {"tenant_id": tenant_id, "roles": sorted(checked_roles)},
            )
            return account

        return self._run(
            principal,
            "tenant_account.add",
            target=("user", user_id),
            tenant_id=tenant_id,
            body=body,
        )

    def suspend_tenant_account(
        self, principal: Principal, tenant_id: str, user_id: str
    ) -> TenantAccount:
        """Suspend a user inside one tenant."""
        return self._tenant_account_lifecycle(principal, tenant_id, user_id, "suspend")

    def reactivate_tenant_account(
        self, principal: Principal, tenant_id: str, user_id: str
    ) -> TenantAccount:
        """Reactivate a suspended tenant account."""
        return self._tenant_account_lifecycle(principal, tenant_id, user_id, "reactivate")

    def remove_from_tenant(
        self, principal: Principal, tenant_id: str, user_id: str
    ) -> TenantAccount:
        """Remove a user from a tenant (its memberships and bindings there go too)."""
        return self._tenant_account_lifecycle(principal, tenant_id, user_id, "remove")

    def _tenant_account_lifecycle(
        self, principal: Principal, tenant_id: str, user_id: str, verb: str
    ) -> TenantAccount:
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        allowed_from, status = _TENANT_ACCOUNT_LIFECYCLE[verb]

        def body(tx: StoreTransaction) -> TenantAccount:
            account = tx.get_tenant_account(tenant_id, user_id)
            if account is None:
                raise NotFoundError(
                    "the user has no account in this tenant", code="tenant_account.not_found"
                )
            if account.status not in allowed_from:
                raise ConflictError(
                    f"tenant account is {account.status.value}; cannot {verb}",
                    code="tenant_account.status",
                )
            updated = replace(account, status=status, updated_at=self.clock.now())
            tx.update_tenant_account(updated, expected_version=account.version)
            if status is TenantAccountStatus.REMOVED:
                for membership in tx.list_memberships(tenant_id, user_id):
                    tx.delete_membership(tenant_id, user_id, membership.group)
                for binding in tx.list_bindings_of_user(user_id):
                    if binding.tenant_id == tenant_id:
                        tx.delete_binding(binding.application_id, tenant_id, user_id)
            self._emit(
                tx,
                f"tenant_account.{status.value}",
                ("user", user_id),
                tenant_id,
                {"tenant_id": tenant_id},
            )
            return replace(updated, version=account.version + 1)

        return self._run(
            principal,
            f"tenant_account.{verb}",
            target=("user", user_id),
            tenant_id=tenant_id,
            body=body,
        )

    def assign_tenant_roles(
        self, principal: Principal, tenant_id: str, user_id: str, roles: Iterable[str]
    ) -> TenantAccount:
        """Replace the tenant roles of a user's tenant account."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        checked_roles = _check_roles(roles)

        def body(tx: StoreTransaction) -> TenantAccount:
            self._require_tenant(tx, tenant_id, active=True)
            account = tx.get_tenant_account(tenant_id, user_id)
            if account is None or account.status is TenantAccountStatus.REMOVED:
                raise NotFoundError(
                    "the user has no account in this tenant", code="tenant_account.not_found"
                )
            updated = replace(account, roles=checked_roles, updated_at=self.clock.now())
            tx.update_tenant_account(updated, expected_version=account.version)
            self._emit(
                tx,
                "tenant_account.roles_assigned",
                ("user", user_id),
                tenant_id,
                {"tenant_id": tenant_id, "roles": sorted(checked_roles)},
            )
            return replace(updated, version=account.version + 1)

        return self._run(
            principal,
            "tenant_account.assign_roles",
            target=("user", user_id),
            tenant_id=tenant_id,
            body=body,
        )

    def list_tenant_accounts(self, principal: Principal, tenant_id: str) -> list[TenantAccount]:
        """Tenant accounts of a tenant, by user id."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        return self._run(
            principal,
            "tenant_account.list",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            mutation=False,
            body=lambda tx: tx.list_tenant_accounts_of_tenant(tenant_id),
        )

    # ================================================================= memberships ======
    def add_membership(
        self, principal: Principal, tenant_id: str, user_id: str, group: str
    ) -> Membership:
        """Put a user (with an active account in the tenant) into a tenant group."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        group = check_name(group, "group")

        def body(tx: StoreTransaction) -> Membership:
            self._require_tenant(tx, tenant_id, active=True)
            if self._member_fact(tx, tenant_id, user_id) != "yes":
                raise ConflictError(
                    "the user needs an active account in this tenant first",
                    code="tenant_account.inactive",
                )
            membership = Membership(tenant_id, user_id, group, self.clock.now())
            tx.insert_membership(membership)
            self._emit(
                tx,
                "membership.added",
                ("user", user_id),
                tenant_id,
                {"tenant_id": tenant_id, "group": group},
            )
            return membership

        return self._run(
            principal,
            "membership.add",
            target=("user", user_id),
            tenant_id=tenant_id,
            body=body,
            details={"group": group},
        )

    def remove_membership(
        self, principal: Principal, tenant_id: str, user_id: str, group: str
    ) -> None:
        """Take a user out of a tenant group."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        group = check_name(group, "group")

        def body(tx: StoreTransaction) -> None:
            if not tx.delete_membership(tenant_id, user_id, group):
                raise NotFoundError("no such membership", code="membership.not_found")
            self._emit(
                tx,
                "membership.removed",
                ("user", user_id),
                tenant_id,
                {"tenant_id": tenant_id, "group": group},
            )

        self._run(
            principal,
            "membership.remove",
            target=("user", user_id),
            tenant_id=tenant_id,
            body=body,
            details={"group": group},
        )

    def list_memberships(
        self, principal: Principal, tenant_id: str, *, user_id: str | None = None
    ) -> list[Membership]:
        """Memberships of a tenant, optionally of one user."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        return self._run(
            principal,
            "membership.list",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            mutation=False,
            body=lambda tx: tx.list_memberships(tenant_id, user_id),
        )

    def export_memberships(self, principal: Principal, tenant_id: str) -> int:
        """Push the tenant's memberships to the membership exporter; return how many."""
        principal = _check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        exporter = self.membership_exporter

        def body(tx: StoreTransaction) -> int:
            memberships = tx.list_memberships(tenant_id)
            if exporter is None:
                raise ValidationError(
                    "no membership exporter is configured", code="configuration.exporter"
                )
            exporter.export(tenant_id, memberships)
            return len(memberships)

        return self._run(
            principal,
            "membership.export",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            body=body,
        )

    # =================================================================== identities ======
    def link_identity(
        self,
        principal: Principal,
        user_id: str,
        *,
        issuer: str,
        subject: str,
        evidence: str | None = None,
    ) -> ExternalIdentity:
        """Link (issuer, subject) to a user. A second link of the same pair is a conflict.

        ``evidence`` (an ID token, say) goes to the identity verifier and nowhere else.
        """
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        issuer = check_text(issuer, "issuer", max_length=MAX_SUBJECT_LENGTH)
        subject = check_text(subject, "subject", max_length=MAX_SUBJECT_LENGTH)
        if evidence is not None and not isinstance(evidence, str):
            raise ValidationError(
                "evidence must be a string",
                code="validation.type",
                details={"field": "evidence"},
            )

        def facts(tx: StoreTransaction) -> Mapping[str, str]:
            bound = "no"
            if principal.kind is PrincipalKind.APPLICATION:
                bound = (
                    "yes"
                    if any(
                        b.application_id == principal.id for b in tx.list_bindings_of_user(user_id)
                    )
                    else "no"
                )
            tenant = principal.tenant_id
            return {"member": self._member_fact(tx, tenant, user_id), "bound": bound}

        def body(tx: StoreTransaction) -> ExternalIdentity:
            self._require_user(tx, user_id, open_only=True)
            if not self.verifier.verify(issuer, subject, evidence):
                self._deny(principal, "identity.link", ("user", user_id), None, "denied.evidence")
            identity = ExternalIdentity(issuer, subject, user_id, self.clock.now())
            tx.insert_identity(identity)
            self._emit(
                tx,
                "identity.linked",
                ("user", user_id),
                None,
                {"issuer": issuer, "subject": subject},
            )
            return identity

        return self._run(
            principal,
            "identity.link",
            target=("user", user_id),
            user_id=user_id,
            body=body,
            facts=facts,
            scope=AccessScope.all_tenants(),
            details={"issuer": issuer},
        )

    def unlink_identity(self, principal: Principal, *, issuer: str, subject: str) -> None:
        """Unlink (issuer, subject) from its user."""
        principal = _check_principal(principal)
        issuer = check_text(issuer, "issuer", max_length=MAX_SUBJECT_LENGTH)
        subject = check_text(subject, "subject", max_length=MAX_SUBJECT_LENGTH)

        def owner(tx: StoreTransaction) -> str | None:
            identity = tx.get_identity(issuer, subject)
            return identity.user_id if identity is not None else None

        def facts(tx: StoreTransaction) -> Mapping[str, str]:
            user_id = owner(tx)
            if user_id is None or principal.kind is not PrincipalKind.TENANT_ADMIN:
                return {}
            return {"member": self._member_fact(tx, principal.tenant_id, user_id)}

        def body(tx: StoreTransaction) -> None:
            identity = tx.get_identity(issuer, subject)
            if identity is None or not tx.delete_identity(issuer, subject):
                raise NotFoundError("no such identity is linked", code="identity.not_found")
            self._emit(
                tx,
                "identity.unlinked",
                ("user", identity.user_id),
                None,
                {"issuer": issuer, "subject": subject},
            )

        self._run(
            principal,
            "identity.unlink",
            target=("identity", issuer),
            resolve_user=owner,
            body=body,
            facts=facts,
            scope=AccessScope.all_tenants(),
            details={"issuer": issuer},
        )

    def lookup_identity(
        self, principal: Principal, *, issuer: str, subject: str
    ) -> ExternalIdentity | None:
        """The identity linked under (issuer, subject), or None (applications, operator)."""
        principal = _check_principal(principal)
        issuer = check_text(issuer, "issuer", max_length=MAX_SUBJECT_LENGTH)
        subject = check_text(subject, "subject", max_length=MAX_SUBJECT_LENGTH)
        return self._run(
            principal,
            "identity.lookup",
            target=("identity", issuer),
            mutation=False,
            body=lambda tx: tx.get_identity(issuer, subject),
        )

    # ====================================================================== factors ======
    def enroll_factor(
        self,
        principal: Principal,
        user_id: str,
        *,
        kind: str,
        label: str,
        secret: bytes | str,
    ) -> Factor:
        """Enroll an authentication factor. The secret goes to the secrets port only; the
        returned factor (and everything stored, audited or emitted) holds its reference."""
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        kind = check_slug(kind, "kind")
        label = check_name(label, "label")
        if isinstance(secret, str):
            secret = secret.encode("utf-8", "surrogatepass")
        if not isinstance(secret, bytes) or not 0 < len(secret) <= MAX_SECRET_BYTES:
            raise ValidationError(
                f"secret must be 1-{MAX_SECRET_BYTES} bytes",
                code="validation.secret",
                details={"field": "secret"},
            )
        factor_id = self.ids.new_id("fac_")
        stored_refs: list[str] = []

        def body(tx: StoreTransaction) -> Factor:
            self._require_user(tx, user_id, open_only=True)
            reference = self.secrets.put_secret(user_id, secret)
            stored_refs.append(reference)
            factor = Factor(factor_id, user_id, kind, label, reference, self.clock.now())
            tx.insert_factor(factor)
            self._emit(
                tx,
                "factor.enrolled",
                ("user", user_id),
                None,
                {"factor_id": factor_id, "kind": kind},
            )
            return factor

        try:
            return self._run(
                principal,
                "factor.enroll",
                target=("factor", factor_id),
                user_id=user_id,
                body=body,
                details={"kind": kind},
            )
        except BaseException:
            for reference in stored_refs:  # the factor row rolled back: drop its secret too
                self.secrets.delete_secret(reference)
            raise

    def remove_factor(self, principal: Principal, user_id: str, factor_id: str) -> None:
        """Remove a factor and delete its secret."""
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        factor_id = check_id(factor_id, "factor_id")
        removed: list[str] = []

        def body(tx: StoreTransaction) -> None:
            factor = tx.get_factor(factor_id)
            if factor is None or factor.user_id != user_id:
                raise NotFoundError("no such factor", code="factor.not_found")
            tx.delete_factor(factor_id)
            removed.append(factor.secret_ref)
            self._emit(tx, "factor.removed", ("user", user_id), None, {"factor_id": factor_id})

        self._run(
            principal, "factor.remove", target=("factor", factor_id), user_id=user_id, body=body
        )
        for reference in removed:  # after commit: a rollback must not lose a live secret
            self.secrets.delete_secret(reference)

    # ================================================================= applications ======
    def register_application(
        self, principal: Principal, application_id: str, *, name: str
    ) -> Application:
        """Register an application (operator). Its id is a lowercase slug."""
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        name = check_name(name, "name")

        def body(tx: StoreTransaction) -> Application:
            application = Application(application_id, name, self.clock.now())
            tx.insert_application(application)
            self._emit(
                tx,
                "application.registered",
                ("application", application_id),
                None,
                {"name": name},
            )
            return application

        return self._run(
            principal,
            "application.register",
            target=("application", application_id),
            application_id=application_id,
            body=body,
        )

    def bind_application(
        self,
        principal: Principal,
        application_id: str,
        *,
        tenant_id: str,
        user_id: str,
        granted_attributes: Iterable[str] = (),
    ) -> ApplicationBinding:
        """Bind a user (active in the tenant) to an application, granting it attributes of
        other applications (qualified names) that its projection may then include."""
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        if isinstance(granted_attributes, str) or not isinstance(granted_attributes, Iterable):
            raise ValidationError(
                "granted_attributes must be a list of qualified attribute names",
                code="validation.type",
                details={"field": "granted_attributes"},
            )
        names = list(granted_attributes)
        for name in names:  # before the frozenset: an unhashable element is bad input too
            check_slug(split_qualified_name(name)[0], "granted attribute application")
        granted = frozenset(names)

        def body(tx: StoreTransaction) -> ApplicationBinding:
            self._require_tenant(tx, tenant_id, active=True)
            self._require_application(tx, application_id)
            if self._member_fact(tx, tenant_id, user_id) != "yes":
                raise ConflictError(
                    "the user needs an active account in this tenant first",
                    code="tenant_account.inactive",
                )
            for name in sorted(granted):
                owner, attribute = split_qualified_name(name)
                catalog = tx.get_current_catalog(owner)
                if catalog is None or catalog.attribute(attribute) is None:
                    raise ValidationError(
                        f"granted attribute {name} is not in any published catalog",
                        code="validation.unknown_attribute",
                        details={"attribute": name},
                    )
            binding = ApplicationBinding(
                application_id, tenant_id, user_id, granted, self.clock.now()
            )
            tx.put_binding(binding)
            self._emit(
                tx,
                "application.bound",
                ("user", user_id),
                tenant_id,
                {"application_id": application_id, "granted": sorted(granted)},
            )
            return binding

        return self._run(
            principal,
            "application.bind",
            target=("application", application_id),
            tenant_id=tenant_id,
            body=body,
        )

    def unbind_application(
        self, principal: Principal, application_id: str, *, tenant_id: str, user_id: str
    ) -> None:
        """Remove a user's binding to an application in a tenant."""
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")

        def body(tx: StoreTransaction) -> None:
            if not tx.delete_binding(application_id, tenant_id, user_id):
                raise NotFoundError("no such binding", code="binding.not_found")
            self._emit(
                tx,
                "application.unbound",
                ("user", user_id),
                tenant_id,
                {"application_id": application_id},
            )

        self._run(
            principal,
            "application.unbind",
            target=("application", application_id),
            tenant_id=tenant_id,
            body=body,
        )

    # ===================================================================== catalogs ======
    def publish_catalog(
        self,
        principal: Principal,
        application_id: str,
        attributes: Sequence[AttributeDefinition | Mapping[str, Any]],
    ) -> CatalogVersion:
        """Publish the next version of an application's catalog (the application itself or
        the operator). Published versions never change; the newest is current."""
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        if not isinstance(attributes, list | tuple):
            raise ValidationError(
                "attributes must be a list of attribute definitions",
                code="validation.type",
                details={"field": "attributes"},
            )
        definitions = tuple(
            a if isinstance(a, AttributeDefinition) else AttributeDefinition.from_dict(a)
            for a in attributes
        )

        def body(tx: StoreTransaction) -> CatalogVersion:
            self._require_application(tx, application_id)
            current = tx.get_current_catalog(application_id)
            catalog = CatalogVersion(
                application_id,
                1 if current is None else current.version + 1,
                definitions,
                self.clock.now(),
                principal.label,
            )
            catalog.check()
            tx.insert_catalog_version(catalog)
            self._emit(
                tx,
                "catalog.published",
                ("application", application_id),
                None,
                {"version": catalog.version, "attributes": [a.name for a in definitions]},
            )
            return catalog

        return self._run(
            principal,
            "catalog.publish",
            target=("application", application_id),
            application_id=application_id,
            body=body,
        )

    def get_catalog(
        self, principal: Principal, application_id: str, *, version: int | None = None
    ) -> CatalogVersion:
        """The current (or a given past) published version of an application's catalog."""
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise ValidationError(
                "version must be a positive integer",
                code="validation.type",
                details={"field": "version"},
            )

        def body(tx: StoreTransaction) -> CatalogVersion:
            catalog = (
                tx.get_current_catalog(application_id)
                if version is None
                else tx.get_catalog_version(application_id, version)
            )
            if catalog is None:
                raise NotFoundError("no such catalog version", code="catalog.not_found")
            return catalog

        return self._run(
            principal,
            "catalog.read",
            target=("application", application_id),
            mutation=False,
            body=body,
        )

    def list_catalog_versions(
        self, principal: Principal, application_id: str
    ) -> list[CatalogVersion]:
        """Every published version of an application's catalog, oldest first."""
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        return self._run(
            principal,
            "catalog.read",
            target=("application", application_id),
            mutation=False,
            body=lambda tx: tx.list_catalog_versions(application_id),
        )

    # ===================================================================== profiles ======
    def _profile_key(
        self,
        principal: Principal,
        attribute: object,
        layer: object,
        user_id: str | None,
        tenant_id: str | None,
    ) -> ProfileKey:
        application_id, name = split_qualified_name(attribute)
        application_id = check_slug(application_id, "attribute application")
        checked_layer = _check_layer(layer)
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        if tenant_id is not None:
            tenant_id = check_slug(tenant_id, "tenant_id")
        needs_user = checked_layer in (Layer.USER_IN_TENANT, Layer.USER)
        needs_tenant = checked_layer in (Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT)
        if needs_user != (user_id is not None) or needs_tenant != (tenant_id is not None):
            raise ValidationError(
                f"layer {checked_layer.value} needs "
                + ("a user_id" if needs_user else "no user_id")
                + " and "
                + ("a tenant_id" if needs_tenant else "no tenant_id"),
                code="validation.layer",
                details={"field": "layer"},
            )
        return ProfileKey(checked_layer, application_id, name, tenant_id, user_id)

    def _profile_facts(
        self, principal: Principal, key: ProfileKey
    ) -> Callable[[StoreTransaction], Mapping[str, str]]:
        def facts(tx: StoreTransaction) -> Mapping[str, str]:
            found: dict[str, str] = {}
            if key.user_id is not None:
                found["member"] = (
                    self._member_fact(tx, key.tenant_id, key.user_id)
                    if key.tenant_id is not None
                    else "no"
                )
                if principal.kind is PrincipalKind.APPLICATION:
                    # A user-layer value belongs to no tenant, but the binding entitling the
                    # application lives in one: read the bindings (only) across tenants.
                    wider = AccessScope.all_tenants() if key.tenant_id is None else None
                    with tx.savepoint(wider):
                        bindings = tx.list_bindings_of_user(key.user_id)
                    bound = any(
                        b.application_id == principal.id
                        and (key.tenant_id is None or b.tenant_id == key.tenant_id)
                        for b in bindings
                    )
                    found["bound"] = "yes" if bound else "no"
            return found

        return facts

    def _check_writer(
        self, tx: StoreTransaction, principal: Principal, key: ProfileKey, action: str
    ) -> tuple[CatalogVersion, AttributeDefinition]:
        catalog = tx.get_current_catalog(key.application_id)
        definition = catalog.attribute(key.attribute) if catalog is not None else None
        if catalog is None or definition is None:
            raise ValidationError(
                f"attribute {key.qualified_name} is not in the application's current catalog",
                code="validation.unknown_attribute",
                details={"attribute": key.qualified_name},
            )
        if key.layer not in definition.layers:
            raise ValidationError(
                f"attribute {key.qualified_name} cannot be written at layer {key.layer.value}",
                code="validation.layer",
                details={"attribute": key.qualified_name},
            )
        role = _WRITER_ROLE[principal.kind]
        own_attribute = principal.kind is not PrincipalKind.APPLICATION or (
            key.application_id == principal.id
        )
        admin_layer_ok = principal.kind is not PrincipalKind.TENANT_ADMIN or key.layer in (
            Layer.USER_IN_TENANT,
            Layer.TENANT_DEFAULT,
        )
        if role not in definition.writers or not own_attribute or not admin_layer_ok:
            self._deny(
                principal,
                action,
                ("attribute", key.qualified_name),
                key.tenant_id,
                "denied.writer_not_allowed",
            )
        return catalog, definition

    def write_profile_value(
        self,
        principal: Principal,
        *,
        attribute: str,
        layer: Layer | str,
        value: object,
        user_id: str | None = None,
        tenant_id: str | None = None,
        expected_version: int | None = None,
    ) -> ProfileValue:
        """Write a value at a layer. The catalog decides the type, validation, writers and
        layers; ``expected_version`` (0: must not exist) makes a stale write a conflict.

        Returns the stored value with its new version (a ``secret`` value as ``REDACTED``).
        """
        principal = _check_principal(principal)
        key = self._profile_key(principal, attribute, layer, user_id, tenant_id)
        expected = _check_expected_version(expected_version)
        target = ("attribute", key.qualified_name)

        def body(tx: StoreTransaction) -> ProfileValue:
            catalog, definition = self._check_writer(tx, principal, key, "profile.write")
            checked = definition.validate(value, qualified=key.qualified_name)
            if key.tenant_id is not None:
                self._require_tenant(tx, key.tenant_id, active=True)
            if key.user_id is not None:
                self._require_user(tx, key.user_id, open_only=True)
            stored = tx.put_profile_value(
                ProfileValue(key, checked, 0, catalog.version, principal.label, self.clock.now()),
                expected_version=expected,
            )
            payload: dict[str, Any] = {
                "attribute": key.qualified_name,
                "layer": key.layer.value,
                "version": stored.version,
                "catalog_version": catalog.version,
            }
            if definition.sensitivity is Sensitivity.SECRET:
                payload["redacted"] = True
            else:
                payload["value"] = checked
            self._emit(tx, "profile.value_written", self._aggregate(key), key.tenant_id, payload)
            return _redact(stored, definition)

        return self._run(
            principal,
            "profile.write",
            target=target,
            tenant_id=key.tenant_id,
            user_id=key.user_id,
            application_id=self._app_target(principal, key),
            body=body,
            facts=self._profile_facts(principal, key),
            details={"layer": key.layer.value},
        )

    def clear_profile_value(
        self,
        principal: Principal,
        *,
        attribute: str,
        layer: Layer | str,
        user_id: str | None = None,
        tenant_id: str | None = None,
        expected_version: int | None = None,
    ) -> None:
        """Clear the value at a layer (lower layers show through again)."""
        principal = _check_principal(principal)
        key = self._profile_key(principal, attribute, layer, user_id, tenant_id)
        expected = _check_expected_version(expected_version)

        def body(tx: StoreTransaction) -> None:
            self._check_writer(tx, principal, key, "profile.clear")
            removed = tx.delete_profile_value(key, expected_version=expected)
            if removed is None:
                raise NotFoundError("no value at that layer", code="profile.not_found")
            self._emit(
                tx,
                "profile.value_cleared",
                self._aggregate(key),
                key.tenant_id,
                {"attribute": key.qualified_name, "layer": key.layer.value},
            )

        self._run(
            principal,
            "profile.clear",
            target=("attribute", key.qualified_name),
            tenant_id=key.tenant_id,
            user_id=key.user_id,
            application_id=self._app_target(principal, key),
            body=body,
            facts=self._profile_facts(principal, key),
            details={"layer": key.layer.value},
        )

    @staticmethod
    def _aggregate(key: ProfileKey) -> tuple[str, str]:
        if key.user_id is not None:
            return ("user", key.user_id)
        if key.tenant_id is not None:
            return ("tenant", key.tenant_id)
        return ("application", key.application_id)

    @staticmethod
    def _app_target(principal: Principal, key: ProfileKey) -> str | None:
        return key.application_id if principal.kind is PrincipalKind.APPLICATION else None

    def _resolve(
        self, tx: StoreTransaction, user_id: str, tenant_id: str | None, *, explain: bool
    ) -> EffectiveProfile:
        catalogs = tx.list_current_catalogs()
        profile = resolve_profile(
            user_id=user_id,
            tenant_id=tenant_id,
            catalogs=catalogs,
            values=tx.profile_values_for(user_id, tenant_id),
            explain=explain,
        )
        secret = {
            f"{c.application_id}.{a.name}"
            for c in catalogs
            for a in c.attributes
            if a.sensitivity is Sensitivity.SECRET
        }
        if not secret:
            return profile
        return replace(
            profile,
            attributes={
                name: _redact_resolved(resolved) if name in secret else resolved
                for name, resolved in profile.attributes.items()
            },
        )

    def effective_profile(
        self,
        principal: Principal,
        user_id: str,
        *,
        tenant_id: str | None = None,
        explain: bool = False,
    ) -> EffectiveProfile:
        """The merged profile with provenance per attribute; ``explain`` adds the shadowed
        values of lower layers. ``secret`` values appear as ``REDACTED``."""
        principal = _check_principal(principal)
        user_id = check_id(user_id, "user_id")
        if tenant_id is not None:
            tenant_id = check_slug(tenant_id, "tenant_id")
        if not isinstance(explain, bool):
            raise ValidationError("explain must be a boolean", code="validation.type")

        def facts(tx: StoreTransaction) -> Mapping[str, str]:
            if tenant_id is not None:
                return {"member": self._member_fact(tx, tenant_id, user_id)}
            return self._tenant_admin_member_facts(principal, user_id)(tx)

        def body(tx: StoreTransaction) -> EffectiveProfile:
            self._require_user(tx, user_id, open_only=False)
            return self._resolve(tx, user_id, tenant_id, explain=explain)

        return self._run(
            principal,
            "profile.read",
            target=("user", user_id),
            tenant_id=tenant_id,
            user_id=user_id,
            mutation=False,
            facts=facts,
            body=body,
        )

    def project_profile(
        self, principal: Principal, application_id: str, *, tenant_id: str, user_id: str
    ) -> EffectiveProfile:
        """What an application may see of a bound user's effective profile in a tenant.

        Deny by default: its own attributes except ``secret`` ones, plus attributes of other
        applications the binding grants whose sensitivity is ``public`` or ``personal``.
        """
        principal = _check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")

        def facts(tx: StoreTransaction) -> Mapping[str, str]:
            bound = tx.get_binding(application_id, tenant_id, user_id) is not None
            return {"bound": "yes" if bound else "no", "member": "yes" if bound else "no"}

        def body(tx: StoreTransaction) -> EffectiveProfile:
            binding = tx.get_binding(application_id, tenant_id, user_id)
            if binding is None:
                raise NotFoundError(
                    "the user is not bound to this application in this tenant",
                    code="binding.not_found",
                )
            catalogs = {c.application_id: c for c in tx.list_current_catalogs()}
            profile = resolve_profile(
                user_id=user_id,
                tenant_id=tenant_id,
                catalogs=catalogs.values(),
                values=tx.profile_values_for(user_id, tenant_id),
            )
            visible: dict[str, ResolvedAttribute] = {}
            for name, resolved in profile.attributes.items():
                owner, attribute = name.split(".")
                definition = catalogs[owner].attribute(attribute)
                assert definition is not None
                if definition.sensitivity is Sensitivity.SECRET:
                    continue
                if owner == application_id or (
                    name in binding.granted_attributes
                    and definition.sensitivity in (Sensitivity.PUBLIC, Sensitivity.PERSONAL)
                ):
                    visible[name] = resolved
            return EffectiveProfile(user_id, tenant_id, visible)

        return self._run(
            principal,
            "profile.project",
            target=("user", user_id),
            tenant_id=tenant_id,
            user_id=user_id,
            application_id=application_id,
            mutation=False,
            facts=facts,
            body=body,
        )

    def verify_secret_attribute(
        self,
        principal: Principal,
        *,
        attribute: str,
        user_id: str,
        tenant_id: str,
        candidate: str,
    ) -> bool:
        """Compare a candidate with a ``secret`` attribute's effective value, in constant time,
        without the value ever leaving the store layer (the owning application only)."""
        principal = _check_principal(principal)
        application_id, name = split_qualified_name(attribute)
        application_id = check_slug(application_id, "attribute application")
        user_id = check_id(user_id, "user_id")
        tenant_id = check_slug(tenant_id, "tenant_id")
        if not isinstance(candidate, str):
            raise ValidationError("candidate must be a string", code="validation.type")

        def facts(tx: StoreTransaction) -> Mapping[str, str]:
            bound = tx.get_binding(application_id, tenant_id, user_id) is not None
            return {"bound": "yes" if bound else "no", "member": "yes" if bound else "no"}

        def body(tx: StoreTransaction) -> bool:
            catalog = tx.get_current_catalog(application_id)
            definition = catalog.attribute(name) if catalog is not None else None
            if catalog is None or definition is None:
                raise ValidationError(
                    f"attribute {attribute} is not in the application's current catalog",
                    code="validation.unknown_attribute",
                )
            if definition.sensitivity is not Sensitivity.SECRET:
                raise ValidationError(
                    f"attribute {attribute} is not secret; read it instead",
                    code="validation.not_secret",
                )
            profile = resolve_profile(
                user_id=user_id,
                tenant_id=tenant_id,
                catalogs=[catalog],
                values=tx.profile_values_for(user_id, tenant_id),
            )
            resolved = profile.attributes.get(attribute)
            if resolved is None:
                return False
            return hmac.compare_digest(
                str(resolved.value).encode("utf-8", "surrogatepass"),
                candidate.encode("utf-8", "surrogatepass"),
            )

        return self._run(
            principal,
            "profile.verify_secret",
            target=("user", user_id),
            tenant_id=tenant_id,
            user_id=user_id,
            application_id=application_id,
            mutation=False,
            facts=facts,
            body=body,
        )

    # =============================================================== audit / outbox ======
    def read_audit(
        self,
        principal: Principal,
        *,
        tenant_id: str | None = None,
        actor_id: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> AuditPage:
        """Audit records in order, filtered, paged (``after`` = the previous page's
        ``next_after``). A tenant admin reads only its own tenant's records."""
        principal = _check_principal(principal)
        if tenant_id is not None:
            tenant_id = check_slug(tenant_id, "tenant_id")
        if actor_id is not None:
            actor_id = check_id(actor_id, "actor_id")
        if action is not None:
            action = check_text(action, "action", max_length=64)
        try:
            checked_outcome = AuditOutcome(outcome) if outcome is not None else None
        except ValueError as error:
            raise ValidationError(
                "outcome must be success, denied or failed", code="validation.type"
            ) from error
        audit_filter = AuditFilter(
            tenant_id=tenant_id,
            actor_id=actor_id,
            action=action,
            outcome=checked_outcome,
            since=_check_time(since, "since"),
            until=_check_time(until, "until"),
            after_sequence=_check_sequence(after, "after"),
            limit=_check_limit(limit),
        )
        if principal.kind is PrincipalKind.TENANT_ADMIN and tenant_id is None:
            tenant_id = principal.tenant_id
            audit_filter = replace(audit_filter, tenant_id=tenant_id)
        scope = self._scope_for(principal, tenant_id)
        return self._run(
            principal,
            "audit.read",
            target=("audit", tenant_id or "platform"),
            tenant_id=tenant_id,
            mutation=False,
            body=lambda tx: self.store.read_audit(audit_filter, scope),
        )

    def pending_events(
        self, principal: Principal, *, limit: int = 100, after: int = 0
    ) -> list[OutboxEvent]:
        """Pending outbox events in order (operator)."""
        principal = _check_principal(principal)
        checked_limit, checked_after = _check_limit(limit), _check_sequence(after, "after")
        return self._run(
            principal,
            "outbox.read",
            target=("outbox", "pending"),
            mutation=False,
            body=lambda tx: self.store.pending_events(
                limit=checked_limit, after_sequence=checked_after
            ),
        )

    def dead_letters(
        self, principal: Principal, *, limit: int = 100, after: int = 0
    ) -> list[OutboxEvent]:
        """Dead-lettered outbox events in order (operator)."""
        principal = _check_principal(principal)
        checked_limit, checked_after = _check_limit(limit), _check_sequence(after, "after")
        return self._run(
            principal,
            "outbox.read",
            target=("outbox", "dead"),
            mutation=False,
            body=lambda tx: self.store.dead_letters(
                limit=checked_limit, after_sequence=checked_after
            ),
        )


def _redact_resolved(resolved: ResolvedAttribute) -> ResolvedAttribute:
    return replace(
        resolved,
        value=REDACTED,
        shadowed=tuple(replace(s, value=REDACTED) for s in resolved.shadowed),
    )
