"""Every deliberately broken adapter fails the suite, and fails it with the right clause ids.

Each case writes the three-line test module a third party would write (plus the hook
fixtures its port needs), runs pytest on it in this process, and reads the verdict per clause
with the kit's own ``VerdictRecorder``: the clause the mutant breaks must fail, and nothing
outside the clauses that depend on the same behaviour may fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from user_engine_conformance.runner import Verdict, VerdictRecorder

pytest_plugins = ["pytester"]

MODEL = "store.model.equivalence"

STORE_MODULE = """
import pytest
import selftest_mutants
from user_engine_conformance import StoreConformance


class TestMutant(StoreConformance):
    adapter_name = {name!r}

    @pytest.fixture
    def plugin_host(self):
        return selftest_mutants.mutant_host()

    @pytest.fixture
    def unmigrated_adapter_settings(self):
        return {{"migrate": False}}
"""

PUBLISHER_MODULE = """
import pytest
import selftest_mutants
from user_engine_conformance import EventPublisherConformance, PollingObserver


class TestMutant(EventPublisherConformance):
    adapter_name = {name!r}

    @pytest.fixture
    def plugin_host(self):
        return selftest_mutants.mutant_host()

    @pytest.fixture
    def published_events(self, publisher):
        return PollingObserver(lambda: list(publisher.broker))

    @pytest.fixture
    def failing_publisher(self, plugin_host):
        publisher = plugin_host.create_event_publisher(self.adapter_name, {{}})
        publisher.broken = True
        return publisher
"""

SINK_MODULE = """
import pytest
import selftest_mutants
from user_engine_conformance import AuditSinkConformance, PollingObserver


class TestMutant(AuditSinkConformance):
    adapter_name = {name!r}

    @pytest.fixture
    def plugin_host(self):
        return selftest_mutants.mutant_host()

    @pytest.fixture
    def exported_audit(self, audit_sink):
        return PollingObserver(lambda: list(audit_sink.pipeline))

    @pytest.fixture
    def failing_audit_sink(self, plugin_host):
        sink = plugin_host.create_audit_sink(self.adapter_name, {{}})
        sink.broken = True
        return sink
"""

MODULES = {"store": STORE_MODULE, "events": PUBLISHER_MODULE, "audit": SINK_MODULE}


@dataclass(frozen=True)
class Mutant:
    """A broken adapter, the clauses it must fail, and those it may fail as well (clauses
    that lean on the same broken behaviour)."""

    name: str
    port: str
    breaks: frozenset[str]
    may_also_break: frozenset[str] = field(default_factory=frozenset)


def _mutant(name: str, port: str, breaks: set[str], also: set[str] | None = None) -> Mutant:
    return Mutant(name, port, frozenset(breaks), frozenset(also or ()))


MUTANTS = [
    _mutant("duplicate-identity-link", "store",
            {"store.identity.unique", "store.identity.unique-concurrent"},
            {"store.tx.savepoint-after-error"}),
    _mutant("lost-nested-rollback", "store", {"store.tx.nested-rollback"}),
    _mutant("denial-dropped-on-rollback", "store", {"store.audit.denial-survives-rollback"}),
    _mutant("outbox-reordered-for-one-key", "store", {"store.outbox.order-per-key"},
            {"store.outbox.order-per-key-concurrent"}),
    _mutant("lease-never-expires", "store", {"store.outbox.lease-expiry"}, {"store.outbox.ack"}),
    _mutant("tenant-leak-in-one-query", "store", {"store.tenant.isolation"}),
    _mutant("secret-in-diagnostics", "store", {"store.diagnostics.redacted"}),
    _mutant("stale-profile-write-accepted", "store",
            {"store.profile.optimistic", "store.profile.optimistic-concurrent"},
            {"store.errors.redacted"}),
    _mutant("catalog-version-overwritten", "store", {"store.catalog.immutable"}),
    _mutant("outbox-append-survives-rollback", "store",
            {"store.tx.atomic", "store.tx.nested-rollback"}),
    _mutant("backoff-not-growing", "store", {"store.outbox.backoff"}),
    _mutant("dead-letter-blocks-its-aggregate", "store", {"store.outbox.dead-letter"}),
    _mutant("audit-filter-ignores-outcome", "store", {"store.audit.filter"}),
    _mutant("publisher-swallowing-failure", "events", {"events.failure-surfaced"}),
    _mutant("publisher-losing-the-event-id", "events", {"events.stable-id"}),
    _mutant("publisher-reordering-a-key", "events", {"events.order-per-key"}),
    _mutant("publisher-dropping-a-report", "events", {"events.report-per-event"},
            {"events.failure-surfaced", "events.pipelined"}),
    _mutant("publisher-pipelining-reports-out-of-order", "events", {"events.pipelined"}),
    _mutant("sink-dropping-a-field", "audit", {"audit.fields-mapped"}),
    _mutant("sink-reporting-a-failed-export-as-exported", "audit", {"audit.failure-surfaced"}),
    _mutant("sink-exporting-extra-data", "audit", {"audit.no-secrets"}),
]  # fmt: skip

CONTROLS = [
    Mutant("reference-store", "store", frozenset()),
    Mutant("reference-publisher", "events", frozenset()),
    Mutant("reference-sink", "audit", frozenset()),
]


def run_suite(
    pytester: pytest.Pytester, mutant: Mutant, *, clauses: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (), model_examples: int | None = None,
) -> Verdict:  # fmt: skip
    """Run the port's suite against the adapter in this process; return the verdict."""
    pytester.makepyfile(test_adapter=MODULES[mutant.port].format(name=mutant.name))
    recorder = VerdictRecorder(clauses, exclude)
    arguments = ["-p", "no:cacheprovider", "--hypothesis-profile=conformance-selftest"]
    if model_examples is not None:
        arguments.append(f"--user-engine-model-examples={model_examples}")
    pytester.runpytest_inprocess(*arguments, plugins=[recorder])
    return recorder.verdict


def failed(verdict: Verdict) -> set[str]:
    """Clause ids that failed."""
    return {c.clause_id for c in verdict.clauses if c.outcome == "fail"}


def test_there_are_at_least_twelve_mutants_across_all_three_ports() -> None:
    assert len(MUTANTS) >= 12
    assert {m.port for m in MUTANTS} == {"store", "events", "audit"}


@pytest.mark.parametrize("control", CONTROLS, ids=lambda m: m.name)
def test_a_faithful_adapter_passes_every_clause_it_can_run(
    pytester: pytest.Pytester, control: Mutant
) -> None:
    verdict = run_suite(pytester, control, exclude=(MODEL,))

    assert failed(verdict) == set()
    assert verdict.conformant
    assert {c.outcome for c in verdict.clauses} == {"pass"}, [
        (c.clause_id, c.detail) for c in verdict.clauses if c.outcome != "pass"
    ]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_a_broken_adapter_fails_the_suite_with_the_clause_it_breaks(
    pytester: pytest.Pytester, mutant: Mutant
) -> None:
    # The stateful model test is run against mutants separately (it is slower, and
    # catching them is its job, not what names the clause).
    verdict = run_suite(pytester, mutant, exclude=(MODEL,))

    assert mutant.breaks <= failed(verdict), "the broken clause must be reported by its id"
    unexpected = failed(verdict) - mutant.breaks - mutant.may_also_break
    assert unexpected == set(), [
        (c.clause_id, c.detail) for c in verdict.clauses if c.clause_id in unexpected
    ]
    assert not verdict.conformant


CAUGHT_BY_THE_MODEL = [
    "duplicate-identity-link",
    "lost-nested-rollback",
    "denial-dropped-on-rollback",
    "outbox-reordered-for-one-key",
    "stale-profile-write-accepted",
    "outbox-append-survives-rollback",
    "audit-filter-ignores-outcome",
]


@pytest.mark.parametrize("name", CAUGHT_BY_THE_MODEL)
def test_the_stateful_model_alone_tells_a_broken_store_from_the_reference(
    pytester: pytest.Pytester, name: str
) -> None:
    mutant = next(m for m in MUTANTS if m.name == name)

    verdict = run_suite(pytester, mutant, clauses=(MODEL,))

    assert failed(verdict) == {MODEL}
    [model] = verdict.clauses
    assert "the adapter" in model.detail or "differ" in model.detail, model.detail


def test_the_stateful_model_passes_the_reference_store(pytester: pytest.Pytester) -> None:
    verdict = run_suite(pytester, CONTROLS[0], clauses=(MODEL,))

    assert [(c.clause_id, c.outcome) for c in verdict.clauses] == [(MODEL, "pass")]
