"""Transactions, savepoints, scopes and uniqueness of the reference memory store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from user_engine.domain import (
    AccessScope,
    Account,
    AttributeDefinition,
    AttributeType,
    AuditFilter,
    AuditOutcome,
    AuditRecord,
    CatalogVersion,
    ExternalIdentity,
    Layer,
    Membership,
    OutboxEvent,
    ProfileKey,
    ProfileValue,
    Tenant,
    TenantAccount,
    TenantAccountStatus,
    TenantStatus,
    User,
    UserStatus,
)
from user_engine.errors import ConflictError, NotFoundError
from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine_store_memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALL = AccessScope.all_tenants()


def tenant(tenant_id: str) -> Tenant:
    return Tenant(tenant_id, tenant_id.title(), TenantStatus.ACTIVE, T0)


def user(user_id: str) -> User:
    return User(user_id, user_id, UserStatus.ACTIVE, T0, T0)


def audit(record_id: str, tenant_id: str | None = None) -> AuditRecord:
    return AuditRecord(
        record_id, T0, tenant_id, "ops", "platform-operator", "x", "t", "1", AuditOutcome.SUCCESS
    )


def event(event_id: str, aggregate: str = "u1") -> OutboxEvent:
    return OutboxEvent(event_id, "user.created", "user", aggregate, None, T0, {"n": 1})


def nickname(layer: Layer = Layer.USER, tenant_id: str | None = None) -> ProfileKey:
    user_id = "u1" if layer in (Layer.USER, Layer.USER_IN_TENANT) else None
    return ProfileKey(layer, "crm", "nickname", tenant_id, user_id)


class Boom(Exception):
    """An application failure inside a transaction."""


def test_a_new_store_is_behind_until_migrated_and_migrating_again_is_harmless() -> None:
    store = MemoryStore()
    assert store.readiness().problems == ("schema.behind",)

    assert store.migrate() == LATEST_SCHEMA_VERSION
    assert store.migrate() == LATEST_SCHEMA_VERSION
    assert store.readiness().ready
    store.close()
    store.close()
    assert store.readiness().problems == ("store.closed",)


def test_a_transaction_commits_everything_or_nothing(store: MemoryStore) -> None:
    with store.transaction(ALL) as tx:
        tx.insert_tenant(tenant("acme"))
        tx.append_audit(audit("a1"))
        tx.append_event(event("e1"))
    before = dict(store.record_counts())

    with pytest.raises(Boom), store.transaction(ALL) as tx:  # noqa: PT012 - the error leaves the whole transaction block
        tx.insert_tenant(tenant("globex"))
        tx.insert_user(user("u1"))
        tx.append_audit(audit("a2"))
        tx.append_event(event("e2"))
        raise Boom

    assert store.record_counts() == before
    with store.transaction(ALL) as tx:
        assert tx.get_tenant("globex") is None
        assert tx.get_user("u1") is None


def test_a_savepoint_rolls_back_only_its_own_writes(store: MemoryStore) -> None:
    with store.transaction(ALL) as tx:
        tx.insert_tenant(tenant("acme"))
        with pytest.raises(Boom), tx.savepoint():  # noqa: PT012 - the error leaves the whole transaction block
            tx.insert_tenant(tenant("globex"))
            tx.update_tenant(
                dataclasses.replace(tenant("acme"), name="Changed"), expected_version=1
            )
            tx.append_event(event("e1"))
            raise Boom
        tx.insert_tenant(tenant("hooli"))

    with store.transaction(ALL) as tx:
        assert [t.id for t in tx.list_tenants()] == ["acme", "hooli"]
        current = tx.get_tenant("acme")
        assert current is not None
        assert (current.name, current.version) == ("Acme", 1)
    assert store.pending_events(limit=10) == []


def test_an_autonomous_audit_record_survives_the_rollback_of_the_open_transaction(
    store: MemoryStore,
) -> None:
    with pytest.raises(Boom), store.transaction(ALL) as tx:  # noqa: PT012 - the error leaves the whole transaction block
        tx.append_audit(audit("rolled-back"))
        store.append_audit_autonomous(audit("denial"))
        raise Boom

    page = store.read_audit(AuditFilter(), ALL)
    assert [r.id for r in page.records] == ["denial"]
    assert page.records[0].sequence > 0


def test_a_scope_hides_other_tenants_and_refuses_writes_into_them(store: MemoryStore) -> None:
    with store.transaction(ALL) as tx:
        for tenant_id in ("acme", "globex"):
            tx.insert_tenant(tenant(tenant_id))
            tx.insert_tenant_account(
                TenantAccount(tenant_id, "u1", TenantAccountStatus.ACTIVE, frozenset(), T0, T0)
            )

    with store.transaction(AccessScope.for_tenant("acme")) as tx:
        assert [t.id for t in tx.list_tenants()] == ["acme"]
        assert tx.get_tenant("globex") is None
        assert [a.tenant_id for a in tx.list_tenant_accounts_of_user("u1")] == ["acme"]
        assert tx.list_tenant_accounts_of_tenant("globex") == []
        with pytest.raises(NotFoundError):
            tx.insert_membership(Membership("globex", "u1", "g", T0))
        with pytest.raises(NotFoundError):
            tx.put_profile_value(
                ProfileValue(nickname(Layer.TENANT_DEFAULT, "globex"), "x", 0, 1, "w", T0),
                expected_version=None,
            )
        assert not tx.delete_membership("globex", "u1", "g")
    with store.transaction(AccessScope()) as tx:
        assert tx.list_tenants() == [], "the platform scope sees no tenant rows"


def test_audit_reads_are_isolated_by_scope(store: MemoryStore) -> None:
    for record_id, tenant_id in (("a", "acme"), ("b", "globex"), ("c", None)):
        store.append_audit_autonomous(audit(record_id, tenant_id))

    acme = store.read_audit(AuditFilter(), AccessScope.for_tenant("acme")).records
    everything = store.read_audit(AuditFilter(), ALL).records

    assert [r.id for r in acme] == ["a"]
    assert [r.id for r in everything] == ["a", "b", "c"]


def test_conditional_updates_detect_stale_and_missing_rows(store: MemoryStore) -> None:
    with store.transaction(ALL) as tx:
        tx.insert_user(user("u1"))
        tx.update_user(dataclasses.replace(user("u1"), display_name="One"), expected_version=1)
        with pytest.raises(ConflictError) as stale:
            tx.update_user(user("u1"), expected_version=1)
        with pytest.raises(NotFoundError):
            tx.update_user(user("u2"), expected_version=1)
        current = tx.get_user("u1")

    assert stale.value.code == "stale"
    assert current is not None
    assert (current.display_name, current.version) == ("One", 2)


@pytest.mark.parametrize(
    ("write", "code"),
    [
        (lambda tx: tx.insert_tenant(tenant("acme")), "tenant.exists"),
        (lambda tx: tx.insert_user(user("u1")), "user.exists"),
        (
            lambda tx: tx.insert_identity(ExternalIdentity("iss", "sub", "u2", T0)),
            "identity.already_linked",
        ),
        (
            lambda tx: tx.insert_account(Account("acc2", "u1", "ADA@X", UserStatus.ACTIVE, T0)),
            "account.handle_taken",
        ),
        (
            lambda tx: tx.insert_account(Account("acc1", "u1", "other", UserStatus.ACTIVE, T0)),
            "account.exists",
        ),
        (lambda tx: tx.append_event(event("e1")), "event.exists"),
    ],
    ids=["tenant", "user", "identity", "handle", "account", "event"],
)
def test_unique_keys_are_enforced_at_write_time(
    store: MemoryStore, write: object, code: str
) -> None:
    with store.transaction(ALL) as tx:
        tx.insert_tenant(tenant("acme"))
        tx.insert_user(user("u1"))
        tx.insert_identity(ExternalIdentity("iss", "sub", "u1", T0))
        tx.insert_account(Account("acc1", "u1", "ada@x", UserStatus.ACTIVE, T0))
        tx.append_event(event("e1"))

    with store.transaction(ALL) as tx, pytest.raises(ConflictError) as conflict:
        write(tx)  # type: ignore[operator]

    assert conflict.value.code == code


def test_a_published_catalog_version_cannot_be_replaced(store: MemoryStore) -> None:
    bio = AttributeDefinition("bio", AttributeType.STRING)
    first = CatalogVersion("crm", 1, (bio,), T0, "application:crm")
    with store.transaction(ALL) as tx:
        tx.insert_catalog_version(first)
        tx.insert_catalog_version(dataclasses.replace(first, version=2, attributes=()))

    with store.transaction(ALL) as tx:
        with pytest.raises(ConflictError) as conflict:
            tx.insert_catalog_version(dataclasses.replace(first, attributes=()))
        assert tx.get_catalog_version("crm", 1) == first
        current = tx.get_current_catalog("crm")
        assert current is not None
        assert current.version == 2
        assert [c.version for c in tx.list_catalog_versions("crm")] == [1, 2]
    assert conflict.value.code == "catalog.version_exists"


def test_profile_values_carry_versions_and_honour_expected_versions(store: MemoryStore) -> None:
    key = nickname()
    row = ProfileValue(key, "a", 0, 1, "w", T0)
    with store.transaction(ALL) as tx:
        first = tx.put_profile_value(row, expected_version=0)
        second = tx.put_profile_value(dataclasses.replace(row, value="b"), expected_version=1)
        unconditional = tx.put_profile_value(row, expected_version=None)
        with pytest.raises(ConflictError) as stale:
            tx.put_profile_value(row, expected_version=2)
        with pytest.raises(ConflictError):
            tx.delete_profile_value(key, expected_version=0)
        removed = tx.delete_profile_value(key, expected_version=3)
        assert tx.delete_profile_value(key, expected_version=None) is None

    assert [first.version, second.version, unconditional.version] == [1, 2, 3]
    assert stale.value.code == "profile.stale"
    assert removed is not None
    assert removed.value == "a"


def test_profile_values_for_a_user_include_only_the_layers_that_can_apply(
    store: MemoryStore,
) -> None:
    rows = [
        nickname(Layer.USER),
        nickname(Layer.USER_IN_TENANT, "acme"),
        nickname(Layer.USER_IN_TENANT, "globex"),
        nickname(Layer.TENANT_DEFAULT, "acme"),
        nickname(Layer.APPLICATION_DEFAULT),
        ProfileKey(Layer.USER, "crm", "nickname", None, "u2"),
    ]
    with store.transaction(ALL) as tx:
        for key in rows:
            tx.put_profile_value(ProfileValue(key, "v", 0, 1, "w", T0), expected_version=None)

    with store.transaction(ALL) as tx:
        in_acme = {(v.key.layer, v.key.tenant_id) for v in tx.profile_values_for("u1", "acme")}
        platform = {(v.key.layer, v.key.tenant_id) for v in tx.profile_values_for("u1", None)}

    assert in_acme == {
        (Layer.USER, None),
        (Layer.USER_IN_TENANT, "acme"),
        (Layer.TENANT_DEFAULT, "acme"),
        (Layer.APPLICATION_DEFAULT, None),
    }
    assert platform == {(Layer.USER, None), (Layer.APPLICATION_DEFAULT, None)}


def test_record_counts_are_counts_per_record_kind(store: MemoryStore) -> None:
    with store.transaction(ALL) as tx:
        tx.insert_tenant(tenant("acme"))
        tx.insert_user(user("u1"))
        tx.append_event(event("e1"))

    counts = store.record_counts()

    assert counts["tenants"] == 1
    assert counts["users"] == 1
    assert counts["outbox_events"] == 1
    assert set(counts) == {
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
    }
    assert all(type(v) is int for v in counts.values())
