"""``user-engine relay``: options, exit codes and graceful shutdown on SIGTERM.

The command is exercised through its own parser (``user_engine.cli.relay.register``) and
the same error handling as ``user-engine``'s main, so these tests hold whether or not the
command is listed in ``user_engine.cli`` yet. One test runs it as a separate process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence

import pytest
from user_engine.cli import relay as relay_command
from user_engine.errors import ConfigurationError, UserEngineError, ValidationError

RUN_RELAY = textwrap.dedent(
    """
    import argparse, logging, sys
    from user_engine.cli import relay
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    parser = argparse.ArgumentParser()
    relay.register(parser.add_subparsers())
    args = parser.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
    """
)


def run_relay(argv: Sequence[str]) -> int:
    """Parse and run like ``user-engine`` does (usage/config errors 2, engine errors 3)."""
    parser = argparse.ArgumentParser(prog="user-engine")
    relay_command.register(parser.add_subparsers())
    args = parser.parse_args(["relay", *argv])
    try:
        code: int = args.func(args)
    except (ConfigurationError, ValidationError):
        return 2
    except UserEngineError:
        return 3
    return code


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("USER_ENGINE_"):
            monkeypatch.delenv(variable)


def test_once_on_an_empty_outbox_exits_zero() -> None:
    assert run_relay(["--once", "--store", "memory", "--events", "inprocess"]) == 0


def test_a_store_that_is_not_ready_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_ENGINE_MEMORY__MIGRATE", "false")
    assert run_relay(["--once"]) == 3


def test_an_unknown_publisher_is_a_configuration_error() -> None:
    assert run_relay(["--once", "--events", "carrier-pigeon"]) == 2


def test_a_lease_too_short_for_the_publish_timeout_is_a_usage_error() -> None:
    assert run_relay(["--once", "--lease", "10", "--publish-timeout", "8"]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--batch-size", "0"],
        ["--lease", "-1"],
        ["--poll-interval", "soon"],
        ["--max-attempts", "x"],
    ],
)
def test_malformed_options_are_rejected_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        run_relay(argv)
    assert raised.value.code == 2


def test_the_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_relay(["--help"])
    assert "exit codes:" in capsys.readouterr().out


def test_sigterm_stops_a_running_relay_with_exit_code_zero() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_RELAY, "relay", "--poll-interval", "0.1"],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("USER_ENGINE_")},
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until the loop runs
        if "relay started" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 0
    assert "SIGTERM received" in rest
    assert "relay stopped" in rest
