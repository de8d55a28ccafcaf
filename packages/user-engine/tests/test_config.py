"""The configuration loader: TOML file, environment overrides, errors; and the engine built."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from user_engine.config import EngineConfig, build_engine, load_config
from user_engine.errors import ConfigurationError
from user_engine.hookspecs import Register, hookimpl
from user_engine.plugins import PluginHost

TOML = """
store = "memory"
events = "inprocess"
audit = "inprocess"
disable_plugins = ["acme-typo"]

[postgres]
dsn = "postgresql://app@db/user_engine"
pool_size = 4

[kafka]
bootstrap_servers = "broker:9092"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user-engine.toml"
    path.write_text(text)
    return path


def test_without_file_or_environment_the_defaults_are_memory_and_inprocess() -> None:
    config = load_config(environ={})

    assert config == EngineConfig()
    assert (config.store, config.events, config.audit, config.telemetry) == (
        "memory",
        "inprocess",
        "inprocess",
        None,
    )


def test_a_toml_file_gives_the_adapters_and_one_settings_table_per_adapter(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, TOML), environ={})

    assert config.disable_plugins == ("acme-typo",)
    assert config.settings_for("postgres") == {
        "dsn": "postgresql://app@db/user_engine",
        "pool_size": 4,
    }
    assert config.settings_for("kafka") == {"bootstrap_servers": "broker:9092"}
    assert config.settings_for("memory") == {}


def test_the_file_can_be_named_by_user_engine_config(tmp_path: Path) -> None:
    path = write(tmp_path, 'store = "postgres"\n')

    assert load_config(environ={"USER_ENGINE_CONFIG": str(path)}).store == "postgres"


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    environ = {
        "USER_ENGINE_STORE": "acme",
        "USER_ENGINE_EVENTS": "kafka",
        "USER_ENGINE_AUDIT": "otel",
        "USER_ENGINE_TELEMETRY": "otel",
        "USER_ENGINE_DISABLE_PLUGINS": "one, two,,",
        "USER_ENGINE_POSTGRES__DSN": "postgresql://override@db/x",
        "USER_ENGINE_POSTGRES__POOL_SIZE": "12",
        "USER_ENGINE_KAFKA__IDEMPOTENCE": "true",
        "USER_ENGINE_ACME__OFF": "False",
        "UNRELATED": "ignored",
    }

    config = load_config(write(tmp_path, TOML), environ=environ)

    assert (config.store, config.events, config.audit, config.telemetry) == (
        "acme",
        "kafka",
        "otel",
        "otel",
    )
    assert config.disable_plugins == ("one", "two")
    assert config.settings_for("postgres") == {"dsn": "postgresql://override@db/x", "pool_size": 12}
    assert config.settings_for("kafka") == {"bootstrap_servers": "broker:9092", "idempotence": True}
    assert config.settings_for("acme") == {"off": False}


def test_command_line_choices_override_both() -> None:
    config = load_config(environ={"USER_ENGINE_STORE": "acme"})

    overridden = config.with_overrides(store="memory", events=None)

    assert (overridden.store, overridden.events) == ("memory", "inprocess")
    with pytest.raises(ConfigurationError):
        config.with_overrides(colour="red")


def test_a_missing_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigurationError) as error:
        load_config(missing, environ={})

    assert error.value.code == "configuration.missing"
    assert str(missing) in error.value.message


@pytest.mark.parametrize(
    ("text", "code", "mentions"),
    [
        ("store = ", "configuration.invalid", "not valid TOML"),
        ('colour = "red"\n', "configuration.unknown_setting", "colour"),
        ("store = 5\n", "configuration.invalid", "store"),
        ('store = "Postgres"\n', "configuration.invalid", "store"),
        ('store = "../../evil"\n', "configuration.invalid", "store"),
        ("[store]\ndsn = 'x'\n", "configuration.invalid", "store"),
        ('disable_plugins = "acme"\n', "configuration.invalid", "disable_plugins"),
        ("disable_plugins = [1]\n", "configuration.invalid", "disable_plugins"),
        ("[Bad_Table]\nx = 1\n", "configuration.invalid", "adapter table"),
        ('telemetry = "x y"\n', "configuration.invalid", "telemetry"),
    ],
    ids=[
        "syntax",
        "unknown-key",
        "store-type",
        "store-case",
        "store-path",
        "store-table",
        "disable-string",
        "disable-items",
        "table-name",
        "telemetry-name",
    ],
)
def test_a_malformed_file_is_a_configuration_error_saying_what_is_wrong(
    tmp_path: Path, text: str, code: str, mentions: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_config(write(tmp_path, text), environ={})

    assert error.value.code == code
    assert mentions in error.value.message


def test_an_invalid_adapter_name_from_the_environment_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        load_config(environ={"USER_ENGINE_STORE": "'; rm -rf /"})


def test_the_default_configuration_builds_a_ready_engine_on_the_memory_store() -> None:
    with build_engine(load_config(environ={})) as engine:
        assert engine.store.name == "memory"
        assert engine.publisher.name == "inprocess"
        assert engine.audit_sink.name == "inprocess"
        assert engine.service.readiness().ready


def test_an_adapter_that_is_not_installed_is_a_configuration_error_listing_the_choices() -> None:
    with pytest.raises(ConfigurationError) as error:
        build_engine(EngineConfig(store="nosuch"))

    assert error.value.code == "configuration.unknown_adapter"
    assert "nosuch" in error.value.message
    assert "memory" in error.value.message


def test_unknown_adapter_settings_are_rejected_by_the_adapter_naming_them() -> None:
    config = load_config(environ={"USER_ENGINE_MEMORY__COLOUR": "red"})

    with pytest.raises(ConfigurationError) as error:
        build_engine(config)

    assert "colour" in error.value.message


class _Closing:
    name = "closing"

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def close(self) -> None:
        self.closed.append(self.name)


class _ClosingPlugin:
    closed: ClassVar[list[str]] = []

    @staticmethod
    @hookimpl
    def user_engine_register_stores(register: Register) -> None:
        register("closing", lambda settings: _Closing(_ClosingPlugin.closed))


def test_adapters_built_before_a_failing_one_are_closed_again() -> None:
    host = PluginHost()
    host.register_module(_ClosingPlugin, name="closing-plugin")
    _ClosingPlugin.closed.clear()

    with pytest.raises(ConfigurationError):
        build_engine(EngineConfig(store="closing", events="nosuch"), host=host)

    assert _ClosingPlugin.closed == ["closing"]


def test_the_memory_store_can_start_unmigrated_and_is_then_not_ready() -> None:
    config = load_config(environ={"USER_ENGINE_MEMORY__MIGRATE": "false"})

    with build_engine(config) as engine:
        readiness = engine.service.readiness()

    assert not readiness.ready
    assert readiness.problems == ("schema.behind",)
