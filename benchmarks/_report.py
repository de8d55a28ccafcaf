"""Shared output of the benchmarks: a table of ratios and a JSON file in ``results/``."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """One measured figure: ours against the limit measured in the same run."""

    name: str
    ours: float
    limit: float
    unit: str
    target: float | None = None  # minimum acceptable ratio ours/limit (None: for context)

    @property
    def ratio(self) -> float:
        """ours / limit (for rates: higher is better)."""
        return self.ours / self.limit if self.limit else float("nan")


def rate(operation: Callable[[], object], count: int) -> float:
    """Operations per second of ``operation`` run ``count`` times."""
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """Median of several measurements (damps a noisy neighbour)."""
    values = sorted(measure() for _ in range(runs))
    return values[len(values) // 2]


def report(benchmark: str, figures: Sequence[Figure], notes: Sequence[str] = ()) -> None:
    """Print the table and write ``results/<benchmark>.json``."""
    print(f"{'figure':<46} {'ours':>12} {'limit':>12} {'unit':<10} {'ratio':>7} {'target':>7}")
    for f in figures:
        target = f"{f.target:.2f}" if f.target is not None else "-"
        verdict = "" if f.target is None else ("  ok" if f.ratio >= f.target else "  BELOW")
        print(
            f"{f.name:<46} {f.ours:>12,.1f} {f.limit:>12,.1f} {f.unit:<10} "
            f"{f.ratio:>7.3f} {target:>7}{verdict}"
        )
    for note in notes:
        print(f"note: {note}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": benchmark,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
        "notes": list(notes),
    }
    (RESULTS / f"{benchmark}.json").write_text(json.dumps(payload, indent=2))
