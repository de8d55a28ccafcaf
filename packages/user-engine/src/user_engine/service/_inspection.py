"""Health, readiness, diagnostics, ``me``, and audit and outbox inspection."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from user_engine.domain import (
    AccessScope,
    AuditFilter,
    AuditOutcome,
    AuditPage,
    OutboxEvent,
    Principal,
    PrincipalKind,
)
from user_engine.domain.limits import (
    check_id,
    check_slug,
    check_text,
)
from user_engine.errors import (
    ValidationError,
)
from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine.ports import (
    Readiness,
    StoreTransaction,
)
from user_engine.service._base import ServiceBase
from user_engine.service._inputs import (
    check_limit,
    check_principal,
    check_sequence,
    check_time,
)
from user_engine.service._views import Diagnostics, MeView

logger = logging.getLogger("user_engine.service")


class InspectionOperations(ServiceBase):
    """Health, readiness, diagnostics, ``me``, and audit and outbox inspection."""

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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
            since=check_time(since, "since"),
            until=check_time(until, "until"),
            after_sequence=check_sequence(after, "after"),
            limit=check_limit(limit),
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
        principal = check_principal(principal)
        checked_limit, checked_after = check_limit(limit), check_sequence(after, "after")
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
        principal = check_principal(principal)
        checked_limit, checked_after = check_limit(limit), check_sequence(after, "after")
        return self._run(
            principal,
            "outbox.read",
            target=("outbox", "dead"),
            mutation=False,
            body=lambda tx: self.store.dead_letters(
                limit=checked_limit, after_sequence=checked_after
            ),
        )
