"""The shared profile layers (migration 0003) and the store's copies of them: every change
draws a new generation and rebuilds the layer, a copy is used only while its generation is
current, copies never cross scopes, and any mix of changes through several stores resolves
as a read with no copies does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from user_engine.domain import AccessScope, Layer, ProfileKey
from user_engine_store_postgres.hooks import create_store
from user_engine_store_postgres.store import PostgresStore

PLATFORM = AccessScope.all_tenants()


def resolve(store: PostgresStore, user_id: str, tenant_id: str | None) -> Any:
    """What a profile resolution reads: the current catalogs and every value, comparable."""
    with store.transaction(PLATFORM) as tx:
        catalogs = tx.list_current_catalogs()  # travels with the next read, as in the service
        values = tx.profile_values_for(user_id, tenant_id)
    return list(catalogs), [(v.key, v.value, v.version, v.written_by, v.written_at) for v in values]


def without_copies(store: PostgresStore, user_id: str, tenant_id: str | None) -> Any:
    """The same read by a store that holds no copy."""
    store.shared_layers.clear()
    return resolve(store, user_id, tenant_id)


def layer(admin: psycopg.Connection[Any], key: str) -> tuple[int, Any] | None:
    """(generation, content) of a layer's row, or None."""
    row = admin.execute(
        "SELECT generation, content FROM user_engine.profile_layers WHERE key = %s", [key]
    ).fetchone()
    return None if row is None else (row[0], row[1])


def rebuilt(admin: psycopg.Connection[Any], key: str, tenant_id: str | None) -> Any:
    """A layer's content as it reads now."""
    row = admin.execute(
        "SELECT user_engine.profile_layer_content(%s, %s)", [key, tenant_id]
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def world(store: PostgresStore, records: Any) -> Any:
    """An application with a catalog, a tenant and a user in it: (app, tenant, user)."""
    app, tenant, user = records.application(), records.tenant(), records.user()
    with store.transaction(PLATFORM) as tx:
        tx.insert_application(app)
        tx.insert_catalog_version(records.catalog(app))
        tx.insert_tenant(tenant)
        tx.insert_user(user)
    return app, tenant, user


def test_every_change_of_a_shared_layer_draws_a_new_generation_and_rebuilds_it(
    store: PostgresStore, records: Any, world: Any, admin_connection: Any
) -> None:
    app, tenant, user = world
    tenant_key = f"tenant:{tenant.id}"
    default = records.value(app, "t1", layer=Layer.TENANT_DEFAULT, tenant=tenant)
    app_default = records.value(app, "a1", layer=Layer.APPLICATION_DEFAULT)
    changes: list[tuple[str, str | None, Callable[[Any], Any]]] = [
        (tenant_key, tenant.id, lambda tx: tx.put_profile_value(default, expected_version=None)),
        (tenant_key, tenant.id, lambda tx: tx.put_profile_value(
            replace(default, value="t2"), expected_version=None)),
        (tenant_key, tenant.id, lambda tx: tx.delete_profile_value(
            default.key, expected_version=None)),
        ("application", None, lambda tx: tx.put_profile_value(
            app_default, expected_version=None)),
        ("application", None, lambda tx: tx.put_profile_value(
            replace(app_default, value="a2"), expected_version=None)),
        ("application", None, lambda tx: tx.delete_profile_value(
            app_default.key, expected_version=None)),
        ("catalogs", None, lambda tx: tx.insert_catalog_version(records.catalog(app, 2))),
    ]  # fmt: skip
    keys = ("catalogs", "application", tenant_key)
    for key, tenant_id, change in changes:
        before = {k: layer(admin_connection, k) for k in keys}
        with store.transaction(PLATFORM) as tx:
            change(tx)
        after = {k: layer(admin_connection, k) for k in keys}
        changed = after.pop(key)
        assert changed is not None
        previous = before.pop(key)
        assert previous is None or changed[0] > previous[0], key
        assert changed[1] == rebuilt(admin_connection, key, tenant_id), key
        assert after == before, f"{key}: no other layer changes"
    # A user's own values are no shared layer: writing them changes none.
    before = {k: layer(admin_connection, k) for k in keys}
    with store.transaction(PLATFORM) as tx:
        tx.put_profile_value(records.value(app, "u", user=user), expected_version=None)
        tx.put_profile_value(
            records.value(app, "ut", layer=Layer.USER_IN_TENANT, user=user, tenant=tenant),
            expected_version=None,
        )
    assert {k: layer(admin_connection, k) for k in keys} == before


def test_a_rolled_back_change_leaves_the_layer_and_its_generation_is_never_seen_again(
    store: PostgresStore, records: Any, world: Any, admin_connection: Any,
    runtime_connection: Any,
) -> None:  # fmt: skip
    app, tenant, _ = world
    key = f"tenant:{tenant.id}"
    with store.transaction(PLATFORM) as tx:
        tx.put_profile_value(
            records.value(app, "kept", layer=Layer.TENANT_DEFAULT, tenant=tenant),
            expected_version=None,
        )
    before = layer(admin_connection, key)
    conn = runtime_connection
    with conn.transaction(force_rollback=True):
        conn.execute("SELECT set_config('user_engine.scope', 'platform', true)")
        conn.execute(
            "UPDATE user_engine.profile_values SET value = '\"gone\"' WHERE tenant_id = %s",
            [tenant.id],
        )
        inside = layer(conn, key)
    assert inside is not None
    assert before is not None
    assert inside[0] != before[0]
    assert layer(admin_connection, key) == before
    with store.transaction(PLATFORM) as tx:
        tx.put_profile_value(
            records.value(app, "next", layer=Layer.TENANT_DEFAULT, tenant=tenant),
            expected_version=None,
        )
    after = layer(admin_connection, key)
    assert after is not None
    assert after[0] not in (before[0], inside[0])


def test_a_copy_is_used_while_current_and_every_change_by_another_store_is_seen(
    postgres_settings: Any, records: Any, world: Any
) -> None:
    app, tenant, user = world
    first, second, reference = (create_store(postgres_settings) for _ in range(3))
    tenant_default = records.value(app, "t", layer=Layer.TENANT_DEFAULT, tenant=tenant)
    app_default = records.value(app, "a", layer=Layer.APPLICATION_DEFAULT)
    try:
        with second.transaction(PLATFORM) as tx:
            tx.put_profile_value(records.value(app, "u", user=user), expected_version=None)
            tx.put_profile_value(tenant_default, expected_version=None)
            tx.put_profile_value(app_default, expected_version=None)
        read = resolve(first, user.id, tenant.id)
        assert read == without_copies(reference, user.id, tenant.id)
        copies = first.shared_layers.offer(tenant.id, with_catalogs=True)
        assert all(copy is not None for copy in copies)
        assert resolve(first, user.id, tenant.id) == read
        again = first.shared_layers.offer(tenant.id, with_catalogs=True)
        assert all(a is b for a, b in zip(again, copies, strict=True)), "nothing re-read"

        changes: list[Callable[[Any], Any]] = [
            lambda tx: tx.put_profile_value(replace(tenant_default, value="t2"),
                                            expected_version=None),
            lambda tx: tx.put_profile_value(replace(app_default, value="a2"),
                                            expected_version=None),
            lambda tx: tx.insert_catalog_version(records.catalog(app, 2, default="y")),
            lambda tx: tx.delete_profile_value(tenant_default.key, expected_version=None),
            lambda tx: tx.delete_profile_value(app_default.key, expected_version=None),
            lambda tx: tx.put_profile_value(tenant_default, expected_version=None),
        ]  # fmt: skip
        for change in changes:
            with second.transaction(PLATFORM) as tx:
                change(tx)
            assert resolve(first, user.id, tenant.id) == without_copies(
                reference, user.id, tenant.id
            )
    finally:
        for store in (first, second, reference):
            store.close()


def test_a_transaction_that_wrote_reads_its_own_shared_changes_and_keeps_no_copy_of_them(
    store: PostgresStore, records: Any, world: Any
) -> None:
    app, tenant, user = world
    resolve(store, user.id, tenant.id)  # copies of the layers as committed
    default = records.value(app, "uncommitted", layer=Layer.TENANT_DEFAULT, tenant=tenant)
    with pytest.raises(RuntimeError), store.transaction(PLATFORM) as tx:  # noqa: PT012
        tx.put_profile_value(default, expected_version=None)
        assert "uncommitted" in [v.value for v in tx.profile_values_for(user.id, tenant.id)]
        raise RuntimeError("roll back")
    assert "uncommitted" not in [v[1] for v in resolve(store, user.id, tenant.id)[1]]


def test_copies_never_cross_scopes(store: PostgresStore, records: Any, world: Any) -> None:
    app, tenant, user = world
    other = records.tenant()
    with store.transaction(PLATFORM) as tx:
        tx.insert_tenant(other)
        tx.put_profile_value(
            records.value(app, "secret-default", layer=Layer.TENANT_DEFAULT, tenant=other),
            expected_version=None,
        )
    with store.transaction(PLATFORM) as tx:  # the platform may read it: a copy is kept
        assert [v.value for v in tx.profile_values_for(user.id, other.id)] == ["secret-default"]
    assert store.shared_layers.offer(other.id, with_catalogs=False).tenant is not None
    with store.transaction(AccessScope.for_tenant(tenant.id)) as tx:
        assert tx.profile_values_for(user.id, other.id) == []
    with store.transaction(AccessScope.for_tenant(other.id)) as tx:
        assert [v.value for v in tx.profile_values_for(user.id, other.id)] == ["secret-default"]


def test_concurrent_writers_of_one_layer_both_end_up_in_it(
    postgres_database: Any, records: Any, world: Any, admin_connection: Any
) -> None:
    app, tenant, _ = world
    second_app = records.application()
    with psycopg.connect(postgres_database.admin_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO user_engine.applications VALUES (%s, 'App', now())", [second_app.id]
        )
    insert = (
        "INSERT INTO user_engine.profile_values VALUES ('tenant-default', %s, 'nick', %s, "
        "NULL, %s, 1, 1, 'op', now())"
    )
    scope = "SELECT set_config('user_engine.scope', 'platform', true)"
    first = psycopg.connect(postgres_database.runtime_dsn)
    second = psycopg.connect(postgres_database.runtime_dsn)
    try:
        first.execute(scope)
        first.execute(insert, [app.id, tenant.id, '"first"'])  # holds the layer's row lock

        def write_second() -> None:
            second.execute(scope)
            second.execute(insert, [second_app.id, tenant.id, '"second"'])
            second.commit()

        thread = threading.Thread(target=write_second)
        thread.start()
        while not admin_connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()[0]:
            admin_connection.execute("SELECT pg_sleep(0.01)")
        first.commit()
        thread.join()
    finally:
        first.close()
        second.close()
    found = layer(admin_connection, f"tenant:{tenant.id}")
    assert found is not None
    assert sorted(item[4] for item in found[1]) == ["first", "second"]


def test_truncating_the_values_empties_their_layers(
    store: PostgresStore, records: Any, world: Any, postgres_database: Any
) -> None:
    app, tenant, user = world
    with store.transaction(PLATFORM) as tx:
        tx.put_profile_value(
            records.value(app, "t", layer=Layer.TENANT_DEFAULT, tenant=tenant),
            expected_version=None,
        )
        tx.put_profile_value(
            records.value(app, "a", layer=Layer.APPLICATION_DEFAULT), expected_version=None
        )
    assert len(resolve(store, user.id, tenant.id)[1]) == 2
    with psycopg.connect(postgres_database.owner_dsn, autocommit=True) as owner:
        owner.execute("TRUNCATE user_engine.profile_values")
    assert resolve(store, user.id, tenant.id)[1] == []


_KEYS = st.sampled_from(["t1", "t2", "app"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["put", "delete", "publish", "read"]),
            st.integers(0, 2),  # which store
            _KEYS,  # which layer (t1, t2: tenant defaults; app: application defaults)
            st.sampled_from(["nick", "other"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_mix_of_changes_through_several_stores_reads_as_without_copies(
    postgres_settings: Any, records: Any, steps: list[tuple[str, int, str, str]]
) -> None:
    stores = [create_store(postgres_settings) for _ in range(4)]
    reference = stores.pop()
    app, user = records.application(), records.user()
    tenants = {"t1": records.tenant(), "t2": records.tenant()}
    version = 1
    try:
        with reference.transaction(PLATFORM) as tx:
            tx.insert_application(app)
            tx.insert_catalog_version(records.catalog(app))
            tx.insert_user(user)
            for tenant in tenants.values():
                tx.insert_tenant(tenant)
        for action, which, layer_name, attribute in steps:
            store = stores[which]
            tenant = tenants.get(layer_name)
            kind = Layer.APPLICATION_DEFAULT if tenant is None else Layer.TENANT_DEFAULT
            key = ProfileKey(kind, app.id, attribute, None if tenant is None else tenant.id, None)
            with store.transaction(PLATFORM) as tx:
                if action == "put":
                    value = records.value(app, f"{action}-{layer_name}", layer=kind, tenant=tenant)
                    tx.put_profile_value(replace(value, key=key), expected_version=None)
                elif action == "delete":
                    tx.delete_profile_value(key, expected_version=None)
                elif action == "publish":
                    version += 1
                    tx.insert_catalog_version(records.catalog(app, version, default=f"v{version}"))
            for tenant_id in ("t1", "t2"):
                expected = without_copies(reference, user.id, tenants[tenant_id].id)
                for reader in stores:
                    assert resolve(reader, user.id, tenants[tenant_id].id) == expected
    finally:
        for store in (*stores, reference):
            store.close()
