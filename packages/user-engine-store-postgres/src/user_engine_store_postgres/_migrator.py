"""SQL migrations: ordered files, applied once each under an advisory lock, checksummed.

The files are ``NNNN_<name>.sql``, one per entry of ``user_engine.migrations.SCHEMA_VERSIONS``.
Installed from a wheel they sit in the package (``user_engine_store_postgres/migrations``,
force-included at build time); in a source checkout they are read from the repository's
``migrations/postgres``.

Applying (``apply_migrations``), on one owner connection in autocommit mode:

1. take a session-level advisory lock, so concurrent migrators (several processes starting
   at once) run one after the other; the later ones find nothing left to do;
2. create the NOLOGIN group role ``user_engine_runtime`` the grants name if missing
   (cluster-wide, so tolerant of a concurrent creator in another database), then schema
   ``user_engine`` and the version table, readable by that role;
3. refuse a database that is ahead of the code, or whose applied migration no longer has
   the checksum recorded when it was applied (an edited migration);
4. for each missing version: commit a *dirty* marker row, then run the file and clear the
   marker in one transaction. PostgreSQL DDL is transactional, so a failed or interrupted
   file leaves nothing behind but the marker: readiness reports ``schema.dirty`` until the
   next migrate, which applies that file again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
import psycopg.errors as pg_errors
from psycopg import sql
from user_engine.errors import ConfigurationError, NotReadyError, StoreUnavailableError
from user_engine.migrations import LATEST_SCHEMA_VERSION, SCHEMA_VERSIONS

from user_engine_store_postgres._errors import translate

__all__ = [
    "MIGRATION_LOCK_KEY",
    "RUNTIME_GROUP_ROLE",
    "SCHEMA",
    "TENANT_TABLES",
    "AppliedMigration",
    "MigrationFile",
    "apply_migrations",
    "migration_files",
    "schema_problems",
]

SCHEMA = "user_engine"
"""The schema holding every table of the store."""

RUNTIME_GROUP_ROLE = "user_engine_runtime"
"""NOLOGIN role the migrations grant the runtime privileges to; grant it to your app role."""

MIGRATION_LOCK_KEY = 0x7565_6D69_6772_6174  # "uemigrat": one bigint advisory lock key
"""Session-level advisory lock serialising migrators of one database."""

TENANT_TABLES = (
    "tenants",
    "tenant_accounts",
    "memberships",
    "application_bindings",
    "profile_values",
    "profile_layers",
    "audit_records",
    "outbox_events",
)
"""Tables holding tenant rows: row-level security must be enabled and forced on each."""

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One migration file: its version, name, text and SHA-256 checksum."""

    version: int
    name: str
    text: str
    checksum: str


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of the version table."""

    version: int
    checksum: str
    dirty: bool


def _directory() -> Path:
    packaged = resources.files("user_engine_store_postgres") / "migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    # Source checkout (editable install): <repo>/packages/<dist>/src/<pkg>/_migrator.py
    checkout = Path(__file__).resolve().parents[4] / "migrations" / "postgres"
    if checkout.is_dir():
        return checkout
    raise ConfigurationError(
        "the PostgreSQL migrations are missing from this installation of "
        "user-engine-store-postgres: reinstall the package",
        code="configuration.migrations_missing",
    )


def migration_files(directory: Path | None = None) -> tuple[MigrationFile, ...]:
    """The migration files, in order, checked against ``SCHEMA_VERSIONS``."""
    directory = directory or _directory()
    found: dict[int, MigrationFile] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ConfigurationError(
                f"migration file {path.name} is not named NNNN_<name>.sql",
                code="configuration.migrations_invalid",
            )
        data = path.read_bytes()
        version = int(match.group(1))
        found[version] = MigrationFile(
            version, match.group(2), data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        )
    expected = [v.number for v in SCHEMA_VERSIONS]
    if sorted(found) != expected:
        raise ConfigurationError(
            f"the PostgreSQL migrations ({sorted(found)}) do not match the schema versions of "
            f"user-engine ({expected}): install matching versions of user-engine and "
            "user-engine-store-postgres",
            code="configuration.migrations_invalid",
        )
    return tuple(found[v] for v in expected)


_BOOTSTRAP = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    dirty       boolean NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
-- Readiness (as the runtime role) must be able to read the version table even when the
-- first migration failed or never ran.
GRANT USAGE ON SCHEMA {SCHEMA} TO {RUNTIME_GROUP_ROLE};
GRANT SELECT ON {SCHEMA}.schema_migrations TO {RUNTIME_GROUP_ROLE};
"""


def _ensure_runtime_role(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    exists = conn.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", [RUNTIME_GROUP_ROLE]
    ).fetchone()
    if exists:
        return
    try:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(RUNTIME_GROUP_ROLE)))
    except (pg_errors.DuplicateObject, pg_errors.UniqueViolation):
        pass  # created concurrently by a migrator of another database of this cluster
    except pg_errors.InsufficientPrivilege as error:
        raise ConfigurationError(
            f"the role {RUNTIME_GROUP_ROLE} does not exist and the owner role may not create "
            f"it: as a superuser run CREATE ROLE {RUNTIME_GROUP_ROLE} NOLOGIN; GRANT "
            f"{RUNTIME_GROUP_ROLE} TO <your runtime login role>; then migrate again",
            code="configuration.runtime_role",
        ) from error


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, AppliedMigration]:
    rows = conn.execute(
        f"SELECT version, checksum, dirty FROM {SCHEMA}.schema_migrations ORDER BY version"
    ).fetchall()
    return {int(v): AppliedMigration(int(v), str(c), bool(d)) for v, c, d in rows}  # type: ignore[call-overload]


def schema_problems(
    applied: Sequence[AppliedMigration], files: Sequence[MigrationFile]
) -> list[str]:
    """Readiness problem codes of a version table against the files (no RLS checks)."""
    problems: list[str] = []
    by_version = {m.version: m for m in files}
    versions = [m.version for m in applied]
    if any(m.dirty for m in applied):
        problems.append("schema.dirty")
    if any(v > LATEST_SCHEMA_VERSION or v not in by_version for v in versions):
        problems.append("schema.ahead")
    if any(
        not m.dirty and m.version in by_version and by_version[m.version].checksum != m.checksum
        for m in applied
    ):
        problems.append("schema.checksum")
    complete = {m.version for m in applied if not m.dirty}
    if not all(v in complete for v in by_version):
        problems.append("schema.behind")
    return problems


def apply_migrations(conninfo: str) -> int:
    """Bring the database at ``conninfo`` (the owner role) to the latest version.

    Raises ``NotReadyError`` (``schema.ahead``, ``schema.checksum``) when the database cannot
    be migrated by this code, ``StoreUnavailableError`` when a migration fails or the server
    is unreachable, ``ConfigurationError`` for a missing runtime role or broken install.
    """
    files = migration_files()
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
            try:
                return _apply_locked(conn, files)
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
    except (ConfigurationError, NotReadyError, StoreUnavailableError):
        raise
    except Exception as error:
        raise translate(error, "migrate") from error


def _apply_locked(
    conn: psycopg.Connection[tuple[object, ...]], files: Sequence[MigrationFile]
) -> int:
    _ensure_runtime_role(conn)
    conn.execute(_BOOTSTRAP)
    applied = _applied(conn)
    problems = schema_problems(list(applied.values()), files)
    if "schema.ahead" in problems:
        raise NotReadyError(
            f"the database has schema versions {sorted(applied)} but this code knows only up to "
            f"{LATEST_SCHEMA_VERSION}: upgrade user-engine-store-postgres",
            code="schema.ahead",
        )
    if "schema.checksum" in problems:
        edited = sorted(
            f.version
            for f in files
            if f.version in applied
            and not applied[f.version].dirty
            and applied[f.version].checksum != f.checksum
        )
        raise NotReadyError(
            f"applied migration(s) {edited} were edited after they were applied (checksum "
            "differs): restore the released file(s) and add a new migration instead",
            code="schema.checksum",
        )
    for migration in files:
        row = applied.get(migration.version)
        if row is not None and not row.dirty:
            continue
        # Commit the marker first: if this process dies inside the migration, the database
        # says so (schema.dirty) instead of looking merely behind.
        conn.execute(
            f"INSERT INTO {SCHEMA}.schema_migrations (version, name, checksum, dirty) "
            "VALUES (%s, %s, %s, true) ON CONFLICT (version) DO UPDATE "
            "SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, dirty = true, "
            "applied_at = now()",
            [migration.version, migration.name, migration.checksum],
        )
        try:
            with conn.transaction():
                conn.execute(migration.text.encode())  # no parameters: simple protocol
                conn.execute(
                    f"UPDATE {SCHEMA}.schema_migrations SET dirty = false, applied_at = now() "
                    "WHERE version = %s",
                    [migration.version],
                )
        except psycopg.Error as error:
            raise StoreUnavailableError(
                f"migration {migration.version:04d}_{migration.name}.sql failed "
                f"({error.sqlstate}: {error.diag.message_primary}); the database is marked "
                "dirty until a migrate succeeds",
                code="schema.migration_failed",
                details={"version": str(migration.version)},
            ) from error
    return LATEST_SCHEMA_VERSION
