"""Wakes relays after commits that appended outbox events, off the writers' path.

NOTIFY inside the writing transaction would serialise every such commit, its WAL flush
included, on the notify queue's lock; a NOTIFY of its own after each commit would cost the
writer a statement and a transaction. Instead a writer only sets a flag; one background
thread per store sends ``pg_notify`` on its own connection (asynchronous commit: a
notification is never durable anyway). It sends at most one notification per
``MIN_INTERVAL``: commits in between are covered by the next one. A relay only needs to be
woken once to claim everything committed so far, so under load this costs a notification
per interval instead of one per commit, and adds at most that interval to the wake-up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

__all__ = ["MIN_INTERVAL", "Notifier"]

MIN_INTERVAL = 0.005
"""Seconds between two notifications of one store (pokes in between are coalesced)."""

logger = logging.getLogger("user_engine_store_postgres")


class Notifier:
    """Coalescing background NOTIFY on ``channel``; ``poke()`` after each such commit."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str) -> None:
        self._connect = connect
        self._channel = channel
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def poke(self) -> None:
        """Ask for a notification soon (never blocks, never raises)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name="user-engine-notify", daemon=True
                    )
                    self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        """Stop the thread (after a last pending notification). Idempotent."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._stop.set()
        self._wanted.set()
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._closed:
                    return
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                        conn.execute("SET synchronous_commit = off")
                    conn.execute("SELECT pg_notify(%s, '')", [self._channel])
                    self._stop.wait(MIN_INTERVAL)  # coalesce the pokes of this interval
                except psycopg.Error as error:
                    # Relays fall back to polling until the next commit pokes us again.
                    logger.warning("outbox notification failed: %s", type(error).__name__)
                    if conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            conn.close()
                    conn = None
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
