"""The ``postgres`` factory's settings, and registration through the entry point."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from user_engine.domain import AccessScope
from user_engine.errors import ConfigurationError
from user_engine.plugins import PluginHost
from user_engine_store_postgres.hooks import create_store
from user_engine_store_postgres.store import PostgresStore


def test_the_store_is_registered_as_postgres_through_the_entry_point() -> None:
    info = PluginHost().adapter("store", "postgres")
    assert info.distribution == "user-engine-store-postgres"
    assert info.factory is create_store


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"dns": "x"}, "dns"),
        ({"dsn": "x", "pool_size": 3}, "pool_size"),
        ({"dsn": "x", "DSN": "y"}, "DSN"),
    ],
)
def test_unknown_settings_are_refused_by_name(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_store(settings)
    assert named in raised.value.message
    assert raised.value.code == "configuration.unknown_setting"


@pytest.mark.parametrize(
    "settings",
    [
        {"dsn": ""},
        {"dsn": 5},
        {"dsn": "x", "max_pool_size": 1},
        {"dsn": "x", "max_pool_size": "10"},
        {"dsn": "x", "min_pool_size": 5, "max_pool_size": 3},
        {"dsn": "x", "min_pool_size": True},
        {"dsn": "x", "pool_timeout": 0},
        {"dsn": "x", "migrate": "yes"},
        {"dsn": "x", "embedded_data_dir": "data"},
        {"owner_dsn": "x"},
        {"pool": "not a pool"},
        {"connection": object()},
        {"embedded_data_dir": ""},
    ],
)
def test_malformed_settings_are_a_configuration_error(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        create_store(settings)


def test_a_provider_pool_is_borrowed_and_left_open(postgres_database: Any, records: Any) -> None:
    with ConnectionPool(postgres_database.runtime_dsn, min_size=1, max_size=3) as pool:
        store = create_store({"pool": pool, "migrate": False})
        tenant = records.tenant()
        with store.transaction(AccessScope.all_tenants()) as tx:
            tx.insert_tenant(tenant)
        store.close()
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_provider_connection_is_used_and_given_back_as_it_came(
    postgres_database: Any, records: Any
) -> None:
    with psycopg.connect(postgres_database.runtime_dsn) as conn:
        store = create_store({"connection": conn})
        user = records.user()
        with store.transaction(AccessScope.all_tenants()) as tx:
            tx.insert_user(user)
            # Autonomous audit needs a second connection; the store opens one.
            store.append_audit_autonomous(records.audit(None))
        assert store.readiness().ready
        store.close()
        assert not conn.closed
        assert conn.autocommit is False
        assert conn._pipeline is None, "pipeline mode left"
        conn.execute("SELECT set_config('user_engine.scope', 'platform', true)")
        assert conn.execute("SELECT count(*) FROM user_engine.users").fetchone() == (1,)
        conn.rollback()


def test_the_store_checks_it_gets_exactly_one_connection_source() -> None:
    with pytest.raises(ConfigurationError):
        PostgresStore()
    with pytest.raises(ConfigurationError):
        PostgresStore(dsn="x", connection=object())  # type: ignore[arg-type]


def test_migrate_on_start_migrates(postgres_database_factory: Any) -> None:
    database = postgres_database_factory(migrated=False)
    store = create_store({**database.settings, "migrate": True})
    try:
        assert store.readiness().ready
    finally:
        store.close()
