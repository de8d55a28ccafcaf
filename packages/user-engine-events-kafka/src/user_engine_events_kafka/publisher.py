"""``KafkaEventPublisher``: the ``EventPublisher`` port on confluent-kafka (librdkafka).

Ordering design (why the producer is configured the way it is)
---------------------------------------------------------------

The relay needs one property from the publisher: **for one aggregate, a later event is never
written to the topic unless every earlier event given to this publisher was written before
it**. With that, a consumer that keeps the first copy of each event id sees each aggregate's
events in order, whatever failed, was retried or was published twice (docs/events.md).

Pipelining several events of one aggregate is only safe if the producer never leaves a gap.
The idempotent producer (``enable.idempotence``, ``acks=all``) makes the broker accept a
partition's batches only in producer-sequence order, so a batch cannot overtake an earlier
one that failed *in flight*. librdkafka still leaves gaps in two cases, and both are closed
here:

- a message that *times out* (``message.timeout.ms``) is dropped and later ones continue
  under a bumped epoch. So librdkafka's timeout is switched off (``message.timeout.ms=0``,
  infinite, with unlimited retries): a message is either written or still queued. Our own
  deadline (``message_timeout_ms``) only ends the wait in ``publish``: unacknowledged events
  are reported failed (retriable) and the relay releases them, but their messages stay queued
  and, if written later, are written before anything produced after them: a duplicate with
  the same id, never a reordering.
- a *permanent* broker error on one batch would fail it and let later batches through.
  ``enable.gapless.guarantee`` turns that into a fatal producer error instead (every queued
  message fails); the publisher then builds a new producer. A new producer starts clean, and
  the relay re-publishes from the first unacknowledged event.

Failures known before a message is queued (unserialisable payload, over
``max_message_bytes``, queue full) stop that aggregate for the rest of the call: its later
events are reported failed without being produced.

``partitioner=murmur2_random`` places keys exactly as the Java client does, so producers in
other languages agree on the partition of an aggregate. The producer is long-lived (a new
idempotent producer needs ~0.5 s to its first acknowledgement). It is a
``PipelinedEventPublisher``: ``begin_publish`` queues a batch and returns, ``reports()``
waits for its verdicts, so one thread can keep several batches on their way. A waiting call
serves the delivery reports itself (in the calling thread, so a verdict needs no hand-off
between threads); a background thread polls only while no call waits. See docs/events.md,
"Throughput and latency", for how batches are sent (``linger.ms``, sending at once).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from user_engine.domain import OutboxEvent
from user_engine.errors import ConfigurationError, ValidationError
from user_engine.ports import DeliveryReport

from user_engine_events_kafka.envelope import EventEncodingError, encode_event
from user_engine_events_kafka.settings import KafkaSettings, check_topic_name

__all__ = ["KafkaEventPublisher"]

logger = logging.getLogger("user_engine_events_kafka")


class _KnownWarnings(logging.Filter):
    """Drop librdkafka's start-up notice that ``enable.gapless.guarantee`` is experimental:
    we set it on purpose (module docstring) and it would be logged by every relay start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "enable.gapless.guarantee is experimental" not in record.getMessage()


logger.addFilter(_KnownWarnings())

# Errors that are the event's own fault: retrying the same bytes cannot succeed.
_PERMANENT_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
    }
)
_ENVELOPE_HEADROOM = 64 * 1024  # librdkafka's request limit must fit one maximal message
_POLL_SLICE = 0.1  # seconds per poll() while waiting for a batch (it returns on any report)
_IDLE_POLL_INTERVAL = 0.1  # seconds between polls while no publish is waiting
_SEND_NOW_FOR = 0.001  # seconds a publish holds the "send at once" flag (see _send_now)
_QUEUE_FULL = "the producer queue is full (broker slow or down)"


class _Batch:
    """The verdicts of one ``publish`` call, filled in as they arrive.

    A verdict is True (the broker acknowledged the message), a failure report, or None (no
    verdict yet). Each event gets exactly one: from ``fail`` if its message was never queued,
    else from librdkafka's delivery report. ``done`` turns True with the last one, which then
    calls ``finished`` (it wakes a ``publish`` waiting for this batch). Reports are built
    once, at ``close``; a report arriving after that is ignored (its event was reported
    failed, and is published again later: a duplicate, never a loss)."""

    __slots__ = ("_finished", "_last", "_settled", "done", "events", "verdicts")

    def __init__(self, events: Sequence[OutboxEvent], finished: Callable[[], None]) -> None:
        self.events = events
        self.verdicts: list[DeliveryReport | bool | None] = [None] * len(events)
        # Delivery callbacks run in whichever thread polls; next() on a count is one atomic
        # step under the GIL, so the last verdict is seen exactly once without a lock.
        self._settled = itertools.count()
        self._last = len(events) - 1
        self._finished = finished
        self.done = not events

    def fail(self, index: int, report: DeliveryReport) -> None:
        """A failure known before the message was queued."""
        self.verdicts[index] = report
        if next(self._settled) == self._last:
            self.done = True
            self._finished()

    def on_delivery(self, index: int, error: KafkaError | None, message: Any) -> None:
        """librdkafka's delivery report for the message of event ``index``."""
        self.verdicts[index] = True if error is None else _failure(self.events[index].id, error)
        if next(self._settled) == self._last:
            self.done = True
            self._finished()

    def close(self, missing: str) -> list[DeliveryReport]:
        """One report per event, in order; an event without a verdict failed (``missing``)."""
        reports: list[DeliveryReport] = []
        append = reports.append
        for event, verdict in zip(self.events, self.verdicts, strict=True):
            if verdict is True:
                append(DeliveryReport(event.id, True))
            elif isinstance(verdict, DeliveryReport):
                append(verdict)
            else:
                append(DeliveryReport(event.id, False, missing, True))
        return reports


class _Pending:
    """A batch on its way (``PendingPublish``): ``reports`` waits for its verdicts."""

    __slots__ = ("_batch", "_deadline", "_publisher", "_wait")

    def __init__(
        self, publisher: KafkaEventPublisher, batch: _Batch, deadline: float, wait: float
    ) -> None:
        self._publisher = publisher
        self._batch = batch
        self._deadline = deadline
        self._wait = wait

    def reports(self) -> list[DeliveryReport]:
        """One report per event, in order, once the verdicts are in or the deadline passed."""
        self._publisher._await_reports(self._batch, self._deadline)
        return self._batch.close(
            f"no acknowledgement from the broker within {self._wait * 1000:.0f} ms; the "
            "message may still be written later (then it is a duplicate with the same event id)"
        )


def _failure(event_id: str, error: KafkaError) -> DeliveryReport:
    permanent = error.code() in _PERMANENT_CODES
    text = f"kafka {error.name()}: {error.str()}"[:500]
    return DeliveryReport(event_id, False, text, not permanent)


def _held_back(event: OutboxEvent) -> DeliveryReport:
    return DeliveryReport(
        event.id, False, "not sent: an earlier event of the same aggregate failed", True
    )


def _safe_message(error: BaseException, secrets: Sequence[str]) -> str:
    """librdkafka's message, unless it quotes one of the configured values."""
    text = str(error)
    if any(secret and secret in text for secret in secrets):
        return "a property name or value is invalid (message withheld: it quotes a value)"
    return text[:300]


class KafkaEventPublisher:
    """Publishes outbox events to Kafka; see the module docstring for the guarantees.

    :param settings: validated settings (``KafkaSettings.from_mapping``).
    :param producer_factory: builds the producer from its configuration (tests substitute
        it); default ``confluent_kafka.Producer``.
    """

    name = "kafka"

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        producer_factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.settings = settings
        self._factory: Callable[[dict[str, Any]], Any] = producer_factory or Producer
        self._config = self._producer_config()
        self._lock = threading.Lock()
        self._fatal: str | None = None
        self._closed = False
        self._topics: dict[str, str | None] = {}
        self._producer: Any = self._new_producer()
        # Who serves the producer's reports (``poll``): one thread at a time, normally a
        # ``publish`` waiting for its batch; ``_polling`` is that role, guarded by ``_turn``.
        self._turn = threading.Condition(threading.Lock())
        self._polling = False
        self._producing = 0  # publish calls queueing, or waiting to (guarded by _turn)
        self._unfinished = 0  # batches with verdicts still to come (guarded by _turn)
        # One publish queues its messages at a time: each call's messages then reach
        # librdkafka in one burst and leave in few produce requests, and the calls of
        # several threads take turns instead of all finishing late together.
        self._queueing = threading.Lock()
        self._stopping = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_forever, name="user-engine-kafka-delivery", daemon=True
        )
        self._poller.start()

    # -- producer lifecycle -----------------------------------------------------------------
    def _producer_config(self) -> dict[str, Any]:
        settings = self.settings
        config: dict[str, Any] = {
            "linger.ms": 5,
            "client.id": "user-engine-relay",
        }
        config.update(settings.producer)
        config.update(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "enable.gapless.guarantee": True,
                "message.timeout.ms": 0,  # infinite: see the module docstring
                "partitioner": "murmur2_random",
                "message.max.bytes": settings.max_message_bytes + _ENVELOPE_HEADROOM,
                "error_cb": self._on_error,
                "logger": logger,
            }
        )
        return config

    def _new_producer(self) -> Any:
        try:
            return self._factory(dict(self._config))
        except (KafkaException, ValueError, TypeError) as error:
            values = [str(v) for v in self.settings.producer.values()]
            raise ConfigurationError(
                "the kafka producer could not be created: " + _safe_message(error, values),
                code="configuration.invalid",
                details={"adapter": "kafka"},
            ) from None

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            # Every queued message fails with this error; the next publish builds a new
            # producer (see the module docstring on the gap-less guarantee).
            self._fatal = f"{error.name()}: {error.str()}"
            logger.error("kafka producer failed fatally (%s); it will be replaced", self._fatal)
        else:
            # librdkafka retries these itself and logs them through ``logger`` already.
            logger.debug("kafka: %s", error.str())

    def _replace_fatal_producer(self) -> None:
        with self._lock:
            if self._fatal is None:
                return
            old, self._producer = self._producer, self._new_producer()
            self._fatal = None
        old.purge(True, True)
        old.poll(0)

    def _poll_forever(self) -> None:
        """Serve what arrives while no ``publish`` waits (late reports of a batch that timed
        out, errors, librdkafka's log lines); a waiting ``publish`` polls for itself."""
        while not self._stopping.wait(_IDLE_POLL_INTERVAL):
            if self._take_turn():
                try:
                    self._producer.poll(0)
                finally:
                    self._end_turn()

    def _take_turn(self) -> bool:
        """Become the thread that polls, unless another one is."""
        with self._turn:
            if self._polling:
                return False
            self._polling = True
            return True

    def _end_turn(self) -> None:
        with self._turn:
            self._polling = False
            self._turn.notify_all()  # a waiting publish takes over

    def _batch_finished(self) -> None:
        with self._turn:
            self._unfinished -= 1
            self._turn.notify_all()  # its publish may be waiting while another thread polls

    # -- the port ---------------------------------------------------------------------------
    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        """Produce every event, wait for the broker's verdicts, return one report per event.

        Waits at most ``min(timeout, message_timeout_ms)``; an event without a verdict by
        then is reported failed (retriable). Raises ``ValidationError`` for a bad
        ``timeout`` and ``ConfigurationError`` if the publisher is closed.
        """
        return self.begin_publish(events, timeout=timeout).reports()

    def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> _Pending:
        """Produce every event and return at once; ``reports()`` of the result waits for the
        verdicts (``PipelinedEventPublisher``). Raises as ``publish`` does."""
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValidationError(
                "publish timeout must be a positive number of seconds",
                code="validation.timeout",
            )
        given: object = events
        if (
            isinstance(given, str | bytes)
            or not isinstance(given, Sequence)
            or not all(isinstance(e, OutboxEvent) for e in given)
        ):
            raise ValidationError(
                "publish takes a sequence of OutboxEvent", code="validation.events"
            )
        if self._closed:
            raise ConfigurationError("the kafka publisher is closed", code="events.closed")
        if self._fatal is not None:
            self._replace_fatal_producer()
        wait = min(float(timeout), self.settings.message_timeout_ms / 1000)
        deadline = time.monotonic() + wait
        batch = _Batch(events, self._batch_finished)
        with self._turn:
            self._producing += 1
            self._unfinished += not batch.done
        try:
            with self._queueing:
                self._produce(batch)
                self._send_now(batch, deadline)
        finally:
            with self._turn:
                self._producing -= 1
        return _Pending(self, batch, deadline, wait)

    def _produce(self, batch: _Batch) -> None:
        """Encode each event and queue its message at once (the encoded parts are freed
        right away instead of piling up for the whole batch); ``linger.ms`` gathers the
        messages of a call into few, full produce requests (the broker's cost is mostly per
        request)."""
        source = self.settings.source
        limit = self.settings.max_message_bytes
        topics = self._topics
        produce = self._producer.produce
        on_delivery = batch.on_delivery
        partial = functools.partial
        stopped: set[str] = set()
        for index, event in enumerate(batch.events):
            if stopped and event.aggregate_id in stopped:
                batch.fail(index, _held_back(event))
                continue
            topic = topics.get(event.event_type, "")
            if topic == "":
                topic = self._topic(event.event_type)
            if topic is None:
                failure = DeliveryReport(
                    event.id, False, "the event type does not make a valid topic name", False
                )
            else:
                try:
                    encoded = encode_event(event, source=source)
                except EventEncodingError as error:
                    failure = DeliveryReport(event.id, False, error.message, False)
                else:
                    if encoded.size > limit:
                        too_large = f"message of {encoded.size} bytes exceeds max_message_bytes"
                        failure = DeliveryReport(event.id, False, f"{too_large} ({limit})", False)
                    else:
                        try:
                            # Positional: topic, value, key, partition (-1: the partitioner
                            # chooses), on_delivery, its alias, timestamp (0: now), headers.
                            # Keywords cost about a microsecond more per message.
                            callback = partial(on_delivery, index)
                            produce(topic, encoded.value, encoded.key, -1, callback, None, 0,
                                    encoded.headers)  # fmt: skip
                            continue
                        except BufferError:
                            failure = DeliveryReport(event.id, False, _QUEUE_FULL, True)
                        except KafkaException as error:
                            failure = _failure(event.id, error.args[0])
            stopped.add(event.aggregate_id)
            batch.fail(index, failure)

    def _topic(self, event_type: str) -> str | None:
        topic = self._topics.get(event_type, "")
        if topic == "":
            try:
                topic = check_topic_name(self.settings.topic_for(event_type))
            except ConfigurationError:
                topic = None
            self._topics[event_type] = topic
        return topic

    def _send_now(self, batch: _Batch, deadline: float) -> None:
        """Send the batch's last messages now rather than after ``linger.ms`` if it is the
        only one on its way and no other call is queueing or about to (else their messages
        join the same produce requests, and this batch's verdicts are not awaited first).

        Called while holding ``_queueing``, so no other call's messages are queued while
        librdkafka's "send at once" flag is up (they would leave in small requests). Only
        ``flush`` raises that flag; it holds it while it polls, so this thread takes the
        polling turn meanwhile, and ``flush(0)`` drops it before the sending thread looks."""
        with self._turn:
            if self._producing > 1 or self._unfinished != 1 or self._polling or batch.done:
                return
            self._polling = True
        try:
            self._producer.flush(min(_SEND_NOW_FOR, max(0.0, deadline - time.monotonic())))
        finally:
            self._end_turn()

    def _await_reports(self, batch: _Batch, deadline: float) -> None:
        """Wait until every report is in or the deadline passes.

        The waiting thread serves the reports itself (``poll`` runs the delivery callbacks
        in the calling thread), so no other thread has to run first and then wake it. When
        several calls wait at once, one of them polls for all (it holds the turn); each
        other one sleeps until its batch is complete or the turn is free, then takes it."""
        turn = self._turn
        with turn:
            while self._polling and not batch.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                turn.wait(left)
            if batch.done:
                return
            self._polling = True
        try:
            poll = self._producer.poll
            while not batch.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                poll(min(left, _POLL_SLICE))
        finally:
            self._end_turn()

    def pending_messages(self) -> int:
        """Messages queued or in flight in the producer (for diagnostics and tests)."""
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the delivery thread, flush for up to ``timeout`` seconds, drop the rest.

        Whatever is dropped was released to the outbox already (or never acknowledged), so
        the relay publishes it again. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._poller.join()
        remaining = self._producer.flush(timeout)
        if remaining:
            logger.warning("kafka publisher closed with %d message(s) unsent", remaining)
            self._producer.purge(True, True)
            self._producer.flush(0)


def create_publisher(settings: Mapping[str, Any]) -> KafkaEventPublisher:
    """The entry-point factory: validate the ``[kafka]`` table and build the publisher."""
    return KafkaEventPublisher(KafkaSettings.from_mapping(settings))
