"""Racing writers straight on the memory store: the store itself picks one winner."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from user_engine.domain import AccessScope, ExternalIdentity, Layer, ProfileKey, ProfileValue
from user_engine.errors import ConflictError
from user_engine_store_memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
THREADS = 8


def race(store: MemoryStore, writes: list[Callable[[object], object]]) -> list[str]:
    """Run each write in its own transaction and thread; return "won" or the conflict code."""
    barrier = threading.Barrier(len(writes))
    outcomes: list[str] = []

    def run(write: Callable[[object], object]) -> None:
        barrier.wait()
        try:
            with store.transaction(AccessScope.all_tenants()) as tx:
                write(tx)
            outcomes.append("won")
        except ConflictError as conflict:
            outcomes.append(conflict.code)

    threads = [threading.Thread(target=run, args=(write,)) for write in writes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_eight_threads_linking_one_identity_leave_exactly_one_link(store: MemoryStore) -> None:
    outcomes = race(
        store,
        [
            (
                lambda tx, i=i: tx.insert_identity(  # type: ignore[attr-defined]
                    ExternalIdentity("https://idp.example", "contested", f"usr_{i}", T0)
                )
            )
            for i in range(THREADS)
        ],
    )

    assert outcomes == ["identity.already_linked"] * (THREADS - 1) + ["won"]
    assert store.record_counts()["external_identities"] == 1


def test_eight_threads_writing_with_the_same_expected_version_leave_one_winner(
    store: MemoryStore,
) -> None:
    key = ProfileKey(Layer.USER, "crm", "nickname", None, "usr_1")
    with store.transaction(AccessScope.all_tenants()) as tx:
        tx.put_profile_value(ProfileValue(key, "start", 0, 1, "w", T0), expected_version=0)

    outcomes = race(
        store,
        [
            (
                lambda tx, i=i: tx.put_profile_value(  # type: ignore[attr-defined]
                    ProfileValue(key, f"v{i}", 0, 1, "w", T0), expected_version=1
                )
            )
            for i in range(THREADS)
        ],
    )

    assert outcomes == ["profile.stale"] * (THREADS - 1) + ["won"]
    with store.transaction(AccessScope.all_tenants()) as tx:
        stored = tx.get_profile_value(key)
    assert stored is not None
    assert stored.version == 2


def test_concurrent_transactions_keep_audit_and_event_sequences_unique_and_ordered(
    store: MemoryStore,
) -> None:
    from user_engine.domain import AuditOutcome, AuditRecord, OutboxEvent

    def write(tx: object, i: int) -> None:
        for j in range(10):
            tx.append_audit(
                AuditRecord(
                    f"a{i}-{j}",
                    T0,
                    None,
                    "x",
                    "user",
                    "act",
                    "t",  # type: ignore[attr-defined]
                    "1",
                    AuditOutcome.SUCCESS,
                )
            )
            tx.append_event(OutboxEvent(f"e{i}-{j}", "t", "user", f"agg{i}", None, T0, {}))  # type: ignore[attr-defined]

    race(store, [(lambda tx, i=i: write(tx, i)) for i in range(THREADS)])

    events = store.pending_events(limit=1000)
    assert len({e.sequence for e in events}) == THREADS * 10
    for aggregate in {e.aggregate_id for e in events}:
        mine = [e.id for e in events if e.aggregate_id == aggregate]
        assert mine == [f"e{aggregate[3:]}-{j}" for j in range(10)], "order per key kept"
