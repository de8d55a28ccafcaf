"""The ``[otel]`` settings table, and registration through the ``user_engine`` entry point."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.config import build_engine, load_config
from user_engine.errors import ConfigurationError
from user_engine.plugins import PluginHost
from user_engine_audit_otel import OtelAuditSink, OtelTelemetry, parse_settings
from user_engine_audit_otel.settings import SETTING_NAMES


def test_both_adapters_are_registered_as_otel_through_the_entry_point() -> None:
    host = PluginHost()

    sink = host.adapter("audit", "otel")
    telemetry = host.adapter("telemetry", "otel")

    assert sink.distribution == telemetry.distribution == "user-engine-audit-otel"


def test_an_engine_configured_with_otel_builds_the_sink_and_the_telemetry(tmp_path: Any) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(
        'audit = "otel"\ntelemetry = "otel"\n\n[otel]\nprovider = "own"\n'
        'endpoint = "http://127.0.0.1:9/v1/logs"\ntimeout = 0.5\n'
    )

    with build_engine(load_config(path, environ={})) as engine:
        assert isinstance(engine.audit_sink, OtelAuditSink)
        assert isinstance(engine.telemetry, OtelTelemetry)
        assert engine.service.telemetry is engine.telemetry


def test_settings_from_the_environment_arrive_as_strings_and_are_converted() -> None:
    config = load_config(
        environ={
            "USER_ENGINE_AUDIT": "otel",
            "USER_ENGINE_OTEL__TIMEOUT": "2.5",
            "USER_ENGINE_OTEL__MAX_QUEUE_SIZE": "64",
            "USER_ENGINE_OTEL__DETAIL_KEYS": "layer, issuer",
            "USER_ENGINE_OTEL__HEADERS": "x-team=identity,authorization=Bearer abc",
            "USER_ENGINE_OTEL__TENANT_IN_METRICS": "true",
        }
    )

    parsed = parse_settings(config.settings_for("otel"), environ={})

    assert parsed.timeout == 2.5
    assert parsed.max_queue_size == 64
    assert parsed.detail_keys == frozenset({"layer", "issuer"})
    assert parsed.headers == {"x-team": "identity", "authorization": "Bearer abc"}
    assert parsed.tenant_in_metrics is True


def test_an_unknown_setting_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_settings({"endpoint": "http://127.0.0.1:4318/v1/logs", "enpoint": "x", "colour": 1})

    assert raised.value.code == "configuration.unknown_setting"
    assert "colour" in raised.value.message
    assert "enpoint" in raised.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("provider", "sometimes"),
        ("endpoint", "ftp://collector"),
        ("endpoint", "collector:4318"),
        ("timeout", 0),
        ("timeout", "soon"),
        ("timeout", True),
        ("max_queue_size", 0),
        ("max_queue_size", "many"),
        ("max_export_batch_size", 10_000_000),
        ("schedule_delay", -1),
        ("detail_keys", ["layer", "secret_value"]),
        ("detail_keys", "Layer"),
        ("max_details", 65),
        ("max_attribute_length", 8),
        ("tenant_in_metrics", "yes"),
        ("service_name", ""),
    ],
)
def test_an_invalid_setting_is_a_configuration_error_naming_the_setting(
    key: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_settings({key: value})

    assert raised.value.details.get("setting") == key


def test_a_header_value_never_appears_in_a_configuration_error() -> None:
    canary = "Bearer canary-token-5d1f"

    with pytest.raises(ConfigurationError) as raised:
        parse_settings({"headers": {"bad header name": canary}})

    assert canary not in str(raised.value)
    assert canary not in repr(raised.value.to_dict())


def test_a_batch_larger_than_the_queue_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        parse_settings({"max_queue_size": 10, "max_export_batch_size": 20})


def test_provider_global_without_a_global_provider_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        OtelAuditSink(settings=parse_settings({"provider": "global"}))

    assert raised.value.details["setting"] == "provider"


def test_a_logger_provider_that_is_not_one_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        OtelAuditSink(settings=parse_settings({"logger_provider": object()}))


def test_the_queue_size_defaults_to_the_standard_environment_variable() -> None:
    assert parse_settings({}, environ={"OTEL_BLRP_MAX_QUEUE_SIZE": "77"}).max_queue_size == 77
    assert parse_settings({}, environ={}).max_queue_size == 2048


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20).filter(lambda key: key not in SETTING_NAMES),
        st.one_of(st.integers(), st.text(max_size=10), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_any_table_with_an_unknown_key_is_refused(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_settings(table)

    assert raised.value.code == "configuration.unknown_setting"
