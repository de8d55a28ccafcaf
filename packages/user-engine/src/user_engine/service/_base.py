"""The service's plumbing: transactions, authorization, audit, events, shared lookups."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from user_engine.authorization import DefaultAuthorizationPolicy
from user_engine.domain import (
    AccessScope,
    Application,
    AuditOutcome,
    AuditRecord,
    EffectiveProfile,
    OutboxEvent,
    Principal,
    PrincipalKind,
    Sensitivity,
    Tenant,
    TenantAccountStatus,
    TenantStatus,
    User,
    UserStatus,
    resolve_profile,
)
from user_engine.domain.limits import (
    MAX_DETAIL_LENGTH,
    check_id,
)
from user_engine.errors import (
    AuthorizationDenied,
    ConflictError,
    NotFoundError,
    UserEngineError,
)
from user_engine.ports import (
    AuditSink,
    AuthorizationPolicy,
    AuthorizationTarget,
    Clock,
    IdentityVerifier,
    IdGenerator,
    MembershipExporter,
    SecretStore,
    StoreTransaction,
    Telemetry,
    UserEngineStore,
)
from user_engine.service._inputs import (
    redact_resolved,
)
from user_engine.telemetry import NoTelemetry
from user_engine.testing.fakes import TrustingIdentityVerifier

T = TypeVar("T")
logger = logging.getLogger("user_engine.service")


def _sequenced(records: Sequence[AuditRecord], tx: StoreTransaction) -> list[AuditRecord]:
    """The committed ``records`` with the sequences the store gave them."""
    if not records:
        return []
    sequences = tx.audit_sequences()
    return [replace(r, sequence=sequences.get(r.id, r.sequence)) for r in records]


@dataclass(slots=True)
class _Frame:
    """An open ``transaction()`` of this service in the current context."""

    tx: StoreTransaction
    exports: list[AuditRecord] = field(default_factory=list)


class ServiceBase:
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
        self._export(_sequenced(frame.exports, tx))

    @contextmanager
    def _unit(self, scope: AccessScope) -> Iterator[tuple[StoreTransaction, list[AuditRecord]]]:
        """One operation's transaction: a savepoint inside ``transaction()``, else top level."""
        pending: list[AuditRecord] = []
        frame = self._frame.get()
        if frame is None:
            with self.store.transaction(scope) as tx:
                yield tx, pending
            self._export(_sequenced(pending, tx))
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
                        tx.append_audit(record)
                        pending.append(record)
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

    def _require_active_member(self, tx: StoreTransaction, tenant_id: str, user_id: str) -> None:
        if self._member_fact(tx, tenant_id, user_id) != "yes":
            raise ConflictError(
                "the user needs an active account in this tenant first",
                code="tenant_account.inactive",
            )

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
                name: redact_resolved(resolved) if name in secret else resolved
                for name, resolved in profile.attributes.items()
            },
        )
