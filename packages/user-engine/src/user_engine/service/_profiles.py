"""Profile values, the effective profile, projections and secret checks."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, Final

from user_engine.domain import (
    AccessScope,
    AttributeDefinition,
    CatalogVersion,
    EffectiveProfile,
    Layer,
    Principal,
    PrincipalKind,
    ProfileKey,
    ProfileValue,
    ResolvedAttribute,
    Sensitivity,
    WriterRole,
    resolve_profile,
    split_qualified_name,
)
from user_engine.domain.limits import (
    check_id,
    check_slug,
)
from user_engine.errors import (
    NotFoundError,
    ValidationError,
)
from user_engine.ports import (
    StoreTransaction,
)
from user_engine.service._base import ServiceBase
from user_engine.service._inputs import (
    check_expected_version,
    check_layer,
    check_principal,
    redact_value,
)

_WRITER_ROLE: Final = {
    PrincipalKind.USER: WriterRole.SELF,
    PrincipalKind.APPLICATION: WriterRole.APPLICATION,
    PrincipalKind.TENANT_ADMIN: WriterRole.TENANT_ADMIN,
    PrincipalKind.PLATFORM_OPERATOR: WriterRole.PLATFORM_OPERATOR,
}


class ProfileOperations(ServiceBase):
    """Profile values, the effective profile, projections and secret checks."""

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
        checked_layer = check_layer(layer)
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
        principal = check_principal(principal)
        key = self._profile_key(principal, attribute, layer, user_id, tenant_id)
        expected = check_expected_version(expected_version)
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
            return redact_value(stored, definition)

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
        principal = check_principal(principal)
        key = self._profile_key(principal, attribute, layer, user_id, tenant_id)
        expected = check_expected_version(expected_version)

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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
            # Asked for first, read after the values: a store may send both in one trip.
            current = tx.list_current_catalogs()
            values = tx.profile_values_for(user_id, tenant_id)
            catalogs = {c.application_id: c for c in current}
            profile = resolve_profile(
                user_id=user_id, tenant_id=tenant_id, catalogs=catalogs.values(), values=values
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
        principal = check_principal(principal)
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
