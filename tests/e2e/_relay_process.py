"""``user-engine relay`` in a process of its own that can SIGKILL itself at a chosen point.

Run as ``python tests/e2e/_relay_process.py relay [options]`` with the engine configured
through the environment (``USER_ENGINE_STORE``, ``USER_ENGINE_POSTGRES__DSN``, ...).
``E2E_KILL_AT`` picks the point, on the ``E2E_KILL_ON_BATCH``-th batch (default 1):

- ``after-claim``: the batch is leased, nothing was produced;
- ``after-produce``: the messages were handed to the producer, no delivery report yet;
- ``after-delivery``: the broker acknowledged the batch, the outbox was not told (no ack).

It prints ``E2E kill point reached: <point>`` to stderr just before it dies.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from user_engine import relay as relay_module
from user_engine.cli import relay as relay_command
from user_engine_events_kafka import publisher as publisher_module

KILL_AT = os.environ.get("E2E_KILL_AT", "")
KILL_ON = int(os.environ.get("E2E_KILL_ON_BATCH", "1"))
_lock = threading.Lock()
_count = 0


def _maybe_die(point: str) -> None:
    global _count
    if point != KILL_AT:
        return
    with _lock:
        _count += 1
        if _count < KILL_ON:
            return
    sys.stderr.write(f"E2E kill point reached: {point}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _patch() -> None:
    begin_publish = publisher_module.KafkaEventPublisher.begin_publish
    await_reports = publisher_module.KafkaEventPublisher._await_reports
    settle = relay_module.Relay._settle

    def patched_begin_publish(self: Any, events: Any, *, timeout: float) -> Any:
        if events:
            _maybe_die("after-claim")
        return begin_publish(self, events, timeout=timeout)

    def patched_await(self: Any, batch: Any, deadline: float) -> None:
        _maybe_die("after-produce")
        await_reports(self, batch, deadline)

    def patched_settle(self: Any, claimed: Any, reports: Any) -> Any:
        _maybe_die("after-delivery")
        return settle(self, claimed, reports)

    publisher_module.KafkaEventPublisher.begin_publish = patched_begin_publish  # type: ignore[method-assign]
    publisher_module.KafkaEventPublisher._await_reports = patched_await  # type: ignore[method-assign]
    relay_module.Relay._settle = patched_settle  # type: ignore[method-assign]


def main() -> int:
    """Parse like ``user-engine`` and run the relay command."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _patch()
    parser = argparse.ArgumentParser(prog="user-engine")
    relay_command.register(parser.add_subparsers())
    args = parser.parse_args(sys.argv[1:])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
