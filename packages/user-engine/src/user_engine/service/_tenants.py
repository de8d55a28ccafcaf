"""Tenants, tenant accounts and memberships."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from user_engine.domain import (
    Membership,
    Principal,
    Tenant,
    TenantAccount,
    TenantAccountStatus,
    TenantStatus,
)
from user_engine.domain.limits import (
    check_id,
    check_name,
    check_slug,
)
from user_engine.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from user_engine.ports import (
    StoreTransaction,
)
from user_engine.service._base import ServiceBase
from user_engine.service._inputs import (
    check_principal,
    check_roles,
)

_TENANT_ACCOUNT_LIFECYCLE: Final = {
    "suspend": ({TenantAccountStatus.ACTIVE}, TenantAccountStatus.SUSPENDED),
    "reactivate": ({TenantAccountStatus.SUSPENDED}, TenantAccountStatus.ACTIVE),
    "remove": (
        {TenantAccountStatus.ACTIVE, TenantAccountStatus.SUSPENDED},
        TenantAccountStatus.REMOVED,
    ),
}


class TenantOperations(ServiceBase):
    """Tenants, tenant accounts and memberships."""

    # ======================================================================= tenants ======
    def create_tenant(self, principal: Principal, tenant_id: str, *, name: str) -> Tenant:
        """Create a tenant (platform operator). Its id is a lowercase slug."""
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        return self._run(
            principal,
            "tenant.read",
            target=("tenant", tenant_id),
            tenant_id=tenant_id,
            mutation=False,
            body=lambda tx: self._require_tenant(tx, tenant_id, active=False),
        )

    # ============================================================== tenant accounts ======
    def add_to_tenant(
        self, principal: Principal, tenant_id: str, user_id: str, *, roles: Iterable[str] = ()
    ) -> TenantAccount:
        """Give a user an account in a tenant (its admin or the operator)."""
        principal = check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        checked_roles = check_roles(roles)

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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        checked_roles = check_roles(roles)

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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
        tenant_id = check_slug(tenant_id, "tenant_id")
        user_id = check_id(user_id, "user_id")
        group = check_name(group, "group")

        def body(tx: StoreTransaction) -> Membership:
            self._require_tenant(tx, tenant_id, active=True)
            self._require_active_member(tx, tenant_id, user_id)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
