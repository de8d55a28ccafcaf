"""Engine configuration: a TOML file and/or environment variables, and the engine it builds.

A configuration names one adapter per kind and holds one settings table per adapter::

    store = "postgres"          # default "memory"
    events = "kafka"            # default "inprocess"
    audit = "otel"              # default "inprocess"
    telemetry = "otel"          # default: none
    disable_plugins = []        # entry-point names not to load

    [postgres]
    dsn = "postgresql://user_engine_app@db/user_engine"

Environment variables override the file: ``USER_ENGINE_CONFIG`` (path of the file),
``USER_ENGINE_STORE``, ``USER_ENGINE_EVENTS``, ``USER_ENGINE_AUDIT``,
``USER_ENGINE_TELEMETRY``, ``USER_ENGINE_DISABLE_PLUGINS`` (comma-separated), and
``USER_ENGINE_<ADAPTER>__<KEY>`` for one adapter setting (``USER_ENGINE_POSTGRES__DSN``).
Values from the environment are strings; ``true``/``false`` and integers are converted.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from user_engine.errors import ConfigurationError
from user_engine.plugins import PluginHost
from user_engine.ports import (
    AuditSink,
    Clock,
    EventPublisher,
    IdGenerator,
    SecretStore,
    Telemetry,
    UserEngineStore,
)
from user_engine.runtime import RandomIds, SystemClock
from user_engine.service import UserEngineService
from user_engine.telemetry import NoTelemetry
from user_engine.testing.fakes import InMemorySecretStore

__all__ = ["Engine", "EngineConfig", "build_engine", "load_config"]

_TOP_LEVEL = {"store", "events", "audit", "telemetry", "disable_plugins"}
_ENV_SETTING = re.compile(r"USER_ENGINE_([A-Z0-9-]+)__([A-Z0-9_]+)")
_ADAPTER_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Which adapters to use and their settings (one table per adapter name)."""

    store: str = "memory"
    events: str = "inprocess"
    audit: str = "inprocess"
    telemetry: str | None = None
    disable_plugins: tuple[str, ...] = ()
    adapters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def settings_for(self, adapter_name: str) -> Mapping[str, Any]:
        """The settings table of one adapter (empty when none was given)."""
        return self.adapters.get(adapter_name, {})

    def with_overrides(self, **choices: str | None) -> EngineConfig:
        """A copy with some adapter choices replaced (None leaves one as it is)."""
        values = {k: v for k, v in choices.items() if v is not None}
        unknown = set(values) - {"store", "events", "audit", "telemetry"}
        if unknown:
            raise ConfigurationError(f"unknown choice(s): {', '.join(sorted(unknown))}")
        return EngineConfig(
            store=values.get("store", self.store),
            events=values.get("events", self.events),
            audit=values.get("audit", self.audit),
            telemetry=values.get("telemetry", self.telemetry),
            disable_plugins=self.disable_plugins,
            adapters=self.adapters,
        )


def _env_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if re.fullmatch(r"-?[0-9]+", lowered):
        return int(lowered)
    return text


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ADAPTER_NAME.fullmatch(value):
        raise ConfigurationError(
            f"{what} must be an adapter name such as 'memory' or 'postgres'",
            code="configuration.invalid",
            details={"setting": what},
        )
    return value


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> EngineConfig:
    """Read the TOML file (``path`` or ``USER_ENGINE_CONFIG``), then apply the environment.

    Raises ``ConfigurationError`` for a missing or malformed file or an invalid value.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    file_path = path if path is not None else env.get("USER_ENGINE_CONFIG")
    if file_path:
        try:
            with Path(file_path).open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError as error:
            raise ConfigurationError(
                f"configuration file {file_path} does not exist", code="configuration.missing"
            ) from error
        except (tomllib.TOMLDecodeError, OSError) as error:
            raise ConfigurationError(
                f"configuration file {file_path} is not valid TOML: {error}",
                code="configuration.invalid",
            ) from error
    adapters: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in _TOP_LEVEL:
            continue
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"unknown top-level setting {key!r}; adapter settings go in a [table] named "
                "after the adapter",
                code="configuration.unknown_setting",
                details={"setting": key},
            )
        adapters[_check_name(key, "adapter table")] = dict(value)
    for variable, value in env.items():
        match = _ENV_SETTING.fullmatch(variable)
        if match:
            adapter = match.group(1).lower()
            adapters.setdefault(adapter, {})[match.group(2).lower()] = _env_value(value)
    for key in ("store", "events", "audit", "telemetry"):
        if f"USER_ENGINE_{key.upper()}" in env:
            data[key] = env[f"USER_ENGINE_{key.upper()}"]
    disabled = data.get("disable_plugins", [])
    if "USER_ENGINE_DISABLE_PLUGINS" in env:
        disabled = [n.strip() for n in env["USER_ENGINE_DISABLE_PLUGINS"].split(",") if n.strip()]
    if not isinstance(disabled, list) or not all(isinstance(n, str) for n in disabled):
        raise ConfigurationError(
            "disable_plugins must be a list of plugin names", code="configuration.invalid"
        )
    telemetry = data.get("telemetry") or None
    return EngineConfig(
        store=_check_name(data.get("store", "memory"), "store"),
        events=_check_name(data.get("events", "inprocess"), "events"),
        audit=_check_name(data.get("audit", "inprocess"), "audit"),
        telemetry=_check_name(telemetry, "telemetry") if telemetry is not None else None,
        disable_plugins=tuple(disabled),
        adapters=adapters,
    )


@dataclass(slots=True)
class Engine:
    """A configured engine: the service and the adapters it was built from. Close it."""

    config: EngineConfig
    host: PluginHost
    store: UserEngineStore
    publisher: EventPublisher
    audit_sink: AuditSink
    telemetry: Telemetry
    service: UserEngineService

    def close(self) -> None:
        """Close every adapter (publisher and sink flush first)."""
        for closeable in (self.publisher, self.audit_sink, self.store):
            closeable.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_engine(
    config: EngineConfig,
    *,
    host: PluginHost | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    secrets: SecretStore | None = None,
) -> Engine:
    """Build the adapters named by ``config`` through the plugin host, and the service.

    Raises ``ConfigurationError`` when an adapter is not installed or its settings are wrong.
    Adapters already built are closed again if a later one fails.
    """
    host = host or PluginHost(disabled=config.disable_plugins)
    built: list[Any] = []
    try:
        store = host.create_store(config.store, config.settings_for(config.store))
        built.append(store)
        publisher = host.create_event_publisher(config.events, config.settings_for(config.events))
        built.append(publisher)
        audit_sink = host.create_audit_sink(config.audit, config.settings_for(config.audit))
        built.append(audit_sink)
        telemetry: Telemetry = (
            host.create_telemetry(config.telemetry, config.settings_for(config.telemetry))
            if config.telemetry
            else NoTelemetry()
        )
    except BaseException:
        for adapter in reversed(built):
            adapter.close()
        raise
    service = UserEngineService(
        store=store,
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
        secrets=secrets or InMemorySecretStore(),
        audit_sink=audit_sink,
        telemetry=telemetry,
    )
    return Engine(config, host, store, publisher, audit_sink, telemetry, service)
