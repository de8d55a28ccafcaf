"""End to end: service mutations -> outbox -> relay -> Kafka-protocol broker -> consumer.

Every test ends with the same verdict on what a consumer sees after dropping duplicate ids:
nothing lost, nothing reordered per user, nothing unexpected, duplicates byte-identical.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from user_engine.domain import OutboxEvent, RetryPolicy
from user_engine.ports import DeliveryReport, UserEngineStore
from user_engine.relay import Relay
from user_engine_events_kafka import KafkaEventPublisher, LocalBroker

from tests.e2e._workload import (
    Workload,
    relay_settings,
    running_relay,
    wait_until_drained,
)
from testsupport.kafka import consume_topic

PublisherFactory = Callable[..., KafkaEventPublisher]


def test_ten_thousand_mutations_reach_the_consumer_once_each_in_order_per_user(
    outbox_store: UserEngineStore,
    kafka_bootstrap: str,
    kafka_topic: str,
    kafka_publisher: PublisherFactory,
) -> None:
    workload = Workload(outbox_store, users=100)
    publisher = kafka_publisher(kafka_bootstrap, kafka_topic)

    with running_relay(outbox_store, publisher, relay_settings()) as relay:
        workload.write_in_threads(rounds=100, threads=2)
        drained = wait_until_drained(outbox_store)

    check = workload.check(
        consume_topic(kafka_bootstrap, kafka_topic, expected=workload.expected_count)
    )
    assert drained
    assert workload.write_errors == []
    assert sum(workload.versions.values()) == 10_000
    assert (check.lost, check.reordered, check.unexpected) == (0, 0, 0), check.problems
    assert check.distinct == workload.expected_count
    assert check.inconsistent_duplicates == 0
    assert relay.totals.published == workload.expected_count


def test_a_broker_frozen_past_the_message_timeout_loses_and_reorders_nothing(
    outbox_store: UserEngineStore,
    local_kafka_broker: LocalBroker,
    kafka_topic: str,
    kafka_publisher: PublisherFactory,
) -> None:
    bootstrap = local_kafka_broker.bootstrap_servers
    workload = Workload(outbox_store, users=20)
    publisher = kafka_publisher(bootstrap, kafka_topic, message_timeout_ms=1000)
    settings = relay_settings(publish_timeout=1.0, lease=timedelta(seconds=5))

    with running_relay(outbox_store, publisher, settings) as relay:
        workload.write(rounds=5)
        wait_until_drained(outbox_store)
        local_kafka_broker.pause()
        try:
            workload.write(rounds=10)  # writers never see the broker
            frozen = threading.Event()
            while relay.totals.retried == 0:  # the relay hit the timeout at least once
                frozen.wait(0.1)
            workload.write(rounds=5)
        finally:
            local_kafka_broker.resume()
        workload.write(rounds=5)
        drained = wait_until_drained(outbox_store)

    check = workload.check(consume_topic(bootstrap, kafka_topic, expected=workload.expected_count))
    assert drained
    assert workload.write_errors == []
    assert relay.totals.retried > 0
    assert outbox_store.outbox_stats().dead == 0
    assert (check.lost, check.reordered, check.unexpected) == (0, 0, 0), check.problems
    assert check.inconsistent_duplicates == 0


def test_a_poison_event_backs_off_is_dead_lettered_and_others_keep_flowing(
    outbox_store: UserEngineStore,
    kafka_bootstrap: str,
    kafka_topic: str,
    kafka_publisher: PublisherFactory,
) -> None:
    workload = Workload(outbox_store, users=10)
    victim = workload.users[0]
    publisher = kafka_publisher(kafka_bootstrap, kafka_topic, max_message_bytes=64 * 1024)
    policy = RetryPolicy(max_attempts=3, base_delay=timedelta(milliseconds=200), jitter=0.5)
    settings = relay_settings(retry_policy=policy)

    workload.write(rounds=3)
    poison = workload.append_raw(victim, {"blob": "CANARY-" + "x" * 100_000})
    with running_relay(outbox_store, publisher, settings) as relay:
        workload.write(rounds=20)
        drained = wait_until_drained(outbox_store)

    [dead] = outbox_store.dead_letters(limit=10)
    check = workload.check(
        consume_topic(kafka_bootstrap, kafka_topic, expected=workload.expected_count)
    )
    assert drained
    assert (dead.id, dead.attempts) == (poison, 3)
    assert "exceeds max_message_bytes" in dead.last_error
    assert "CANARY" not in dead.last_error
    assert relay.totals.dead_lettered == 1
    assert (check.lost, check.reordered, check.unexpected) == (0, 0, 0), check.problems
    assert workload.versions[victim] == 23  # the victim's later events flowed too


class _Died(BaseException):
    """Raised in the thread of a relay that died, so nothing it does afterwards happens."""


class _DyingRelayParts:
    """A publisher and a store view for a relay that dies on its Nth batch right after
    producing it to Kafka: it never acks, never releases, its leases just expire."""

    name = "dying"

    def __init__(self, inner: KafkaEventPublisher, store: UserEngineStore, on_call: int) -> None:
        self.inner = inner
        self.store = store
        self.on_call = on_call
        self.calls = 0
        self.dead = threading.Event()

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        self.calls += 1
        reports = self.inner.publish(events, timeout=timeout)
        if self.calls == self.on_call:
            self.dead.set()
            raise _Died
        return reports

    def close(self) -> None:
        """Nothing: the inner publisher is closed by its fixture."""

    def __getattr__(self, name: str) -> Any:
        # The store view: every call of the dead relay is a no-op that ends its thread.
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead.is_set():
                raise _Died
            return attribute(*args, **kwargs)

        return call


def _run_until_dead(relay: Relay, stop: threading.Event) -> None:
    with contextlib.suppress(_Died):
        relay.run(stop)


def test_two_relays_at_once_with_one_dying_mid_stream_keep_order_per_user(
    outbox_store: UserEngineStore,
    kafka_bootstrap: str,
    kafka_topic: str,
    kafka_publisher: PublisherFactory,
) -> None:
    workload = Workload(outbox_store, users=50)
    settings = relay_settings(batch_size=50, publish_timeout=1.0, lease=timedelta(seconds=3))
    dying = _DyingRelayParts(kafka_publisher(kafka_bootstrap, kafka_topic), outbox_store, 2)
    survivor_publisher = kafka_publisher(kafka_bootstrap, kafka_topic)
    dying_relay = Relay(cast(UserEngineStore, dying), dying, settings=replace(settings, lanes=1))
    stop_dying = threading.Event()
    dying_thread = threading.Thread(
        target=_run_until_dead, args=(dying_relay, stop_dying), daemon=True
    )
    workload.write(rounds=20)  # a backlog, so that both relays have work at once

    dying_thread.start()
    started = threading.Event()
    while dying.calls == 0 and dying_thread.is_alive():
        started.wait(0.01)
    with running_relay(outbox_store, survivor_publisher, settings) as survivor:
        workload.write_in_threads(rounds=20, threads=2)
        drained = wait_until_drained(outbox_store)
    stop_dying.set()
    dying_thread.join(timeout=60)

    check = workload.check(
        consume_topic(kafka_bootstrap, kafka_topic, expected=workload.expected_count)
    )
    assert drained
    assert dying.dead.is_set()  # it did die holding a produced, unacknowledged batch
    assert check.duplicated > 0  # ... which the survivor published again, same ids
    assert survivor.totals.published > 0
    assert (check.lost, check.reordered, check.unexpected) == (0, 0, 0), check.problems
    assert check.inconsistent_duplicates == 0
