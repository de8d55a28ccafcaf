"""Registration of the PostgreSQL store as ``postgres`` through the ``user_engine`` entry
point, and its factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from user_engine.hookspecs import Register, hookimpl

from user_engine_store_postgres._bootstrap import DatabaseRoles, ensure_database, ensure_roles
from user_engine_store_postgres._settings import PostgresSettings
from user_engine_store_postgres.embedded import DEFAULT_DATA_DIR, EmbeddedPostgres
from user_engine_store_postgres.store import PostgresStore

__all__ = ["EMBEDDED_DATABASE", "create_store", "user_engine_register_stores"]

EMBEDDED_DATABASE = "user_engine"
"""The database the store uses on its embedded server (owner/runtime roles as below)."""
_EMBEDDED_OWNER = "user_engine_owner"
_EMBEDDED_RUNTIME = "user_engine_app"


def _embedded_store(settings: PostgresSettings) -> PostgresStore:
    server = EmbeddedPostgres(settings.embedded_data_dir or DEFAULT_DATA_DIR).start()
    try:
        roles = DatabaseRoles(
            owner=_EMBEDDED_OWNER,
            owner_password=server.role_password(_EMBEDDED_OWNER),
            runtime=_EMBEDDED_RUNTIME,
            runtime_password=server.role_password(_EMBEDDED_RUNTIME),
        )
        ensure_roles(server.dsn, roles)
        ensure_database(server.dsn, EMBEDDED_DATABASE, roles.owner)
        return PostgresStore(
            dsn=server.dsn_for(
                EMBEDDED_DATABASE, user=roles.runtime, password=roles.runtime_password
            ),
            owner_dsn=server.dsn_for(
                EMBEDDED_DATABASE, user=roles.owner, password=roles.owner_password
            ),
            min_pool_size=settings.min_pool_size,
            max_pool_size=settings.max_pool_size,
            pool_timeout=settings.pool_timeout,
            embedded=server,
        )  # fmt: skip
    except BaseException:
        server.stop()
        raise


def create_store(settings: Mapping[str, Any]) -> PostgresStore:
    """Build the store from its settings table (see ``_settings.SETTINGS`` for the keys).

    With ``dsn``, ``pool`` or ``connection`` it connects there; with none of them it starts
    an embedded server in ``embedded_data_dir`` (the ``embedded`` extra) and creates the
    database and roles it needs. ``migrate`` applies pending migrations before returning.
    Raises ``ConfigurationError`` for bad settings, ``StoreUnavailableError`` when the
    server cannot be reached or a migration fails.
    """
    checked = PostgresSettings.from_mapping(settings)
    if checked.embedded:
        store = _embedded_store(checked)
    else:
        store = PostgresStore(
            dsn=checked.dsn,
            owner_dsn=checked.owner_dsn,
            pool=checked.pool,
            connection=checked.connection,
            min_pool_size=checked.min_pool_size,
            max_pool_size=checked.max_pool_size,
            pool_timeout=checked.pool_timeout,
        )
    if checked.migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


@hookimpl
def user_engine_register_stores(register: Register) -> None:
    """Register the PostgreSQL store as ``postgres``."""
    register("postgres", create_store)
