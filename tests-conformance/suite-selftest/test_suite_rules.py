"""The kit's own rules: overrides only as xfail with a reason, bases never collected alone,
loud failures with guidance, skips always with a reason, every clause covered and documented.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from user_engine_conformance import (
    CLAUSES,
    AuditSinkConformance,
    EventPublisherConformance,
    StoreConformance,
)
from user_engine_conformance.clauses import CLAUSE_ATTRIBUTE, clause
from user_engine_conformance.runner import Verdict, VerdictRecorder

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
HEADER = """
import pytest
import selftest_mutants
from user_engine_conformance import StoreConformance, EventPublisherConformance
"""
HOST = """
    @pytest.fixture
    def plugin_host(self):
        return selftest_mutants.mutant_host()
"""


def run(pytester: pytest.Pytester, body: str, *args: str) -> tuple[Verdict, pytest.RunResult]:
    pytester.makepyfile(test_adapter=HEADER + body)
    recorder = VerdictRecorder(exclude=("store.model.equivalence",))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, plugins=[recorder])
    return recorder.verdict, result


def outcomes(verdict: Verdict) -> dict[str, str]:
    return {c.clause_id: c.outcome for c in verdict.clauses}


# -- overriding clauses ---------------------------------------------------------------------
def test_overriding_a_clause_without_an_xfail_fails_collection_naming_the_clause(
    pytester: pytest.Pytester,
) -> None:
    _, result = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "reference-store"

    def test_linking_an_identity_twice_is_a_conflict(self, store):
        pass
""")  # fmt: skip

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*overrides the conformance test of clause store.identity.unique*"]
    )
    result.stdout.fnmatch_lines(["*@pytest.mark.xfail(reason=*"])


@pytest.mark.parametrize(
    "decorator", ["@pytest.mark.xfail", "@pytest.mark.xfail(reason='  ')", "@pytest.mark.skip"]
)
def test_an_override_needs_an_xfail_with_a_real_reason(
    pytester: pytest.Pytester, decorator: str
) -> None:
    _, result = run(pytester, f"""
class TestStore(StoreConformance):
    adapter_name = "reference-store"

    {decorator}
    def test_linking_an_identity_twice_is_a_conflict(self, store):
        pass
""")  # fmt: skip

    result.stdout.fnmatch_lines(["*overrides the conformance test of clause*"])


def test_replacing_a_clause_test_with_something_else_is_refused(
    pytester: pytest.Pytester,
) -> None:
    _, result = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "reference-store"
    test_linking_an_identity_twice_is_a_conflict = None
""")  # fmt: skip

    result.stdout.fnmatch_lines(
        ["*overrides the conformance test of clause store.identity.unique*"]
    )


def test_an_xfail_override_with_a_reason_is_reported_under_its_clause(
    pytester: pytest.Pytester,
) -> None:
    verdict, _ = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "duplicate-identity-link"
""" + HOST + """
    @pytest.mark.xfail(reason="links are unique per tenant only in this adapter", strict=True)
    def test_linking_an_identity_twice_is_a_conflict(self, store):
        super().test_linking_an_identity_twice_is_a_conflict(store)
""", "-k", "identity_twice")  # fmt: skip

    [found] = verdict.clauses
    assert (found.clause_id, found.outcome) == ("store.identity.unique", "xfail")
    assert "unique per tenant" in found.detail


def test_an_xfail_override_of_a_parametrized_clause_keeps_its_parameters(
    pytester: pytest.Pytester,
) -> None:
    verdict, _ = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "tenant-leak-in-one-query"
""" + HOST + """
    @pytest.mark.xfail(reason="bindings are global in this adapter (ACME-7)", strict=False)
    def test_a_tenant_scoped_read_returns_only_rows_the_scope_allows(self, store, read):
        super().test_a_tenant_scoped_read_returns_only_rows_the_scope_allows(store, read)
""", "-k", "only_rows_the_scope_allows")  # fmt: skip

    [found] = verdict.clauses
    assert (found.clause_id, found.outcome, found.tests) == ("store.tenant.isolation", "xfail", 12)
    assert "ACME-7" in found.detail


def test_overriding_fixtures_and_adding_tests_is_free(pytester: pytest.Pytester) -> None:
    verdict, result = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "reference-store"
""" + HOST + """
    @pytest.fixture
    def adapter_settings(self):
        return {"migrate": True}

    def test_an_adapter_specific_behaviour(self, store):
        assert store.name == "reference-store"
""", "-k", "specific or identity_twice")  # fmt: skip

    assert result.ret == pytest.ExitCode.OK
    assert outcomes(verdict) == {"store.identity.unique": "pass"}


# -- collection and loud failures -------------------------------------------------------------
def test_the_base_classes_alone_collect_no_test(pytester: pytest.Pytester) -> None:
    _, result = run(pytester, "\nfrom user_engine_conformance import AuditSinkConformance\n")

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_class_naming_no_adapter_fails_with_guidance(pytester: pytest.Pytester) -> None:
    verdict, result = run(pytester, """
class TestStore(StoreConformance):
    pass
""", "-k", "identity_twice")  # fmt: skip

    assert outcomes(verdict) == {"store.identity.unique": "fail"}
    result.stdout.fnmatch_lines(["*TestStore names no adapter: set the class attribute*"])


def test_an_adapter_that_is_not_installed_fails_naming_the_installed_ones(
    pytester: pytest.Pytester,
) -> None:
    _, result = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "not-installed"
""" + HOST, "-k", "identity_twice")  # fmt: skip

    result.stdout.fnmatch_lines(["*no store adapter named 'not-installed' is installed*"])
    result.stdout.fnmatch_lines(["*Install the distribution that registers*"])


def test_a_missing_required_setting_fails_loudly_with_guidance(pytester: pytest.Pytester) -> None:
    verdict, result = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "store-needing-a-region"
""" + HOST, "-k", "identity_twice")  # fmt: skip

    assert outcomes(verdict) == {"store.identity.unique": "fail"}
    result.stdout.fnmatch_lines(["*the setting 'region' is required*"])
    result.stdout.fnmatch_lines(["*with an `adapter_settings` fixture on TestStore*"])


def test_the_adapter_settings_fixture_reaches_the_factory(pytester: pytest.Pytester) -> None:
    verdict, _ = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "store-needing-a-region"

    @pytest.fixture
    def adapter_settings(self):
        return {"region": "eu-west"}
""" + HOST, "-k", "identity_twice")  # fmt: skip

    assert outcomes(verdict) == {"store.identity.unique": "pass"}


# -- skips always carry a reason --------------------------------------------------------------
def test_clauses_of_undeclared_capabilities_are_skipped_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    verdict, result = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "store-without-capabilities"
""" + HOST, "-rs")  # fmt: skip

    skipped = {c.clause_id: c.detail for c in verdict.clauses if c.outcome == "skip"}
    needing = {c.id for c in CLAUSES.values() if c.requires}
    assert set(skipped) == needing | {"store.readiness.behind"}
    assert "capability concurrent-writers" in skipped["store.identity.unique-concurrent"]
    assert "capability wake-on-event" in skipped["store.outbox.wake"]
    assert {c.outcome for c in verdict.clauses if c.clause_id not in skipped} == {"pass"}
    result.stdout.fnmatch_lines(["SKIPPED*does not declare in its capabilities*"])


def test_clauses_needing_a_hook_fixture_are_skipped_naming_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    verdict, _ = run(pytester, """
class TestPublisher(EventPublisherConformance):
    adapter_name = "reference-publisher"
""" + HOST)  # fmt: skip

    skipped = {c.clause_id: c.detail for c in verdict.clauses if c.outcome == "skip"}
    assert set(skipped) == {c.id for c in CLAUSES.values() if c.port == "events" and c.hook}
    assert "`published_events` fixture" in skipped["events.order-per-key"]
    assert "`failing_publisher` fixture" in skipped["events.failure-surfaced"]


# -- the kit is complete and documented --------------------------------------------------------
def _clause_tests(suite: type) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, member in inspect.getmembers(suite, inspect.isfunction):
        clause_id = getattr(member, CLAUSE_ATTRIBUTE, None)
        if name.startswith("test_"):
            assert clause_id is not None, f"{suite.__name__}.{name} checks no clause"
            found.setdefault(clause_id, []).append(name)
    return found


def test_every_clause_has_a_test_and_every_test_a_clause() -> None:
    tests = {
        **_clause_tests(StoreConformance),
        **_clause_tests(EventPublisherConformance),
        **_clause_tests(AuditSinkConformance),
    }

    assert sorted(tests) == sorted(CLAUSES)


def test_every_clause_id_in_the_port_docstrings_is_a_clause_of_the_kit() -> None:
    ports = (ROOT / "packages/user-engine/src/user_engine/ports.py").read_text(encoding="utf-8")

    named = set(re.findall(r"\[((?:store|events|audit)\.[a-z.-]+)\]", ports))

    assert named, "ports.py names clause ids in brackets"
    assert named - set(CLAUSES) == set()


def test_every_clause_is_documented_with_its_summary() -> None:
    docs = (ROOT / "docs/conformance.md").read_text(encoding="utf-8")

    missing = [c.id for c in CLAUSES.values() if f"| `{c.id}` | {c.summary} |" not in docs]

    assert missing == []


def test_an_unknown_clause_id_is_refused_at_import_time() -> None:
    with pytest.raises(KeyError, match="unknown conformance clause id"):
        clause("store.identity.uniqe")


def test_failures_show_the_compared_values_because_assertions_are_rewritten(
    pytester: pytest.Pytester,
) -> None:
    verdict, _ = run(pytester, """
class TestStore(StoreConformance):
    adapter_name = "backoff-not-growing"
""" + HOST, "-k", "growing_delays")  # fmt: skip

    [found] = verdict.clauses
    assert "[1.0, 1.0, 1.0, 1.0, 1.0] == [1.0, 2.0, 4.0, 8.0, 8.0]" in found.detail


def test_the_plugin_registers_the_clause_marker(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--markers")

    result.stdout.fnmatch_lines(["*user_engine_clause(clause_id)*"])
