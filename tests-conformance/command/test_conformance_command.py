"""``user-engine conformance``: the zero-line way in, against the adapters installed here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from user_engine.cli import conformance
from user_engine.errors import ConfigurationError


def command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "user_engine.cli.conformance", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_installed_adapters_get_a_verdict_per_clause_and_exit_zero() -> None:
    result = command("--store", "memory", "--events", "inprocess", "--audit", "inprocess")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "store adapter 'memory' (user-engine-store-memory" in result.stdout
    assert "  PASS  store.identity.unique\n" in result.stdout
    assert "  PASS  store.model.equivalence\n" in result.stdout
    assert "  PASS  events.report-per-event\n" in result.stdout
    # The hooks only a test module can give are skipped, with the reason printed under them.
    assert "  SKIP  events.order-per-key\n" in result.stdout
    assert "needs the `published_events` fixture" in result.stdout
    assert result.stdout.rstrip().endswith("-> CONFORMANT")


def test_the_verdict_as_json_names_every_clause_run() -> None:
    result = command("--store", "memory", "--clause", "store.outbox.*", "--json")

    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["conformant"] is True
    clauses = {c["clause"]: c["outcome"] for c in verdict["clauses"]}
    assert set(clauses) == {c for c in clauses if c.startswith("store.outbox.")}
    assert clauses["store.outbox.lease-expiry"] == "pass"


def test_a_failing_clause_makes_the_exit_code_one_and_says_why() -> None:
    result = command("--store", "memory", "--setting", "colour=blue", "--clause", "store.readiness")

    assert result.returncode == 1
    assert "  FAIL  store.readiness\n" in result.stdout
    assert "unknown: colour" in result.stdout
    assert "NOT CONFORMANT" in result.stdout


def test_an_adapter_that_is_not_installed_is_a_usage_error_naming_the_installed_ones() -> None:
    result = command("--store", "acme-not-installed")

    assert result.returncode == 2
    assert "no store adapter named 'acme-not-installed'" in result.stderr
    assert "memory" in result.stderr


def test_naming_no_adapter_is_a_usage_error() -> None:
    assert command().returncode == 2


def test_a_clause_pattern_matching_nothing_is_a_usage_error() -> None:
    result = command("--store", "memory", "--clause", "store.no-such-clause")

    assert result.returncode == 2
    assert "no clause matched" in result.stderr


def test_without_the_kit_installed_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = conformance.importlib.util.find_spec
    monkeypatch.setattr(
        conformance.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "user_engine_conformance" else real(name, *a),
    )

    assert conformance.main(["--store", "memory"]) == 2
    assert "pip install user-engine-conformance" in capsys.readouterr().err


def test_the_core_command_module_does_not_import_pytest() -> None:
    code = "import sys, user_engine.cli.conformance; print('pytest' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["dsn=postgresql://u@h/db"], {"acme": {"dsn": "postgresql://u@h/db"}}),
        (["pool_size=4", "tls=true"], {"acme": {"pool_size": 4, "tls": True}}),
        (["hosts=['a', 'b']"], {"acme": {"hosts": ["a", "b"]}}),
        (["acme.region=eu = west"], {"acme": {"region": "eu = west"}}),
    ],
)
def test_settings_are_read_as_toml_values_or_text(
    pairs: list[str], expected: dict[str, dict[str, object]]
) -> None:
    assert conformance.parse_settings(pairs, ["acme"], {}) == expected


def test_settings_of_several_adapters_need_their_adapter_named() -> None:
    named = conformance.parse_settings(
        ["kafka.acks=all", "acme.dsn=x"], ["acme", "kafka"], {"kafka": {"linger": 5}}
    )

    assert named == {"acme": {"dsn": "x"}, "kafka": {"linger": 5, "acks": "all"}}
    with pytest.raises(ConfigurationError, match="several adapters are named"):
        conformance.parse_settings(["dsn=x"], ["acme", "kafka"], {})
    with pytest.raises(ConfigurationError, match="is not KEY=VALUE"):
        conformance.parse_settings(["dsn"], ["acme"], {})


def test_a_setting_value_never_appears_in_the_output_even_when_building_fails() -> None:
    canary = "canary-s3cr3t-do-not-print"

    result = command(
        "--store", "memory", "--setting", f"password={canary}", "--clause", "store.readiness",
        "--pytest-output",
    )  # fmt: skip

    assert result.returncode == 1
    assert "password" in result.stdout, "the setting is named"
    assert canary not in result.stdout + result.stderr
