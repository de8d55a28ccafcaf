"""The [kafka] settings table: validated, unknown keys named, guarantees not overridable."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.errors import ConfigurationError
from user_engine_events_kafka import KafkaSettings, create_publisher
from user_engine_events_kafka.settings import PROTECTED_PRODUCER_KEYS


def test_only_bootstrap_servers_is_required() -> None:
    settings = KafkaSettings.from_mapping({"bootstrap_servers": "127.0.0.1:9092"})
    assert settings.topic == "user-engine.events"
    assert settings.topic_per_event_type is False
    assert settings.topic_for("user.created") == "user-engine.events"


def test_per_event_type_topics_append_the_type_to_the_topic() -> None:
    settings = KafkaSettings.from_mapping(
        {"bootstrap_servers": "b:1", "topic": "ue", "topic_per_event_type": True}
    )
    assert settings.topic_for("user.created") == "ue.user.created"


def test_unknown_settings_are_rejected_by_name() -> None:
    with pytest.raises(ConfigurationError) as raised:
        KafkaSettings.from_mapping({"bootstrap_servers": "b:1", "topics": "x", "acks": "1"})
    assert raised.value.code == "configuration.unknown_setting"
    assert "'topics'" in raised.value.message
    assert "'acks'" in raised.value.message


@pytest.mark.parametrize("key", sorted(PROTECTED_PRODUCER_KEYS))
def test_producer_properties_the_guarantees_rest_on_cannot_be_overridden(key: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        KafkaSettings.from_mapping({"bootstrap_servers": "b:1", "producer": {key: "1"}})
    assert key in raised.value.message


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("bootstrap_servers", ""),
        ("bootstrap_servers", 9092),
        ("topic", "bad topic"),
        ("topic", ""),
        ("topic", "x" * 250),
        ("topic", ".."),
        ("topic_per_event_type", "yes"),
        ("message_timeout_ms", 0),
        ("message_timeout_ms", True),
        ("message_timeout_ms", "30000"),
        ("max_message_bytes", 10),
        ("source", ""),
        ("producer", "linger.ms=5"),
        ("producer", {"Linger.ms": 5}),
        ("producer", {"linger.ms": [5]}),
    ],
)
def test_a_malformed_setting_is_a_configuration_error_naming_it(
    setting: str, value: object
) -> None:
    table: dict[str, Any] = {"bootstrap_servers": "b:1", setting: value}
    with pytest.raises(ConfigurationError) as raised:
        KafkaSettings.from_mapping(table)
    assert setting in raised.value.message


def test_a_secret_producer_value_never_appears_in_an_error() -> None:
    canary = "CANARY-s3cr3t-value"
    with pytest.raises(ConfigurationError) as raised:
        create_publisher(
            {
                "bootstrap_servers": "127.0.0.1:1",
                "producer": {"sasl.password": canary, "linger.ms": canary},
            }
        )
    assert canary not in str(raised.value)
    assert canary not in repr(raised.value.to_dict())


@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30)),
        max_size=6,
    )
)
def test_any_table_gives_settings_or_a_configuration_error(table: dict[str, Any]) -> None:
    outcome: object
    try:
        outcome = KafkaSettings.from_mapping(table)
    except ConfigurationError as error:
        outcome = error.code
    assert isinstance(outcome, KafkaSettings) or str(outcome).startswith("configuration.")
