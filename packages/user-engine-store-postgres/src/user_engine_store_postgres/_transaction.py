"""``PostgresTransaction``: the ``StoreTransaction`` of the PostgreSQL store.

Round trips set the speed limit (PERFORMANCE.md), and on a small machine so does the client's
work per statement, so a transaction sends as few statements, and waits as few times, as it
can. Its connection is in pipeline mode: statements whose results nobody waits for (the scope
settings, ``SAVEPOINT``/``RELEASE``) are only queued and travel with the next statement that
needs an answer.

**Three phases, no BEGIN/COMMIT on the hot path.** The extended protocol runs everything up
to a Sync message as one *implicit transaction*, committed by the Sync (rolled back if a
statement failed). A transaction uses that:

1. *reading*: until its first write, each read is ``set_config(scope) ; <read> ; Sync``, an
   implicit transaction of its own: one round trip, nothing to commit afterwards. Under READ
   COMMITTED this is observably the same as reading inside one transaction (every statement
   takes its own snapshot either way, and nothing of its own is there to be seen yet).
   Profile values are the exception that saves a statement: ``profile_snapshot``
   (migration 0003) sets the scope itself before it reads, together with pending catalogs,
   and sends the shared layers only when the store's copies of them are stale
   (``_shared_layers``).
2. *writing*: the first write opens one implicit transaction (``set_config(scope) ;
   <write>``) that stays open: each later statement waits for its answer with a flush
   request, not a Sync, and the Sync at the end commits everything at once.
3. *explicit*: savepoints need a real transaction block, so the first savepoint (or the
   first write inside one) sends ``BEGIN``, which turns the open implicit transaction into
   an explicit one with everything written so far; ``COMMIT`` then ends it.

**Scope.** The access scope lives in two transaction-local settings (``set_config(...,
true)``) read by the row-level-security policies. They are set at the start of every
implicit or explicit transaction and vanish at its end, so a pooled connection never carries
a scope into its next checkout (a connection whose transaction did not end cleanly is
closed, never pooled). A savepoint with another scope sets it after ``SAVEPOINT``; rolling
back to the savepoint restores the outer value by itself, releasing it does not, so the
outer scope is set again after ``RELEASE``.

**Appends are not waited for.** ``append_event`` and ``append_audit`` return nothing (the
port allows it), so they are only queued and travel with the commit's Sync, which also
brings back the audit sequences (``audit_sequences``). A service mutation thus costs two
round trips: its domain write and the commit. A failing append raises at the next wait.

**Conflicts without errors.** Inserts use ``ON CONFLICT DO NOTHING RETURNING`` and updates
``WHERE version = expected RETURNING``: a duplicate or stale write returns no row instead of
raising, so the database decides the winner atomically, the transaction stays usable after a
``ConflictError`` (like the reference store's) and the losing path costs no extra error
round trip. A second query, only on that losing path, tells ``NotFoundError`` from
``ConflictError`` where the port distinguishes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import Cursor
from psycopg.types.json import Jsonb
from user_engine.domain import (
    AccessScope,
    Account,
    Application,
    ApplicationBinding,
    AuditRecord,
    CatalogVersion,
    ExternalIdentity,
    Factor,
    Membership,
    OutboxEvent,
    ProfileKey,
    ProfileValue,
    Tenant,
    TenantAccount,
    User,
)
from user_engine.errors import ConflictError, NotFoundError, UserEngineError, ValidationError

from user_engine_store_postgres import _rows
from user_engine_store_postgres._connections import Borrowed
from user_engine_store_postgres._deferred import DeferredList
from user_engine_store_postgres._errors import translate
from user_engine_store_postgres._migrator import TENANT_TABLES
from user_engine_store_postgres._shared_layers import Copy

if TYPE_CHECKING:
    from user_engine_store_postgres.store import PostgresStore

__all__ = [
    "AUDIT_INSERT",
    "NOTIFY_CHANNEL",
    "SCOPE_SQL",
    "PostgresTransaction",
    "audit_params",
    "scope_settings",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

NOTIFY_CHANNEL = "user_engine_outbox"
"""LISTEN/NOTIFY channel: a notification after every commit that appended outbox events."""

SCOPE_SQL = (
    "SELECT set_config('user_engine.scope', %s, true), "
    "set_config('user_engine.tenant_id', %s, true)"
)
"""Sets the transaction-local scope the row-level-security policies read."""

S = "user_engine"

_CURRENT_CATALOGS = (
    "(SELECT json_agg(json_build_array(application_id, version, published_at, published_by, "
    "CASE WHEN (application_id || ':' || version) = ANY(%s::text[]) THEN NULL "
    "ELSE attributes END) "
    "ORDER BY application_id) FROM (SELECT DISTINCT ON (application_id) application_id, "
    f"version, published_at, published_by, attributes FROM {S}.catalog_versions "
    "ORDER BY application_id DESC, version DESC) current)"
)
"""The current catalog of every application as one JSON array, by application id; the
attributes are null for the versions given (those the cache holds). One value, not a row
per catalog: psycopg's per-row and per-column work is most of a small read's cost.
DISTINCT ON with DESC on both keys walks the primary key backwards (no sort)."""

_CATALOGS_ALONE = "SELECT " + _CURRENT_CATALOGS
# The catalog tables have no row-level security, so the catalogs may ride on the scope
# statement of the next scoped read: which of the two a server evaluates first is irrelevant.
_SCOPE_AND_CATALOGS = SCOPE_SQL + ", " + _CURRENT_CATALOGS

_PROFILE_RANGES = (
    "user_id = %s AND tenant_id IS NULL",
    "user_id IS NULL AND tenant_id IS NULL",
    "user_id = %s AND tenant_id = %s",
    "user_id IS NULL AND tenant_id = %s",
)
_PROFILE_VALUES = (
    f"SELECT {_rows.PROFILE_PARTS_JSON} FROM ("
    + " UNION ALL ".join(
        f"SELECT {part} AS part, p.* FROM {S}.profile_values p WHERE {condition}"
        for part, condition in enumerate(_PROFILE_RANGES)
    )
    + ") resolving"
)
"""Every value that can resolve a user's profile: four ranges of the (user_id, tenant_id,
...) key, as one JSON value (``_rows.PROFILE_PARTS_JSON``). A NULL tenant matches nothing
in the last two. For the phases after the first write, where the scope is already set and
what is read may be this transaction's own uncommitted writes (so no copy is used or
kept)."""

_PROFILE_SNAPSHOT = f"SELECT {S}.profile_snapshot(%s, %s, %s, %s, %s, %s, %s, %s)"
"""Migration 0003's function: sets the scope, then returns ``[layers, the user's values]``,
a layer's content only when the generation offered is not current: a resolution's reads as
one statement."""

_OUTBOX_LOCK_CLASS = 0x7565  # first key of the two-key advisory lock space, "ue"


def scope_settings(scope: AccessScope) -> tuple[str, str]:
    """The values of ``user_engine.scope`` and ``user_engine.tenant_id`` for ``scope``."""
    if scope.platform:
        return ("platform", "")
    if scope.tenant_id is not None:
        return ("tenant", scope.tenant_id)
    return ("global", "")


def _translated(
    operation: str,
) -> Callable[[Callable[Concatenate[PostgresTransaction, P], R]],
              Callable[Concatenate[PostgresTransaction, P], R]]:  # fmt: skip
    """Translate driver errors of a transaction method into core errors."""

    def decorate(
        method: Callable[Concatenate[PostgresTransaction, P], R],
    ) -> Callable[Concatenate[PostgresTransaction, P], R]:
        @functools.wraps(method)
        def wrapper(self: PostgresTransaction, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except UserEngineError:
                raise
            except psycopg.Error as error:
                self._after_error()
                raise translate(error, operation) from error
            except UnicodeError as error:  # raised before anything was sent
                raise translate(error, operation) from error

        return wrapper

    return decorate


def _key_condition(key: ProfileKey) -> tuple[str, list[Any]]:
    """WHERE fragment and parameters matching exactly one profile key.

    ``tenant_id = NULL`` never matches and ``IS NOT DISTINCT FROM`` cannot use an index, so
    NULL parts become ``IS NULL`` (one statement text per NULL pattern, each prepared once).
    """
    parts = ["layer = %s", "application_id = %s", "attribute = %s"]
    params: list[Any] = [key.layer.value, key.application_id, key.attribute]
    for column, value in (("tenant_id", key.tenant_id), ("user_id", key.user_id)):
        if value is None:
            parts.append(f"{column} IS NULL")
        else:
            parts.append(f"{column} = %s")
            params.append(value)
    return " AND ".join(parts), params


class _Phase(enum.Enum):
    READING = "reading"
    WRITING = "writing"
    EXPLICIT = "explicit"


class _CatalogRead:
    """A ``list_current_catalogs`` not sent yet (``cursor`` None) or sent on ``cursor``, as
    the last column of its row; or sent in a ``profile_snapshot`` call (``in_snapshot``),
    which hands over its row, or the error that statement failed with, and which offered
    the store's copy ``offered`` of the current catalogs."""

    __slots__ = ("cursor", "error", "in_snapshot", "keys", "offered", "row")

    def __init__(self, keys: str) -> None:
        self.keys = keys
        self.cursor: Cursor[Any] | None = None
        self.in_snapshot = False
        self.offered: Copy[CatalogVersion] | None = None
        self.row: Any = None
        self.error: BaseException | None = None

    def current(self, store: PostgresStore) -> list[CatalogVersion]:
        """The current catalogs; a pipeline fetch waits for them if they are not here yet."""
        if self.error is not None:
            raise self.error
        if not self.in_snapshot:
            assert self.cursor is not None
            row = self.cursor.fetchone()
            assert row is not None
            return store.catalogs.resolve_current(row[-1], cacheable=True)
        layers = {entry[0]: entry for entry in self.row[0][0] or ()}
        return store.shared_layers.catalogs(
            layers.get("catalogs"),
            self.offered,
            functools.partial(store.catalogs.resolve_current, cacheable=True),
        )


@dataclasses.dataclass(slots=True)
class _Savepoint:
    name: str
    scope: AccessScope
    outer: AccessScope
    emitted: bool = False
    events_mark: int = 0


class PostgresTransaction:
    """One store transaction on one pooled connection (see the module docstring)."""

    def __init__(self, store: PostgresStore, borrowed: Borrowed, scope: AccessScope) -> None:
        self._store = store
        self._conn = borrowed.connection
        self._pipeline = borrowed.pipeline
        self._borrowed = borrowed
        self._scopes = [scope]
        self._savepoints: list[_Savepoint] = []
        self._phase = _Phase.READING
        self._unsynced = False
        self._failed = False
        self._counter = 0
        self._mechanics: Cursor[Any] | None = None  # made on first use (often never)
        self._deferred: list[DeferredList[Any]] = []
        self._unsent_catalogs: _CatalogRead | None = None
        self._audit: list[tuple[str, Cursor[Any]]] = []
        self._audit_sequences: dict[str, int] = {}
        self.appended_events = 0
        self.ended_cleanly = False
        """True once COMMIT or ROLLBACK went through: the connection may be pooled again."""

    # -- mechanics ---------------------------------------------------------------------------
    @property
    def scope(self) -> AccessScope:
        """The scope statements run under now (the innermost savepoint's)."""
        return self._scopes[-1]

    def _queue(self, query: str, params: Any = None) -> Cursor[Any]:
        if self._unsent_catalogs is not None:
            self._send_catalogs()
        self._unsynced = True
        return self._conn.execute(query, params)

    def _queue_mechanics(self, query: str, params: Any = None) -> None:
        """Queue a statement whose result nobody reads (on one reused cursor)."""
        if self._unsent_catalogs is not None:
            self._send_catalogs()
        self._unsynced = True
        if self._mechanics is None:
            self._mechanics = self._conn.cursor()
        self._mechanics.execute(query, params)

    def _send_catalogs(self) -> None:
        """Send the catalog read that waits for a statement to ride on, by itself: before
        any other statement, so that statements still reach the server in call order."""
        pending, self._unsent_catalogs = self._unsent_catalogs, None
        if pending is not None:
            pending.cursor = self._queue(_CATALOGS_ALONE, [pending.keys])

    def _queue_scope(self, scope: AccessScope) -> None:
        self._queue_mechanics(SCOPE_SQL, scope_settings(scope))

    def _sync(self) -> None:
        self._pipeline.sync()
        self._synced()

    def _synced(self) -> None:
        self._unsynced = False
        # Deferred lists become plain lists as soon as their rows are here, so that even
        # C-level readers of list storage (json, list.__add__) see their items.
        deferred, self._deferred = self._deferred, []
        for pending in deferred:
            pending.fill_now()

    def _emit_savepoint(self, savepoint: _Savepoint) -> None:
        self._queue_mechanics(f"SAVEPOINT {savepoint.name}")
        if savepoint.scope != savepoint.outer:
            self._queue_scope(savepoint.scope)
        savepoint.emitted = True

    def _after_error(self) -> None:
        """A statement failed. After an error the server ignores everything up to the next
        Sync. In an explicit transaction, send that Sync now, so that a ROLLBACK TO
        SAVEPOINT can recover (the transaction itself stays open, aborted until then). In
        the implicit one, the failure dooms it: send nothing (later statements are ignored),
        and remember it so that commit rolls back and says so instead of succeeding."""
        if self._phase is _Phase.EXPLICIT:
            with contextlib.suppress(psycopg.Error):
                self._sync()
        elif self._phase is _Phase.WRITING:
            self._failed = True

    def _begin_writing(self) -> None:
        """First write: open the implicit transaction, or an explicit one if savepoints are
        open (each then gets its SAVEPOINT, in order)."""
        if self._savepoints:
            self._queue_mechanics("BEGIN")
            self._queue_scope(self._scopes[0])
            self._phase = _Phase.EXPLICIT
            for savepoint in self._savepoints:
                self._emit_savepoint(savepoint)
        else:
            self._queue_scope(self._scopes[0])
            self._phase = _Phase.WRITING

    def _read(self, query: str, params: Any = None, *, scoped: bool = True) -> Cursor[Any]:
        """Send a read; its rows are there when the caller fetches them (one round trip,
        queued mechanics included).

        While reading, the read is its own implicit transaction (scope, read, Sync).
        ``scoped`` False: it touches no table with row-level security (users, accounts,
        identities, factors, applications, catalogs) and needs no scope in front of it.
        Once writing, it joins the open transaction and the caller's fetch flushes it.
        """
        if self._phase is not _Phase.READING:
            return self._queue(query, params)
        pending = self._unsent_catalogs
        if scoped and pending is not None:
            # A pending catalog read travels in the scope statement (one statement less).
            self._unsent_catalogs = None
            self._unsynced = True
            pending.cursor = self._conn.execute(
                _SCOPE_AND_CATALOGS, [*scope_settings(self.scope), pending.keys]
            )
        elif scoped:
            self._queue_scope(self.scope)
        cursor = self._queue(query, params)
        self._sync()
        return cursor

    def _write(self, query: str, params: Any = None) -> Cursor[Any]:
        """Send a write in the open transaction (opening it first); the caller's fetch of
        its RETURNING rows flushes it and waits: one round trip, no Sync."""
        if self._phase is _Phase.READING:
            self._begin_writing()
        return self._queue(query, params)

    @contextmanager
    def savepoint(self, scope: AccessScope | None = None) -> Iterator[None]:
        """Nested transaction, optionally under another scope, restored on exit."""
        self._counter += 1
        savepoint = _Savepoint(
            f"ue_sp_{self._counter}", scope or self.scope, self.scope,
            events_mark=self.appended_events,
        )  # fmt: skip
        self._savepoints.append(savepoint)
        self._scopes.append(savepoint.scope)
        if self._phase is _Phase.WRITING:
            # BEGIN inside an implicit transaction makes it explicit, keeping its writes.
            self._queue_mechanics("BEGIN")
            self._phase = _Phase.EXPLICIT
        if self._phase is _Phase.EXPLICIT:
            self._emit_savepoint(savepoint)
        try:
            yield
        except BaseException:
            self._leave(savepoint, failed=True)
            raise
        self._leave(savepoint, failed=False)

    def _leave(self, savepoint: _Savepoint, *, failed: bool) -> None:
        self._savepoints.pop()
        self._scopes.pop()
        if failed:
            self.appended_events = savepoint.events_mark
        if not savepoint.emitted:
            return
        try:
            if failed:
                # Also undoes the savepoint's scope setting and clears an aborted state.
                self._queue_mechanics(f"ROLLBACK TO SAVEPOINT {savepoint.name}")
                self._queue_mechanics(f"RELEASE SAVEPOINT {savepoint.name}")
            else:
                self._queue_mechanics(f"RELEASE SAVEPOINT {savepoint.name}")
                if savepoint.scope != savepoint.outer:
                    self._queue_scope(savepoint.outer)
        except psycopg.Error as error:
            if not failed:
                raise translate(error, "savepoint") from error

    def finish(self, *, commit: bool) -> None:
        """End the transaction: commit (Sync or COMMIT) or roll back. Raises on failure.

        ``ended_cleanly`` tells the store whether the connection may be pooled again.
        """
        if self._unsent_catalogs is not None:
            self._send_catalogs()  # a deferred list still to fill
        phase = self._phase
        if not commit or (phase is _Phase.WRITING and self._failed):
            if phase is not _Phase.READING:
                self._queue_mechanics("ROLLBACK")
            # The statement that failed earlier aborts the ROLLBACK too: rolled back anyway.
            with contextlib.suppress(psycopg.errors.PipelineAborted):
                self._sync()
            self.ended_cleanly = True
            if commit:
                raise ConflictError(
                    "the transaction was rolled back because a statement in it failed "
                    "earlier (the failure was caught but not rolled back to a savepoint)",
                    code="store.rolled_back",
                )
            return
        try:
            cursor = self._queue("COMMIT") if phase is _Phase.EXPLICIT else None
            if phase is not _Phase.READING or self._unsynced:
                self._sync()  # commits an implicit transaction
        except psycopg.Error as error:
            raise translate(error, "commit") from error
        self.ended_cleanly = True
        if cursor is not None and cursor.statusmessage != "COMMIT":
            # PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error.
            raise ConflictError(
                "the transaction was rolled back because a statement in it failed earlier "
                "(the failure was caught but not rolled back to a savepoint)",
                code="store.rolled_back",
            )
        if self._audit:
            with contextlib.suppress(psycopg.Error):  # committed: rows are all here
                self._collect_audit_sequences()
        if self.appended_events:
            self._store.events_committed()

    def _require_visible(self, tenant_id: str, kind: str) -> None:
        if not self.scope.allows(tenant_id):
            raise NotFoundError(
                f"{kind} is outside the transaction's tenant scope",
                code="tenant.out_of_scope",
                details={"kind": kind},
            )

    def _stale_or_missing(self, table: str, where: str, params: list[Any], kind: str) -> None:
        """After a conditional update matched nothing: raise NotFound or stale Conflict."""
        row = self._read(
            f"SELECT version FROM {S}.{table} WHERE {where}", params,
            scoped=table in TENANT_TABLES,
        ).fetchone()  # fmt: skip
        if row is None:
            raise NotFoundError(f"{kind} does not exist", code=f"{kind}.not_found")
        raise ConflictError(
            f"{kind} changed since it was read (version {row[0]}); read it again and retry",
            code="stale",
            details={"kind": kind},
        )

    # -- tenants -----------------------------------------------------------------------------
    @_translated("insert_tenant")
    def insert_tenant(self, tenant: Tenant) -> None:
        """Insert; ``ConflictError`` (``tenant.exists``) if the id is taken."""
        self._require_visible(tenant.id, "tenant")
        cursor = self._write(
            f"INSERT INTO {S}.tenants ({_rows.TENANT_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            [tenant.id, tenant.name, tenant.status.value, tenant.created_at, tenant.version],
        )
        if cursor.fetchone() is None:
            raise ConflictError(f"tenant {tenant.id} already exists", code="tenant.exists")

    @_translated("update_tenant")
    def update_tenant(self, tenant: Tenant, *, expected_version: int) -> None:
        """Conditional replace; ``stale`` conflict or ``NotFoundError``."""
        self._require_visible(tenant.id, "tenant")
        cursor = self._write(
            f"UPDATE {S}.tenants SET name = %s, status = %s, created_at = %s, version = %s "
            "WHERE id = %s AND version = %s RETURNING 1",
            [tenant.name, tenant.status.value, tenant.created_at, expected_version + 1,
             tenant.id, expected_version],
        )  # fmt: skip
        if cursor.fetchone() is None:
            self._stale_or_missing("tenants", "id = %s", [tenant.id], "tenant")

    @_translated("get_tenant")
    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, if visible (row-level security filters the others)."""
        row = self._read(
            f"SELECT {_rows.TENANT_COLUMNS} FROM {S}.tenants WHERE id = %s", [tenant_id]
        ).fetchone()
        return None if row is None else _rows.tenant(row)

    @_translated("list_tenants")
    def list_tenants(self) -> list[Tenant]:
        """Visible tenants by id."""
        rows = self._read(f"SELECT {_rows.TENANT_COLUMNS} FROM {S}.tenants ORDER BY id").fetchall()
        return [_rows.tenant(row) for row in rows]

    # -- users and accounts ------------------------------------------------------------------
    @_translated("insert_user")
    def insert_user(self, user: User) -> None:
        """Insert; ``ConflictError`` (``user.exists``) if the id is taken."""
        cursor = self._write(
            f"INSERT INTO {S}.users ({_rows.USER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            [user.id, user.display_name, user.status.value, user.created_at, user.updated_at,
             user.version],
        )  # fmt: skip
        if cursor.fetchone() is None:
            raise ConflictError("user id already exists", code="user.exists")

    @_translated("update_user")
    def update_user(self, user: User, *, expected_version: int) -> None:
        """Conditional replace, as ``update_tenant``."""
        cursor = self._write(
            f"UPDATE {S}.users SET display_name = %s, status = %s, created_at = %s, "
            "updated_at = %s, version = %s WHERE id = %s AND version = %s RETURNING 1",
            [user.display_name, user.status.value, user.created_at, user.updated_at,
             expected_version + 1, user.id, expected_version],
        )  # fmt: skip
        if cursor.fetchone() is None:
            self._stale_or_missing("users", "id = %s", [user.id], "user")

    @_translated("get_user")
    def get_user(self, user_id: str) -> User | None:
        """The user (platform-scoped)."""
        row = self._read(
            f"SELECT {_rows.USER_COLUMNS} FROM {S}.users WHERE id = %s", [user_id], scoped=False
        ).fetchone()
        return None if row is None else _rows.user(row)

    @_translated("insert_account")
    def insert_account(self, account: Account) -> None:
        """Insert; ``account.exists`` or ``account.handle_taken`` (case-insensitive)."""
        cursor = self._write(
            f"INSERT INTO {S}.accounts ({_rows.ACCOUNT_COLUMNS}, handle_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            [account.id, account.user_id, account.handle, account.status.value,
             account.created_at, account.version, account.handle.casefold()],
        )  # fmt: skip
        if cursor.fetchone() is not None:
            return
        taken = self._read(
            f"SELECT 1 FROM {S}.accounts WHERE id = %s", [account.id], scoped=False
        ).fetchone()
        if taken is not None:
            raise ConflictError("account id already exists", code="account.exists")
        raise ConflictError("that account handle is taken", code="account.handle_taken")

    @_translated("update_account")
    def update_account(self, account: Account, *, expected_version: int) -> None:
        """Conditional replace; the handle may not change (``ValidationError``)."""
        cursor = self._write(
            f"UPDATE {S}.accounts SET user_id = %s, handle = %s, status = %s, created_at = %s, "
            "version = %s WHERE id = %s AND version = %s AND handle_key = %s RETURNING 1",
            [account.user_id, account.handle, account.status.value, account.created_at,
             expected_version + 1, account.id, expected_version, account.handle.casefold()],
        )  # fmt: skip
        if cursor.fetchone() is not None:
            return
        row = self._read(
            f"SELECT version, handle_key FROM {S}.accounts WHERE id = %s", [account.id],
            scoped=False,
        ).fetchone()  # fmt: skip
        if row is not None and row[1] != account.handle.casefold():
            raise ValidationError("an account's handle cannot change", code="account.handle")
        if row is None:
            raise NotFoundError("account does not exist", code="account.not_found")
        raise ConflictError(
            f"account changed since it was read (version {row[0]}); read it again and retry",
            code="stale",
            details={"kind": "account"},
        )

    @_translated("get_account")
    def get_account(self, account_id: str) -> Account | None:
        """The account."""
        row = self._read(
            f"SELECT {_rows.ACCOUNT_COLUMNS} FROM {S}.accounts WHERE id = %s",
            [account_id],
            scoped=False,
        ).fetchone()
        return None if row is None else _rows.account(row)

    @_translated("list_accounts")
    def list_accounts(self, user_id: str) -> list[Account]:
        """Accounts of a user, by id."""
        rows = self._read(
            f"SELECT {_rows.ACCOUNT_COLUMNS} FROM {S}.accounts WHERE user_id = %s ORDER BY id",
            [user_id],
            scoped=False,
        ).fetchall()
        return [_rows.account(row) for row in rows]

    # -- tenant accounts and memberships -----------------------------------------------------
    @_translated("insert_tenant_account")
    def insert_tenant_account(self, tenant_account: TenantAccount) -> None:
        """Insert; ``tenant_account.exists`` if (tenant, user) exists."""
        self._require_visible(tenant_account.tenant_id, "tenant account")
        t = tenant_account
        cursor = self._write(
            f"INSERT INTO {S}.tenant_accounts ({_rows.TENANT_ACCOUNT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            [t.tenant_id, t.user_id, t.status.value, sorted(t.roles), t.created_at,
             t.updated_at, t.version],
        )  # fmt: skip
        if cursor.fetchone() is None:
            raise ConflictError(
                "the user already has an account in this tenant", code="tenant_account.exists"
            )

    @_translated("update_tenant_account")
    def update_tenant_account(
        self, tenant_account: TenantAccount, *, expected_version: int
    ) -> None:
        """Conditional replace, as ``update_tenant``."""
        self._require_visible(tenant_account.tenant_id, "tenant account")
        t = tenant_account
        cursor = self._write(
            f"UPDATE {S}.tenant_accounts SET status = %s, roles = %s, created_at = %s, "
            "updated_at = %s, version = %s WHERE tenant_id = %s AND user_id = %s "
            "AND version = %s RETURNING 1",
            [t.status.value, sorted(t.roles), t.created_at, t.updated_at,
             expected_version + 1, t.tenant_id, t.user_id, expected_version],
        )  # fmt: skip
        if cursor.fetchone() is None:
            self._stale_or_missing(
                "tenant_accounts", "tenant_id = %s AND user_id = %s", [t.tenant_id, t.user_id],
                "tenant_account",
            )  # fmt: skip

    @_translated("get_tenant_account")
    def get_tenant_account(self, tenant_id: str, user_id: str) -> TenantAccount | None:
        """The tenant account, if visible."""
        row = self._read(
            f"SELECT {_rows.TENANT_ACCOUNT_COLUMNS} FROM {S}.tenant_accounts "
            "WHERE tenant_id = %s AND user_id = %s",
            [tenant_id, user_id],
        ).fetchone()
        return None if row is None else _rows.tenant_account(row)

    @_translated("list_tenant_accounts_of_tenant")
    def list_tenant_accounts_of_tenant(self, tenant_id: str) -> list[TenantAccount]:
        """Tenant accounts of one tenant, by user id."""
        rows = self._read(
            f"SELECT {_rows.TENANT_ACCOUNT_COLUMNS} FROM {S}.tenant_accounts "
            "WHERE tenant_id = %s ORDER BY user_id",
            [tenant_id],
        ).fetchall()
        return [_rows.tenant_account(row) for row in rows]

    @_translated("list_tenant_accounts_of_user")
    def list_tenant_accounts_of_user(self, user_id: str) -> list[TenantAccount]:
        """Visible tenant accounts of one user, by tenant id."""
        rows = self._read(
            f"SELECT {_rows.TENANT_ACCOUNT_COLUMNS} FROM {S}.tenant_accounts "
            "WHERE user_id = %s ORDER BY tenant_id",
            [user_id],
        ).fetchall()
        return [_rows.tenant_account(row) for row in rows]

    @_translated("insert_membership")
    def insert_membership(self, membership: Membership) -> None:
        """Insert; ``membership.exists`` if (tenant, user, group) exists."""
        self._require_visible(membership.tenant_id, "membership")
        m = membership
        cursor = self._write(
            f"INSERT INTO {S}.memberships ({_rows.MEMBERSHIP_COLUMNS}) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            [m.tenant_id, m.user_id, m.group, m.created_at],
        )
        if cursor.fetchone() is None:
            raise ConflictError("the membership already exists", code="membership.exists")

    @_translated("delete_membership")
    def delete_membership(self, tenant_id: str, user_id: str, group: str) -> bool:
        """Delete; True if a visible row was deleted."""
        if not self.scope.allows(tenant_id):
            return False
        cursor = self._write(
            f"DELETE FROM {S}.memberships WHERE tenant_id = %s AND user_id = %s "
            "AND group_name = %s RETURNING 1",
            [tenant_id, user_id, group],
        )
        return cursor.fetchone() is not None

    @_translated("list_memberships")
    def list_memberships(self, tenant_id: str, user_id: str | None = None) -> list[Membership]:
        """Memberships of a tenant (optionally of one user), by (user id, group)."""
        if user_id is None:
            cursor = self._read(
                f"SELECT {_rows.MEMBERSHIP_COLUMNS} FROM {S}.memberships WHERE tenant_id = %s "
                "ORDER BY user_id, group_name",
                [tenant_id],
            )
        else:
            cursor = self._read(
                f"SELECT {_rows.MEMBERSHIP_COLUMNS} FROM {S}.memberships WHERE tenant_id = %s "
                "AND user_id = %s ORDER BY group_name",
                [tenant_id, user_id],
            )
        return [_rows.membership(row) for row in cursor.fetchall()]

    # -- identities and factors --------------------------------------------------------------
    @_translated("insert_identity")
    def insert_identity(self, identity: ExternalIdentity) -> None:
        """Link; ``identity.already_linked`` if (issuer, subject) is linked to any user.

        Racing writers of one pair meet on the primary key: the later INSERT waits for the
        earlier transaction and, once that commits, does nothing; exactly one wins.
        """
        i = identity
        cursor = self._write(
            f"INSERT INTO {S}.external_identities ({_rows.IDENTITY_COLUMNS}) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            [i.issuer, i.subject, i.user_id, i.linked_at],
        )
        if cursor.fetchone() is None:
            raise ConflictError(
                "this external identity is already linked to a user",
                code="identity.already_linked",
            )

    @_translated("delete_identity")
    def delete_identity(self, issuer: str, subject: str) -> bool:
        """Unlink; True if a row was deleted."""
        cursor = self._write(
            f"DELETE FROM {S}.external_identities WHERE issuer = %s AND subject = %s RETURNING 1",
            [issuer, subject],
        )
        return cursor.fetchone() is not None

    @_translated("get_identity")
    def get_identity(self, issuer: str, subject: str) -> ExternalIdentity | None:
        """The identity linked under (issuer, subject)."""
        row = self._read(
            f"SELECT {_rows.IDENTITY_COLUMNS} FROM {S}.external_identities "
            "WHERE issuer = %s AND subject = %s",
            [issuer, subject],
            scoped=False,
        ).fetchone()
        return None if row is None else _rows.identity(row)

    @_translated("list_identities")
    def list_identities(self, user_id: str) -> list[ExternalIdentity]:
        """Identities of a user, by (issuer, subject)."""
        rows = self._read(
            f"SELECT {_rows.IDENTITY_COLUMNS} FROM {S}.external_identities WHERE user_id = %s "
            "ORDER BY issuer, subject",
            [user_id],
            scoped=False,
        ).fetchall()
        return [_rows.identity(row) for row in rows]

    @_translated("insert_factor")
    def insert_factor(self, factor: Factor) -> None:
        """Insert; ``factor.exists`` if the id is taken."""
        f = factor
        cursor = self._write(
            f"INSERT INTO {S}.factors ({_rows.FACTOR_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            [f.id, f.user_id, f.kind, f.label, f.secret_ref, f.created_at],
        )
        if cursor.fetchone() is None:
            raise ConflictError("factor id already exists", code="factor.exists")

    @_translated("delete_factor")
    def delete_factor(self, factor_id: str) -> bool:
        """Delete; True if a row was deleted."""
        cursor = self._write(f"DELETE FROM {S}.factors WHERE id = %s RETURNING 1", [factor_id])
        return cursor.fetchone() is not None

    @_translated("get_factor")
    def get_factor(self, factor_id: str) -> Factor | None:
        """The factor (its secret reference only)."""
        row = self._read(
            f"SELECT {_rows.FACTOR_COLUMNS} FROM {S}.factors WHERE id = %s",
            [factor_id],
            scoped=False,
        ).fetchone()
        return None if row is None else _rows.factor(row)

    @_translated("list_factors")
    def list_factors(self, user_id: str) -> list[Factor]:
        """Factors of a user, by id."""
        rows = self._read(
            f"SELECT {_rows.FACTOR_COLUMNS} FROM {S}.factors WHERE user_id = %s ORDER BY id",
            [user_id],
            scoped=False,
        ).fetchall()
        return [_rows.factor(row) for row in rows]

    # -- applications, bindings, catalogs ----------------------------------------------------
    @_translated("insert_application")
    def insert_application(self, application: Application) -> None:
        """Insert; ``application.exists`` if the id is taken."""
        a = application
        cursor = self._write(
            f"INSERT INTO {S}.applications ({_rows.APPLICATION_COLUMNS}) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            [a.id, a.name, a.created_at],
        )
        if cursor.fetchone() is None:
            raise ConflictError(f"application {a.id} already exists", code="application.exists")

    @_translated("get_application")
    def get_application(self, application_id: str) -> Application | None:
        """The application."""
        row = self._read(
            f"SELECT {_rows.APPLICATION_COLUMNS} FROM {S}.applications WHERE id = %s",
            [application_id],
            scoped=False,
        ).fetchone()
        return None if row is None else _rows.application(row)

    @_translated("list_applications")
    def list_applications(self) -> list[Application]:
        """Applications by id."""
        rows = self._read(
            f"SELECT {_rows.APPLICATION_COLUMNS} FROM {S}.applications ORDER BY id", scoped=False
        ).fetchall()
        return [_rows.application(row) for row in rows]

    @_translated("put_binding")
    def put_binding(self, binding: ApplicationBinding) -> None:
        """Insert or replace the binding of (application, tenant, user)."""
        self._require_visible(binding.tenant_id, "binding")
        b = binding
        self._write(
            f"INSERT INTO {S}.application_bindings ({_rows.BINDING_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (application_id, tenant_id, user_id) "
            "DO UPDATE SET granted_attributes = EXCLUDED.granted_attributes, "
            "created_at = EXCLUDED.created_at RETURNING 1",
            [b.application_id, b.tenant_id, b.user_id, sorted(b.granted_attributes),
             b.created_at],
        ).fetchone()  # fmt: skip

    @_translated("delete_binding")
    def delete_binding(self, application_id: str, tenant_id: str, user_id: str) -> bool:
        """Delete; True if a visible row was deleted."""
        if not self.scope.allows(tenant_id):
            return False
        cursor = self._write(
            f"DELETE FROM {S}.application_bindings WHERE application_id = %s AND tenant_id = %s "
            "AND user_id = %s RETURNING 1",
            [application_id, tenant_id, user_id],
        )
        return cursor.fetchone() is not None

    @_translated("get_binding")
    def get_binding(
        self, application_id: str, tenant_id: str, user_id: str
    ) -> ApplicationBinding | None:
        """The binding, if visible."""
        row = self._read(
            f"SELECT {_rows.BINDING_COLUMNS} FROM {S}.application_bindings "
            "WHERE application_id = %s AND tenant_id = %s AND user_id = %s",
            [application_id, tenant_id, user_id],
        ).fetchone()
        return None if row is None else _rows.binding(row)

    @_translated("list_bindings_of_user")
    def list_bindings_of_user(self, user_id: str) -> list[ApplicationBinding]:
        """Visible bindings of a user, by (application id, tenant id)."""
        rows = self._read(
            f"SELECT {_rows.BINDING_COLUMNS} FROM {S}.application_bindings WHERE user_id = %s "
            "ORDER BY application_id, tenant_id",
            [user_id],
        ).fetchall()
        return [_rows.binding(row) for row in rows]

    @_translated("insert_catalog_version")
    def insert_catalog_version(self, catalog: CatalogVersion) -> None:
        """Publish; ``catalog.version_exists`` if that (application, version) exists."""
        c = catalog
        cursor = self._write(
            f"INSERT INTO {S}.catalog_versions (application_id, version, attributes, "
            "published_at, published_by) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            [c.application_id, c.version, Jsonb(_rows.attributes_to_json(c)), c.published_at,
             c.published_by],
        )  # fmt: skip
        if cursor.fetchone() is None:
            raise ConflictError(
                "that catalog version is already published; publish a newer version",
                code="catalog.version_exists",
            )

    # Published catalog versions never change, so the store keeps each one it has parsed
    # (``PostgresStore.catalogs``) and asks the database only which version is current:
    # the attributes column comes back NULL for versions the cache already holds.
    _CATALOG_SELECT = (
        "SELECT application_id, version, published_at, published_by, "
        "CASE WHEN version = ANY(%s) THEN NULL ELSE attributes END "
        f"FROM {S}.catalog_versions"
    )

    def _catalog(self, row: Any) -> CatalogVersion:
        # Only what was read before this transaction wrote anything is surely committed.
        return self._store.catalogs.resolve(row, cacheable=self._phase is _Phase.READING)

    @_translated("get_catalog_version")
    def get_catalog_version(self, application_id: str, version: int) -> CatalogVersion | None:
        """One published version."""
        cached = self._store.catalogs.get(application_id, version)
        if cached is not None:
            return cached  # immutable once published, and never deleted
        row = self._read(
            f"{self._CATALOG_SELECT} WHERE application_id = %s AND version = %s",
            [[], application_id, version],
            scoped=False,
        ).fetchone()
        return None if row is None else self._catalog(row)

    @_translated("get_current_catalog")
    def get_current_catalog(self, application_id: str) -> CatalogVersion | None:
        """The highest published version of an application's catalog."""
        row = self._read(
            f"{self._CATALOG_SELECT} WHERE application_id = %s ORDER BY version DESC LIMIT 1",
            [self._store.catalogs.versions_of(application_id), application_id],
            scoped=False,
        ).fetchone()
        return None if row is None else self._catalog(row)

    @_translated("list_current_catalogs")
    def list_current_catalogs(self) -> list[CatalogVersion]:
        """The current catalog of every application, by application id.

        Before the first write it is not waited for: the list fills itself on first use,
        from the round trip of the next statement when there is one, and it travels in the
        next statement if that is ``profile_values_for`` (its ``profile_snapshot`` call) or the
        scope statement of a scoped read. Resolving a profile (this, then
        ``profile_values_for``) thus costs one round trip and one statement.
        """
        catalogs = self._store.catalogs
        keys = catalogs.keys_literal()
        if self._phase is not _Phase.READING:
            row = self._read(_CATALOGS_ALONE, [keys], scoped=False).fetchone()
            assert row is not None
            return catalogs.resolve_current(row[0], cacheable=False)
        if self._unsent_catalogs is not None:
            self._send_catalogs()
        # Not sent yet: it waits for the next statement, and rides on it if that is
        # ``profile_snapshot`` or the scope statement of a read (``_read``), else goes just
        # before it.
        pending = self._unsent_catalogs = _CatalogRead(keys)

        def fill() -> list[CatalogVersion]:
            # Sent before any write of this transaction: what it reads is committed.
            try:
                if pending.cursor is None:
                    self._send_catalogs()
                return pending.current(self._store)  # raises its statement's error
            except (psycopg.Error, UnicodeError) as error:
                raise translate(error, "list_current_catalogs") from error

        deferred = DeferredList(fill)
        self._deferred.append(deferred)
        return deferred

    @_translated("list_catalog_versions")
    def list_catalog_versions(self, application_id: str) -> list[CatalogVersion]:
        """Every published version of an application's catalog, oldest first."""
        rows = self._read(
            f"{self._CATALOG_SELECT} WHERE application_id = %s ORDER BY version",
            [self._store.catalogs.versions_of(application_id), application_id],
            scoped=False,
        ).fetchall()
        return [self._catalog(row) for row in rows]

    # -- profile values ----------------------------------------------------------------------
    def _check_profile_scope(self, key: ProfileKey) -> None:
        if key.tenant_id is not None:
            self._require_visible(key.tenant_id, "profile value")

    @staticmethod
    def _stale(expected: int) -> ConflictError:
        return ConflictError(
            f"the value changed since it was read (expected version {expected}); read it "
            "again and retry",
            code="profile.stale",
        )

    @_translated("put_profile_value")
    def put_profile_value(
        self, value: ProfileValue, *, expected_version: int | None
    ) -> ProfileValue:
        """Write at the key; version = previous + 1. One statement does check and write."""
        self._check_profile_scope(value.key)
        key = value.key
        data = [Jsonb(value.value), value.catalog_version, value.written_by, value.written_at]
        if expected_version is None or expected_version == 0:
            conflict = (
                "DO UPDATE SET value = EXCLUDED.value, version = p.version + 1, "
                "catalog_version = EXCLUDED.catalog_version, written_by = EXCLUDED.written_by, "
                "written_at = EXCLUDED.written_at"
                if expected_version is None
                else "DO NOTHING"
            )
            cursor = self._write(
                f"INSERT INTO {S}.profile_values AS p ({_rows.PROFILE_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s, %s) "
                f"ON CONFLICT ON CONSTRAINT profile_values_key {conflict} RETURNING p.version",
                [key.layer.value, key.application_id, key.attribute, key.tenant_id, key.user_id,
                 *data],
            )  # fmt: skip
        else:
            where, params = _key_condition(key)
            cursor = self._write(
                f"UPDATE {S}.profile_values SET value = %s, version = version + 1, "
                f"catalog_version = %s, written_by = %s, written_at = %s WHERE {where} "
                "AND version = %s RETURNING version",
                [*data, *params, expected_version],
            )
        row = cursor.fetchone()
        if row is None:
            raise self._stale(expected_version or 0)
        return _rows.with_version(value, row[0])

    @_translated("delete_profile_value")
    def delete_profile_value(
        self, key: ProfileKey, *, expected_version: int | None
    ) -> ProfileValue | None:
        """Clear; the removed value or None. ``expected_version`` as in ``put``."""
        self._check_profile_scope(key)
        where, params = _key_condition(key)
        if expected_version == 0:
            # "Must not exist": deleting nothing is the only success.
            exists = self._read(
                f"SELECT 1 FROM {S}.profile_values WHERE {where}", params
            ).fetchone()
            if exists is not None:
                raise self._stale(0)
            return None
        if expected_version is None:
            cursor = self._write(
                f"DELETE FROM {S}.profile_values WHERE {where} RETURNING {_rows.PROFILE_COLUMNS}",
                params,
            )
        else:
            cursor = self._write(
                f"DELETE FROM {S}.profile_values WHERE {where} AND version = %s "
                f"RETURNING {_rows.PROFILE_COLUMNS}",
                [*params, expected_version],
            )
        row = cursor.fetchone()
        if row is None:
            if expected_version is not None:
                raise self._stale(expected_version)
            return None
        return _rows.profile_value(row)

    @_translated("get_profile_value")
    def get_profile_value(self, key: ProfileKey) -> ProfileValue | None:
        """The value stored at exactly this key."""
        where, params = _key_condition(key)
        row = self._read(
            f"SELECT {_rows.PROFILE_COLUMNS} FROM {S}.profile_values WHERE {where}", params
        ).fetchone()
        return None if row is None else _rows.profile_value(row)

    @_translated("profile_values_for")
    def profile_values_for(self, user_id: str, tenant_id: str | None) -> list[ProfileValue]:
        """All layers that can resolve this user's profile, in one query.

        Four ranges of the (user_id, tenant_id, ...) key: the user's values (no tenant, and
        in the tenant), the tenant's defaults, the application defaults. Row-level security
        drops the tenant's rows when the tenant is outside the scope.

        Before the first write it is one statement, ``profile_snapshot`` (migration 0003),
        which sets the scope first, also carries a ``list_current_catalogs`` still waiting to
        be sent, and sends the catalogs, application defaults and tenant defaults only when
        the store's copies of them (``_shared_layers``) are stale: a profile resolution is
        one statement and one round trip, and usually reads just the user's own rows.
        """
        if self._phase is not _Phase.READING:
            row = self._read(_PROFILE_VALUES, [user_id, user_id, tenant_id, tenant_id]).fetchone()
            return _rows.profile_values_from_parts(
                None if row is None else row[0], user_id, tenant_id
            )
        pending = self._unsent_catalogs
        layers = self._store.shared_layers
        offer = layers.offer(tenant_id, with_catalogs=pending is not None)
        self._unsynced = True
        # The connection's kept cursor: this statement is the hot path of profile reads.
        cursor = self._borrowed.kept_cursor()
        cursor.execute(
            _PROFILE_SNAPSHOT,
            [*scope_settings(self.scope), user_id, tenant_id, pending is not None,
             *offer.generations()],
        )  # fmt: skip
        if pending is not None:
            self._unsent_catalogs = None
            pending.cursor, pending.in_snapshot, pending.offered = cursor, True, offer.catalogs
        try:
            self._pipeline.sync()
            row = cursor.fetchone()
        except BaseException as error:
            if pending is not None:
                pending.error = error  # never read from the kept cursor's later results
            raise
        assert row is not None
        if pending is not None:
            pending.row = row
        self._synced()  # fills the catalogs' list
        answer, own = row[0]
        found = {entry[0]: entry for entry in answer or ()}

        def parse(items: Any) -> list[ProfileValue]:
            return _rows.profile_values_unsorted(items, user_id, tenant_id)

        values = _rows.profile_values_unsorted(own, user_id, tenant_id)
        values += layers.application(found.get("application"), offer.application, parse)
        if tenant_id is not None:
            entry = found.get(f"tenant:{tenant_id}")
            values += layers.tenant(tenant_id, entry, offer.tenant, parse)
        values.sort(key=_rows.profile_sort_key)
        return values

    # -- audit and outbox --------------------------------------------------------------------
    @_translated("append_audit")
    def append_audit(self, record: AuditRecord) -> None:
        """Append in this transaction. Only queued: its sequence arrives with the commit's
        round trip (``audit_sequences``); a failure surfaces at the next wait or commit."""
        self._audit.append((record.id, self._write(AUDIT_INSERT, audit_params(record))))

    def audit_sequences(self) -> Mapping[str, int]:
        """After commit: the sequence of each audit record appended, by id."""
        return self._audit_sequences

    @_translated("append_audit")
    def send_queued_audit(self) -> None:
        """Have the server run the audit appends queued so far (one round trip). Called
        before an autonomous append of the same thread, so that the record appended later
        also gets the later sequence (append order = sequence order, as in the reference)."""
        if self._audit:
            self._collect_audit_sequences()

    def _collect_audit_sequences(self) -> None:
        """The ``RETURNING`` rows of the queued appends. After a successful commit the
        Sync's round trip brought them all and reading them waits for nothing; before it,
        the first read flushes and waits once."""
        appended, self._audit = self._audit, []
        for record_id, cursor in appended:
            row = cursor.fetchone()
            if row is not None:
                self._audit_sequences[record_id] = row[0]

    @_translated("append_event")
    def append_event(self, event: OutboxEvent) -> None:
        """Append to the outbox; its sequence follows commit order within its aggregate.
        Only queued: it travels with the next statement or the commit, and a failure (a
        duplicate id) surfaces there.

        Why the lock: a sequence is drawn at INSERT, but becomes visible at COMMIT. Two
        transactions writing one aggregate could draw 5 and 6 and commit 6 first; a relay
        would then publish 6, and 5 after it. The transaction-level advisory lock on the
        aggregate, taken before the sequence is drawn and held to the end of the transaction,
        makes the second writer wait until the first has committed, so it draws a later
        sequence and commits later. Writers of different aggregates do not wait for each
        other (a hash collision only makes two aggregates share a lock).
        """
        # One statement: the CTE's row (the lock) must exist before the INSERT can draw the
        # sequence for the row it builds from it (tests/test_concurrency.py checks this).
        self._write(
            "WITH aggregate_lock AS MATERIALIZED "
            "(SELECT pg_advisory_xact_lock(%s, hashtext(%s))) "
            f"INSERT INTO {S}.outbox_events (id, event_type, aggregate_type, aggregate_id, "
            "tenant_id, occurred_at, payload) "
            "SELECT %s, %s, %s, %s, %s, %s::timestamptz, %s FROM aggregate_lock",
            [_OUTBOX_LOCK_CLASS, event.aggregate_id, event.id, event.event_type,
             event.aggregate_type, event.aggregate_id, event.tenant_id, event.occurred_at,
             Jsonb(dict(event.payload))],
        )  # fmt: skip
        self.appended_events += 1


AUDIT_INSERT = (
    f"INSERT INTO {S}.audit_records (id, occurred_at, tenant_id, actor_id, actor_kind, action, "
    "target_kind, target_id, outcome, reason_code, request_id, details) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING sequence"
)
"""Append one audit record (also used by the store's autonomous append)."""


def audit_params(record: AuditRecord) -> list[Any]:
    """The parameters of ``AUDIT_INSERT`` for ``record``."""
    r = record
    return [r.id, r.occurred_at, r.tenant_id, r.actor_id, r.actor_kind, r.action, r.target_kind,
            r.target_id, r.outcome.value, r.reason_code, r.request_id,
            Jsonb(dict(r.details))]  # fmt: skip
