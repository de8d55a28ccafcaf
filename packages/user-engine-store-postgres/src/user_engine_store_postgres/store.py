"""``PostgresStore``: the ``UserEngineStore`` on PostgreSQL (psycopg 3 and psycopg_pool).

Transactions are ``PostgresTransaction`` objects (``_transaction``: lazy BEGIN, pipelined
statements, row-level-security scope). The store-level operations below (autonomous audit,
audit reads, the outbox relay contract, diagnostics) are each one implicit transaction of one
round trip where they can be: ``set_config(scope) ; statement ; Sync``.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from user_engine.domain import (
    AccessScope,
    AuditFilter,
    AuditPage,
    AuditRecord,
    CatalogVersion,
    Claim,
    ClaimedEvent,
    OutboxEvent,
    OutboxStats,
    RetryPolicy,
)
from user_engine.errors import ConfigurationError, StoreUnavailableError, UserEngineError
from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine.ports import RECORD_KINDS, Readiness, StoreCapability

from user_engine_store_postgres import _rows
from user_engine_store_postgres._connections import (
    Borrowed,
    ConnectionSource,
    OwnPool,
    ProviderConnection,
    ProviderPool,
)
from user_engine_store_postgres._errors import translate
from user_engine_store_postgres._migrator import (
    SCHEMA,
    TENANT_TABLES,
    AppliedMigration,
    apply_migrations,
    migration_files,
    schema_problems,
)
from user_engine_store_postgres._notifier import Notifier
from user_engine_store_postgres._shared_layers import SharedLayers
from user_engine_store_postgres._transaction import (
    AUDIT_INSERT,
    NOTIFY_CHANNEL,
    SCOPE_SQL,
    PostgresTransaction,
    audit_params,
    scope_settings,
)
from user_engine_store_postgres.embedded import EmbeddedPostgres

__all__ = ["CatalogCache", "PostgresStore"]

S = SCHEMA
_PLATFORM = AccessScope.all_tenants()
_MAX_ERROR_LENGTH = 1000
_READINESS_TIMEOUT = 5.0  # seconds; a health probe must answer even when the pool is stuck

RECORD_TABLES = RECORD_KINDS
"""``record_counts`` keys; each is also the name of its table."""


class CatalogCache:
    """Parsed catalog versions by (application, version). Published versions never change,
    so an entry never goes stale; only versions read outside any uncommitted write of ours
    are added (a version this transaction inserted might still roll back)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[tuple[str, int], CatalogVersion] = {}
        self._versions: dict[str, list[int]] = {}
        self._keys_literal = "{}"

    def get(self, application_id: str, version: int) -> CatalogVersion | None:
        """A cached version, or None."""
        return self._catalogs.get((application_id, version))

    def versions_of(self, application_id: str) -> list[int]:
        """Cached versions of one application (the query leaves their attributes out)."""
        return list(self._versions.get(application_id, ()))

    def keys(self) -> list[str]:
        """``"<application>:<version>"`` of every cached version."""
        return [f"{a}:{v}" for a, v in list(self._catalogs)]

    def keys_literal(self) -> str:
        """``keys`` as a PostgreSQL text[] literal, kept up to date as versions are added:
        a plain string parameter costs the driver far less than dumping a list."""
        return self._keys_literal

    def resolve(self, row: Sequence[Any], *, cacheable: bool) -> CatalogVersion:
        """The catalog of a row whose attributes may be NULL (then it is cached)."""
        application_id, version, published_at, published_by, attributes = row
        cached = self._catalogs.get((application_id, version))
        if cached is not None:  # whether or not the row carries the attributes again
            return cached
        catalog = CatalogVersion(
            application_id=application_id,
            version=version,
            attributes=_rows.attributes_from_json(attributes),
            published_at=published_at,
            published_by=published_by,
        )
        if cacheable:
            with self._lock:
                if (application_id, version) not in self._catalogs:
                    self._catalogs[(application_id, version)] = catalog
                    self._versions.setdefault(application_id, []).append(version)
                    self._keys_literal = _text_array(self.keys())
        return catalog

    def resolve_current(
        self, items: Sequence[Sequence[Any]] | None, *, cacheable: bool
    ) -> list[CatalogVersion]:
        """The catalogs of a current-catalogs JSON array (``_transaction``): items
        ``[application, version, published_at, published_by, attributes or null]``, by
        application id; null attributes mean the cache holds that version."""
        if not items:
            return []
        catalogs = self._catalogs
        found: list[CatalogVersion] = []
        for item in items:
            if item[4] is None:
                found.append(catalogs[(item[0], item[1])])
            else:
                # JSON carries the timestamp as ISO 8601 text, at full precision.
                row = (item[0], item[1], datetime.fromisoformat(item[2]), item[3], item[4])
                found.append(self.resolve(row, cacheable=cacheable))
        return found


def _text_array(items: Sequence[str]) -> str:
    """A PostgreSQL array literal of ``items`` (each double-quoted, quotes and backslashes
    escaped: any text survives)."""
    quoted = (item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return "{" + ",".join(f'"{item}"' for item in quoted) + "}"


class PostgresStore:
    """The PostgreSQL ``UserEngineStore``.

    Give exactly one of ``dsn`` (the store opens and closes its own pool), ``pool`` (a
    provider's ``psycopg_pool.ConnectionPool``, never closed by the store) or ``connection``
    (one provider ``psycopg.Connection``: transactions take turns on it). ``owner_dsn`` is
    the role ``migrate`` uses (default: ``dsn``). ``embedded`` is a running
    ``EmbeddedPostgres`` the store stops on ``close`` (the factory passes it when it
    started one). Prefer building stores through the ``postgres`` factory
    (``user_engine_store_postgres.hooks.create_store``).
    """

    capabilities = frozenset(
        {
            StoreCapability.CONCURRENT_WRITERS,
            StoreCapability.MULTI_PROCESS,
            StoreCapability.WAKE_ON_EVENT,
            StoreCapability.ROW_LEVEL_SECURITY,
        }
    )

    def __init__(
        self,
        *,
        dsn: str | None = None,
        owner_dsn: str | None = None,
        pool: psycopg_pool.ConnectionPool[Any] | None = None,
        connection: psycopg.Connection[Any] | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        pool_timeout: float = 30.0,
        embedded: EmbeddedPostgres | None = None,
        name: str = "postgres",
    ) -> None:
        given = [x for x in (dsn, pool, connection) if x is not None]
        if len(given) != 1:
            raise ConfigurationError(
                "the postgres store needs exactly one of dsn, pool or connection",
                code="configuration.invalid",
            )
        self.name = name
        self.catalogs = CatalogCache()
        self.shared_layers = SharedLayers()
        """Copies of the shared profile layers, stamped with their generations."""
        self._embedded = embedded
        self._owner_dsn = owner_dsn or dsn
        self._pool_timeout = pool_timeout
        self._closed = False
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._open = _OpenTransactions()
        source: ConnectionSource
        try:
            if dsn is not None:
                source = OwnPool(
                    dsn, min_size=min_pool_size, max_size=max_pool_size, timeout=pool_timeout
                )
            elif pool is not None:
                source = ProviderPool(pool)
            else:
                assert connection is not None
                source = ProviderConnection(connection)
        except psycopg.Error as error:
            raise translate(error, "open") from error
        self._source = source
        self._notifier = Notifier(source.connect, NOTIFY_CHANNEL)

    def __repr__(self) -> str:
        return f"PostgresStore(name={self.name!r}, closed={self._closed})"

    # -- lifecycle ---------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        """Schema version against the code, dirty marker, checksums, RLS on every tenant
        table, and a runtime role that RLS applies to. Fails closed; never raises."""
        if self._closed:
            return Readiness(False, None, LATEST_SCHEMA_VERSION, ("store.closed",))
        try:
            files = migration_files()
            with self._source.borrow(timeout=min(self._pool_timeout, _READINESS_TIMEOUT)) as b:
                conn = b.connection
                roles = conn.execute(
                    "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                )
                security = conn.execute(
                    "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity, "
                    "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = ANY(%s)",
                    [SCHEMA, list(TENANT_TABLES)],
                )
                b.pipeline.sync()
                bypass = roles.fetchone()
                secured = {name: bool(on and count) for name, on, count in security.fetchall()}
                try:
                    versions = conn.execute(
                        f"SELECT version, checksum, dirty FROM {S}.schema_migrations "
                        "ORDER BY version"
                    )
                    b.pipeline.sync()
                    applied = [AppliedMigration(v, c, d) for v, c, d in versions.fetchall()]
                except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
                    applied = []
        except psycopg.errors.InsufficientPrivilege:
            return Readiness(False, None, LATEST_SCHEMA_VERSION, ("store.permission_denied",))
        except UserEngineError as error:  # e.g. migrations missing from the installation
            return Readiness(False, None, LATEST_SCHEMA_VERSION, (error.code,))
        except Exception:  # readiness never raises: an unreachable store is "not ready"
            return Readiness(False, None, LATEST_SCHEMA_VERSION, ("store.unreachable",))
        problems = schema_problems(applied, files)
        complete = [m.version for m in applied if not m.dirty]
        behind = "schema.behind" in problems
        # Behind, a later migration's tables may not exist yet (that is "behind" already);
        # every table that does exist must be secured all the same.
        tables = [t for t in TENANT_TABLES if t in secured] if behind else TENANT_TABLES
        if (not behind or complete) and not all(secured.get(table) for table in tables):
            problems.append("rls.missing")
        if bypass is not None and bypass[0]:
            problems.append("rls.bypassed")
        version = max(complete) if complete else None
        return Readiness(not problems, version, LATEST_SCHEMA_VERSION, tuple(problems))

    def migrate(self) -> int:
        """Apply pending migrations with the owner role (``owner_dsn``, default ``dsn``)."""
        self._check_open()
        conninfo = self._owner_dsn
        if conninfo is None:
            conninfo = self._provider_conninfo()
        return apply_migrations(conninfo)

    def _provider_conninfo(self) -> str:
        with contextlib.closing(self._source.connect()) as conn:
            params: dict[str, Any] = dict(conn.info.get_parameters())
            if conn.info.password:
                params["password"] = conn.info.password
        return psycopg.conninfo.make_conninfo(**params)

    def close(self) -> None:
        """Close the pool (if the store opened it), the listener, an embedded server."""
        if self._closed:
            return
        self._closed = True
        self._notifier.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self._source.close()
        if self._embedded is not None:
            self._embedded.stop()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError("the store is closed", code="store.closed")

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _borrow(self, operation: str, *, independent: bool = False) -> Iterator[Borrowed]:
        """A pooled connection; driver errors raised inside become core errors.

        ``independent``: never the connection of a transaction this thread holds open."""
        self._check_open()
        try:
            with (
                self._source.borrow_independent() if independent else self._source.borrow()
            ) as borrowed:
                yield borrowed
        except UserEngineError:
            raise
        except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed,
                UnicodeError) as error:  # fmt: skip
            raise translate(error, operation) from error

    @contextlib.contextmanager
    def transaction(self, scope: AccessScope) -> Iterator[PostgresTransaction]:
        """A new top-level transaction under ``scope`` on a pooled connection."""
        with self._borrow("transaction") as borrowed:
            transaction = PostgresTransaction(self, borrowed, scope)
            opened = self._open.here
            opened.append(transaction)
            try:
                try:
                    yield transaction
                except BaseException:
                    with contextlib.suppress(Exception):
                        transaction.finish(commit=False)
                    raise
                transaction.finish(commit=True)
            finally:
                opened.remove(transaction)
                if not transaction.ended_cleanly:
                    # Whatever state it is in (an implicit transaction left open, results
                    # not read), it must not reach the next borrower: close it, the pool
                    # replaces it.
                    borrowed.connection.close()

    def events_committed(self) -> None:
        """Called after a commit that appended outbox events: wake the relays."""
        self._notifier.poke()

    @contextlib.contextmanager
    def _implicit(
        self, operation: str, scope: AccessScope, *, independent: bool = False
    ) -> Iterator[Borrowed]:
        """A connection whose statements up to the caller's sync run as one implicit
        transaction under ``scope`` (committed by that sync)."""
        with self._borrow(operation, independent=independent) as borrowed:
            borrowed.connection.execute(SCOPE_SQL, scope_settings(scope))
            yield borrowed

    def append_audit_autonomous(self, record: AuditRecord) -> AuditRecord:
        """Append and commit at once on another connection than any open transaction's.

        Audit appends of this thread's open transactions are only queued; they are sent
        first, so that their sequences stay below this record's."""
        for transaction in self._open.here:
            transaction.send_queued_audit()
        with self._implicit("append_audit_autonomous", _PLATFORM, independent=True) as b:
            cursor = b.connection.execute(AUDIT_INSERT, audit_params(record))
            b.pipeline.sync()  # commits the implicit transaction
            row = cursor.fetchone()
        assert row is not None
        return _rows.with_audit_sequence(record, row[0])

    def read_audit(self, audit_filter: AuditFilter, scope: AccessScope) -> AuditPage:
        """Matching records in append order; a non-platform scope sees only records whose
        tenant is the scope's (platform records for a scope without tenant)."""
        limit = audit_filter.limit
        if limit <= 0:
            return AuditPage((), None)
        where = ["sequence > %s"]
        params: list[Any] = [audit_filter.after_sequence]
        if not scope.platform:
            if scope.tenant_id is None:
                where.append("tenant_id IS NULL")
            else:
                where.append("tenant_id = %s")
                params.append(scope.tenant_id)
        for column, value in (
            ("tenant_id", audit_filter.tenant_id),
            ("actor_id", audit_filter.actor_id),
            ("action", audit_filter.action),
            ("outcome", audit_filter.outcome.value if audit_filter.outcome else None),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if audit_filter.since is not None:
            where.append("occurred_at >= %s")
            params.append(audit_filter.since)
        if audit_filter.until is not None:
            where.append("occurred_at < %s")
            params.append(audit_filter.until)
        params.append(limit + 1)
        with self._implicit("read_audit", scope) as b:
            cursor = b.connection.execute(
                f"SELECT {_rows.AUDIT_COLUMNS} FROM {S}.audit_records "
                f"WHERE {' AND '.join(where)} ORDER BY sequence LIMIT %s",
                params,
            )
            b.pipeline.sync()
            rows = cursor.fetchall()
        records = tuple(_rows.audit_record(row) for row in rows[:limit])
        more = len(rows) > limit
        return AuditPage(records, records[-1].sequence if more and records else None)

    # -- outbox relay contract ---------------------------------------------------------------
    def claim_events(self, *, limit: int, lease: timedelta, now: datetime) -> list[ClaimedEvent]:
        """Lease the oldest claimable events, a prefix per aggregate, in one statement.

        ``candidate`` takes pending events that are due, not under a live lease and whose
        aggregate's first pending event (one probe of the per-aggregate index) is not an
        earlier event under a live lease or waiting for a retry, oldest first, locking them
        with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers never wait for each other.
        Leases go out as prefixes and a release puts back the rest of its aggregate, so a
        blocked aggregate's first pending event is nearly always the blocked one; the rare
        others (a later event whose retry falls due after the first's) are caught below.
        SKIP LOCKED also hides events another claimer is taking right now, and a concurrent
        claim committed after this statement's snapshot is seen only by the row locks, not
        by the NOT EXISTS. So ``linked``/``claimable`` keep an event only if
        its aggregate's previous pending event (one backward probe of the per-aggregate
        index) is the previous candidate, all the way from the aggregate's first pending
        event: each aggregate goes out as a prefix, in order, and two claimers never hold
        events of one aggregate. Every step is an index probe: the cost follows ``limit``,
        not the size of the backlog.

        That needs the plan that walks the pending index in sequence order and stops at
        ``limit``. The other plan (take every pending row, sort, cut) costs the whole
        backlog per claim, and the planner picks it whenever its row estimate for this
        ever-churning table is low, which it usually is (a drained outbox was analysed
        empty). So the claim's transaction turns sorting off (``_CLAIM_SETUP_SQL``): only
        the ordered walk needs no sort. The UPDATE finds the candidates by ``ctid`` (they
        cannot move: the statement holds their row locks), not by a primary key probe. No
        index depends on the lease columns and the table leaves room on its pages (migration
        0004), so the UPDATE is a HOT update: no new index entries, little WAL.
        """
        if limit <= 0:
            return []
        token = uuid.uuid4().hex
        expires_at = now + lease
        with self._borrow("claim_events") as b:
            b.connection.execute(_CLAIM_SETUP_SQL, _PLATFORM_SETTINGS, prepare=True)
            cursor = b.connection.execute(_CLAIM_SQL, {
                "now": now, "limit": limit, "token": token, "expires": expires_at,
            }, prepare=True)  # fmt: skip
            b.pipeline.sync()
            rows = cursor.fetchall()
        rows.sort(key=_BY_SEQUENCE)
        claimed = []
        for row in rows:
            event = _rows.event(row)
            claimed.append(ClaimedEvent(event, Claim(event.id, token), expires_at))
        return claimed

    def ack_events(self, claims: Sequence[Claim]) -> int:
        """Delete the events of live claims (token still the event's lease).

        One statement per lease token, in one round trip: a relay acks what one claim
        gave it, so there is usually one token, and ``id = ANY(...)`` is a plain primary
        key lookup per event."""
        if not claims:
            return 0
        by_token: defaultdict[str, list[str]] = defaultdict(list)
        for claim in claims:
            by_token[claim.token].append(claim.event_id)
        with self._borrow("ack_events") as b:
            b.connection.execute(_RELAY_SETUP_SQL, _PLATFORM_SETTINGS, prepare=True)
            cursors = [
                b.connection.execute(_ACK_SQL, (ids, token), prepare=True)
                for token, ids in by_token.items()
            ]
            b.pipeline.sync()
            return sum(cursor.rowcount for cursor in cursors)

    def release_events(
        self, claims: Sequence[Claim], *, error: str, now: datetime, policy: RetryPolicy
    ) -> int:
        """Count a failure for each live claim: retry later, or dead-letter when exhausted.

        Two round trips in one transaction: lock the claimed rows (to read their attempt
        counts), then update them with the delays the policy drew in claim order.
        """
        if not claims:
            return 0
        text = error[:_MAX_ERROR_LENGTH].replace("\x00", "\ufffd")
        with self._borrow("release_events") as b:
            conn = b.connection
            conn.execute("BEGIN")
            conn.execute(SCOPE_SQL, scope_settings(_PLATFORM))
            cursor = conn.execute(
                f"SELECT id, attempts, lease_token FROM {S}.outbox_events "
                "WHERE id = ANY(%s) AND lease_token IS NOT NULL FOR UPDATE",
                [[c.event_id for c in claims]],
            )
            b.pipeline.sync()
            held = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
            ids: list[str] = []
            attempts: list[int] = []
            available: list[datetime | None] = []
            statuses: list[str] = []
            for claim in claims:
                current = held.pop(claim.event_id, None)
                if current is None or current[1] != claim.token:
                    if current is not None:
                        held[claim.event_id] = current
                    continue
                count = current[0] + 1
                dead = policy.is_exhausted(count)
                ids.append(claim.event_id)
                attempts.append(count)
                available.append(None if dead else now + policy.delay_after(count))
                statuses.append("dead" if dead else "pending")
            if ids:
                conn.execute(
                    f"UPDATE {S}.outbox_events e SET attempts = c.attempts, last_error = %s, "
                    "available_at = c.available_at, status = c.status, lease_token = NULL, "
                    "lease_expires_at = NULL FROM unnest(%s::text[], %s::int[], "
                    "%s::timestamptz[], %s::text[]) AS c(id, attempts, available_at, status) "
                    "WHERE e.id = c.id",
                    [text, ids, attempts, available, statuses],
                )
            conn.execute("COMMIT")
            b.pipeline.sync()
        return len(ids)

    def _events(self, status: str, limit: int, after: int) -> list[OutboxEvent]:
        # The status is a literal, not a parameter: only then can a generic (prepared) plan
        # use the partial index of that status.
        assert status in ("pending", "dead")
        with self._implicit(f"{status}_events", _PLATFORM) as b:
            cursor = b.connection.execute(
                f"SELECT {_rows.EVENT_COLUMNS} FROM {S}.outbox_events WHERE status = '{status}' "
                "AND sequence > %s ORDER BY sequence LIMIT %s",
                [after, max(limit, 1)],
            )
            b.pipeline.sync()
            return [_rows.event(row) for row in cursor.fetchall()]

    def pending_events(self, *, limit: int, after_sequence: int = 0) -> list[OutboxEvent]:
        """Pending (not dead) events in sequence order."""
        return self._events("pending", limit, after_sequence)

    def dead_letters(self, *, limit: int, after_sequence: int = 0) -> list[OutboxEvent]:
        """Dead-lettered events in sequence order."""
        return self._events("dead", limit, after_sequence)

    def requeue_dead_letters(self, event_ids: Sequence[str], *, now: datetime) -> int:
        """Make dead-lettered events pending again with zero attempts; wake relays."""
        if not event_ids:
            return 0
        with self._implicit("requeue_dead_letters", _PLATFORM) as b:
            cursor = b.connection.execute(
                f"UPDATE {S}.outbox_events SET status = 'pending', attempts = 0, "
                "available_at = %s WHERE id = ANY(%s) AND status = 'dead'",
                [now, list(event_ids)],
            )
            b.pipeline.sync()
            requeued = cursor.rowcount
        if requeued:
            self._notifier.poke()
        return requeued

    def outbox_stats(self) -> OutboxStats:
        """Counts of pending, leased and dead events and the oldest pending time."""
        with self._implicit("outbox_stats", _PLATFORM) as b:
            # Leased events are always pending; each count reads one partial index.
            cursor = b.connection.execute(
                f"SELECT (SELECT count(*) FROM {S}.outbox_events WHERE status = 'pending'), "
                f"(SELECT count(*) FROM {S}.outbox_events WHERE status = 'pending' "
                "AND lease_token IS NOT NULL), "
                f"(SELECT count(*) FROM {S}.outbox_events WHERE status = 'dead'), "
                f"(SELECT min(occurred_at) FROM {S}.outbox_events WHERE status = 'pending')"
            )
            b.pipeline.sync()
            row = cursor.fetchone()
        assert row is not None
        return OutboxStats(pending=row[0], in_flight=row[1], dead=row[2], oldest_pending_at=row[3])

    def wait_for_events(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a NOTIFY of committed outbox events.

        One dedicated LISTEN connection, opened at the first call. When LISTEN is not
        possible (e.g. behind a transaction-mode pooler) it falls back to sleeping out the
        timeout: the relay then simply polls. Never raises.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        if not self._listen_lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            if self._closed:
                return False
            listener = self._listener
            if listener is None or listener.closed:
                listener = self._source.connect()
                listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self._listener = listener
            remaining = max(deadline - time.monotonic(), 0.0)
            for _ in listener.notifies(timeout=remaining, stop_after=1):
                return True
            return False
        except Exception:  # the polling fallback
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    self._listener.close()
                self._listener = None
            time.sleep(max(deadline - time.monotonic(), 0.0))
            return False
        finally:
            self._listen_lock.release()

    def record_counts(self) -> Mapping[str, int]:
        """Rows per record kind (counts only), across every tenant."""
        with self._implicit("record_counts", _PLATFORM) as b:
            cursor = b.connection.execute(
                "SELECT "
                + ", ".join(f"(SELECT count(*) FROM {S}.{table})" for table in RECORD_TABLES)
            )
            b.pipeline.sync()
            row = cursor.fetchone()
        assert row is not None
        return dict(zip(RECORD_TABLES, (int(n) for n in row), strict=True))


class _OpenTransactions(threading.local):
    """The transactions the current thread holds open on one store (``here``)."""

    def __init__(self) -> None:
        self.here: list[PostgresTransaction] = []


_BY_SEQUENCE = operator.itemgetter(
    _rows.EVENT_COLUMNS.replace(" ", "").split(",").index("sequence")
)
_PLATFORM_SETTINGS = scope_settings(_PLATFORM)
# The relay's bookkeeping transactions (claim, ack) run under the platform scope and commit
# without waiting for their WAL flush: a crash may lose the last of them, which the outbox
# contract already covers (a lost claim is an expired lease, a lost ack a redelivery with
# the same event id).
_RELAY_SETUP_SQL = SCOPE_SQL + ", set_config('synchronous_commit', 'off', true)"
# See claim_events: the only plan without a sort is the ordered walk of the pending index.
_CLAIM_SETUP_SQL = _RELAY_SETUP_SQL + ", set_config('enable_sort', 'off', true)"
# %b: a text[] in binary costs a fifth of the text form to dump.
_ACK_SQL = f"DELETE FROM {S}.outbox_events WHERE id = ANY(%b) AND lease_token = %s"
_CLAIM_SQL = f"""
WITH candidate AS (
    SELECT e.ctid, e.sequence, e.aggregate_id
    FROM {S}.outbox_events e
    WHERE e.status = 'pending'
      AND (e.available_at IS NULL OR e.available_at <= %(now)s)
      AND (e.lease_token IS NULL OR e.lease_expires_at <= %(now)s)
      AND NOT EXISTS (
          SELECT 1 FROM (
              SELECT f.sequence, f.available_at, f.lease_token, f.lease_expires_at
              FROM {S}.outbox_events f
              WHERE f.aggregate_id = e.aggregate_id AND f.status = 'pending'
              ORDER BY f.sequence LIMIT 1
          ) first
          WHERE first.sequence < e.sequence
            AND ((first.available_at IS NOT NULL AND first.available_at > %(now)s)
                 OR (first.lease_token IS NOT NULL AND first.lease_expires_at > %(now)s)))
    ORDER BY e.sequence
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
linked AS (
    SELECT c.ctid, c.sequence, c.aggregate_id,
           previous.sequence IS NOT DISTINCT FROM lag(c.sequence) OVER same_aggregate AS links
    FROM candidate c
    LEFT JOIN LATERAL (
        SELECT b.sequence FROM {S}.outbox_events b
        WHERE b.aggregate_id = c.aggregate_id AND b.status = 'pending'
          AND b.sequence < c.sequence
        ORDER BY b.sequence DESC LIMIT 1
    ) previous ON true
    WINDOW same_aggregate AS (PARTITION BY c.aggregate_id ORDER BY c.sequence)
),
claimable AS (
    SELECT ctid FROM (
        SELECT ctid, bool_and(links) OVER (PARTITION BY aggregate_id ORDER BY sequence) AS ok
        FROM linked
    ) chain
    WHERE ok
)
UPDATE {S}.outbox_events e
SET lease_token = %(token)s, lease_expires_at = %(expires)s
FROM claimable WHERE e.ctid = claimable.ctid
RETURNING {", ".join("e." + c.strip() for c in _rows.EVENT_COLUMNS.split(","))}
"""
