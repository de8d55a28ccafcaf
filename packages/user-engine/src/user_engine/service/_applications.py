"""Applications, bindings and catalogs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from user_engine.domain import (
    Application,
    ApplicationBinding,
    AttributeDefinition,
    CatalogVersion,
    Principal,
    split_qualified_name,
)
from user_engine.domain.limits import (
    check_id,
    check_name,
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
    check_principal,
)


class ApplicationOperations(ServiceBase):
    """Applications, bindings and catalogs."""

    # ================================================================= applications ======
    def register_application(
        self, principal: Principal, application_id: str, *, name: str
    ) -> Application:
        """Register an application (operator). Its id is a lowercase slug."""
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
            self._require_active_member(tx, tenant_id, user_id)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
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
        principal = check_principal(principal)
        application_id = check_slug(application_id, "application_id")
        return self._run(
            principal,
            "catalog.read",
            target=("application", application_id),
            mutation=False,
            body=lambda tx: tx.list_catalog_versions(application_id),
        )
