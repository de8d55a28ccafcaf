"""Running the suites without writing a test module: what ``user-engine conformance`` uses.

``run_conformance`` writes the three-line test module an adapter author would write (one
class per adapter named, settings passed through ``adapter_settings``) into a private
temporary directory, runs pytest on it in this process, and gathers a verdict per clause.
So the zero-line way in runs exactly the code the three-line way runs.
"""

from __future__ import annotations

import fnmatch
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pytest
from user_engine.errors import ConfigurationError

from user_engine_conformance.clauses import CLAUSES, Port, clause_of

__all__ = [
    "ClauseVerdict",
    "Outcome",
    "Verdict",
    "VerdictRecorder",
    "run_conformance",
]

Outcome = Literal["pass", "fail", "skip", "xfail"]

_SUITES: Final[Mapping[Port, str]] = {
    "store": "StoreConformance",
    "events": "EventPublisherConformance",
    "audit": "AuditSinkConformance",
}
# When a clause has several tests (parametrized), the worst outcome is the clause's.
_RANK: Final[Mapping[Outcome, int]] = {"fail": 3, "xfail": 2, "skip": 1, "pass": 0}


@dataclass(slots=True)
class ClauseVerdict:
    """The outcome of one clause for one adapter, over all its tests.

    ``detail`` says why for anything but a pass: the skip or xfail reason, or the first
    lines of the failure.
    """

    clause_id: str
    port: Port
    adapter: str
    outcome: Outcome
    tests: int = 0
    detail: str = ""


@dataclass(slots=True)
class Verdict:
    """Every clause's verdict, and pytest's exit code."""

    clauses: list[ClauseVerdict] = field(default_factory=list)
    pytest_exit_code: int = 0
    problems: list[str] = field(default_factory=list)
    """Errors outside any clause (a test module that failed to import, say)."""

    @property
    def conformant(self) -> bool:
        """True when clauses ran and none failed (skips and expected failures are fine)."""
        return (
            bool(self.clauses)
            and not self.problems
            and all(c.outcome != "fail" for c in self.clauses)
        )

    def counts(self) -> dict[Outcome, int]:
        """How many clauses ended each way."""
        found: dict[Outcome, int] = {"pass": 0, "fail": 0, "skip": 0, "xfail": 0}
        for verdict in self.clauses:
            found[verdict.outcome] += 1
        return found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "conformant": self.conformant,
            "counts": self.counts(),
            "problems": list(self.problems),
            "clauses": [
                {
                    "clause": c.clause_id,
                    "port": c.port,
                    "adapter": c.adapter,
                    "outcome": c.outcome,
                    "tests": c.tests,
                    "detail": c.detail,
                }
                for c in self.clauses
            ],
        }


def _failure_detail(report: pytest.TestReport) -> str:
    text = report.longreprtext
    # pytest marks the explanation of a failure with "E   "; keep the first few lines.
    lines = [line[4:].rstrip() for line in text.splitlines() if line.startswith("E ")]
    if not lines:  # pytest.fail(..., pytrace=False): the text is the message itself
        lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    detail = lines[:6]
    # The stateful model test's failing sequence of operations is the useful part.
    steps = [n for n, line in enumerate(lines) if line.startswith("Failing test case")]
    if steps:
        sequence = [line for line in lines[steps[0] :] if not line.strip().endswith("_match()")]
        detail = lines[:1] + sequence[:30]
    return "\n".join(line for line in detail if line.strip())


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr or "")


class VerdictRecorder:
    """A pytest plugin object that selects clauses and records each clause's outcome.

    :param patterns: clause id patterns (``fnmatch``, e.g. ``store.outbox.*``) to run; empty
        runs every clause. Tests that are not clauses are never selected.
    :param exclude: clause id patterns not to run.
    """

    def __init__(self, patterns: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self.exclude = tuple(exclude)
        self.verdict = Verdict()
        self._items: dict[str, tuple[str, str]] = {}
        self._by_key: dict[tuple[str, str], ClauseVerdict] = {}

    def _wanted(self, clause_id: str) -> bool:
        if any(fnmatch.fnmatchcase(clause_id, p) for p in self.exclude):
            return False
        return not self.patterns or any(fnmatch.fnmatchcase(clause_id, p) for p in self.patterns)

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Keep the selected clauses; remember which clause and adapter each test checks."""
        kept, dropped = [], []
        for item in items:
            found = clause_of(item)
            if found is None or not self._wanted(found.id):
                dropped.append(item)
                continue
            kept.append(item)
            owner = getattr(item, "cls", None)
            adapter = str(getattr(owner, "adapter_name", "")) or "?"
            self._items[item.nodeid] = (found.id, adapter)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module that cannot even be collected is a problem of the whole run."""
        if report.failed:
            self.verdict.problems.append(f"collecting {report.nodeid}: {report.longreprtext}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each test's report into its clause's verdict."""
        located = self._items.get(report.nodeid)
        if located is None:
            return
        outcome: Outcome | None = None
        detail = ""
        if report.when == "call" and report.passed:
            outcome = "pass"  # an unexpected pass of a non-strict xfail counts as a pass
        elif hasattr(report, "wasxfail") and report.skipped:
            outcome, detail = "xfail", str(report.wasxfail)
        elif report.skipped:
            outcome, detail = "skip", _skip_reason(report)
        elif report.failed:
            outcome, detail = "fail", _failure_detail(report)
            if report.when != "call":
                detail = f"error in test {report.when}: {detail}"
        if outcome is None:
            return
        clause_id, adapter = located
        key = (clause_id, adapter)
        current = self._by_key.get(key)
        if current is None:
            current = ClauseVerdict(clause_id, CLAUSES[clause_id].port, adapter, outcome)
            self._by_key[key] = current
            self.verdict.clauses.append(current)
        # A test is counted once: at its call, or at a setup that skipped or failed it.
        if report.when == "call" or (report.when == "setup" and not report.passed):
            current.tests += 1
        if _RANK[outcome] > _RANK[current.outcome]:
            current.outcome, current.detail = outcome, detail
        elif outcome == current.outcome and detail and not current.detail:
            current.detail = detail


_MODULE = '''"""Written by `user-engine conformance`: the three-line way in, for {adapter!r}."""

import json
from pathlib import Path

import pytest
from user_engine_conformance import {suite}


class Test{title}({suite}):
    adapter_name = {adapter!r}

    @pytest.fixture
    def adapter_settings(self):
        # Read from a file beside this module, so no traceback ever shows a setting's value.
        return json.loads(Path(__file__).with_name({settings_file!r}).read_text("utf-8"))
'''


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-")) or "Adapter"


def run_conformance(
    adapters: Mapping[Port, str],
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    clauses: Sequence[str] = (),
    exclude: Sequence[str] = (),
    show_pytest_output: bool = False,
    pytest_args: Sequence[str] = (),
) -> Verdict:
    """Run the suites of the named adapters and return the verdict.

    :param adapters: adapter name per port, e.g. ``{"store": "acme"}``.
    :param settings: settings per adapter name (JSON-compatible values).
    :param clauses: clause id patterns to run (all when empty); ``exclude`` ones not to.
    :param show_pytest_output: let pytest print its usual report too.
    :param pytest_args: further pytest arguments.
    :raises ConfigurationError: for a port without a suite or settings that are not JSON.
    """
    settings = settings or {}
    recorder = VerdictRecorder(clauses, exclude)
    with tempfile.TemporaryDirectory(prefix="user-engine-conformance-") as directory:
        root = Path(directory)
        # An empty configuration of our own: the caller's pytest.ini, conftest files and
        # addopts must not change what the suite does.
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        for port, adapter in adapters.items():
            if port not in _SUITES:
                raise ConfigurationError(
                    f"no conformance suite for {port!r}; choose from {', '.join(_SUITES)}",
                    code="configuration.invalid",
                )
            try:
                text = json.dumps(dict(settings.get(adapter, {})))
            except (TypeError, ValueError) as error:
                raise ConfigurationError(
                    f"the settings of {adapter!r} must be JSON-compatible values",
                    code="configuration.invalid",
                ) from error
            settings_file = f"settings-{port}.json"
            # The directory is private to this user (mkdtemp); the file may hold credentials.
            (root / settings_file).write_text(text, encoding="utf-8")
            module = _MODULE.format(
                adapter=adapter,
                suite=_SUITES[port],
                title=_title(adapter),
                settings_file=settings_file,
            )
            (root / f"test_{port}_conformance.py").write_text(module, encoding="utf-8")
        arguments = [
            str(root),
            "-c",
            str(root / "pytest.ini"),
            "--rootdir",
            str(root),
            "--confcutdir",
            str(root),
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
        ]
        # Without the terminal plugin pytest prints nothing: the caller prints the verdict.
        arguments += ["-q"] if show_pytest_output else ["-p", "no:terminal"]
        exit_code = pytest.main([*arguments, *pytest_args], plugins=[recorder])
    recorder.verdict.pytest_exit_code = int(exit_code)
    return recorder.verdict
