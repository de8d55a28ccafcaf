"""Where the store's connections come from: its own pool, a provider's pool, or one
provider connection.

Every connection the store works with is in **pipeline mode** and **autocommit** (the store
sends BEGIN/COMMIT itself, see ``_transaction``). The store's own pool keeps its connections
in pipeline mode for their whole life, because leaving pipeline mode costs a round trip (a
Sync); connections borrowed from a provider are put back exactly as they came (pipeline mode
left, autocommit restored), which costs that round trip per transaction.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import psycopg
from psycopg import Pipeline
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool
from user_engine.errors import StoreUnavailableError

__all__ = [
    "Borrowed",
    "ConnectionSource",
    "OwnPool",
    "ProviderConnection",
    "ProviderPool",
]

Connection = psycopg.Connection[Any]


class _Pipelined:
    """The open ``conn.pipeline()`` context of a connection that stays in pipeline mode,
    and the cursor kept as long (``Borrowed.kept_cursor``)."""

    __slots__ = ("context", "cursor", "pipeline")

    def __init__(self, context: AbstractContextManager[Pipeline], pipeline: Pipeline) -> None:
        self.context = context
        self.pipeline = pipeline
        self.cursor: psycopg.Cursor[Any] | None = None


_PIPELINES: weakref.WeakKeyDictionary[Connection, _Pipelined] = weakref.WeakKeyDictionary()
_PIPELINES_LOCK = threading.Lock()


def _enter_pipeline(conn: Connection) -> Pipeline:
    with _PIPELINES_LOCK:
        found = _PIPELINES.get(conn)
    if found is not None:
        return found.pipeline
    context = conn.pipeline()
    pipeline = context.__enter__()
    with _PIPELINES_LOCK:
        _PIPELINES[conn] = _Pipelined(context, pipeline)
    return pipeline


def _leave_pipeline(conn: Connection) -> None:
    with _PIPELINES_LOCK:
        found = _PIPELINES.pop(conn, None)
    if found is not None:
        with contextlib.suppress(psycopg.Error):
            found.context.__exit__(None, None, None)


class _StoreConnection(psycopg.Connection[Any]):
    """The store pool's connection class: leaves pipeline mode cleanly before closing."""

    def close(self) -> None:
        if not self.closed:
            _leave_pipeline(self)
        super().close()


class Borrowed:
    """A connection lent to one transaction, in pipeline mode."""

    __slots__ = ("connection", "pipeline")

    def __init__(self, connection: Connection, pipeline: Pipeline) -> None:
        self.connection = connection
        self.pipeline = pipeline

    def kept_cursor(self) -> psycopg.Cursor[Any]:
        """A cursor kept with the connection for as long as it stays in pipeline mode (a
        new one when the pipeline is this borrow's only). A statement executed again and
        again on it skips psycopg's per-cursor setup (adapters found anew for every new
        cursor): a good part of a small read's cost on the client. Its results are those
        of its last statement: read them before its next one."""
        with _PIPELINES_LOCK:
            found = _PIPELINES.get(self.connection)
        if found is None or found.pipeline is not self.pipeline:
            return self.connection.cursor()
        if found.cursor is None:
            found.cursor = self.connection.cursor()
        return found.cursor


class ConnectionSource(Protocol):
    """Lends connections to transactions and opens dedicated ones (LISTEN, autonomous)."""

    def borrow(self, timeout: float | None = None) -> AbstractContextManager[Borrowed]:
        """A connection for one transaction (waiting at most ``timeout`` seconds, default:
        the pool's); discarded if it comes back broken."""
        ...

    def borrow_independent(self) -> AbstractContextManager[Borrowed]:
        """As ``borrow``, but never the connection of a transaction this thread holds."""
        ...

    def connect(self) -> Connection:
        """A new dedicated autocommit connection (not pipelined), closed by the caller."""
        ...

    def close(self) -> None:
        """Release what the source owns. Idempotent."""
        ...


def _json_loads(data: str | bytes) -> Any:
    """``json.loads`` for the UTF-8 text PostgreSQL sends, without ``json.loads``'s
    detection of the bytes' encoding (a third of its time on a small document)."""
    return _JSON_DECODER.decode(data.decode() if isinstance(data, bytes) else data)


_JSON_DECODER = json.JSONDecoder()


def _configure(conn: Connection) -> None:
    # Timestamps come back as datetime.timezone.utc, whatever the server's default zone.
    conn.execute("SET TIME ZONE 'UTC'")
    set_json_loads(_json_loads, conn)


class OwnPool:
    """A ``psycopg_pool.ConnectionPool`` the store opened from a DSN and closes."""

    def __init__(self, conninfo: str, *, min_size: int, max_size: int, timeout: float) -> None:
        self.conninfo = conninfo
        self.pool: ConnectionPool[Any] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True},
            configure=_configure,
            connection_class=_StoreConnection,
            name="user-engine-postgres",
            open=True,
        )

    @contextlib.contextmanager
    def borrow(self, timeout: float | None = None) -> Iterator[Borrowed]:
        conn = self.pool.getconn(timeout)
        try:
            pipeline = _enter_pipeline(conn)
            yield Borrowed(conn, pipeline)
        finally:
            if conn.broken or conn.closed:
                _leave_pipeline(conn)
            self.pool.putconn(conn)

    def borrow_independent(self) -> AbstractContextManager[Borrowed]:
        # Another connection of the pool: this thread's own transaction holds its own.
        return self.borrow()

    def connect(self) -> Connection:
        conn = psycopg.connect(self.conninfo, autocommit=True)
        _configure(conn)
        return conn

    def close(self) -> None:
        self.pool.close()


def _restoring(conn: Connection) -> Callable[[], None]:
    """Switch a provider's connection to autocommit; return how to switch it back."""
    autocommit = conn.autocommit
    if not autocommit:
        conn.autocommit = True

    def restore() -> None:
        _leave_pipeline(conn)
        if not autocommit and not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.autocommit = False

    return restore


class ProviderPool:
    """A provider's ``psycopg_pool.ConnectionPool``; borrowed from, never closed."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    @contextlib.contextmanager
    def borrow(self, timeout: float | None = None) -> Iterator[Borrowed]:
        with self.pool.connection(timeout) as conn:
            restore = _restoring(conn)
            try:
                yield Borrowed(conn, _enter_pipeline(conn))
            finally:
                restore()

    def borrow_independent(self) -> AbstractContextManager[Borrowed]:
        return self.borrow()

    def connect(self) -> Connection:
        conninfo = self.pool.conninfo
        kwargs = self.pool.kwargs
        return psycopg.connect(
            conninfo() if callable(conninfo) else conninfo,
            **{**((kwargs() if callable(kwargs) else kwargs) or {}), "autocommit": True},
        )

    def close(self) -> None:
        """The provider owns the pool."""


class ProviderConnection:
    """One provider connection: transactions take turns on it (a lock serialises them).

    Work that must be independent of an open transaction (autonomous audit appends, LISTEN)
    uses a new connection with the same parameters (``connect``).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._holder: int | None = None

    @contextlib.contextmanager
    def borrow(self, timeout: float | None = None) -> Iterator[Borrowed]:
        if self._holder == threading.get_ident():
            raise StoreUnavailableError(
                "the store was given one connection, and this thread's transaction holds it: "
                "nested top-level transactions need a pool (setting 'pool' or 'dsn')",
                code="store.busy",
            )
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise StoreUnavailableError(
                "the store's one connection stayed busy", code="store.unavailable"
            )
        self._holder = threading.get_ident()
        try:
            restore = _restoring(self.conn)
            try:
                yield Borrowed(self.conn, _enter_pipeline(self.conn))
            finally:
                restore()
        finally:
            self._holder = None
            self._lock.release()

    @contextlib.contextmanager
    def borrow_independent(self) -> Iterator[Borrowed]:
        # The one connection may be held by this very thread: use a short-lived second one.
        with self.connect() as conn, conn.pipeline() as pipeline:
            yield Borrowed(conn, pipeline)

    def connect(self) -> Connection:
        params: dict[str, Any] = dict(self.conn.info.get_parameters())
        if self.conn.info.password:
            params["password"] = self.conn.info.password
        return psycopg.connect(**params, autocommit=True)

    def close(self) -> None:
        """The provider owns the connection."""
