"""The outbox relay on the reference store: ack, release, dead-letter, order per aggregate."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.domain import AccessScope, OutboxEvent, RetryPolicy
from user_engine.errors import StoreUnavailableError, ValidationError
from user_engine.ports import DeliveryReport
from user_engine.relay import (
    Relay,
    RelaySettings,
    RelayStoreOutage,
    outbox_lag,
)
from user_engine.testing import FixedClock
from user_engine_store_memory import MemoryStore

Verdict = Callable[[OutboxEvent], DeliveryReport | None]
START = datetime(2026, 1, 1, tzinfo=UTC)
_numbers = itertools.count(1)


class ScriptedPublisher:
    """An ``EventPublisher`` whose verdict per event a test decides; it keeps the log of
    delivered events, in delivery order, and never delivers past a failure of an aggregate."""

    name = "scripted"

    def __init__(self, verdict: Verdict | None = None) -> None:
        self.verdict: Verdict = verdict or (lambda event: None)
        self.delivered: list[OutboxEvent] = []
        self.calls = 0
        self._lock = threading.Lock()

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        reports = []
        failed: set[str] = set()
        with self._lock:
            self.calls += 1
            for event in events:
                if event.aggregate_id in failed:
                    reports.append(DeliveryReport(event.id, False, "held back", True))
                    continue
                report = self.verdict(event)
                if report is None:
                    self.delivered.append(event)
                    report = DeliveryReport(event.id, True)
                else:
                    failed.add(event.aggregate_id)
                reports.append(report)
        return reports

    def close(self) -> None:
        """Nothing to release."""

    def ids(self, aggregate: str | None = None) -> list[str]:
        return [e.id for e in self.delivered if aggregate in (None, e.aggregate_id)]


class PipelinedScriptedPublisher(ScriptedPublisher):
    """A ``PipelinedEventPublisher``: each batch is decided when it is begun (its messages
    are then on their way) and its reports are handed over later. It notes how many batches
    were on their way at once, from which threads, and whether two of them ever shared an
    aggregate."""

    name = "pipelined"

    def __init__(self, verdict: Verdict | None = None) -> None:
        super().__init__(verdict)
        self.on_the_way: list[set[str]] = []
        self.most_on_the_way = 0
        self.shared_an_aggregate = False
        self.threads: set[int] = set()

    def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> Any:
        aggregates = {e.aggregate_id for e in events}
        self.threads.add(threading.get_ident())
        if any(aggregates & other for other in self.on_the_way):
            self.shared_an_aggregate = True
        self.on_the_way.append(aggregates)
        self.most_on_the_way = max(self.most_on_the_way, len(self.on_the_way))
        reports = self.publish(events, timeout=timeout)
        publisher = self

        class Pending:
            def reports(self) -> list[DeliveryReport]:
                publisher.on_the_way.remove(aggregates)
                return reports

        return Pending()


class RecordingTelemetry:
    name = "recording"

    def __init__(self) -> None:
        self.progress: list[dict[str, Any]] = []

    def operation(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def relay_progress(
        self, *, published: int, failed: int, dead_lettered: int, lag_seconds: float | None
    ) -> None:
        self.progress.append(
            {"published": published, "failed": failed, "dead": dead_lettered, "lag": lag_seconds}
        )


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    store = MemoryStore()
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


def append(store: MemoryStore, aggregate: str, count: int = 1, **fields: Any) -> list[str]:
    """Commit ``count`` events of ``aggregate``; return their ids."""
    ids = []
    with store.transaction(AccessScope.all_tenants()) as tx:
        for _ in range(count):
            number = next(_numbers)
            event_id = f"evt_{aggregate}_{number:05d}"
            values: dict[str, Any] = {
                "id": event_id,
                "event_type": "user.updated",
                "aggregate_type": "user",
                "aggregate_id": aggregate,
                "tenant_id": None,
                "occurred_at": START,
                "payload": {"n": number},
            }
            values.update(fields)
            tx.append_event(OutboxEvent(**values))
            ids.append(event_id)
    return ids


def fast_settings(**overrides: Any) -> RelaySettings:
    values: dict[str, Any] = {
        "batch_size": 100,
        "lease": timedelta(seconds=30),
        "publish_timeout": 5.0,
        "poll_interval": 0.05,
        "retry_policy": RetryPolicy(max_attempts=3, jitter=0.0),
    }
    values.update(overrides)
    return RelaySettings(**values)


def test_drain_publishes_every_event_in_order_and_empties_the_outbox(
    store: MemoryStore, clock: FixedClock
) -> None:
    expected = append(store, "usr_a", 5) + append(store, "usr_b", 5) + append(store, "usr_a", 3)
    publisher = ScriptedPublisher()

    totals = Relay(store, publisher, settings=fast_settings(), clock=clock).drain()

    assert totals.published == 13
    assert publisher.ids() == expected
    assert store.outbox_stats().pending == 0


def test_a_failed_event_holds_back_the_rest_of_its_aggregate_but_not_others(
    store: MemoryStore, clock: FixedClock
) -> None:
    first, poison, later = append(store, "usr_a", 3)
    others = append(store, "usr_b", 2)
    publisher = ScriptedPublisher(
        lambda e: DeliveryReport(e.id, False, "too large") if e.id == poison else None
    )
    relay = Relay(store, publisher, settings=fast_settings(), clock=clock)

    outcome = relay.relay_batch()

    assert (outcome.delivered, outcome.retried, outcome.dead_lettered) == (3, 2, 0)
    assert publisher.ids() == [first, *others]
    pending = {e.id: e for e in store.pending_events(limit=10)}
    assert set(pending) == {poison, later}
    assert pending[poison].last_error == "too large"
    assert pending[poison].available_at == START + timedelta(seconds=1)
    assert relay.relay_batch().claimed == 0  # backing off: nothing of usr_a is claimable


def test_the_events_after_a_failure_resume_in_order_once_it_is_delivered(
    store: MemoryStore, clock: FixedClock
) -> None:
    ids = append(store, "usr_a", 4)
    attempts: list[str] = []

    def flaky(event: OutboxEvent) -> DeliveryReport | None:
        attempts.append(event.id)
        if event.id == ids[1] and attempts.count(ids[1]) == 1:
            return DeliveryReport(event.id, False, "broker said no")
        return None

    publisher = ScriptedPublisher(flaky)
    relay = Relay(store, publisher, settings=fast_settings(), clock=clock)
    relay.drain()
    clock.advance(timedelta(seconds=2))
    relay.drain()

    assert publisher.ids() == ids
    assert store.outbox_stats().pending == 0


def test_an_event_failing_every_time_is_dead_lettered_and_its_aggregate_moves_on(
    store: MemoryStore, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    poison, after = append(store, "usr_a", 2, payload={"secret_canary": "CANARY-9"})
    publisher = ScriptedPublisher(
        lambda e: DeliveryReport(e.id, False, "message too large") if e.id == poison else None
    )
    relay = Relay(store, publisher, settings=fast_settings(), clock=clock)

    with caplog.at_level(logging.INFO, logger="user_engine.relay"):
        for _ in range(3):
            relay.drain()
            clock.advance(timedelta(minutes=10))
        relay.drain()

    assert [e.id for e in store.dead_letters(limit=10)] == [poison]
    assert store.dead_letters(limit=10)[0].attempts == 3
    assert publisher.ids() == [after]
    assert relay.totals.dead_lettered == 1
    assert "dead-lettered event " + poison in caplog.text
    assert "CANARY" not in caplog.text


def test_failures_that_are_not_the_events_fault_never_dead_letter(
    store: MemoryStore, clock: FixedClock
) -> None:
    append(store, "usr_a")
    publisher = ScriptedPublisher(lambda e: DeliveryReport(e.id, False, "broker down", True))
    relay = Relay(store, publisher, settings=fast_settings(), clock=clock)

    for _ in range(10):
        clock.advance(timedelta(minutes=1))
        relay.drain()

    [pending] = store.pending_events(limit=10)
    assert pending.attempts == 10
    assert store.dead_letters(limit=10) == []
    assert pending.available_at == clock.now() + timedelta(seconds=30)  # capped backoff


def test_a_delivery_reported_after_an_earlier_failure_is_released_not_acked(
    store: MemoryStore, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    failed, overtaking = append(store, "usr_a", 2)

    class OvertakingPublisher(ScriptedPublisher):
        def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
            return [
                DeliveryReport(e.id, e.id != failed, "" if e.id != failed else "x") for e in events
            ]

    relay = Relay(store, OvertakingPublisher(), settings=fast_settings(), clock=clock)

    outcome = relay.relay_batch()

    assert outcome.delivered == 0
    assert [e.id for e in store.pending_events(limit=10)] == [failed, overtaking]
    assert "[events.order-per-key]" in caplog.text


def test_a_publisher_that_raises_releases_the_batch_without_counting_it_poison(
    store: MemoryStore, clock: FixedClock
) -> None:
    append(store, "usr_a", 2)

    class BrokenPublisher(ScriptedPublisher):
        def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
            raise RuntimeError("driver exploded")

    relay = Relay(store, BrokenPublisher(), settings=fast_settings(), clock=clock)

    outcome = relay.relay_batch()

    assert outcome.outage
    assert [e.last_error for e in store.pending_events(limit=10)] == [
        "publisher raised RuntimeError",
        "not delivered: an earlier event of the same aggregate was not delivered",
    ]
    assert store.outbox_stats().in_flight == 0


def test_missing_reports_count_as_failures(store: MemoryStore, clock: FixedClock) -> None:
    first, second = append(store, "usr_a") + append(store, "usr_b")

    class ForgetfulPublisher(ScriptedPublisher):
        def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
            return [DeliveryReport(first, True)]

    outcome = Relay(
        store, ForgetfulPublisher(), settings=fast_settings(), clock=clock
    ).relay_batch()

    assert (outcome.delivered, outcome.retried) == (1, 1)
    assert [e.id for e in store.pending_events(limit=10)] == [second]


def test_an_interrupted_publish_gives_the_batch_back(store: MemoryStore, clock: FixedClock) -> None:
    append(store, "usr_a", 3)

    class InterruptedPublisher(ScriptedPublisher):
        def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
            raise KeyboardInterrupt

    relay = Relay(store, InterruptedPublisher(), settings=fast_settings(), clock=clock)

    with pytest.raises(KeyboardInterrupt):
        relay.relay_batch()

    stats = store.outbox_stats()
    assert (stats.pending, stats.in_flight, stats.dead) == (3, 0, 0)


def test_acks_after_the_lease_expired_are_ignored_and_counted(
    store: MemoryStore, clock: FixedClock
) -> None:
    append(store, "usr_a", 2)

    taken_over: list[int] = []

    def slow(event: OutboxEvent) -> None:
        if not taken_over:  # the broker took longer than the lease; another relay claimed
            clock.advance(timedelta(seconds=31))
            lease = timedelta(seconds=30)
            taken_over.append(len(store.claim_events(limit=10, lease=lease, now=clock.now())))

    relay = Relay(store, ScriptedPublisher(slow), settings=fast_settings(), clock=clock)

    outcome = relay.relay_batch()

    assert taken_over == [2]
    assert (outcome.delivered, outcome.acks_ignored) == (0, 2)
    assert store.outbox_stats().in_flight == 2  # the other relay's: duplicates, same ids


def test_two_relays_at_once_keep_the_order_of_every_aggregate(store: MemoryStore) -> None:
    users = [f"usr_{n}" for n in range(20)]
    expected: dict[str, list[str]] = {user: [] for user in users}
    for round_ in range(10):
        for user in users:
            expected[user] += append(store, user, 1 + round_ % 3)
    publisher = ScriptedPublisher()
    stop = threading.Event()
    relays = [Relay(store, publisher, settings=fast_settings(batch_size=7)) for _ in range(2)]
    threads = [threading.Thread(target=relay.run, args=(stop,)) for relay in relays]
    for thread in threads:
        thread.start()
    done = threading.Event()
    while store.outbox_stats().pending:
        done.wait(0.01)
    stop.set()
    for thread in threads:
        thread.join()

    for user in users:
        assert publisher.ids(user) == expected[user]
    total = sum(len(ids) for ids in expected.values())
    assert sum(relay.totals.published for relay in relays) == total


def test_run_wakes_on_a_commit_and_stops_when_asked(store: MemoryStore) -> None:
    publisher = ScriptedPublisher()
    relay = Relay(store, publisher, settings=fast_settings(poll_interval=30.0))
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    ids = append(store, "usr_a", 2)
    wait = threading.Event()
    while len(publisher.delivered) < 2:
        wait.wait(0.01)
    stop.set()
    append(store, "usr_a")  # the wake-up lets the idle relay see the stop at once
    thread.join()

    assert publisher.ids()[:2] == ids


def test_a_store_outage_longer_than_the_limit_stops_the_relay(clock: FixedClock) -> None:
    class DownStore(MemoryStore):
        def claim_events(self, **kwargs: Any) -> Any:
            raise StoreUnavailableError("connection refused")

    relay = Relay(
        DownStore(),
        ScriptedPublisher(),
        settings=fast_settings(store_outage_limit=0.2, transient_max_delay=timedelta(seconds=0.05)),
        clock=clock,
    )

    with pytest.raises(RelayStoreOutage) as raised:
        relay.run(threading.Event())
    assert raised.value.code == "relay.store_outage"


def test_progress_goes_to_the_log_and_telemetry_as_counts(
    store: MemoryStore, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    append(store, "usr_a", 4, payload={"canary": "CANARY-progress"})
    telemetry = RecordingTelemetry()
    relay = Relay(
        store, ScriptedPublisher(), settings=fast_settings(), clock=clock, telemetry=telemetry
    )

    with caplog.at_level(logging.INFO, logger="user_engine.relay"):
        relay.drain()

    assert telemetry.progress == [{"published": 4, "failed": 0, "dead": 0, "lag": None}]
    assert "4 published" in caplog.text
    assert "CANARY" not in caplog.text


def test_outbox_lag_is_counts_and_the_age_of_the_oldest_pending_event(
    store: MemoryStore,
) -> None:
    append(store, "usr_a", 2)

    lag = outbox_lag(store, now=START + timedelta(seconds=90))

    assert lag.to_dict() == {
        "pending": 2,
        "in_flight": 0,
        "dead": 0,
        "oldest_pending_age_seconds": 90.0,
    }
    empty = MemoryStore()
    assert outbox_lag(empty, now=START).oldest_pending_age_seconds is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_size": 0},
        {"batch_size": 10_001},
        {"batch_size": 1.5},
        {"batch_size": True},
        {"publish_timeout": 0},
        {"poll_interval": -1},
        {"progress_interval": "5"},
        {"lease": timedelta(seconds=5)},  # shorter than twice the publish timeout
        {"lease": 30},
        {"transient_max_delay": timedelta(0)},
        {"retry_policy": {"max_attempts": 3}},
        {"store_outage_limit": 0},
    ],
)
def test_malformed_relay_settings_are_validation_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        fast_settings(**overrides)
    assert raised.value.code == "validation.relay_setting"


@given(
    batch_size=st.one_of(st.integers(), st.floats(), st.none(), st.text(max_size=3)),
    publish_timeout=st.one_of(st.integers(-5, 100), st.floats(allow_nan=True), st.none()),
)
def test_any_relay_settings_are_valid_or_a_validation_error(
    batch_size: Any, publish_timeout: Any
) -> None:
    with contextlib.suppress(ValidationError):
        RelaySettings(batch_size=batch_size, publish_timeout=publish_timeout)


def test_a_relay_needs_a_store_a_publisher_and_relay_settings(store: MemoryStore) -> None:
    with pytest.raises(ValidationError):
        Relay(store, object())  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Relay(None, ScriptedPublisher())  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Relay(store, ScriptedPublisher(), settings={"batch_size": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize("now", [None, "2026-01-01", datetime(2026, 1, 1)])
def test_outbox_lag_needs_an_aware_time(store: MemoryStore, now: Any) -> None:
    with pytest.raises(ValidationError):
        outbox_lag(store, now=now)


@given(
    seed=st.integers(0, 2**32 - 1),
    failure_rate=st.sampled_from([0.0, 0.1, 0.3, 0.6]),
    batch_size=st.integers(1, 12),
    lanes=st.integers(1, 3),
    pipelined=st.booleans(),
)
def test_whatever_fails_every_aggregate_is_delivered_in_order_except_dead_letters(
    seed: int, failure_rate: float, batch_size: int, lanes: int, pipelined: bool
) -> None:
    import random

    rng = random.Random(seed)
    store = MemoryStore()
    store.migrate()
    clock = FixedClock(START)
    expected: dict[str, list[str]] = {}
    for _ in range(40):
        aggregate = f"usr_{rng.randrange(5)}"
        expected.setdefault(aggregate, []).extend(append(store, aggregate))

    def verdict(event: OutboxEvent) -> DeliveryReport | None:
        if rng.random() >= failure_rate:
            return None
        return DeliveryReport(event.id, False, "scripted failure", rng.random() < 0.5)

    publisher = (PipelinedScriptedPublisher if pipelined else ScriptedPublisher)(verdict)
    relay = Relay(
        store,
        publisher,
        settings=fast_settings(batch_size=batch_size, lanes=lanes),
        clock=clock,
    )
    for _ in range(200):
        relay.drain()
        if store.outbox_stats().pending == 0:
            break
        clock.advance(timedelta(minutes=10))

    dead = {event.id for event in store.dead_letters(limit=100)}
    assert store.outbox_stats().pending == 0
    for aggregate, ids in expected.items():
        first_copies = list(dict.fromkeys(publisher.ids(aggregate)))
        assert first_copies == [i for i in ids if i not in dead]


# -- a pipelined publisher: the lanes in one thread -------------------------------------------
def test_a_pipelined_publisher_has_lanes_batches_on_their_way_from_one_thread(
    store: MemoryStore, clock: FixedClock
) -> None:
    expected = {user: append(store, user, 3) for user in (f"usr_{n}" for n in range(12))}
    publisher = PipelinedScriptedPublisher()

    totals = Relay(
        store, publisher, settings=fast_settings(batch_size=4, lanes=3), clock=clock
    ).drain()

    assert totals.published == 36
    assert publisher.most_on_the_way == 3
    assert not publisher.shared_an_aggregate
    assert publisher.threads == {threading.get_ident()}
    for user, ids in expected.items():
        assert publisher.ids(user) == ids
    assert store.outbox_stats().pending == 0


def test_an_interrupted_pipeline_gives_back_every_batch_on_its_way(
    store: MemoryStore, clock: FixedClock
) -> None:
    for n in range(6):
        append(store, f"usr_{n}", 2)

    class Interrupted(PipelinedScriptedPublisher):
        def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> Any:
            super().begin_publish(events, timeout=timeout)

            class Pending:
                def reports(self) -> list[DeliveryReport]:
                    raise KeyboardInterrupt

            return Pending()

    relay = Relay(store, Interrupted(), settings=fast_settings(batch_size=3, lanes=2), clock=clock)

    with pytest.raises(KeyboardInterrupt):
        relay.drain()

    stats = store.outbox_stats()
    assert (stats.pending, stats.in_flight, stats.dead) == (12, 0, 0)


def test_a_pipelined_publisher_that_raises_is_an_outage_of_that_batch(
    store: MemoryStore, clock: FixedClock
) -> None:
    append(store, "usr_a", 2)

    class Broken(PipelinedScriptedPublisher):
        def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> Any:
            raise RuntimeError("driver exploded")

    totals = Relay(store, Broken(), settings=fast_settings(), clock=clock).drain()

    assert (totals.published, totals.retried) == (0, 2)
    assert store.outbox_stats().in_flight == 0
    assert store.pending_events(limit=10)[0].last_error == "publisher raised RuntimeError"


def test_a_pipelined_run_wakes_on_a_commit_and_stops_when_asked(store: MemoryStore) -> None:
    publisher = PipelinedScriptedPublisher()
    relay = Relay(store, publisher, settings=fast_settings(poll_interval=30.0))
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    ids = append(store, "usr_a", 2)
    wait = threading.Event()
    while len(publisher.delivered) < 2:
        wait.wait(0.01)
    stop.set()
    append(store, "usr_a")  # the wake-up lets the idle relay see the stop at once
    thread.join()

    assert publisher.ids()[:2] == ids
    assert store.outbox_stats().in_flight == 0


def test_a_pipelined_relay_gives_up_after_the_store_outage_limit(clock: FixedClock) -> None:
    class DownStore(MemoryStore):
        def claim_events(self, **kwargs: Any) -> Any:
            raise StoreUnavailableError("connection refused")

    relay = Relay(
        DownStore(),
        PipelinedScriptedPublisher(),
        settings=fast_settings(store_outage_limit=0.2, transient_max_delay=timedelta(seconds=0.05)),
        clock=clock,
    )

    with pytest.raises(RelayStoreOutage):
        relay.run(threading.Event())
