"""``user-engine relay``: publish committed outbox events to the configured broker.

Runs ``user_engine.relay.Relay`` with the configured store and event publisher until
SIGTERM or SIGINT (or, with ``--once``, until nothing is left to publish now).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType

from user_engine.cli._common import add_engine_options, engine_from_args
from user_engine.domain import RetryPolicy
from user_engine.relay import Relay, RelaySettings

__all__ = ["EXIT_CODES", "register", "run"]

logger = logging.getLogger("user_engine.relay")

EXIT_CODES = """\
exit codes:
  0  stopped by SIGTERM/SIGINT after settling the batch in hand; with --once: nothing
     is left pending and nothing was dead-lettered
  1  --once only: events are left pending (failed, waiting for a retry) or were
     dead-lettered during this run; run again later or inspect the dead letters
  2  usage or configuration error: fix the command or the configuration (no restart)
  3  engine error: the store is not ready (schema) or stayed unreachable, or an adapter
     failed; a supervisor should restart with backoff and alert
"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``relay`` command."""
    defaults = RelaySettings()
    policy = defaults.retry_policy
    parser = subparsers.add_parser(
        "relay",
        help="publish committed outbox events to the configured event publisher",
        description=(
            "Claim outbox events, publish them, ack what the broker acknowledged and release "
            "what failed (backoff with jitter; dead-letter after --max-attempts failures "
            "that are the event's own fault). Several relays may run against one store."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_engine_options(parser)
    parser.add_argument(
        "--once", action="store_true", help="publish what can be published now, then exit"
    )
    parser.add_argument("--batch-size", type=_count, default=defaults.batch_size)
    parser.add_argument(
        "--lease",
        type=_seconds,
        default=defaults.lease.total_seconds(),
        help="seconds a claim holds its events (must exceed twice --publish-timeout)",
    )
    parser.add_argument(
        "--publish-timeout",
        type=_seconds,
        default=defaults.publish_timeout,
        help="seconds to wait for the broker's verdict on a batch",
    )
    parser.add_argument(
        "--poll-interval",
        type=_seconds,
        default=defaults.poll_interval,
        help="seconds between polls when no wake-up notification arrives",
    )
    parser.add_argument(
        "--progress-interval",
        type=_seconds,
        default=defaults.progress_interval,
        help="seconds between progress log lines",
    )
    parser.add_argument(
        "--max-attempts",
        type=_count,
        default=policy.max_attempts,
        help="failures (the event's own fault) before an event is dead-lettered",
    )
    parser.add_argument(
        "--retry-base",
        type=_seconds,
        default=policy.base_delay.total_seconds(),
        help="backoff after the first failure, doubled after each further one",
    )
    parser.add_argument(
        "--retry-max",
        type=_seconds,
        default=policy.max_delay.total_seconds(),
        help="longest backoff",
    )
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> RelaySettings:
    """The relay settings the arguments describe (``ValidationError`` if inconsistent)."""
    return RelaySettings(
        batch_size=args.batch_size,
        lease=timedelta(seconds=args.lease),
        publish_timeout=args.publish_timeout,
        poll_interval=args.poll_interval,
        progress_interval=args.progress_interval,
        retry_policy=RetryPolicy(
            max_attempts=args.max_attempts,
            base_delay=timedelta(seconds=args.retry_base),
            max_delay=timedelta(seconds=max(args.retry_max, args.retry_base)),
        ),
    )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGTERM/SIGINT: finish the batch in hand, then stop. Second: stop now (the
    batch in hand is released before the process leaves)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logger.info("%s received: stopping after the batch in hand", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    """Run the relay; return the exit code (see ``EXIT_CODES``)."""
    settings = settings_from_args(args)
    with engine_from_args(args) as engine:
        readiness = engine.store.readiness()
        if not readiness.ready:
            logger.error(
                "store %s is not ready (%s); not relaying",
                engine.config.store,
                ", ".join(readiness.problems) or "unknown",
            )
            return 3
        relay = Relay(engine.store, engine.publisher, settings=settings, telemetry=engine.telemetry)
        stop = threading.Event()
        with _stop_on_signals(stop):
            logger.info(
                "relay started: store %s, publisher %s, batch %d, lease %.0fs%s",
                engine.config.store,
                engine.config.events,
                settings.batch_size,
                settings.lease.total_seconds(),
                ", once" if args.once else "",
            )
            if not args.once:
                relay.run(stop)
                logger.info("relay stopped: %d published in total", relay.totals.published)
                return 0
            totals = relay.drain(stop)
        left = engine.store.outbox_stats().pending
        logger.info(
            "relay --once: %d published, %d dead-lettered, %d left pending",
            totals.published,
            totals.dead_lettered,
            left,
        )
        return 0 if left == 0 and totals.dead_lettered == 0 else 1
