"""The ``user-engine`` command: exit codes, ``--json``, and clear messages on bad config.

Exit codes: 0 ok, 1 a problem found (not ready), 2 usage or configuration error, 3 an engine
error. Most tests call ``main`` in-process (fast); one runs the real module as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from user_engine import __version__
from user_engine.cli import main
from user_engine.migrations import LATEST_SCHEMA_VERSION

FAILING_STORE_PLUGIN = """
from user_engine.errors import StoreUnavailableError
from user_engine.hookspecs import hookimpl


def create_store(settings):
    raise StoreUnavailableError("database at db:5432 refused the connection")


@hookimpl
def user_engine_register_stores(register):
    register("unreachable", create_store)
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine configuration leaks in from the developer's shell."""
    import os

    for variable in list(os.environ):
        if variable.startswith("USER_ENGINE_"):
            monkeypatch.delenv(variable)


def test_check_reports_a_ready_memory_store_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["check"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(
        f"ready: store memory, schema {LATEST_SCHEMA_VERSION} "
        f"(code expects {LATEST_SCHEMA_VERSION})"
    )
    assert "outbox: 0 pending" in out


def test_check_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report == {
        "ready": True,
        "store": "memory",
        "schema_version": LATEST_SCHEMA_VERSION,
        "expected_schema_version": LATEST_SCHEMA_VERSION,
        "problems": [],
        "outbox": {
            "pending": 0,
            "in_flight": 0,
            "dead": 0,
            "oldest_pending_age_seconds": None,
        },
    }


def test_check_exits_1_with_the_problem_when_the_store_is_not_migrated(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_ENGINE_MEMORY__MIGRATE", "false")

    not_ready = main(["check"])
    out = capsys.readouterr().out
    migrated = main(["check", "--migrate"])

    assert not_ready == 1
    assert "NOT READY" in out
    assert "problem: schema.behind" in out
    assert migrated == 0


def test_migrate_reports_the_schema_version_reached(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["migrate"])

    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"store memory at schema version {LATEST_SCHEMA_VERSION}"
    )


def test_a_missing_config_file_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "absent.toml"

    code = main(["check", "--config", str(missing)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("user-engine: [configuration.missing]")
    assert str(missing) in err


def test_a_malformed_config_file_exits_2_naming_the_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('store = "memory"\nretries = 3\n')

    code = main(["check", "--config", str(path)])

    assert code == 2
    assert "unknown top-level setting 'retries'" in capsys.readouterr().err


def test_an_unknown_adapter_exits_2_listing_the_installed_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["check", "--store", "nosuch"])

    err = capsys.readouterr().err
    assert code == 2
    assert "no store adapter named 'nosuch'" in err
    assert "memory" in err


def test_unknown_adapter_settings_from_the_environment_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_ENGINE_MEMORY__COLOUR", "red")

    code = main(["migrate"])

    assert code == 2
    assert "colour" in capsys.readouterr().err


def test_an_engine_error_exits_3_with_its_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "unreachable_store_plugin.py").write_text(FAILING_STORE_PLUGIN)
    info = tmp_path / "unreachable_store-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unreachable-store\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[user_engine]\nunreachable = unreachable_store_plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unreachable_store_plugin", raising=False)

    code = main(["check", "--store", "unreachable"])

    assert code == 3
    assert "[store.unavailable] database at db:5432 refused" in capsys.readouterr().err
    sys.modules.pop("unreachable_store_plugin", None)


def test_the_demo_shows_provenance_projections_a_stale_write_and_a_denial(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo"])

    out = capsys.readouterr().out
    assert code == 0
    assert "from user-in-tenant" in out
    assert "shadows" in out
    assert "crm sees:" in out
    assert "billing sees:" in out
    crm_line = next(line for line in out.splitlines() if "crm sees:" in line)
    billing_line = next(line for line in out.splitlines() if "billing sees:" in line)
    assert crm_line.split("sees:")[1] != billing_line.split("sees:")[1]
    assert "refused [profile.stale]" in out
    assert "denied [denied.other_tenant]" in out
    assert "demo finished in" in out


def test_version_and_usage_errors() -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    with pytest.raises(SystemExit) as no_command:
        main([])
    with pytest.raises(SystemExit) as unknown:
        main(["frobnicate"])

    assert version.value.code == 0
    assert (no_command.value.code, unknown.value.code) == (2, 2)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])

    assert capsys.readouterr().out.strip() == f"user-engine {__version__}"


def test_python_dash_m_user_engine_runs_the_same_command() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "user_engine", "check", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["ready"] is True
