"""Roles and a database for the store on a server we administer (embedded server, tests).

Production databases are prepared by their administrators (docs/postgres.md, "Roles"); this
module does the same for an embedded server or a test cluster, idempotently:

- ``user_engine_runtime``: NOLOGIN group role the migrations grant privileges to;
- an owner (migration) role: LOGIN, owns the database and, after migrating, every object;
- an application (runtime) role: LOGIN, member of ``user_engine_runtime``, and explicitly
  NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE, so row-level security binds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import psycopg.errors as pg_errors
from psycopg import sql

from user_engine_store_postgres._migrator import RUNTIME_GROUP_ROLE

__all__ = ["DatabaseRoles", "ensure_database", "ensure_roles"]


@dataclass(frozen=True, slots=True)
class DatabaseRoles:
    """Names and passwords of the owner and runtime login roles."""

    owner: str
    owner_password: str
    runtime: str
    runtime_password: str


def _ensure_role(
    conn: psycopg.Connection[tuple[object, ...]],
    name: str,
    *,
    login: bool,
    password: str | None = None,
) -> None:
    options: sql.Composable = sql.SQL(
        "NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION "
        + ("LOGIN" if login else "NOLOGIN")
    )
    if password is not None:
        options = sql.SQL("{} PASSWORD {}").format(options, sql.Literal(password))
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    if exists is None:
        try:
            conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), options))
            return
        except (pg_errors.DuplicateObject, pg_errors.UniqueViolation):
            pass  # created concurrently (another process on this cluster)
    conn.execute(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(name), options))


def ensure_roles(admin_conninfo: str, roles: DatabaseRoles) -> None:
    """Create or update the group, owner and runtime roles (needs CREATEROLE)."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        _ensure_role(conn, RUNTIME_GROUP_ROLE, login=False)
        _ensure_role(conn, roles.owner, login=True, password=roles.owner_password)
        _ensure_role(conn, roles.runtime, login=True, password=roles.runtime_password)
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(RUNTIME_GROUP_ROLE), sql.Identifier(roles.runtime)
            )
        )


def ensure_database(admin_conninfo: str, database: str, owner: str) -> bool:
    """Create ``database`` owned by ``owner`` unless it exists; True if created."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            return False
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(owner)
                )
            )
        except pg_errors.DuplicateDatabase:
            return False
        return True
