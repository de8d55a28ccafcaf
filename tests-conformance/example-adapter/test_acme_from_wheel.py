"""The example third-party adapter passes the suite from its wheel, through its entry point.

Nothing of the workspace is importable in the fresh environment except what is installed
there: user-engine, the memory store and the conformance kit (from their paths, as
``pip install`` would from an index) and Acme's wheel. The suite runs once through Acme's own
three-line test module, and once through the zero-line command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "docs" / "examples" / "acme-store"
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


@dataclass(frozen=True)
class Environment:
    """A fresh virtual environment with Acme's wheel installed."""

    python: Path
    work: Path


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing of this test session's configuration leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "USER_ENGINE_"))}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    assert UV is not None, "uv is part of the test environment"
    work = tmp_path_factory.mktemp("acme")
    built = _run(UV, "build", "--wheel", "--out-dir", work / "dist", ACME)
    assert built.returncode == 0, built.stderr
    [wheel] = (work / "dist").glob("acme_user_engine_store-*.whl")

    venv = work / "venv"
    created = _run(UV, "venv", "--python", sys.executable, venv)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    installed = _run(
        UV, "pip", "install", "--python", python,
        ROOT / "packages" / "user-engine",
        ROOT / "packages" / "user-engine-store-memory",
        ROOT / "packages" / "user-engine-conformance",
        wheel,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return Environment(python, work)


def test_the_wheel_registers_acme_through_the_entry_point(acme: Environment) -> None:
    listed = _run(acme.python, "-m", "user_engine", "plugins", "--json", cwd=acme.work)

    assert listed.returncode == 0, listed.stderr
    assert '"distribution": "acme-user-engine-store"' in listed.stdout


def test_acmes_three_line_test_module_passes_every_clause(acme: Environment) -> None:
    tests = acme.work / "acme-tests"
    tests.mkdir()
    shutil.copy(ACME / "tests" / "test_conformance.py", tests)

    result = _run(acme.python, "-m", "pytest", tests, "-p", "no:cacheprovider", "-q", "-rs",
                  cwd=tests)  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout
    assert "failed" not in result.stdout
    assert "skipped" not in result.stdout, "Acme provides every hook a store clause needs"


def test_the_zero_line_command_gives_acme_a_conformant_verdict(acme: Environment) -> None:
    result = _run(
        acme.python, "-m", "user_engine.cli.conformance", "--store", "acme",
        "--setting", "region=eu-west", cwd=acme.work,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert "store adapter 'acme' (acme-user-engine-store 1.0.0)" in result.stdout
    assert "  PASS  store.model.equivalence" in result.stdout
    assert result.stdout.rstrip().endswith("-> CONFORMANT")


def test_the_zero_line_command_fails_loudly_without_the_required_setting(
    acme: Environment,
) -> None:
    result = _run(acme.python, "-m", "user_engine.cli.conformance", "--store", "acme",
                  "--clause", "store.readiness", cwd=acme.work)  # fmt: skip

    assert result.returncode == 1
    assert "needs the setting 'region'" in result.stdout
