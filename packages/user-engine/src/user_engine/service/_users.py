"""Users, accounts, external identities and factors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Final

from user_engine.domain import (
    AccessScope,
    Account,
    ExternalIdentity,
    Factor,
    Principal,
    PrincipalKind,
    TenantAccount,
    TenantAccountStatus,
    User,
    UserStatus,
)
from user_engine.domain.limits import (
    MAX_SECRET_BYTES,
    MAX_SUBJECT_LENGTH,
    check_id,
    check_name,
    check_slug,
    check_text,
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

_LIFECYCLE: Final = {
    # action: (statuses it may start from, status it leads to)
    "suspend": ({UserStatus.ACTIVE}, UserStatus.SUSPENDED),
    "reactivate": ({UserStatus.SUSPENDED}, UserStatus.ACTIVE),
    "close": ({UserStatus.ACTIVE, UserStatus.SUSPENDED}, UserStatus.CLOSED),
}


class UserOperations(ServiceBase):
    """Users, accounts, external identities and factors."""

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
        principal = check_principal(principal)
        display_name = check_name(display_name, "display_name")
        if tenant_id is not None:
            tenant_id = check_slug(tenant_id, "tenant_id")
        checked_roles = check_roles(roles)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
