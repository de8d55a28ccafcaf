"""End to end with real relay processes on PostgreSQL: SIGKILL at every point, SIGTERM.

A relay process killed after claiming, after producing, or after the broker acknowledged
but before the outbox heard of it: another relay takes over once the lease expires, and a
consumer that drops duplicate ids still sees every event once, in order per user.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from user_engine.plugins import PluginHost
from user_engine.ports import UserEngineStore

from tests.e2e._workload import Workload, wait_until_drained
from testsupport.kafka import consume_topic

RUNNER = Path(__file__).with_name("_relay_process.py")
RELAY_OPTIONS = ["--batch-size", "100", "--lease", "3", "--publish-timeout", "1",
                 "--poll-interval", "0.2"]  # fmt: skip


@pytest.fixture
def postgres_store(postgres_settings: Mapping[str, Any]) -> Iterator[UserEngineStore]:
    store = PluginHost().create_store("postgres", postgres_settings)
    yield store
    store.close()


class RelayProcess:
    """One ``user-engine relay`` process; its log goes to a file."""

    def __init__(self, environment: Mapping[str, str], log: Path, **kill: str) -> None:
        self.log = log
        env = dict(environment)
        if kill:
            env["E2E_KILL_AT"] = kill["at"]
            env["E2E_KILL_ON_BATCH"] = kill.get("on_batch", "1")
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, str(RUNNER), "relay", *RELAY_OPTIONS],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def terminate(self) -> int:
        """SIGTERM, then the exit code (graceful stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def relay_environment(
    postgres_settings: Mapping[str, Any], kafka_bootstrap: str, kafka_topic: str
) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("USER_ENGINE_")}
    environment.update(
        {
            "USER_ENGINE_STORE": "postgres",
            "USER_ENGINE_POSTGRES__DSN": postgres_settings["dsn"],
            "USER_ENGINE_EVENTS": "kafka",
            "USER_ENGINE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "USER_ENGINE_KAFKA__TOPIC": kafka_topic,
            "USER_ENGINE_KAFKA__MESSAGE_TIMEOUT_MS": "1000",
        }
    )
    return environment


@pytest.fixture
def processes() -> Iterator[list[RelayProcess]]:
    """Every relay process a test starts; any still running is killed afterwards."""
    started: list[RelayProcess] = []
    yield started
    for process in started:
        process.kill()


@pytest.mark.parametrize("kill_at", ["after-claim", "after-produce", "after-delivery"])
def test_a_relay_killed_at_any_point_loses_nothing_and_duplicates_only_by_id(
    kill_at: str,
    postgres_store: UserEngineStore,
    relay_environment: dict[str, str],
    processes: list[RelayProcess],
    kafka_bootstrap: str,
    kafka_topic: str,
    tmp_path: Path,
) -> None:
    workload = Workload(postgres_store, users=50)
    workload.write(rounds=20)

    doomed = RelayProcess(relay_environment, tmp_path / "doomed.log", at=kill_at, on_batch="3")
    processes.append(doomed)
    killed_with = doomed.wait()
    held_after_death = postgres_store.outbox_stats().in_flight
    successor = RelayProcess(relay_environment, tmp_path / "successor.log")
    processes.append(successor)
    workload.write(rounds=5)
    drained = wait_until_drained(postgres_store)
    stopped_with = successor.terminate()

    check = workload.check(
        consume_topic(kafka_bootstrap, kafka_topic, expected=workload.expected_count)
    )
    assert killed_with == -signal.SIGKILL
    assert f"E2E kill point reached: {kill_at}" in doomed.output()
    assert held_after_death > 0  # it died holding leases
    assert drained
    assert stopped_with == 0, successor.output()[-2000:]
    assert (check.lost, check.reordered, check.unexpected) == (0, 0, 0), check.problems
    assert check.distinct == workload.expected_count
    assert check.inconsistent_duplicates == 0
    if kill_at == "after-delivery":
        assert check.duplicated > 0  # acknowledged by the broker, re-sent: same ids


def test_two_relay_processes_with_one_killed_mid_stream_keep_order_per_user(
    postgres_store: UserEngineStore,
    relay_environment: dict[str, str],
    processes: list[RelayProcess],
    kafka_bootstrap: str,
    kafka_topic: str,
    tmp_path: Path,
) -> None:
    workload = Workload(postgres_store, users=100)
    workload.write(rounds=10)
    doomed = RelayProcess(relay_environment, tmp_path / "a.log", at="after-delivery", on_batch="8")
    survivor = RelayProcess(relay_environment, tmp_path / "b.log")
    processes += [doomed, survivor]

    writer = threading.Thread(target=workload.write_in_threads, args=(30, 2))
    writer.start()
    killed_with = doomed.wait(timeout=300)
    writer.join()
    drained = wait_until_drained(postgres_store)
    stopped_with = survivor.terminate()

    check = workload.check(
        consume_topic(kafka_bootstrap, kafka_topic, expected=workload.expected_count)
    )
    assert killed_with == -signal.SIGKILL
    assert drained
    assert stopped_with == 0
    assert workload.write_errors == []
    assert "relay: " in survivor.output() or "relay stopped" in survivor.output()
    assert (check.lost, check.reordered, check.unexpected) == (0, 0, 0), check.problems
    assert check.inconsistent_duplicates == 0
