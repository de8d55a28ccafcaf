"""``run_conformance``: the zero-line way in, as a library call."""

import pytest
from user_engine.errors import ConfigurationError
from user_engine_conformance.runner import run_conformance


def test_selected_clauses_of_the_memory_store_pass() -> None:
    verdict = run_conformance({"store": "memory"}, clauses=["store.identity.*"])

    assert {c.clause_id: c.outcome for c in verdict.clauses} == {
        "store.identity.unique": "pass",
        "store.identity.unique-concurrent": "pass",
    }
    assert verdict.conformant
    assert verdict.to_dict()["counts"] == {"pass": 2, "fail": 0, "skip": 0, "xfail": 0}


def test_a_verdict_without_any_clause_run_is_not_conformant() -> None:
    verdict = run_conformance({"store": "memory"}, clauses=["store.nothing-like-this"])

    assert verdict.clauses == []
    assert not verdict.conformant


def test_settings_must_be_json_values() -> None:
    with pytest.raises(ConfigurationError, match="JSON-compatible"):
        run_conformance({"store": "memory"}, settings={"memory": {"when": object()}})


def test_only_ports_with_a_suite_can_be_checked() -> None:
    with pytest.raises(ConfigurationError, match="no conformance suite"):
        run_conformance({"telemetry": "otel"})  # type: ignore[dict-item]
