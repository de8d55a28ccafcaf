"""Store clauses: every query the service uses returns the right rows in the documented order.

Lists that span the whole store (tenants, applications, current catalogs) may hold rows of
other tests when an adapter shares one database across tests, so those clauses check this
test's rows in order and the whole list's order, never its length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from user_engine.domain import Layer, ProfileValue
from user_engine.ports import UserEngineStore

from user_engine_conformance._samples import Sample, pairs
from user_engine_conformance.clauses import clause

__all__ = ["QueryClauses"]


def _assert_sorted(rows: Sequence[Any], key: Callable[[Any], Any], what: str) -> None:
    for first, second in pairs(rows):
        assert key(first) < key(second), f"{what} out of order: {key(first)} before {key(second)}"


class QueryClauses:
    """The reads the service performs."""

    @clause("store.query.list-tenants")
    def test_tenants_list_by_id(self, store: UserEngineStore) -> None:
        sample = Sample()
        tenants = sample.seed_tenants(store, "c", "a", "b")

        with sample.write(store) as tx:
            listed = tx.list_tenants()

        ours = [t for t in listed if t.id.startswith(f"t-{sample.token}-")]
        assert ours == sorted(tenants, key=lambda t: t.id)
        _assert_sorted(listed, lambda t: t.id, "tenants")

    @clause("store.query.accounts-of-user")
    def test_accounts_of_a_user_list_by_id_and_only_theirs(self, store: UserEngineStore) -> None:
        sample = Sample()
        user = sample.seed_user(store, "1")
        other = sample.seed_user(store, "2")
        accounts = [sample.account(user.id, label) for label in ("b", "c", "a")]
        with sample.write(store) as tx:
            for account in accounts:
                tx.insert_account(account)
            tx.insert_account(sample.account(other.id, "other"))

        with sample.write(store) as tx:
            assert tx.list_accounts(user.id) == sorted(accounts, key=lambda a: a.id)
            assert tx.list_accounts(sample.user_id("nobody")) == []

    @clause("store.query.tenant-accounts-of-tenant")
    def test_tenant_accounts_of_a_tenant_list_by_user(self, store: UserEngineStore) -> None:
        sample = Sample()
        tenant, other = sample.seed_tenants(store, "a", "b")
        users = [sample.seed_user(store, label, tenants=[tenant.id]) for label in ("2", "3", "1")]
        sample.seed_user(store, "4", tenants=[other.id])

        with sample.write(store) as tx:
            listed = tx.list_tenant_accounts_of_tenant(tenant.id)

        assert [(ta.tenant_id, ta.user_id) for ta in listed] == [
            (tenant.id, user.id) for user in sorted(users, key=lambda u: u.id)
        ]

    @clause("store.query.tenant-accounts-of-user")
    def test_tenant_accounts_of_a_user_list_by_tenant(self, store: UserEngineStore) -> None:
        sample = Sample()
        tenants = sample.seed_tenants(store, "c", "a", "b")
        user = sample.seed_user(store, "1", tenants=[t.id for t in tenants])
        sample.seed_user(store, "2", tenants=[tenants[0].id])

        with sample.write(store) as tx:
            listed = tx.list_tenant_accounts_of_user(user.id)

        assert [(ta.tenant_id, ta.user_id) for ta in listed] == [
            (tenant_id, user.id) for tenant_id in sorted(t.id for t in tenants)
        ]

    @clause("store.query.memberships")
    def test_memberships_list_by_user_and_group(self, store: UserEngineStore) -> None:
        sample = Sample()
        tenant, other = sample.seed_tenants(store, "a", "b")
        first = sample.seed_user(store, "1", tenants=[tenant.id, other.id])
        second = sample.seed_user(store, "2", tenants=[tenant.id])
        with sample.write(store) as tx:
            for user_id, group in [(second.id, "alpha"), (first.id, "beta"), (first.id, "alpha")]:
                tx.insert_membership(sample.membership(tenant.id, user_id, group))
            tx.insert_membership(sample.membership(other.id, first.id, "alpha"))

        with sample.write(store) as tx:
            everyone = tx.list_memberships(tenant.id)
            mine = tx.list_memberships(tenant.id, first.id)

        assert [(m.tenant_id, m.user_id, m.group) for m in everyone] == [
            (tenant.id, first.id, "alpha"),
            (tenant.id, first.id, "beta"),
            (tenant.id, second.id, "alpha"),
        ]
        assert [(m.user_id, m.group) for m in mine] == [(first.id, "alpha"), (first.id, "beta")]

    @clause("store.query.identities")
    def test_identities_are_found_by_subject_and_listed_per_user(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        user = sample.seed_user(store, "1")
        other = sample.seed_user(store, "2")
        links = [
            sample.identity(user.id, "s1", issuer=sample.issuer("b")),
            sample.identity(user.id, "s2", issuer=sample.issuer("a")),
            sample.identity(user.id, "s1", issuer=sample.issuer("a")),
        ]
        theirs = sample.identity(other.id, "s3", issuer=sample.issuer("a"))
        with sample.write(store) as tx:
            for link in [*links, theirs]:
                tx.insert_identity(link)

        with sample.write(store) as tx:
            assert tx.list_identities(user.id) == sorted(links, key=lambda i: (i.issuer, i.subject))
            assert tx.get_identity(theirs.issuer, theirs.subject) == theirs
            assert tx.get_identity(sample.issuer("a"), "s4") is None
            assert tx.get_identity(sample.issuer("c"), "s1") is None

    @clause("store.query.factors-of-user")
    def test_factors_of_a_user_list_by_id(self, store: UserEngineStore) -> None:
        sample = Sample()
        user = sample.seed_user(store, "1")
        other = sample.seed_user(store, "2")
        factors = [sample.factor(user.id, label) for label in ("b", "a", "c")]
        with sample.write(store) as tx:
            for factor in factors:
                tx.insert_factor(factor)
            tx.insert_factor(sample.factor(other.id, "other"))

        with sample.write(store) as tx:
            assert tx.list_factors(user.id) == sorted(factors, key=lambda f: f.id)

    @clause("store.query.list-applications")
    def test_applications_list_by_id(self, store: UserEngineStore) -> None:
        sample = Sample()
        applications = [sample.application(label) for label in ("b", "c", "a")]
        with sample.write(store) as tx:
            for application in applications:
                tx.insert_application(application)

        with sample.write(store) as tx:
            listed = tx.list_applications()

        ours = [a for a in listed if a.id.startswith(f"app-{sample.token}-")]
        assert ours == sorted(applications, key=lambda a: a.id)
        _assert_sorted(listed, lambda a: a.id, "applications")

    @clause("store.query.bindings-of-user")
    def test_bindings_of_a_user_list_by_application_and_tenant(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        tenant_a, tenant_b = sample.seed_tenants(store, "a", "b")
        user = sample.seed_user(store, "1", tenants=[tenant_a.id, tenant_b.id])
        other = sample.seed_user(store, "2", tenants=[tenant_a.id])
        app_a = sample.seed_application(store, "a")
        app_b = sample.seed_application(store, "b")
        bindings = [
            sample.binding(app_b.id, tenant_a.id, user.id),
            sample.binding(app_a.id, tenant_b.id, user.id),
            sample.binding(app_a.id, tenant_a.id, user.id),
        ]
        with sample.write(store) as tx:
            for binding in [*bindings, sample.binding(app_a.id, tenant_a.id, other.id)]:
                tx.put_binding(binding)

        with sample.write(store) as tx:
            assert tx.list_bindings_of_user(user.id) == sorted(
                bindings, key=lambda b: (b.application_id, b.tenant_id)
            )

    @clause("store.query.catalogs")
    def test_the_current_catalog_is_the_highest_published_version(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        application = sample.application("a")
        second_application = sample.application("b")
        versions = [sample.catalog(application.id, n) for n in (1, 3, 2)]
        with sample.write(store) as tx:
            tx.insert_application(application)
            tx.insert_application(second_application)
            for catalog in versions:
                tx.insert_catalog_version(catalog)
            tx.insert_catalog_version(sample.catalog(second_application.id, 1))

        with sample.write(store) as tx:
            assert tx.get_current_catalog(application.id) == versions[1]
            assert tx.list_catalog_versions(application.id) == sorted(
                versions, key=lambda c: c.version
            )
            assert tx.get_catalog_version(application.id, 9) is None
            assert tx.get_current_catalog(sample.application_id("none")) is None
            current = tx.list_current_catalogs()
        ours = [c for c in current if c.application_id.startswith(f"app-{sample.token}-")]
        assert [(c.application_id, c.version) for c in ours] == [
            (application.id, 3),
            (second_application.id, 1),
        ]
        _assert_sorted(current, lambda c: c.application_id, "current catalogs")

    @clause("store.query.profile-values-for")
    def test_profile_values_for_a_user_are_exactly_the_layers_that_can_resolve(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        tenant, other_tenant = sample.seed_tenants(store, "a", "b")
        user = sample.seed_user(store, "1", tenants=[tenant.id, other_tenant.id])
        other_user = sample.seed_user(store, "2", tenants=[tenant.id])
        application = sample.seed_application(store)
        app = application.id

        def value(layer: Layer, tenant_id: str | None, user_id: str | None) -> ProfileValue:
            key = sample.profile_key(app, layer=layer, tenant_id=tenant_id, user_id=user_id)
            return sample.profile_value(key, f"{layer.value}:{tenant_id}:{user_id}")

        mine = value(Layer.USER, None, user.id)
        theirs = value(Layer.USER, None, other_user.id)
        mine_in_tenant = value(Layer.USER_IN_TENANT, tenant.id, user.id)
        mine_elsewhere = value(Layer.USER_IN_TENANT, other_tenant.id, user.id)
        theirs_in_tenant = value(Layer.USER_IN_TENANT, tenant.id, other_user.id)
        tenant_default = value(Layer.TENANT_DEFAULT, tenant.id, None)
        other_default = value(Layer.TENANT_DEFAULT, other_tenant.id, None)
        app_default = value(Layer.APPLICATION_DEFAULT, None, None)
        every = [
            mine,
            theirs,
            mine_in_tenant,
            mine_elsewhere,
            theirs_in_tenant,
            tenant_default,
            other_default,
            app_default,
        ]
        with sample.write(store) as tx:
            for row in every:
                tx.put_profile_value(row, expected_version=None)

        with sample.write(store) as tx:
            in_tenant = tx.profile_values_for(user.id, tenant.id)
            no_tenant = tx.profile_values_for(user.id, None)

        def ours(rows: list[ProfileValue]) -> set[str]:
            return {str(row.value) for row in rows if row.key.application_id == app}

        assert ours(in_tenant) == {
            str(v.value) for v in (mine, mine_in_tenant, tenant_default, app_default)
        }
        assert ours(no_tenant) == {str(v.value) for v in (mine, app_default)}
        assert {r.key for r in in_tenant if r.key.application_id == app} >= {mine.key}
        assert all(row in every for row in in_tenant if row.key.application_id == app)
