"""Racing writers: the database picks exactly one winner; outbox order under concurrency."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from user_engine.domain import AccessScope, ExternalIdentity
from user_engine.errors import ConflictError
from user_engine_store_postgres.hooks import create_store

T0 = datetime(2025, 1, 1, tzinfo=UTC)

PLATFORM = AccessScope.all_tenants()


def _race(count: int, attempt: Any) -> list[object]:
    """Run ``attempt(i)`` in ``count`` threads released together; outcomes in thread order."""
    barrier = threading.Barrier(count)
    outcomes: list[object] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = attempt(i)
        except Exception as error:  # collected and asserted by the caller
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_eight_racing_writers_linking_one_identity_have_exactly_one_winner(
    postgres_settings: Any, records: Any
) -> None:
    store = create_store({**postgres_settings, "max_pool_size": 10})
    try:
        users = [records.user() for _ in range(8)]
        with store.transaction(PLATFORM) as tx:
            for user in users:
                tx.insert_user(user)

        def link(i: int) -> str:
            with store.transaction(PLATFORM) as tx:
                tx.insert_identity(ExternalIdentity("https://idp", "same-subject", users[i].id, T0))
                tx.append_audit(records.audit(None, "identity.link"))
            return users[i].id

        outcomes = _race(8, link)
        winners = [o for o in outcomes if isinstance(o, str)]
        losers = [o for o in outcomes if isinstance(o, ConflictError)]
        assert len(winners) == 1
        assert len(losers) == 7
        assert {e.code for e in losers} == {"identity.already_linked"}
        with store.transaction(PLATFORM) as tx:
            linked = tx.get_identity("https://idp", "same-subject")
        assert linked is not None
        assert linked.user_id == winners[0]
        assert store.record_counts()["audit_records"] == 1, "the losers' audit rolled back"
    finally:
        store.close()


def test_racing_writers_of_one_handle_in_different_case_have_exactly_one_winner(
    store: Any, records: Any
) -> None:
    user = records.user()

    def create(i: int) -> str:
        handle = "Someone@Example.org" if i % 2 else "someone@example.ORG"
        with store.transaction(PLATFORM) as tx:
            tx.insert_account(records.account(user, handle))
        return handle

    outcomes = _race(6, create)
    assert sum(isinstance(o, str) for o in outcomes) == 1
    assert {o.code for o in outcomes if isinstance(o, ConflictError)} == {"account.handle_taken"}


def test_racing_stale_writers_of_one_profile_value_have_exactly_one_winner(
    store: Any, records: Any
) -> None:
    app, user = records.application(), records.user()
    with store.transaction(PLATFORM) as tx:
        first = tx.put_profile_value(records.value(app, "v0", user=user), expected_version=0)

    def write(i: int) -> int:
        with store.transaction(PLATFORM) as tx:
            stored = tx.put_profile_value(
                records.value(app, f"v{i}", user=user), expected_version=first.version
            )
        return int(stored.version)

    outcomes = _race(6, write)
    assert [o for o in outcomes if isinstance(o, int)] == [2]
    assert {o.code for o in outcomes if isinstance(o, ConflictError)} == {"profile.stale"}


def _wait_until_blocked_on_the_aggregate_lock(admin_dsn: str) -> None:
    """Poll pg_stat_activity until a backend waits for an advisory lock (no timing)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        while True:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND wait_event = 'advisory'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            conn.execute("SELECT pg_sleep(0.01)")


def _sequences(store: Any) -> dict[str, int]:
    """The sequence of every pending event, by id."""
    return {e.id: e.sequence for e in store.pending_events(limit=1000)}


def _blocked_writer(holder: Any, store: Any, event: Any, admin_dsn: str) -> threading.Thread:
    """Start a thread that appends ``event`` and commits, once ``holder`` (which appended an
    event of the same aggregate) holds the aggregate lock; return it once it waits for it."""
    holder.get_user("nobody")  # an append is only queued: a read waits for it (the lock)

    def append() -> None:
        with store.transaction(PLATFORM) as tx:
            tx.append_event(event)

    thread = threading.Thread(target=append)
    thread.start()
    _wait_until_blocked_on_the_aggregate_lock(admin_dsn)
    return thread


def test_outbox_sequences_of_one_aggregate_follow_commit_order(
    store: Any, records: Any, postgres_database: Any
) -> None:
    aggregate = records.user().id
    first, second = records.event(aggregate), records.event(aggregate)
    with store.transaction(PLATFORM) as tx:
        tx.append_event(first)
        # The second writer must wait for the first to commit before drawing a sequence.
        thread = _blocked_writer(tx, store, second, postgres_database.admin_dsn)
        assert thread.is_alive(), "the second writer committed while the first held the lock"
    thread.join()
    sequences = _sequences(store)
    assert sequences[second.id] > sequences[first.id]
    claimed = store.claim_events(limit=10, lease=timedelta(seconds=30), now=T0)
    assert [c.event.id for c in claimed] == [first.id, second.id]


def test_a_waiting_writer_draws_its_sequence_only_after_it_gets_the_aggregate_lock(
    store: Any, records: Any, postgres_database: Any
) -> None:
    aggregate, other = records.user().id, records.user().id
    holder_event, waiter_event = records.event(aggregate), records.event(aggregate)
    meanwhile_event = records.event(other)
    with store.transaction(PLATFORM) as holder:
        holder.append_event(holder_event)
        waiter = _blocked_writer(holder, store, waiter_event, postgres_database.admin_dsn)
        with store.transaction(PLATFORM) as tx:  # drawn while the waiter waits
            tx.append_event(meanwhile_event)
    waiter.join()
    sequences = _sequences(store)
    assert sequences[holder_event.id] < sequences[meanwhile_event.id] < sequences[waiter_event.id]


def test_concurrent_claimers_never_share_an_aggregate_and_deliver_each_in_order(
    postgres_settings: Any, records: Any
) -> None:
    store = create_store({**postgres_settings, "max_pool_size": 12})
    try:
        aggregates = [f"agg-{records.tag}-{i}" for i in range(6)]
        writers_done = threading.Event()
        delivered: dict[str, list[int]] = defaultdict(list)
        holders: dict[str, str] = {}
        violations: list[str] = []
        lock = threading.Lock()

        def write(i: int) -> None:
            for n in range(40):
                with store.transaction(PLATFORM) as tx:
                    tx.append_event(records.event(aggregates[(i + n) % len(aggregates)]))

        def claim(name: str) -> None:
            now = T0
            while True:
                claims = store.claim_events(limit=7, lease=timedelta(hours=1), now=now)
                if not claims and writers_done.is_set() and not store.pending_events(limit=1):
                    return
                with lock:
                    for c in claims:
                        owner = holders.setdefault(c.event.aggregate_id, name)
                        if owner != name:
                            violations.append(f"{c.event.aggregate_id} held by two claimers")
                        delivered[c.event.aggregate_id].append(c.event.sequence)
                with lock:  # acknowledged and released together, as seen by the others
                    store.ack_events([c.claim for c in claims])
                    for c in claims:
                        holders.pop(c.event.aggregate_id, None)

        writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        claimers = [threading.Thread(target=claim, args=(f"c{i}",)) for i in range(3)]
        for thread in writers + claimers:
            thread.start()
        for thread in writers:
            thread.join()
        writers_done.set()
        for thread in claimers:
            thread.join()
        assert violations == []
        assert sum(len(s) for s in delivered.values()) == 4 * 40
        for sequences in delivered.values():
            assert sequences == sorted(sequences)
    finally:
        store.close()


@pytest.mark.parametrize("scope", [AccessScope.for_tenant("tenant-x"), PLATFORM])
def test_writers_of_different_aggregates_do_not_wait_for_each_other(
    store: Any, records: Any, scope: AccessScope
) -> None:
    with store.transaction(scope) as tx:
        tx.append_event(records.event("a-one", None))
        with store.transaction(scope) as other:  # would deadlock if the lock were global
            other.append_event(records.event("a-two", None))
