"""The outbox relay: claim a batch, publish it, ack what was delivered, release what failed.

Adapter-neutral: it talks only to the ``UserEngineStore`` outbox contract and an
``EventPublisher`` (a ``PipelinedEventPublisher`` lets one thread keep several batches on
their way). ``user-engine relay`` runs it; applications may run it in a thread.

Why it keeps order per aggregate (the argument, in three steps; docs/events.md has the
long form):

1. The store's claim [store.outbox.order-per-key] hands out only a prefix of each aggregate's
   pending events and nothing of an aggregate whose earlier event is leased or waiting for a
   retry. So a relay never holds event n+1 of an aggregate while event n is elsewhere, and
   several relays at once hold disjoint aggregates (the lease is the per-aggregate lane).
2. The publisher delivers the events of one aggregate in the order given and never writes a
   later one after an earlier one failed [events.order-per-key]. The relay settles a batch
   as a prefix per aggregate: after the first event of an aggregate that was not delivered,
   every later event of that aggregate in the batch is released too (even one a broken
   publisher reported delivered), so the next claim starts again at the first undelivered
   event.
3. An event is acked only after the broker acknowledged it. So event n+1 is first written
   to the broker only after event n was written, in this batch or an earlier one; anything
   written again later is a duplicate with the same id, which consumers drop.

The commit-order trap (a lower sequence committing after a higher one) cannot skip an event
here: the relay keeps no cursor. Every claim reads the pending rows from the oldest, and a
row leaves the outbox only when its own delivery is acked; a late commit is simply pending
and is claimed by the next claim.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from user_engine.domain import ClaimedEvent, OutboxEvent, RetryPolicy
from user_engine.errors import StoreUnavailableError, ValidationError
from user_engine.ports import (
    Clock,
    DeliveryReport,
    EventPublisher,
    PendingPublish,
    PipelinedEventPublisher,
    Telemetry,
    UserEngineStore,
)
from user_engine.runtime import SystemClock

__all__ = [
    "BatchOutcome",
    "OutboxLag",
    "Relay",
    "RelaySettings",
    "RelayStoreOutage",
    "RelayTotals",
    "outbox_lag",
]

logger = logging.getLogger("user_engine.relay")

_NEVER_EXHAUSTED = 2**62
_MAX_BATCH_SIZE = 10_000
_MAX_LANES = 16
_BLOCKED = "not delivered: an earlier event of the same aggregate was not delivered"


def _positive(value: object, name: str, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValidationError(
            f"relay setting {name} must be a positive {'integer' if integer else 'number'}",
            code="validation.relay_setting",
            details={"setting": name},
        )


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """How the relay works. Every duration is positive; the lease outlives a publish.

    :param batch_size: most events claimed (and published) at once, per lane.
    :param lanes: batches in flight at once. Each is claimed exactly like by a separate relay
        (the store's claim gives them disjoint aggregates), so the relay encodes and produces
        one while the broker works on another. With a ``PipelinedEventPublisher`` one thread
        keeps them all going; otherwise each lane is a thread that claims, publishes and
        settles its own batch.
    :param lease: how long a claim holds its events; a relay that dies holding them frees
        them after this long. Must exceed twice ``publish_timeout`` so a live relay settles
        its batch long before its lease can expire.
    :param publish_timeout: seconds to wait for the broker's verdict on a batch.
    :param poll_interval: seconds to sleep when idle if no wake-up arrives (the fallback
        polling for a missed ``LISTEN/NOTIFY`` notification).
    :param progress_interval: seconds between progress log lines and telemetry calls.
    :param retry_policy: backoff and dead-letter threshold for failures that are the
        event's own fault (too large, unserialisable).
    :param transient_max_delay: cap on the backoff of failures that are not the event's fault
        (broker unreachable, no acknowledgement in time); those are never dead-lettered.
    :param store_outage_limit: seconds the store may stay unreachable before ``run`` gives up
        with ``RelayStoreOutage`` (so a supervisor can restart and alert).
    """

    batch_size: int = 500
    lanes: int = 2
    lease: timedelta = timedelta(seconds=60)
    publish_timeout: float = 15.0
    poll_interval: float = 1.0
    progress_interval: float = 15.0
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    transient_max_delay: timedelta = timedelta(seconds=30)
    store_outage_limit: float = 300.0

    def __post_init__(self) -> None:
        _positive(self.batch_size, "batch_size", integer=True)
        _positive(self.lanes, "lanes", integer=True)
        if self.lanes > _MAX_LANES:
            raise ValidationError(
                f"relay setting lanes must be at most {_MAX_LANES}",
                code="validation.relay_setting",
                details={"setting": "lanes"},
            )
        if self.batch_size > _MAX_BATCH_SIZE:
            raise ValidationError(
                f"relay setting batch_size must be at most {_MAX_BATCH_SIZE}",
                code="validation.relay_setting",
                details={"setting": "batch_size"},
            )
        for name in ("publish_timeout", "poll_interval", "progress_interval"):
            _positive(getattr(self, name), name)
        _positive(self.store_outage_limit, "store_outage_limit")
        for name in ("lease", "transient_max_delay"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ValidationError(
                    f"relay setting {name} must be a positive duration",
                    code="validation.relay_setting",
                    details={"setting": name},
                )
        if not isinstance(self.retry_policy, RetryPolicy):
            raise ValidationError(
                "relay setting retry_policy must be a RetryPolicy",
                code="validation.relay_setting",
                details={"setting": "retry_policy"},
            )
        if self.lease.total_seconds() <= 2 * self.publish_timeout:
            raise ValidationError(
                "the relay lease must be longer than twice the publish timeout, or a slow "
                "broker could let another relay claim events this one is still publishing",
                code="validation.relay_setting",
                details={"setting": "lease"},
            )


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one claim-publish-settle cycle did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed_by_event: int = 0
    dead_lettered: int = 0
    acks_ignored: int = 0

    @property
    def outage(self) -> bool:
        """True when events were claimed and none delivered, none by their own fault."""
        return self.claimed > 0 and self.delivered == 0 and self.failed_by_event == 0


@dataclass(slots=True)
class RelayTotals:
    """Running counts since the relay started."""

    batches: int = 0
    published: int = 0
    retried: int = 0
    dead_lettered: int = 0
    acks_ignored: int = 0

    def add(self, outcome: BatchOutcome) -> None:
        """Add one batch's counts."""
        self.batches += 1
        self.published += outcome.delivered
        self.retried += outcome.retried
        self.dead_lettered += outcome.dead_lettered
        self.acks_ignored += outcome.acks_ignored


@dataclass(frozen=True, slots=True)
class OutboxLag:
    """How far the relay is behind: counts and the age of the oldest pending event."""

    pending: int
    in_flight: int
    dead: int
    oldest_pending_age_seconds: float | None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (for ``user-engine check`` and diagnostics)."""
        return dataclasses.asdict(self)


def outbox_lag(store: UserEngineStore, *, now: datetime) -> OutboxLag:
    """The outbox lag of ``store`` at ``now``: counts only, never payloads.

    Raises ``StoreUnavailableError`` when the store cannot be read.
    """
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValidationError("now must be a timezone-aware datetime", code="validation.time")
    stats = store.outbox_stats()
    age = None
    if stats.oldest_pending_at is not None:
        age = max(0.0, (now - stats.oldest_pending_at).total_seconds())
    return OutboxLag(stats.pending, stats.in_flight, stats.dead, age)


class RelayStoreOutage(StoreUnavailableError):
    """The store stayed unreachable longer than ``RelaySettings.store_outage_limit``."""

    default_code = "relay.store_outage"


class Relay:
    """Moves committed outbox events to the broker: claim, publish, ack or release.

    :param store: the outbox (any ``UserEngineStore``).
    :param publisher: where events go (any ``EventPublisher``).
    :param settings: batch size, lease, timeouts, retry policy.
    :param clock: time source for claims and backoff (default: the system clock).
    :param telemetry: receives ``relay_progress`` at every progress interval (optional).

    Several relays, in one process or many, may share a store: the store's claim gives
    each one disjoint aggregates (see the module docstring). One ``Relay`` object is driven
    by one thread at a time.
    """

    def __init__(
        self,
        store: UserEngineStore,
        publisher: EventPublisher,
        *,
        settings: RelaySettings | None = None,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, RelaySettings):
            raise ValidationError(
                "settings must be a RelaySettings", code="validation.relay_setting"
            )
        for part, needed in ((store, "claim_events"), (publisher, "publish")):
            if not callable(getattr(part, needed, None)):
                raise ValidationError(
                    f"the relay needs an object with {needed}() there",
                    code="validation.relay_setting",
                )
        self.store = store
        self.publisher = publisher
        self.settings = settings or RelaySettings()
        self.clock: Clock = clock or SystemClock()
        self.telemetry = telemetry
        self.totals = RelayTotals()
        self._totals_lock = threading.Lock()
        policy = self.settings.retry_policy
        # Failures that are not the event's fault (an outage) use the same backoff curve,
        # capped lower so delivery resumes soon after the broker does, and never dead-letter:
        # parking events because the broker was down would let later events of the same
        # aggregate overtake them.
        self._transient_policy = RetryPolicy(
            max_attempts=_NEVER_EXHAUSTED,
            base_delay=min(policy.base_delay, self.settings.transient_max_delay),
            max_delay=self.settings.transient_max_delay,
            jitter=policy.jitter,
            rng=policy.rng,
        )
        self._reported = RelayTotals()
        self._last_progress = time.monotonic()
        self._started = self._last_progress

    # -- one cycle -------------------------------------------------------------------------
    def relay_batch(self) -> BatchOutcome:
        """Claim one batch, publish it, and ack or release every claimed event.

        Returns what happened. Raises ``StoreUnavailableError`` if the store fails (events
        then stay leased until their lease expires, and are claimed again). If the thread is
        interrupted (``KeyboardInterrupt``) while publishing, the batch is released first.
        """
        claimed = self._claim()
        if not claimed:
            return BatchOutcome()
        events = [item.event for item in claimed]
        try:
            reports = self.publisher.publish(events, timeout=self.settings.publish_timeout)
        except Exception as error:
            reports = self._raised(events, error)
        except BaseException:
            self._interrupted([claimed])
            raise
        return self._settled(claimed, reports)

    def _claim(self) -> list[ClaimedEvent]:
        settings = self.settings
        return self.store.claim_events(
            limit=settings.batch_size, lease=settings.lease, now=self.clock.now()
        )

    def _begin(
        self, publisher: PipelinedEventPublisher, claimed: list[ClaimedEvent]
    ) -> PendingPublish | list[DeliveryReport]:
        """Hand a claimed batch to the publisher; the reports at once if it raised."""
        events = [item.event for item in claimed]
        try:
            return publisher.begin_publish(events, timeout=self.settings.publish_timeout)
        except Exception as error:
            return self._raised(events, error)

    def _finish(
        self, claimed: list[ClaimedEvent], begun: PendingPublish | list[DeliveryReport]
    ) -> BatchOutcome:
        """Wait for the reports of a batch handed over by ``_begin`` and settle it."""
        if isinstance(begun, list):
            reports = begun
        else:
            try:
                reports = begun.reports()
            except Exception as error:
                reports = self._raised([item.event for item in claimed], error)
            except BaseException:
                self._interrupted([claimed])
                raise
        return self._settled(claimed, reports)

    def _raised(self, events: Sequence[OutboxEvent], error: Exception) -> list[DeliveryReport]:
        # A publisher should report failures, not raise; treat a raise as an outage of the
        # whole batch so nothing is lost and nothing counts towards dead-lettering.
        logger.error("event publisher raised %s; releasing the batch", type(error).__name__)
        text = f"publisher raised {type(error).__name__}"
        return [DeliveryReport(e.id, False, text, True) for e in events]

    def _interrupted(self, batches: Iterable[Sequence[ClaimedEvent]]) -> None:
        """Interrupted (second Ctrl-C / SIGTERM) while publishing: give the batches back
        before leaving (what was produced may still be written: a duplicate, same id)."""
        for claimed in batches:
            with contextlib.suppress(StoreUnavailableError):  # else the lease expires
                self._release(claimed, "relay interrupted while publishing", self._transient_policy)

    def _settled(
        self, claimed: Sequence[ClaimedEvent], reports: Sequence[DeliveryReport]
    ) -> BatchOutcome:
        events = [item.event for item in claimed]
        outcome = self._settle(claimed, self._checked(events, reports))
        with self._totals_lock:
            self.totals.add(outcome)
        return outcome

    def _checked(
        self, events: Sequence[OutboxEvent], reports: Sequence[DeliveryReport]
    ) -> list[DeliveryReport]:
        """The reports, one per event in order; a missing or mismatched one is a failure."""
        if len(reports) == len(events) and all(
            r.event_id == e.id for r, e in zip(reports, events, strict=True)
        ):
            return list(reports)
        logger.error(
            "event publisher %s broke [events.report-per-event]: %d reports for %d events",
            getattr(self.publisher, "name", "?"),
            len(reports),
            len(events),
        )
        by_id = {r.event_id: r for r in reports}
        missing = "publisher gave no report for this event"
        return [by_id.get(e.id) or DeliveryReport(e.id, False, missing, True) for e in events]

    def _settle(
        self, claimed: Sequence[ClaimedEvent], reports: Sequence[DeliveryReport]
    ) -> BatchOutcome:
        """Ack the delivered prefix of each aggregate; release everything after it."""
        acks = []
        failed_aggregates: set[str] = set()
        permanent: dict[str, list[ClaimedEvent]] = defaultdict(list)
        transient: dict[str, list[ClaimedEvent]] = defaultdict(list)
        overtaken = 0
        for item, report in zip(claimed, reports, strict=True):
            if report.delivered and not failed_aggregates:  # the usual case, kept cheap
                acks.append(item.claim)
                continue
            aggregate = item.event.aggregate_id
            if aggregate in failed_aggregates:
                # Order per aggregate: never ack past an undelivered event. Releasing it
                # makes the next claim start again at the first undelivered event.
                overtaken += report.delivered
                transient[_BLOCKED].append(item)
            elif report.delivered:
                acks.append(item.claim)
            else:
                failed_aggregates.add(aggregate)
                error = report.error or "delivery failed"
                (transient if report.retriable else permanent)[error].append(item)
        if overtaken:
            logger.error(
                "event publisher %s reported %d event(s) delivered after an earlier event of "
                "their aggregate failed [events.order-per-key]; released for redelivery",
                getattr(self.publisher, "name", "?"),
                overtaken,
            )
        acknowledged = self.store.ack_events(acks) if acks else 0
        if acknowledged < len(acks):
            logger.warning(
                "%d acknowledgement(s) ignored: their lease had expired, so another relay may "
                "deliver them again (a duplicate with the same event id)",
                len(acks) - acknowledged,
            )
        dead = 0
        policy = self.settings.retry_policy
        for error, items in permanent.items():
            self._release(items, error, policy)
            for item in items:
                if policy.is_exhausted(item.event.attempts + 1):
                    dead += 1
                    logger.warning(
                        "dead-lettered event %s (%s of %s %s) after %d failed attempts: %s",
                        item.event.id,
                        item.event.event_type,
                        item.event.aggregate_type,
                        item.event.aggregate_id,
                        item.event.attempts + 1,
                        error,
                    )
        retried = sum(len(items) for items in permanent.values()) - dead
        for error, items in transient.items():
            self._release(items, error, self._transient_policy)
            retried += len(items)
        return BatchOutcome(
            claimed=len(claimed),
            delivered=acknowledged,
            retried=retried,
            failed_by_event=sum(len(items) for items in permanent.values()),
            dead_lettered=dead,
            acks_ignored=len(acks) - acknowledged,
        )

    def _release(self, items: Sequence[ClaimedEvent], error: str, policy: RetryPolicy) -> None:
        self.store.release_events(
            [item.claim for item in items], error=error, now=self.clock.now(), policy=policy
        )

    # -- loops -----------------------------------------------------------------------------
    def drain(self, stop: threading.Event | None = None) -> RelayTotals:
        """Relay until a claim finds nothing to publish now (or ``stop`` is set).

        Events waiting for a retry are not waited for. Returns the running totals.
        """
        halt = stop or threading.Event()
        pipelined = self._pipelined()
        if pipelined is not None:
            self._pipeline(pipelined, halt, drain=True)
        else:
            self._in_lanes(halt, self._drain_lane)
        self.report_progress(force=True)
        return self.totals

    def _drain_lane(self, stop: threading.Event, reporter: bool) -> None:
        while not stop.is_set():
            outcome = self.relay_batch()
            if reporter:
                self.report_progress()
            if outcome.claimed == 0 or outcome.outage:
                return

    def run(self, stop: threading.Event) -> RelayTotals:
        """Relay until ``stop`` is set; every batch in flight is settled first.

        Idle, it waits on ``store.wait_for_events`` (``LISTEN/NOTIFY`` with PostgreSQL) and
        polls every ``poll_interval`` in case a wake-up was missed. After a batch that
        delivered nothing because of an outage it backs off (exponentially, with jitter) so
        a down broker is not hammered. A store failure is retried with backoff; past
        ``store_outage_limit`` seconds ``RelayStoreOutage`` is raised.
        """
        pipelined = self._pipelined()
        if pipelined is not None:
            self._pipeline(pipelined, stop, drain=False)
        else:
            self._in_lanes(stop, self._run_lane)
        self.report_progress(force=True)
        return self.totals

    def _in_lanes(
        self, stop: threading.Event, lane: Callable[[threading.Event, bool], None]
    ) -> None:
        """Run ``lane`` in ``settings.lanes`` threads (this one included, as the reporter).

        When one lane ends (an error, an interrupt, or the end of a drain) the others are
        asked to stop, finish their batch, and are joined; the first error is re-raised.
        """
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                lane(stop, False)
            except BaseException as error:  # re-raised by the calling thread
                errors.append(error)
                stop.set()

        threads = [
            threading.Thread(target=guarded, name=f"user-engine-relay-lane-{n + 1}")
            for n in range(self.settings.lanes - 1)
        ]
        for thread in threads:
            thread.start()
        try:
            lane(stop, True)
        except BaseException:
            stop.set()  # the other lanes settle their batch and end
            raise
        finally:
            for thread in threads:
                while thread.is_alive():  # joined in steps so a second signal still lands
                    thread.join(0.2)
        if errors:
            raise errors[0]

    def _store_down(self, error: StoreUnavailableError, since: float | None) -> float:
        """Note a store failure; return since when the store is down. Raises
        ``RelayStoreOutage`` once that is ``store_outage_limit`` ago."""
        now = time.monotonic()
        since = since or now
        down_for = now - since
        logger.warning("store unavailable for %.0fs: %s", down_for, error.code)
        if down_for >= self.settings.store_outage_limit:
            raise RelayStoreOutage(
                f"the store stayed unreachable for {down_for:.0f}s; giving up so a "
                "supervisor can restart the relay",
            ) from error
        return since

    def _run_lane(self, stop: threading.Event, reporter: bool) -> None:
        outages = 0
        store_down_since: float | None = None
        while not stop.is_set():
            try:
                outcome = self.relay_batch()
            except StoreUnavailableError as error:
                store_down_since = self._store_down(error, store_down_since)
                outages += 1
                stop.wait(self._backoff(outages))
                continue
            store_down_since = None
            if reporter:
                self.report_progress()
            if outcome.outage:
                outages += 1
                delay = self._backoff(outages)
                logger.warning(
                    "no event of the last batch was delivered (%d released); retrying in %.1fs",
                    outcome.retried,
                    delay,
                )
                stop.wait(delay)
                continue
            outages = 0
            if outcome.claimed == 0:
                self._wait_for_events(stop)

    def _pipelined(self) -> PipelinedEventPublisher | None:
        """The publisher, if it can keep several batches on their way from one thread."""
        publisher = self.publisher
        if callable(getattr(publisher, "begin_publish", None)):
            return cast(PipelinedEventPublisher, publisher)
        return None

    def _pipeline(
        self, publisher: PipelinedEventPublisher, stop: threading.Event, *, drain: bool
    ) -> None:
        """The lanes in one thread: up to ``lanes`` batches on their way, oldest settled first.

        Each step tops the pipeline up with a claim (handed to the publisher at once), or
        else settles the oldest batch; so while the broker works on one batch, this thread
        claims, encodes and produces the next, and no thread waits for another to be
        scheduled. Claims are disjoint like those of separate relays, so the batches never
        share an aggregate. ``drain`` ends once a claim finds nothing while nothing else is
        on its way (or a batch was an outage) and every batch is settled; otherwise it runs
        like ``_run_lane`` until ``stop``. On an error it settles the batches on their way,
        then raises; interrupted, it releases them at once.
        """
        settings = self.settings
        in_flight: deque[tuple[list[ClaimedEvent], PendingPublish | list[DeliveryReport]]]
        in_flight = deque()
        failures = 0  # outages and store failures in a row: the backoff's exponent
        store_down_since: float | None = None
        resume_at = 0.0  # no claim before this (backing off)
        exhausted = False  # drain: nothing more to claim now
        nothing_new = False  # the last claim found nothing: settle, then look again

        def store_failed(error: StoreUnavailableError) -> None:
            nonlocal failures, store_down_since, resume_at
            store_down_since = self._store_down(error, store_down_since)
            failures += 1
            resume_at = time.monotonic() + self._backoff(failures)

        try:
            while True:
                if (
                    len(in_flight) < settings.lanes
                    and not (exhausted or stop.is_set() or (nothing_new and in_flight))
                    and time.monotonic() >= resume_at
                ):
                    try:
                        claimed = self._claim()
                    except StoreUnavailableError as error:
                        if drain:
                            raise
                        store_failed(error)
                    else:
                        store_down_since = None
                        if claimed:
                            in_flight.append((claimed, self._begin(publisher, claimed)))
                            continue
                        # Nothing claimable now; with batches on their way, their
                        # aggregates may have more once they are settled.
                        nothing_new = True
                        exhausted = drain and not in_flight
                if in_flight:
                    batch, begun = in_flight.popleft()
                    try:
                        outcome = self._finish(batch, begun)
                    except StoreUnavailableError as error:
                        if drain:
                            raise
                        store_failed(error)
                        continue
                    self.report_progress()
                    if outcome.outage:
                        exhausted = exhausted or drain
                        failures += 1
                        delay = self._backoff(failures)
                        logger.warning(
                            "no event of the last batch was delivered (%d released); "
                            "retrying in %.1fs",
                            outcome.retried,
                            delay,
                        )
                        resume_at = time.monotonic() + delay
                    elif store_down_since is None:
                        failures = 0
                    if not in_flight and not exhausted:
                        nothing_new = False  # look again now that everything is settled
                    continue
                if exhausted or stop.is_set():
                    return
                if nothing_new:
                    self._wait_for_events(stop)  # idle
                    nothing_new = False
                else:
                    stop.wait(max(0.0, resume_at - time.monotonic()))  # backing off
        except Exception:
            for batch, begun in in_flight:
                with contextlib.suppress(StoreUnavailableError):  # else the lease expires
                    self._finish(batch, begun)
            raise
        except BaseException:
            self._interrupted(batch for batch, _ in in_flight)
            raise

    def _wait_for_events(self, stop: threading.Event) -> None:
        try:
            self.store.wait_for_events(self.settings.poll_interval)
        except StoreUnavailableError as error:
            logger.warning("waiting for outbox events failed: %s", error.code)
            stop.wait(self.settings.poll_interval)

    def _backoff(self, failures: int) -> float:
        seconds: float = self._transient_policy.delay_after(failures).total_seconds()
        return seconds

    # -- progress --------------------------------------------------------------------------
    def report_progress(self, *, force: bool = False) -> None:
        """Log progress and call telemetry if ``progress_interval`` passed (or ``force``)."""
        now = time.monotonic()
        elapsed = now - self._last_progress
        if not force and elapsed < self.settings.progress_interval:
            return
        totals, last = self.totals, self._reported
        published = totals.published - last.published
        retried = totals.retried - last.retried
        dead = totals.dead_lettered - last.dead_lettered
        if force and not (published or retried or dead) and totals.batches == last.batches:
            return
        self._reported = dataclasses.replace(totals)
        self._last_progress = now
        if self.telemetry is None and not logger.isEnabledFor(logging.INFO):
            return  # nobody would see it: spare the store the outbox_stats query
        try:
            lag: OutboxLag | None = outbox_lag(self.store, now=self.clock.now())
        except StoreUnavailableError:
            lag = None
        rate = published / elapsed if elapsed > 0 else 0.0
        logger.info(
            "relay: %d published (%.0f/s), %d retried, %d dead-lettered; outbox %s",
            published,
            rate,
            retried,
            dead,
            _describe(lag),
        )
        if self.telemetry is not None:
            age = lag.oldest_pending_age_seconds if lag is not None else None
            try:
                self.telemetry.relay_progress(
                    published=published, failed=retried, dead_lettered=dead, lag_seconds=age
                )
            except Exception as error:  # telemetry must never stop the relay
                logger.warning("telemetry relay_progress failed: %s", type(error).__name__)


def _describe(lag: OutboxLag | None) -> str:
    if lag is None:
        return "unreadable"
    age = lag.oldest_pending_age_seconds
    oldest = "none pending" if age is None else f"oldest pending {age:.1f}s"
    return f"{lag.pending} pending, {lag.in_flight} in flight, {lag.dead} dead, {oldest}"
