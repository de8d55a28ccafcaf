"""The outbox relay contract on the memory store: claim, order per key, lease, ack, release,
backoff, dead-letter, requeue, stats and wake-up."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from user_engine.domain import AccessScope, EventStatus, OutboxEvent, RetryPolicy
from user_engine_store_memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
NO_JITTER = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=10), jitter=0.0)


_numbers = itertools.count(1)


def append(store: MemoryStore, *aggregates: str) -> list[OutboxEvent]:
    """Commit one event per aggregate given, in order; return them as stored."""
    events = [
        OutboxEvent(
            f"evt-{next(_numbers)}", "user.updated", "user", aggregate, None, T0,
            {"aggregate": aggregate},
        )
        for aggregate in aggregates
    ]  # fmt: skip
    with store.transaction(AccessScope.all_tenants()) as tx:
        for event in events:
            tx.append_event(event)
    stored = {e.id: e for e in store.pending_events(limit=10_000)}
    return [stored[e.id] for e in events]


def test_claim_hands_out_the_oldest_events_first_up_to_the_limit(store: MemoryStore) -> None:
    events = append(store, "a", "b", "c", "d")

    claimed = store.claim_events(limit=3, lease=LEASE, now=T0)

    assert [c.event.id for c in claimed] == [e.id for e in events[:3]]
    assert [c.event.sequence for c in claimed] == sorted(c.event.sequence for c in claimed)
    assert all(c.lease_expires_at == T0 + LEASE for c in claimed)


def test_an_aggregate_with_a_leased_event_is_not_handed_to_another_claim(
    store: MemoryStore,
) -> None:
    events = append(store, "a", "a", "b")

    first = store.claim_events(limit=1, lease=LEASE, now=T0)
    second = store.claim_events(limit=10, lease=LEASE, now=T0)

    assert [c.event.id for c in first] == [events[0].id]
    assert [c.event.id for c in second] == [events[2].id], "a's second event must wait"


def test_acked_events_are_gone_for_good(store: MemoryStore) -> None:
    append(store, "a", "b")
    claimed = store.claim_events(limit=10, lease=LEASE, now=T0)

    assert store.ack_events([c.claim for c in claimed]) == 2
    assert store.ack_events([c.claim for c in claimed]) == 0
    assert store.pending_events(limit=10) == []
    assert store.claim_events(limit=10, lease=LEASE, now=T0 + 2 * LEASE) == []


def test_an_expired_lease_makes_events_claimable_again_and_voids_the_old_claim(
    store: MemoryStore,
) -> None:
    append(store, "a")
    stale = store.claim_events(limit=1, lease=LEASE, now=T0)

    again = store.claim_events(limit=1, lease=LEASE, now=T0 + LEASE + timedelta(seconds=1))

    assert [c.event.id for c in again] == [c.event.id for c in stale]
    assert store.ack_events([stale[0].claim]) == 0, "the expired claim's token is ignored"
    assert store.release_events([stale[0].claim], error="x", now=T0, policy=NO_JITTER) == 0
    assert store.ack_events([again[0].claim]) == 1


def test_a_release_counts_the_failure_and_backs_off_the_aggregate(store: MemoryStore) -> None:
    events = append(store, "a", "a", "b")
    claimed = store.claim_events(limit=1, lease=LEASE, now=T0)

    assert (
        store.release_events([claimed[0].claim], error="broker down", now=T0, policy=NO_JITTER) == 1
    )
    waiting = store.claim_events(limit=10, lease=LEASE, now=T0 + timedelta(seconds=9))
    retried = store.claim_events(limit=10, lease=LEASE, now=T0 + timedelta(seconds=10))

    assert [c.event.id for c in waiting] == [events[2].id], "a is blocked while it waits"
    assert [c.event.id for c in retried] == [events[0].id, events[1].id]
    assert (retried[0].event.attempts, retried[0].event.last_error) == (1, "broker down")


def test_the_backoff_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy(
        base_delay=timedelta(seconds=1), max_delay=timedelta(seconds=5), jitter=0.0
    )

    delays = [policy.delay_after(n).total_seconds() for n in range(1, 6)]

    assert delays == [1, 2, 4, 5, 5]
    assert not policy.is_exhausted(policy.max_attempts - 1)
    assert policy.is_exhausted(policy.max_attempts)


def test_an_exhausted_event_is_dead_lettered_and_stops_blocking_its_aggregate(
    store: MemoryStore,
) -> None:
    events = append(store, "a", "a")
    now = T0
    for _ in range(NO_JITTER.max_attempts):
        [claimed] = store.claim_events(limit=1, lease=LEASE, now=now)
        store.release_events([claimed.claim], error="poison", now=now, policy=NO_JITTER)
        now += timedelta(minutes=10)

    dead = store.dead_letters(limit=10)
    after = store.claim_events(limit=10, lease=LEASE, now=now)

    assert [(e.id, e.status, e.attempts) for e in dead] == [
        (events[0].id, EventStatus.DEAD, NO_JITTER.max_attempts)
    ]
    assert [c.event.id for c in after] == [events[1].id]
    stats = store.outbox_stats()
    assert (stats.dead, stats.in_flight) == (1, 1)


def test_a_requeued_dead_letter_is_pending_again_with_no_attempts(store: MemoryStore) -> None:
    [event] = append(store, "a")
    [claimed] = store.claim_events(limit=1, lease=LEASE, now=T0)
    store.release_events([claimed.claim], error="x", now=T0, policy=RetryPolicy(max_attempts=1))

    assert store.requeue_dead_letters([event.id, "evt-unknown"], now=T0) == 1

    [pending] = store.pending_events(limit=10)
    assert (pending.id, pending.status, pending.attempts) == (event.id, EventStatus.PENDING, 0)


def test_outbox_stats_count_pending_in_flight_and_dead(store: MemoryStore) -> None:
    append(store, "a", "b")
    store.claim_events(limit=1, lease=LEASE, now=T0)

    stats = store.outbox_stats()

    assert (stats.pending, stats.in_flight, stats.dead) == (2, 1, 0)
    assert stats.oldest_pending_at == T0


def test_a_rolled_back_transaction_leaves_no_event_to_claim(store: MemoryStore) -> None:
    class Boom(Exception):
        pass

    try:
        with store.transaction(AccessScope.all_tenants()) as tx:
            tx.append_event(OutboxEvent("evt-x", "t", "user", "a", None, T0, {}))
            raise Boom
    except Boom:
        pass

    assert store.claim_events(limit=10, lease=LEASE, now=T0) == []


def test_a_waiting_relay_is_woken_by_a_commit_with_events(store: MemoryStore) -> None:
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(store.wait_for_events(60)))
    waiter.start()

    # Commit until the waiter has returned: a commit made before it started waiting cannot
    # wake it, so keep committing; it must report being woken (True), not a timeout.
    while waiter.is_alive():
        append(store, "a")
        waiter.join(0.01)

    assert woken == [True]


def test_concurrent_claimers_never_hold_events_of_the_same_aggregate(store: MemoryStore) -> None:
    append(store, *[f"agg-{i % 5}" for i in range(50)])
    held: list[list[str]] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        held.append(
            [c.event.aggregate_id for c in store.claim_events(limit=50, lease=LEASE, now=T0)]
        )

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    owners: dict[str, int] = {}
    for index, aggregates in enumerate(held):
        for aggregate in aggregates:
            assert owners.setdefault(aggregate, index) == index
    assert sum(len(a) for a in held) == 50
