"""``user_engine.profile_snapshot`` (migration 0003): a profile resolution's reads as one
statement, sending the shared layers only when the store's copies are stale; its rights, its
row-level security, the generations behind it, and the store's paths around it."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from user_engine.domain import AccessScope, Layer
from user_engine.errors import NotReadyError, ValidationError
from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine_store_postgres._migrator import _apply_locked, migration_files
from user_engine_store_postgres.hooks import create_store

PLATFORM = AccessScope.all_tenants()
SIGNATURE = "user_engine.profile_snapshot(text, text, text, text, boolean, bigint, bigint, bigint)"


def _role(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["user"])


@pytest.fixture
def layered(store: Any, records: Any, two_tenants: Any) -> Any:
    """A user with a value at every layer in tenant A, a default of tenant B, and the
    application's catalog: (user, tenant A, tenant B, catalog)."""
    a, b = two_tenants
    app, user = records.application(), records.user()
    catalog = records.catalog(app)
    with store.transaction(PLATFORM) as tx:
        tx.insert_application(app)
        tx.insert_catalog_version(catalog)
        for row in (
            records.value(app, "uit", layer=Layer.USER_IN_TENANT, user=user, tenant=a),
            records.value(app, "user", layer=Layer.USER, user=user),
            records.value(app, "tenant", layer=Layer.TENANT_DEFAULT, tenant=a),
            records.value(app, "app", layer=Layer.APPLICATION_DEFAULT),
            records.value(app, "b", layer=Layer.TENANT_DEFAULT, tenant=b),
        ):
            tx.put_profile_value(row, expected_version=0)
    return user, a, b, catalog


def test_a_resolution_is_one_statement(
    store: Any, layered: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, a, _, catalog = layered
    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        tx.list_current_catalogs()  # the cache now holds the catalogs
    sent: list[str] = []
    original = psycopg.Cursor.execute
    this_thread = threading.get_ident()

    def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == this_thread:  # not the pool's workers (new connections)
            sent.append(str(query))
        return original(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        catalogs = tx.list_current_catalogs()
        values = tx.profile_values_for(user.id, a.id)
    assert [len(sent), "profile_snapshot" in sent[0]] == [1, True], sent
    assert catalog in catalogs
    assert [v.value for v in values] == ["uit", "user", "tenant", "app"]


def test_every_path_to_the_values_reads_the_same(store: Any, layered: Any, records: Any) -> None:
    user, a, b, catalog = layered

    def keys(values: list[Any]) -> list[Any]:
        return [(v.key, v.value, v.version, v.written_at) for v in values]

    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        catalogs = tx.list_current_catalogs()
        with_catalogs = tx.profile_values_for(user.id, a.id)  # catalogs in the same statement
        alone = tx.profile_values_for(user.id, a.id)  # no catalogs asked for
        tx.insert_user(records.user())  # the transaction now writes: the plain query
        writing = tx.profile_values_for(user.id, a.id)
    assert keys(with_catalogs) == keys(alone) == keys(writing)
    assert [v.key.layer for v in alone] == [
        Layer.USER_IN_TENANT, Layer.USER, Layer.TENANT_DEFAULT, Layer.APPLICATION_DEFAULT,
    ]  # fmt: skip
    assert {(v.key.tenant_id, v.key.user_id) for v in alone} == {
        (a.id, user.id), (None, user.id), (a.id, None), (None, None),
    }  # fmt: skip
    assert catalog in catalogs
    with store.transaction(PLATFORM) as tx:
        assert [v.value for v in tx.profile_values_for(user.id, None)] == ["user", "app"]
        assert [v.value for v in tx.profile_values_for(user.id, b.id)] == ["user", "b", "app"]


def test_the_catalogs_profile_snapshot_returns_are_those_read_alone(
    postgres_settings: Any, layered: Any
) -> None:
    user, a, _, catalog = layered
    first, second = create_store(postgres_settings), create_store(postgres_settings)
    try:
        with first.transaction(PLATFORM) as tx:  # nothing cached yet: attributes sent
            via_snapshot = tx.list_current_catalogs()
            tx.profile_values_for(user.id, a.id)
        with first.transaction(PLATFORM) as tx:  # cached now: attributes left out
            cached = tx.list_current_catalogs()
            tx.profile_values_for(user.id, a.id)
        with second.transaction(PLATFORM) as tx:
            alone = list(tx.list_current_catalogs())  # sent by itself
        assert via_snapshot == cached == alone
        assert catalog in alone
    finally:
        first.close()
        second.close()


def test_a_read_refused_before_it_was_sent_leaves_the_waiting_catalogs_intact(
    store: Any, layered: Any
) -> None:
    user, a, _, catalog = layered
    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        catalogs = tx.list_current_catalogs()
        with pytest.raises(ValidationError):
            tx.profile_values_for(user.id + "\x00", a.id)  # psycopg refuses NUL: not sent
        assert catalog in catalogs
        assert [v.value for v in tx.profile_values_for(user.id, a.id)][:1] == ["uit"]


def test_a_failed_statement_fails_the_catalogs_it_carried_and_nothing_later(
    store: Any, layered: Any, postgres_database: Any
) -> None:
    user, a, _, catalog = layered
    owner = psycopg.connect(postgres_database.owner_dsn, autocommit=True)
    try:
        with store.transaction(AccessScope.for_tenant(a.id)) as tx:
            catalogs = tx.list_current_catalogs()
            owner.execute(f"ALTER FUNCTION {SIGNATURE} RENAME TO moved_away")
            with pytest.raises(NotReadyError):
                tx.profile_values_for(user.id, a.id)
            owner.execute(f"ALTER FUNCTION {SIGNATURE.replace('profile_snapshot', 'moved_away')} "
                          "RENAME TO profile_snapshot")
            # The catalogs that travelled in the failed statement fail with it (at the next
            # wait for the server, as any deferred read, and at every use), never taking a
            # later answer of the same connection and cursor for theirs.
            with pytest.raises(NotReadyError):
                tx.profile_values_for(user.id, a.id)
            with pytest.raises(NotReadyError):
                len(catalogs)
            assert [v.value for v in tx.profile_values_for(user.id, a.id)][:1] == ["uit"]
            with pytest.raises(NotReadyError):
                list(catalogs)
        with store.transaction(AccessScope.for_tenant(a.id)) as tx:
            assert catalog in tx.list_current_catalogs()
            assert tx.profile_values_for(user.id, a.id)
    finally:
        owner.close()


def test_a_database_without_migration_3_is_behind_until_migrated(
    postgres_database_factory: Any,
) -> None:
    database = postgres_database_factory(migrated=False)
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        _apply_locked(conn, migration_files()[:2])  # what an older release installed
    store = create_store(database.settings)
    try:
        before = store.readiness()
        assert (before.ready, before.schema_version, before.problems) == (
            False, 2, ("schema.behind",),
        )  # fmt: skip
        with pytest.raises(NotReadyError) as raised, store.transaction(PLATFORM) as tx:  # noqa: PT012
            tx.list_current_catalogs()
            tx.profile_values_for("someone", None)
        assert raised.value.code == "schema.behind"
        assert store.migrate() == LATEST_SCHEMA_VERSION
        assert store.readiness().ready
        with store.transaction(PLATFORM) as tx:
            assert tx.list_current_catalogs() == []
            assert tx.profile_values_for("someone", None) == []
    finally:
        store.close()


def test_it_runs_with_the_callers_rights_and_only_the_runtime_group_may_call_it(
    postgres_database: Any, admin_connection: psycopg.Connection[Any]
) -> None:
    row = admin_connection.execute(
        "SELECT p.prosecdef, pg_get_userbyid(p.proowner), p.proconfig, p.proacl::text[] "
        "FROM pg_proc p WHERE p.oid = %s::regprocedure",
        [SIGNATURE],
    ).fetchone()
    assert row is not None
    definer, owner, config, acl = row
    assert (definer, owner, config) == (False, _role(postgres_database.owner_dsn), None)
    grantees = sorted(entry.split("=", 1)[0] for entry in acl)
    assert grantees == sorted([owner, "user_engine_runtime"]), "no PUBLIC entry"
    assert all(entry.split("=", 1)[1].startswith("X/") for entry in acl), "EXECUTE only"


def test_a_role_outside_the_runtime_group_may_not_call_it(
    admin_connection: psycopg.Connection[Any],
) -> None:
    role = f"ue_test_outsider_{uuid.uuid4().hex[:8]}"
    admin_connection.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        allowed = admin_connection.execute(
            "SELECT has_function_privilege(%s, %s, 'EXECUTE')", [role, SIGNATURE]
        ).fetchone()
        assert allowed == (False,)
    finally:
        admin_connection.execute(f"DROP ROLE {role}")


def test_row_level_security_applies_and_the_scope_ends_with_the_statement(
    runtime_connection: psycopg.Connection[Any], layered: Any
) -> None:
    user, a, b, _ = layered

    def values(scope: str, scope_tenant: str, tenant: str) -> list[Any]:
        row = runtime_connection.execute(
            "SELECT user_engine.profile_snapshot(%s, %s, %s, %s, false, NULL, NULL, NULL)",
            [scope, scope_tenant, user.id, tenant],
        ).fetchone()
        assert row is not None
        layers, own = row[0]
        assert "catalogs" not in [key for key, _, _ in layers], "not asked for, not sent"
        shared = [item for _, _, content in layers for item in content]
        return sorted(item[4] for item in [*shared, *(own or [])])

    assert values("tenant", a.id, a.id) == ["app", "tenant", "uit", "user"]
    assert values("tenant", a.id, b.id) == ["app", "user"], "tenant B's rows stay hidden"
    assert values("tenant", b.id, b.id) == ["app", "b", "user"]
    assert values("global", "", a.id) == ["app", "user"]
    assert values("platform", "", a.id) == ["app", "tenant", "uit", "user"]
    settings = runtime_connection.execute(
        "SELECT current_setting('user_engine.scope', true), "
        "current_setting('user_engine.tenant_id', true)"
    ).fetchone()
    assert settings in ((None, None), ("", "")), "transaction-local: gone after the call"
    count = runtime_connection.execute("SELECT count(*) FROM user_engine.profile_values")
    assert count.fetchone() == (0,)
