"""Running the same work in several threads at once, for the concurrency clauses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Outcome", "run_at_once"]

_T = TypeVar("_T")

JOIN_TIMEOUT = 120.0
"""Seconds to wait for a racing thread: a deadlock fails the test instead of hanging it."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[_T]):
    """What one thread's work returned or raised."""

    value: _T | None = None
    error: BaseException | None = None


def run_at_once(workers: list[Callable[[], _T]]) -> list[Outcome[_T]]:
    """Start every worker, release them together from a barrier, and collect outcomes.

    The barrier makes the racing writes overlap as much as threads allow, so a store that
    checks uniqueness by reading first and writing later is caught in the act.
    """
    barrier = threading.Barrier(len(workers))
    outcomes: list[Outcome[_T] | None] = [None] * len(workers)

    def run(index: int, work: Callable[[], _T]) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            outcomes[index] = Outcome(value=work())
        except BaseException as error:  # reported to the test, which decides
            outcomes[index] = Outcome(error=error)

    threads = [
        threading.Thread(target=run, args=(i, w), name=f"conformance-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        raise AssertionError(f"threads did not finish within {JOIN_TIMEOUT}s: {stuck}")
    return [outcome if outcome is not None else Outcome() for outcome in outcomes]
