"""Store clauses: tenant isolation of every read and write, platform rows visible everywhere.

Each tenant-scoped read is its own parametrized case of ``store.tenant.isolation``, so a
store that leaks one query fails with that query's name next to the clause id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from user_engine.domain import AccessScope, Layer, TenantAccountStatus, TenantStatus
from user_engine.errors import NotFoundError
from user_engine.ports import StoreTransaction, UserEngineStore

from user_engine_conformance._samples import PLATFORM, Sample
from user_engine_conformance.clauses import clause

__all__ = ["IsolationClauses"]


@dataclass(frozen=True, slots=True)
class _World:
    """Two tenants with the same kinds of rows, and platform rows shared by both."""

    sample: Sample
    tenant_a: str
    tenant_b: str
    user: str
    newcomer: str
    application: str


def _seed(store: UserEngineStore) -> _World:
    sample = Sample()
    tenant_a, tenant_b = sample.seed_tenants(store, "a", "b")
    user = sample.seed_user(store, "1", tenants=[tenant_a.id, tenant_b.id])
    newcomer = sample.seed_user(store, "2")
    application = sample.seed_application(store)
    with sample.write(store) as tx:
        for tenant in (tenant_a, tenant_b):
            tx.insert_membership(sample.membership(tenant.id, user.id, "staff"))
            tx.put_binding(sample.binding(application.id, tenant.id, user.id))
            for layer, user_id in ((Layer.USER_IN_TENANT, user.id), (Layer.TENANT_DEFAULT, None)):
                key = sample.profile_key(
                    application.id, layer=layer, tenant_id=tenant.id, user_id=user_id
                )
                tx.put_profile_value(sample.profile_value(key, tenant.id), expected_version=None)
        tx.put_profile_value(
            sample.profile_value(sample.profile_key(application.id, user_id=user.id), "user"),
            expected_version=None,
        )
    return _World(sample, tenant_a.id, tenant_b.id, user.id, newcomer.id, application.id)


def _key(world: _World, layer: Layer, tenant_id: str) -> Any:
    user_id = world.user if layer is Layer.USER_IN_TENANT else None
    return world.sample.profile_key(
        world.application, layer=layer, tenant_id=tenant_id, user_id=user_id
    )


def _rows(found: Any) -> list[Any]:
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


# Each read returns the rows of tenant ``t`` that the query hands out in the current scope.
_Read = Callable[[StoreTransaction, _World, str], Any]
_READS: dict[str, _Read] = {
    "get_tenant": lambda tx, w, t: tx.get_tenant(t),
    "list_tenants": lambda tx, w, t: [x for x in tx.list_tenants() if x.id == t],
    "get_tenant_account": lambda tx, w, t: tx.get_tenant_account(t, w.user),
    "list_tenant_accounts_of_tenant": lambda tx, w, t: tx.list_tenant_accounts_of_tenant(t),
    "list_tenant_accounts_of_user": lambda tx, w, t: [
        x for x in tx.list_tenant_accounts_of_user(w.user) if x.tenant_id == t
    ],
    "list_memberships": lambda tx, w, t: tx.list_memberships(t),
    "list_memberships_of_user": lambda tx, w, t: tx.list_memberships(t, w.user),
    "get_binding": lambda tx, w, t: tx.get_binding(w.application, t, w.user),
    "list_bindings_of_user": lambda tx, w, t: [
        x for x in tx.list_bindings_of_user(w.user) if x.tenant_id == t
    ],
    "get_profile_value_user_in_tenant": lambda tx, w, t: tx.get_profile_value(
        _key(w, Layer.USER_IN_TENANT, t)
    ),
    "get_profile_value_tenant_default": lambda tx, w, t: tx.get_profile_value(
        _key(w, Layer.TENANT_DEFAULT, t)
    ),
    "profile_values_for": lambda tx, w, t: [
        x for x in tx.profile_values_for(w.user, t) if x.key.tenant_id == t
    ],
}


def _outside_writes(world: _World) -> dict[str, Callable[[StoreTransaction], object]]:
    """Writes, made in tenant A's scope, of rows that belong to tenant B (or to no visible
    tenant)."""
    s, b = world.sample, world.tenant_b
    tenant_b = s.tenant("b")
    tenant_account = s.tenant_account(b, world.user)
    return {
        "insert_tenant": lambda tx: tx.insert_tenant(s.tenant("c")),
        "update_tenant": lambda tx: tx.update_tenant(
            dataclasses.replace(tenant_b, status=TenantStatus.SUSPENDED), expected_version=1
        ),
        "insert_tenant_account": lambda tx: tx.insert_tenant_account(
            s.tenant_account(b, world.newcomer)
        ),
        "update_tenant_account": lambda tx: tx.update_tenant_account(
            dataclasses.replace(tenant_account, status=TenantAccountStatus.REMOVED),
            expected_version=1,
        ),
        "insert_membership": lambda tx: tx.insert_membership(
            s.membership(b, world.user, "intruders")
        ),
        "delete_membership": lambda tx: tx.delete_membership(b, world.user, "staff"),
        "put_binding": lambda tx: tx.put_binding(s.binding(world.application, b, world.newcomer)),
        "delete_binding": lambda tx: tx.delete_binding(world.application, b, world.user),
        "put_profile_value_user_in_tenant": lambda tx: tx.put_profile_value(
            s.profile_value(_key(world, Layer.USER_IN_TENANT, b), "intruder"),
            expected_version=None,
        ),
        "put_profile_value_tenant_default": lambda tx: tx.put_profile_value(
            s.profile_value(_key(world, Layer.TENANT_DEFAULT, b), "intruder"),
            expected_version=None,
        ),
        "delete_profile_value": lambda tx: tx.delete_profile_value(
            _key(world, Layer.USER_IN_TENANT, b), expected_version=None
        ),
    }


_DELETES_REPORTING_FALSE = {"delete_membership", "delete_binding"}


def _snapshot_of_b(store: UserEngineStore, world: _World) -> list[object]:
    with store.transaction(PLATFORM) as tx:
        return [
            tx.get_tenant(world.sample.tenant_id("c")),
            *(read(tx, world, world.tenant_b) for read in _READS.values()),
            tx.list_tenant_accounts_of_user(world.newcomer),
            tx.list_bindings_of_user(world.newcomer),
        ]


class IsolationClauses:
    """Tenant isolation."""

    @clause("store.tenant.isolation")
    @pytest.mark.parametrize("read", sorted(_READS))
    def test_a_tenant_scoped_read_returns_only_rows_the_scope_allows(
        self, store: UserEngineStore, read: str
    ) -> None:
        world = _seed(store)
        query = _READS[read]
        with store.transaction(PLATFORM) as tx:
            rows_of_a = _rows(query(tx, world, world.tenant_a))
            rows_of_b = _rows(query(tx, world, world.tenant_b))
        assert rows_of_a, "the platform scope sees tenant A's rows"
        assert rows_of_b, "the platform scope sees tenant B's rows"

        with store.transaction(AccessScope.for_tenant(world.tenant_a)) as tx:
            assert _rows(query(tx, world, world.tenant_a)) == rows_of_a
            leaked = _rows(query(tx, world, world.tenant_b))
        assert leaked == [], f"{read} in tenant A's scope returned tenant B's rows: {leaked}"

        with store.transaction(AccessScope()) as tx:
            assert _rows(query(tx, world, world.tenant_a)) == []
            assert _rows(query(tx, world, world.tenant_b)) == [], (
                f"{read} in a scope without tenant returned a tenant's rows"
            )

    @clause("store.tenant.isolation")
    @pytest.mark.parametrize(
        "write",
        sorted(_outside_writes(_World(Sample(), "t-x-a", "t-x-b", "u", "v", "app-x")).keys()),
    )
    def test_a_write_outside_the_scope_is_not_found_and_changes_nothing(
        self, store: UserEngineStore, write: str
    ) -> None:
        world = _seed(store)
        before = _snapshot_of_b(store, world)
        attempt = _outside_writes(world)[write]

        if write in _DELETES_REPORTING_FALSE:
            with store.transaction(AccessScope.for_tenant(world.tenant_a)) as tx:
                assert attempt(tx) is False, f"{write} outside the scope reports no row deleted"
        else:
            with (
                pytest.raises(NotFoundError),
                store.transaction(AccessScope.for_tenant(world.tenant_a)) as tx,
            ):
                attempt(tx)

        assert _snapshot_of_b(store, world) == before, f"{write} outside the scope changed rows"

    @clause("store.tenant.platform-rows")
    @pytest.mark.parametrize("scope", ["tenant", "no-tenant"])
    def test_platform_rows_are_visible_in_every_scope(
        self, store: UserEngineStore, scope: str
    ) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store)
        application = sample.seed_application(store)
        account = sample.account(user.id, "1")
        identity = sample.identity(user.id, "s1")
        factor = sample.factor(user.id, "1")
        with sample.write(store) as tx:
            tx.insert_account(account)
            tx.insert_identity(identity)
            tx.insert_factor(factor)
        with sample.write(store) as tx:
            catalog = tx.get_current_catalog(application.id)

        access = AccessScope.for_tenant(tenant.id) if scope == "tenant" else AccessScope()
        with store.transaction(access) as tx:
            assert tx.get_user(user.id) is not None
            assert tx.get_account(account.id) == account
            assert tx.list_accounts(user.id) == [account]
            assert tx.get_identity(identity.issuer, identity.subject) == identity
            assert tx.list_identities(user.id) == [identity]
            assert tx.get_factor(factor.id) == factor
            assert tx.list_factors(user.id) == [factor]
            assert tx.get_application(application.id) == application
            assert application in tx.list_applications()
            assert tx.get_current_catalog(application.id) == catalog
            assert tx.get_catalog_version(application.id, 1) == catalog
            assert catalog in tx.list_current_catalogs()
