"""The claim's cost follows its limit, not the backlog, even when the planner's estimate for
the outbox is stale (the usual state of a queue table)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from user_engine.domain import AccessScope
from user_engine_store_postgres.store import _CLAIM_SETUP_SQL, _CLAIM_SQL, _PLATFORM_SETTINGS

BACKLOG = 3000
LIMIT = 20


def _rows_read_from_outbox(plan: Any) -> int:
    """The most rows any single scan of the outbox produced (first loop of each node)."""
    most = 0
    if isinstance(plan, dict):
        if plan.get("Relation Name") == "outbox_events" and "Scan" in str(plan.get("Node Type")):
            most = int(plan.get("Actual Rows", 0))
        for value in plan.values():
            most = max(most, _rows_read_from_outbox(value))
    elif isinstance(plan, list):
        for item in plan:
            most = max(most, _rows_read_from_outbox(item))
    return most


def test_a_claim_reads_about_limit_rows_even_with_the_estimate_of_an_empty_outbox(
    store: Any,
    records: Any,
    admin_connection: psycopg.Connection[Any],
    runtime_connection: psycopg.Connection[Any],
) -> None:
    # Analysed while empty (a drained outbox): the planner then believes a sort of "every
    # pending row" is cheap, and would sort the whole backlog on each claim.
    admin_connection.execute("ANALYZE user_engine.outbox_events")
    with store.transaction(AccessScope.all_tenants()) as tx:
        for n in range(BACKLOG):
            tx.append_event(records.event(f"usr_{n % 100}"))
    now = datetime.now(UTC)
    params = {"now": now, "limit": LIMIT, "token": "t", "expires": now + timedelta(seconds=30)}
    with runtime_connection.transaction(force_rollback=True):
        runtime_connection.execute(_CLAIM_SETUP_SQL, _PLATFORM_SETTINGS)
        row = runtime_connection.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + _CLAIM_SQL, params
        ).fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    read = _rows_read_from_outbox(plan)
    assert 0 < read <= 2 * LIMIT, f"the claim read {read} outbox rows for a limit of {LIMIT}"
    claimed = store.claim_events(limit=LIMIT, lease=timedelta(seconds=30), now=now)
    assert [c.event.sequence for c in claimed] == sorted(c.event.sequence for c in claimed)
    assert len(claimed) == LIMIT


def test_taking_a_lease_is_a_hot_update_that_writes_no_index_entry(
    store: Any, records: Any, runtime_connection: psycopg.Connection[Any]
) -> None:
    # Fresh pages are filled to the table's fillfactor, leaving room for the leased copies.
    with store.transaction(AccessScope.all_tenants()) as tx:
        for n in range(200):
            tx.append_event(records.event(f"usr_{n % 20}"))
    now = datetime.now(UTC)
    params = {"now": now, "limit": 100, "token": "t", "expires": now + timedelta(seconds=30)}
    with runtime_connection.transaction(force_rollback=True):
        runtime_connection.execute(_CLAIM_SETUP_SQL, _PLATFORM_SETTINGS)
        leased = runtime_connection.execute(_CLAIM_SQL, params).fetchall()
        row = runtime_connection.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE schemaname = 'user_engine' AND relname = 'outbox_events'"
        ).fetchone()
    assert len(leased) == 100  # the first five events of each of the 20 aggregates
    assert row == (100, 100)
