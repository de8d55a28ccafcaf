"""Store clauses: the transactional outbox and the relay contract.

Claims are global to a store, so every outbox clause first drains what earlier tests left
behind (claim everything far in the future, acknowledge it, requeue and drain dead letters).
Times are the caller's ``now``: the store must never consult its own clock for leases or
retries, so the clauses run in a fixed future and move time by passing it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from user_engine.domain import Claim, ClaimedEvent, EventStatus, OutboxEvent, RetryPolicy
from user_engine.ports import UserEngineStore

from user_engine_conformance._samples import T0, Sample, all_pending
from user_engine_conformance._threads import run_at_once
from user_engine_conformance.clauses import clause

__all__ = ["OutboxClauses", "drain_outbox"]

_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
_LEASE = timedelta(seconds=30)
_MAX_DRAIN_ROUNDS = 200


def drain_outbox(store: UserEngineStore) -> None:
    """Acknowledge every event left in the store, dead letters included.

    Bounded: a store that never lets go of its events (a broken ack) is left as it is, for
    the clauses to report.
    """
    for _ in range(_MAX_DRAIN_ROUNDS):
        dead = store.dead_letters(limit=500)
        if dead:
            store.requeue_dead_letters([e.id for e in dead], now=_FAR_FUTURE)
        claimed = store.claim_events(limit=500, lease=timedelta(minutes=1), now=_FAR_FUTURE)
        if claimed:
            store.ack_events([c.claim for c in claimed])
        if not dead and not claimed:
            return


def _no_jitter(**overrides: object) -> RetryPolicy:
    settings: dict[str, object] = {
        "max_attempts": 5,
        "base_delay": timedelta(seconds=10),
        "max_delay": timedelta(minutes=10),
        "jitter": 0.0,
    }
    settings.update(overrides)
    return RetryPolicy(**settings)  # type: ignore[arg-type]


def _append(store: UserEngineStore, sample: Sample, *events: OutboxEvent) -> list[OutboxEvent]:
    """Append in one transaction; the events as stored (read back, with their sequences)."""
    with sample.write(store) as tx:
        for event in events:
            tx.append_event(event)
    stored = {e.id: e for e in all_pending(store)}
    missing = [e.id for e in events if e.id not in stored]
    assert not missing, f"committed events are pending: {missing} are not"
    return [stored[e.id] for e in events]


def _ids(items: Sequence[OutboxEvent | ClaimedEvent]) -> list[str]:
    return [i.event.id if isinstance(i, ClaimedEvent) else i.id for i in items]


def _pending(store: UserEngineStore, sample: Sample) -> dict[str, OutboxEvent]:
    prefix = f"evt_{sample.token}_"
    return {e.id: e for e in all_pending(store) if e.id.startswith(prefix)}


def _claims(claimed: Sequence[ClaimedEvent]) -> list[Claim]:
    return [c.claim for c in claimed]


class OutboxClauses:
    """Append, claim, ack, release, backoff, dead letters, leases and per-key order."""

    @clause("store.outbox.append")
    def test_appended_events_are_pending_with_increasing_sequences(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        first = _append(store, sample, sample.event("a"), sample.event("b"))
        second = _append(store, sample, sample.event("a"))
        stored = [*first, *second]

        assert [e.sequence for e in stored] == sorted({e.sequence for e in stored})
        assert stored[0].sequence > 0
        pending = _pending(store, sample)
        assert list(pending) == _ids(stored), "pending events list by sequence"
        for event in stored:
            assert pending[event.id] == event
            assert (event.attempts, event.last_error, event.status) == (0, "", EventStatus.PENDING)
            assert event.available_at is None or event.available_at <= event.occurred_at

    @clause("store.outbox.claim")
    def test_claims_hand_out_unleased_events_oldest_first_up_to_the_limit(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        events = _append(store, sample, *(sample.event(str(n)) for n in range(5)))

        first = store.claim_events(limit=3, lease=_LEASE, now=T0)
        second = store.claim_events(limit=10, lease=_LEASE, now=T0)
        third = store.claim_events(limit=10, lease=_LEASE, now=T0)

        assert _ids(first) == _ids(events[:3])
        assert _ids(second) == _ids(events[3:]), "leased events are not handed out again"
        assert third == []
        for claimed, event in zip([*first, *second], events, strict=True):
            assert claimed.event == event
            assert claimed.claim.event_id == event.id
            assert claimed.claim.token
            assert claimed.lease_expires_at == T0 + _LEASE
        assert len({c.claim.token for c in first} & {c.claim.token for c in second}) == 0

    @clause("store.outbox.ack")
    def test_acknowledged_events_are_gone_for_good(self, store: UserEngineStore) -> None:
        drain_outbox(store)
        sample = Sample()
        events = _append(store, sample, *(sample.event(str(n)) for n in range(3)))
        claimed = store.claim_events(limit=3, lease=_LEASE, now=T0)

        assert store.ack_events(_claims(claimed[:2])) == 2
        assert store.ack_events(_claims(claimed[:2])) == 0, "a second ack counts nothing"
        assert store.ack_events([Claim(events[2].id, "forged-token")]) == 0
        assert store.ack_events([]) == 0
        assert list(_pending(store, sample)) == [events[2].id]
        later = store.claim_events(limit=10, lease=_LEASE, now=T0 + timedelta(hours=1))
        assert _ids(later) == [events[2].id], "acknowledged events are never claimed again"

    @clause("store.outbox.release")
    def test_a_released_event_counts_the_failure_and_waits_for_its_retry(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        [event] = _append(store, sample, sample.event("a"))
        policy = _no_jitter()
        [claimed] = store.claim_events(limit=1, lease=_LEASE, now=T0)

        released = store.release_events(
            [claimed.claim], error="broker unavailable: timed out", now=T0, policy=policy
        )

        assert released == 1
        assert store.release_events([claimed.claim], error="x", now=T0, policy=policy) == 0
        pending = _pending(store, sample)[event.id]
        assert (pending.attempts, pending.last_error, pending.status) == (
            1,
            "broker unavailable: timed out",
            EventStatus.PENDING,
        )
        assert pending.available_at == T0 + policy.delay_after(1)
        too_early = T0 + policy.delay_after(1) - timedelta(seconds=1)
        assert store.claim_events(limit=1, lease=_LEASE, now=too_early) == []
        retry = store.claim_events(limit=1, lease=_LEASE, now=T0 + timedelta(seconds=11))
        assert _ids(retry) == [event.id]
        assert retry[0].event.attempts == 1

    @clause("store.outbox.backoff")
    def test_successive_failures_wait_growing_delays_up_to_the_cap(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        [event] = _append(store, sample, sample.event("a"))
        policy = _no_jitter(
            max_attempts=10, base_delay=timedelta(seconds=1), max_delay=timedelta(seconds=8)
        )
        now = T0
        waits = []
        for attempt in range(1, 6):
            [claimed] = store.claim_events(limit=1, lease=_LEASE, now=now)
            store.release_events([claimed.claim], error=f"try {attempt}", now=now, policy=policy)
            available_at = _pending(store, sample)[event.id].available_at
            assert available_at is not None
            waits.append((available_at - now).total_seconds())
            now = available_at + timedelta(microseconds=1)

        assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]

    @clause("store.outbox.dead-letter")
    def test_an_exhausted_event_is_dead_lettered_and_does_not_block_its_aggregate(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        poison, follower, other = _append(
            store, sample, sample.event("a"), sample.event("a"), sample.event("b")
        )
        policy = _no_jitter(max_attempts=2, base_delay=timedelta(seconds=1))

        [first] = store.claim_events(limit=1, lease=_LEASE, now=T0)
        assert first.event.id == poison.id
        unrelated = store.claim_events(limit=10, lease=_LEASE, now=T0)
        assert _ids(unrelated) == [other.id]
        store.ack_events(_claims(unrelated))
        store.release_events([first.claim], error="first", now=T0, policy=policy)
        assert store.claim_events(limit=10, lease=_LEASE, now=T0) == [], (
            "the follower waits behind its retrying event"
        )
        retry_at = T0 + timedelta(seconds=2)
        [again] = store.claim_events(limit=1, lease=_LEASE, now=retry_at)
        assert again.event.id == poison.id
        store.release_events([again.claim], error="second and last", now=retry_at, policy=policy)

        [dead] = [e for e in store.dead_letters(limit=1000) if e.id == poison.id]
        assert (dead.status, dead.attempts, dead.last_error) == (
            EventStatus.DEAD,
            2,
            "second and last",
        )
        assert poison.id not in _pending(store, sample)
        later = store.claim_events(limit=10, lease=_LEASE, now=retry_at + timedelta(days=1))
        assert _ids(later) == [follower.id], "a dead letter never blocks its aggregate"
        store.ack_events(_claims(later))
        assert store.claim_events(limit=10, lease=_LEASE, now=_FAR_FUTURE) == [], (
            "a dead letter is never claimed"
        )

    @clause("store.outbox.requeue")
    def test_requeued_dead_letters_are_pending_again_with_no_attempts(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        [event] = _append(store, sample, sample.event("a"))
        [claimed] = store.claim_events(limit=1, lease=_LEASE, now=T0)
        store.release_events([claimed.claim], error="x", now=T0, policy=_no_jitter(max_attempts=1))
        later = T0 + timedelta(hours=1)

        assert store.requeue_dead_letters([event.id, f"evt_{sample.token}_unknown"], now=later) == 1
        assert store.requeue_dead_letters([event.id], now=later) == 0

        pending = _pending(store, sample)[event.id]
        assert (pending.status, pending.attempts) == (EventStatus.PENDING, 0)
        assert [e for e in store.dead_letters(limit=1000) if e.id == event.id] == []
        assert _ids(store.claim_events(limit=1, lease=_LEASE, now=later)) == [event.id]

    @clause("store.outbox.lease-expiry")
    def test_an_expired_lease_is_claimed_again_and_its_old_claim_is_ignored(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        [event] = _append(store, sample, sample.event("a"))
        [old] = store.claim_events(limit=1, lease=_LEASE, now=T0)

        assert store.claim_events(limit=1, lease=_LEASE, now=T0 + _LEASE / 2) == []
        after_expiry = T0 + _LEASE + timedelta(seconds=1)
        [new] = store.claim_events(limit=1, lease=_LEASE, now=after_expiry)

        assert new.event.id == event.id
        assert new.claim.token != old.claim.token
        assert new.lease_expires_at == after_expiry + _LEASE
        assert store.ack_events([old.claim]) == 0, "an ack with an expired claim is ignored"
        assert (
            store.release_events([old.claim], error="late", now=after_expiry, policy=_no_jitter())
            == 0
        ), "a release with an expired claim is ignored"
        assert _pending(store, sample)[event.id].attempts == 0
        assert store.ack_events([new.claim]) == 1

    @clause("store.outbox.order-per-key")
    def test_claims_never_pass_a_leased_or_retrying_event_of_the_same_aggregate(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        a1, b1, a2, a3 = _append(
            store,
            sample,
            sample.event("a"),
            sample.event("b"),
            sample.event("a"),
            sample.event("a"),
        )
        policy = _no_jitter()

        [first] = store.claim_events(limit=1, lease=_LEASE, now=T0)
        assert first.event.id == a1.id
        other_claimer = store.claim_events(limit=10, lease=_LEASE, now=T0)
        assert _ids(other_claimer) == [b1.id], "a2 and a3 wait while a1 is leased"
        store.ack_events([first.claim, *_claims(other_claimer)])

        [second] = store.claim_events(limit=1, lease=_LEASE, now=T0)
        assert second.event.id == a2.id
        store.release_events([second.claim], error="retry", now=T0, policy=policy)
        assert store.claim_events(limit=10, lease=_LEASE, now=T0 + timedelta(seconds=1)) == [], (
            "a3 waits while a2 waits for its retry"
        )

        retry_at = T0 + timedelta(seconds=11)
        prefix = store.claim_events(limit=10, lease=_LEASE, now=retry_at)
        assert _ids(prefix) == [a2.id, a3.id], "a prefix of the aggregate, in sequence order"

    @clause("store.outbox.order-per-key-concurrent")
    def test_two_concurrent_claimers_keep_each_aggregate_in_order(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        aggregates = [str(n) for n in range(6)]
        events = []
        for _round in range(5):
            events += _append(store, sample, *(sample.event(a) for a in aggregates))
        expected = {
            a: [e.id for e in events if e.aggregate_id.endswith(f"_{a}")] for a in aggregates
        }
        lock = threading.Lock()
        holder: dict[str, int] = {}
        delivered: dict[str, list[str]] = defaultdict(list)
        overlaps: list[str] = []
        acks: list[int] = []

        def relay(number: int) -> None:
            for _ in range(2000):
                claimed = store.claim_events(limit=3, lease=timedelta(hours=1), now=T0)
                with lock:
                    if not claimed and sum(len(v) for v in delivered.values()) == len(events):
                        return
                    for item in claimed:
                        key = item.event.aggregate_id
                        if holder.get(key, number) != number:
                            overlaps.append(f"{item.event.id} claimed while another holds {key}")
                        holder[key] = number
                        delivered[key].append(item.event.id)
                    # Hand the aggregates back before acknowledging: until the ack, the store
                    # must not give their next events to anyone.
                    for item in claimed:
                        holder.pop(item.event.aggregate_id, None)
                if claimed:
                    acknowledged = store.ack_events(_claims(claimed))
                    with lock:
                        acks.append(acknowledged - len(claimed))

        outcomes = run_at_once([lambda: relay(1), lambda: relay(2)])

        assert [o.error for o in outcomes] == [None, None]
        assert overlaps == []
        assert set(acks) <= {0}, "every claim handed out was acknowledged exactly once"
        for aggregate, ids in expected.items():
            assert delivered[f"usr_{sample.token}_{aggregate}"] == ids, (
                f"aggregate {aggregate} delivered out of order or twice"
            )

    @clause("store.outbox.inspect")
    def test_pending_and_dead_events_list_by_sequence_in_pages(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        events = _append(store, sample, *(sample.event(str(n)) for n in range(6)))
        dead_ones = store.claim_events(limit=2, lease=_LEASE, now=T0)
        store.release_events(
            _claims(dead_ones), error="x", now=T0, policy=_no_jitter(max_attempts=1)
        )
        pending, dead = events[2:], events[:2]
        start = events[0].sequence - 1

        first = store.pending_events(limit=2, after_sequence=start)
        rest = store.pending_events(limit=10, after_sequence=first[-1].sequence)
        assert _ids(first) == _ids(pending[:2])
        assert _ids(rest) == _ids(pending[2:])
        [first_dead] = store.dead_letters(limit=1, after_sequence=start)
        [second_dead] = store.dead_letters(limit=5, after_sequence=first_dead.sequence)
        assert [first_dead.id, second_dead.id] == _ids(dead)
        assert store.dead_letters(limit=5, after_sequence=second_dead.sequence) == []

    @clause("store.outbox.stats")
    def test_outbox_stats_count_pending_leased_and_dead_events(
        self, store: UserEngineStore
    ) -> None:
        drain_outbox(store)
        sample = Sample()
        empty = store.outbox_stats()
        assert (empty.pending, empty.in_flight, empty.dead, empty.oldest_pending_at) == (
            0,
            0,
            0,
            None,
        )
        _append(
            store,
            sample,
            sample.event("a", occurred_at=T0 + timedelta(minutes=2)),
            sample.event("b", occurred_at=T0 + timedelta(minutes=1)),
            sample.event("c", occurred_at=T0 + timedelta(minutes=3)),
            sample.event("d", occurred_at=T0),
        )
        leased = store.claim_events(limit=3, lease=_LEASE, now=T0)
        [doomed] = [c for c in leased if c.event.aggregate_id.endswith("_c")]
        store.release_events([doomed.claim], error="x", now=T0, policy=_no_jitter(max_attempts=1))

        stats = store.outbox_stats()

        assert (stats.pending, stats.in_flight, stats.dead) == (3, 2, 1), (
            "pending counts every event neither acknowledged nor dead, leased or not"
        )
        assert stats.oldest_pending_at == T0, "the oldest pending event's time"

    @clause("store.outbox.wait")
    def test_waiting_for_events_returns_a_bool_and_never_raises(
        self, store: UserEngineStore
    ) -> None:
        assert isinstance(store.wait_for_events(0.01), bool)
        assert isinstance(store.wait_for_events(0.0), bool)

    @clause("store.outbox.wake")
    def test_a_committed_event_wakes_a_waiting_relay(self, store: UserEngineStore) -> None:
        sample = Sample()
        woken: list[bool] = []
        waiter = threading.Thread(
            target=lambda: woken.append(store.wait_for_events(60.0)), daemon=True
        )
        waiter.start()
        # The waiter may not be waiting yet when the first event commits: keep committing
        # until it has returned (each commit must wake a waiting relay).
        for _ in range(600):
            _append(store, sample, sample.event("a"))
            waiter.join(0.05)
            if not waiter.is_alive():
                break
        waiter.join(60.0)
        assert woken == [True], "wait_for_events returned True once woken by a commit"
