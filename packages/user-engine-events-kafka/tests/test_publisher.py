"""KafkaEventPublisher against a real Kafka-protocol broker (tansu, or the one configured)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer
from user_engine.domain import OutboxEvent
from user_engine.errors import ConfigurationError, ValidationError
from user_engine.plugins import PluginHost
from user_engine.ports import DeliveryReport
from user_engine_events_kafka import (
    Deduplicator,
    KafkaEventPublisher,
    KafkaSettings,
    LocalBroker,
    decode_message,
)

from testsupport.kafka import ConsumedMessage, consume_topic

EventFactory = Callable[..., OutboxEvent]
PublisherFactory = Callable[..., KafkaEventPublisher]


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's default partitioner hash), written from its spec."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        k = int.from_bytes(data[i * 4 : i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[length & ~3 :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def _ids_by_key(messages: list[ConsumedMessage]) -> dict[bytes | None, list[str | None]]:
    found: dict[bytes | None, list[str | None]] = defaultdict(list)
    for message in messages:
        found[message.key].append(message.header("ce_id"))
    return found


def test_delivered_events_carry_key_headers_and_envelope(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic, source="urn:user-engine:test")
    event = make_event("usr_7", event_type="user.created", payload={"status": "active"})

    reports = publisher.publish([event], timeout=30)

    assert [(r.event_id, r.delivered, r.error) for r in reports] == [(event.id, True, "")]
    [message] = consume_topic(kafka_bootstrap, kafka_topic, expected=1)
    assert message.key == b"usr_7"
    received = decode_message(message.headers, message.value)
    assert (received.id, received.type, received.source) == (
        event.id,
        "user.created",
        "urn:user-engine:test",
    )
    assert received.tenant_id == "acme"
    assert received.data == {"status": "active"}


def test_events_of_one_aggregate_are_written_in_the_order_given(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    events = [make_event(f"usr_{n % 7}") for n in range(700)]

    reports = publisher.publish(events, timeout=30)

    assert all(r.delivered for r in reports)
    written = _ids_by_key(consume_topic(kafka_bootstrap, kafka_topic, expected=700))
    for key in range(7):
        expected = [e.id for e in events if e.aggregate_id == f"usr_{key}"]
        assert written[f"usr_{key}".encode()] == expected


def test_publish_calls_from_several_threads_each_get_their_own_reports(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    # One thread at a time serves the delivery reports, for every waiting call: each call
    # must still end with its own verdicts, whoever served them.
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    batches = [[make_event(f"usr_{t}_{n % 5}") for n in range(150)] for t in range(4)]
    results: dict[int, list[tuple[str, bool]]] = {}
    start = threading.Barrier(len(batches))

    def publish(number: int) -> None:
        start.wait()
        for chunk in range(0, 150, 50):
            reports = publisher.publish(batches[number][chunk : chunk + 50], timeout=30)
            results.setdefault(number, []).extend((r.event_id, r.delivered) for r in reports)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert {n: results.get(n) for n in range(4)} == {
        n: [(e.id, True) for e in batch] for n, batch in enumerate(batches)
    }
    written = _ids_by_key(consume_topic(kafka_bootstrap, kafka_topic, expected=600))
    for batch in batches:
        for key in {e.aggregate_id for e in batch}:
            assert written[key.encode()] == [e.id for e in batch if e.aggregate_id == key]


def test_batches_begun_one_after_another_are_each_reported_and_written_in_order(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    batches = [[make_event(f"usr_{n % 4}") for n in range(40)] for _ in range(3)]

    pending = [publisher.begin_publish(batch, timeout=30) for batch in batches]
    reports = [p.reports() for p in pending]

    assert reports == [[DeliveryReport(e.id, True) for e in batch] for batch in batches]
    written = _ids_by_key(consume_topic(kafka_bootstrap, kafka_topic, expected=120))
    everything = [e for batch in batches for e in batch]
    for key in range(4):
        expected = [e.id for e in everything if e.aggregate_id == f"usr_{key}"]
        assert written[f"usr_{key}".encode()] == expected


def test_each_aggregate_lands_in_the_partition_the_java_client_would_choose(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    events = [make_event(f"usr_{n:03d}") for n in range(40)]
    assert all(r.delivered for r in publisher.publish(events, timeout=30))
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "metadata"})
    partitions = len(consumer.list_topics(kafka_topic, timeout=10).topics[kafka_topic].partitions)
    consumer.close()

    messages = consume_topic(kafka_bootstrap, kafka_topic, expected=40)

    assert partitions > 1
    assert len(messages) == 40
    for message in messages:
        assert message.key is not None
        assert message.partition == (_murmur2(message.key) & 0x7FFFFFFF) % partitions


def test_an_oversized_event_fails_for_good_and_stops_only_its_own_aggregate(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic, max_message_bytes=4096)
    before = make_event("usr_a")
    poison = make_event("usr_a", payload={"blob": "CANARY-" + "x" * 5000})
    after = make_event("usr_a")
    other = make_event("usr_b")

    reports = publisher.publish([before, poison, after, other], timeout=30)

    assert [r.delivered for r in reports] == [True, False, False, True]
    assert reports[1].retriable is False
    assert "exceeds max_message_bytes" in reports[1].error
    assert reports[2].retriable is True  # not its fault: held back to keep the order
    assert all("CANARY" not in r.error for r in reports)
    written = _ids_by_key(consume_topic(kafka_bootstrap, kafka_topic, expected=2))
    assert written == {b"usr_a": [before.id], b"usr_b": [other.id]}


def test_an_unserialisable_event_fails_for_good_without_its_value_in_the_error(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    poison = make_event("usr_a", payload={"tags": {"CANARY-1"}})

    [report] = publisher.publish([poison], timeout=30)

    assert (report.delivered, report.retriable) == (False, False)
    assert "not JSON-serialisable" in report.error
    assert "CANARY" not in report.error


def test_per_event_type_topics_receive_their_own_events(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic, topic_per_event_type=True)
    created = make_event(event_type="user.created")
    closed = make_event(event_type="user.closed")
    bad_type = make_event(event_type="user closed!")

    reports = publisher.publish([created, closed, bad_type], timeout=30)

    assert [r.delivered for r in reports] == [True, True, False]
    assert reports[2].retriable is False
    [first] = consume_topic(kafka_bootstrap, f"{kafka_topic}.user.created", expected=1)
    [second] = consume_topic(kafka_bootstrap, f"{kafka_topic}.user.closed", expected=1)
    assert first.header("ce_id") == created.id
    assert second.header("ce_id") == closed.id


def test_an_unreachable_broker_is_a_retriable_failure_never_a_success(
    make_event: EventFactory, publisher_for: PublisherFactory
) -> None:
    with LocalBroker() as broker:
        address = broker.bootstrap_servers
    publisher = publisher_for(address, "nowhere")  # the broker is gone: nothing listens

    reports = publisher.publish([make_event(), make_event()], timeout=1)

    assert [(r.delivered, r.retriable) for r in reports] == [(False, True), (False, True)]
    assert "no acknowledgement" in reports[0].error


def test_a_frozen_broker_fails_the_batch_and_a_late_write_is_only_a_duplicate(
    local_kafka_broker: LocalBroker,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
) -> None:
    bootstrap = local_kafka_broker.bootstrap_servers
    publisher = publisher_for(bootstrap, kafka_topic, message_timeout_ms=1000)
    warm = make_event("usr_w")
    # A new producer and a new topic need a moment; retrying only makes duplicates.
    for _ in range(30):
        if publisher.publish([warm], timeout=30)[0].delivered:
            break
    first = [make_event("usr_1") for _ in range(3)]

    local_kafka_broker.pause()
    try:
        frozen = publisher.publish(first, timeout=30)
    finally:
        local_kafka_broker.resume()
    retry = publisher.publish([*first, make_event("usr_1"), make_event("usr_1")], timeout=30)

    assert [(r.delivered, r.retriable) for r in frozen] == [(False, True)] * 3
    assert all(r.delivered for r in retry)
    written = consume_topic(bootstrap, kafka_topic, expected=6)
    seen = Deduplicator()
    in_order = [m.header("ce_id") for m in written if seen.first_time(m.header("ce_id") or "")]
    retry_ids = [r.event_id for r in retry]
    assert in_order == [warm.id, *retry_ids]


def test_an_empty_batch_needs_no_broker(
    kafka_bootstrap: str, kafka_topic: str, publisher_for: PublisherFactory
) -> None:
    assert publisher_for(kafka_bootstrap, kafka_topic).publish([], timeout=1) == []


@pytest.mark.parametrize("timeout", [0, -1, True, "5", None])
def test_a_bad_publish_timeout_is_a_validation_error(
    kafka_bootstrap: str,
    kafka_topic: str,
    make_event: EventFactory,
    publisher_for: PublisherFactory,
    timeout: Any,
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    with pytest.raises(ValidationError):
        publisher.publish([make_event()], timeout=timeout)


def test_a_closed_publisher_refuses_to_publish(
    kafka_bootstrap: str, kafka_topic: str, make_event: EventFactory
) -> None:
    publisher = KafkaEventPublisher(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic)
    )
    publisher.close()
    publisher.close()  # idempotent
    with pytest.raises(ConfigurationError):
        publisher.publish([make_event()], timeout=1)


def test_the_publisher_is_registered_as_kafka_through_the_entry_point(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    host = PluginHost()
    info = host.adapter("events", "kafka")
    assert info.distribution == "user-engine-events-kafka"
    publisher = host.create_event_publisher(
        "kafka", {"bootstrap_servers": kafka_bootstrap, "topic": kafka_topic}
    )
    try:
        assert isinstance(publisher, KafkaEventPublisher)
    finally:
        publisher.close()
    with pytest.raises(ConfigurationError):
        host.create_event_publisher("kafka", {"bootstrap_server": kafka_bootstrap})


@pytest.mark.parametrize("events", ["evt_1", [{"id": "evt_1"}], None, [None]])
def test_publishing_something_other_than_events_is_a_validation_error(
    kafka_bootstrap: str, kafka_topic: str, publisher_for: PublisherFactory, events: Any
) -> None:
    publisher = publisher_for(kafka_bootstrap, kafka_topic)
    with pytest.raises(ValidationError) as raised:
        publisher.publish(events, timeout=1)
    assert raised.value.code == "validation.events"
