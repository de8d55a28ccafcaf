"""Tenant isolation enforced by PostgreSQL itself: row-level security, roles, grants."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors
import pytest
from psycopg import sql
from user_engine.domain import AccessScope, Layer
from user_engine.errors import NotFoundError
from user_engine_store_postgres._migrator import TENANT_TABLES
from user_engine_store_postgres.hooks import create_store

SCOPE = (
    "SELECT set_config('user_engine.scope', %s, true), "
    "set_config('user_engine.tenant_id', %s, true)"
)


@pytest.fixture
def two_tenants(two_tenants: Any, store: Any, records: Any) -> Any:
    """The conftest's tenants A and B, each also with a tenant default (and thereby a row in
    profile_layers): a row of each tenant in every tenant table."""
    app = records.application()
    with store.transaction(AccessScope.all_tenants()) as tx:
        tx.insert_application(app)
        tx.insert_catalog_version(records.catalog(app))
        for tenant in two_tenants:
            tx.put_profile_value(
                records.value(app, "d", layer=Layer.TENANT_DEFAULT, tenant=tenant),
                expected_version=None,
            )
    return two_tenants


def _in_scope(conn: psycopg.Connection[Any], scope: list[str], statement: str, *args: Any) -> None:
    """Run one statement as the runtime role inside a transaction under ``scope``."""
    with conn.transaction():
        conn.execute(SCOPE, scope)
        conn.execute(statement, *args)


def _tenant_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


def _tenants_visible(conn: psycopg.Connection[Any], table: str) -> set[str | None]:
    column = sql.Identifier(_tenant_column(table))
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT {} FROM user_engine.{}").format(column, sql.Identifier(table))
    ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.usefixtures("two_tenants")
@pytest.mark.parametrize("table", TENANT_TABLES)
def test_the_runtime_role_without_a_tenant_setting_sees_nothing(
    runtime_connection: psycopg.Connection[Any], table: str
) -> None:
    count = runtime_connection.execute(
        sql.SQL("SELECT count(*) FROM user_engine.{}").format(sql.Identifier(table))
    ).fetchone()
    assert count == (0,)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_the_runtime_role_scoped_to_tenant_a_cannot_see_tenant_b_even_without_the_service(
    runtime_connection: psycopg.Connection[Any], two_tenants: Any, table: str
) -> None:
    a, b = two_tenants
    with runtime_connection.transaction():
        runtime_connection.execute(SCOPE, ["tenant", a.id])
        visible = _tenants_visible(runtime_connection, table)
    assert a.id in visible
    assert b.id not in visible


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        ("tenants", "UPDATE user_engine.tenants SET name = 'x' WHERE id = %s"),
        ("tenant_accounts",
         "UPDATE user_engine.tenant_accounts SET status = 'x' WHERE tenant_id = %s"),
        ("memberships", "DELETE FROM user_engine.memberships WHERE tenant_id = %s"),
        ("application_bindings",
         "DELETE FROM user_engine.application_bindings WHERE tenant_id = %s"),
        ("profile_values", "DELETE FROM user_engine.profile_values WHERE tenant_id = %s"),
        ("profile_layers",
         "UPDATE user_engine.profile_layers SET generation = 0 WHERE tenant_id = %s"),
        ("outbox_events", "DELETE FROM user_engine.outbox_events WHERE tenant_id = %s"),
    ],
)  # fmt: skip
def test_the_runtime_role_scoped_to_tenant_a_cannot_change_tenant_b_rows(
    runtime_connection: psycopg.Connection[Any], two_tenants: Any, table: str, statement: str
) -> None:
    a, b = two_tenants
    with runtime_connection.transaction():
        runtime_connection.execute(SCOPE, ["tenant", a.id])
        changed = runtime_connection.execute(statement, [b.id]).rowcount
    assert changed == 0
    with runtime_connection.transaction():
        runtime_connection.execute(SCOPE, ["platform", ""])
        assert b.id in _tenants_visible(runtime_connection, table)


def test_the_runtime_role_scoped_to_tenant_a_cannot_insert_a_row_of_tenant_b(
    runtime_connection: psycopg.Connection[Any], two_tenants: Any
) -> None:
    a, b = two_tenants
    insert = "INSERT INTO user_engine.memberships VALUES (%s, 'u', 'g', now())"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        _in_scope(runtime_connection, ["tenant", a.id], insert, [b.id])


def test_a_store_transaction_for_tenant_a_reads_nothing_of_tenant_b(
    store: Any, two_tenants: Any
) -> None:
    a, b = two_tenants
    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        assert tx.get_tenant(b.id) is None
        assert tx.list_tenant_accounts_of_tenant(b.id) == []
        assert tx.list_memberships(b.id) == []
        assert [t.id for t in tx.list_tenants()] == [a.id]


def test_a_write_outside_the_scope_is_refused_by_the_database_when_the_store_check_is_bypassed(
    store: Any, two_tenants: Any, records: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_tenants
    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        # Disable the store's own scope check: the database must still refuse.
        monkeypatch.setattr(tx, "_require_visible", lambda tenant_id, kind: None)
        with pytest.raises(NotFoundError) as raised, tx.savepoint():
            tx.insert_membership(records.membership(b, records.user()))
    assert raised.value.code == "tenant.out_of_scope"


def test_platform_access_is_explicit(store: Any, two_tenants: Any) -> None:
    a, b = two_tenants
    with store.transaction(AccessScope()) as tx:
        assert tx.list_tenants() == []
    with store.transaction(AccessScope.all_tenants()) as tx:
        assert {t.id for t in tx.list_tenants()} >= {a.id, b.id}


def _append_then_fail(store: Any, scope: AccessScope, record: Any) -> None:
    with store.transaction(scope) as tx:
        tx.append_audit(record)
        raise RuntimeError("roll back")


def test_the_tenant_setting_never_leaks_into_the_next_pooled_checkout(
    postgres_database: Any, records: Any
) -> None:
    from psycopg_pool import ConnectionPool

    # One connection, so every checkout below gets the same one.
    with ConnectionPool(postgres_database.runtime_dsn, min_size=1, max_size=1) as pool:
        store = create_store({"pool": pool})
        try:
            tenant = records.tenant()
            with store.transaction(AccessScope.all_tenants()) as tx:
                tx.insert_tenant(tenant)
            scopes = [AccessScope.for_tenant(tenant.id), AccessScope.all_tenants()]
            for scope in scopes:
                with store.transaction(scope) as tx:  # implicit (read-only) transaction
                    tx.get_tenant(tenant.id)
                with store.transaction(scope) as tx:  # explicit transaction, savepoints
                    with tx.savepoint(AccessScope.all_tenants()):
                        tx.append_audit(records.audit(tenant.id))
                    tx.append_audit(records.audit(tenant.id))
                with pytest.raises(RuntimeError):
                    _append_then_fail(store, scope, records.audit(tenant.id))
                with pool.connection() as conn:
                    settings = conn.execute(
                        "SELECT current_setting('user_engine.scope', true), "
                        "current_setting('user_engine.tenant_id', true)"
                    ).fetchone()
                    assert settings in ((None, None), ("", ""))
                    count = conn.execute("SELECT count(*) FROM user_engine.tenants").fetchone()
                    assert count == (0,)
                with store.transaction(AccessScope()) as tx:
                    assert tx.get_tenant(tenant.id) is None
        finally:
            store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE user_engine.audit_records SET action = 'forged'",
        "DELETE FROM user_engine.audit_records",
        "TRUNCATE user_engine.audit_records",
    ],
)
def test_audit_records_are_immutable_for_the_runtime_role(
    runtime_connection: psycopg.Connection[Any], two_tenants: Any, statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _in_scope(runtime_connection, ["platform", ""], statement)


def test_audit_records_cannot_be_changed_even_by_the_owner_through_row_level_security(
    postgres_database: Any, two_tenants: Any
) -> None:
    with psycopg.connect(postgres_database.owner_dsn) as conn:
        conn.execute(SCOPE, ["platform", ""])
        assert conn.execute("UPDATE user_engine.audit_records SET action = 'x'").rowcount == 0
        assert conn.execute("DELETE FROM user_engine.audit_records").rowcount == 0


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE user_engine.intruder (id int)",
        "ALTER TABLE user_engine.tenants DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenants_scope ON user_engine.tenants",
        "SET ROLE user_engine_runtime; ALTER TABLE user_engine.users ADD COLUMN x int",
    ],
)
def test_the_runtime_role_has_no_ddl_rights(
    runtime_connection: psycopg.Connection[Any], statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        runtime_connection.execute(statement)


def test_the_runtime_role_owns_nothing_and_cannot_bypass_row_level_security(
    runtime_connection: psycopg.Connection[Any],
) -> None:
    role = runtime_connection.execute(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles "
        "WHERE rolname = current_user"
    ).fetchone()
    owned = runtime_connection.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'user_engine' AND pg_get_userbyid(c.relowner) = current_user"
    ).fetchone()
    assert role == (False, False, False, False)
    assert owned == (0,)


def test_every_tenant_table_has_row_level_security_enabled_and_forced(
    runtime_connection: psycopg.Connection[Any],
) -> None:
    rows = runtime_connection.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'user_engine' AND c.relrowsecurity AND c.relforcerowsecurity"
    ).fetchall()
    assert {r[0] for r in rows} == set(TENANT_TABLES)
