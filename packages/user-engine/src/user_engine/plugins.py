"""The typed plugin host: the only caller of ``pm.hook.*``.

Discovery loads every distribution's ``user_engine`` entry point, one at a time, so a plugin
that fails to import is reported (name, error) and the others still load. After loading,
``check_pending`` makes a misspelled hook fail at start-up instead of being ignored.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import pluggy

from user_engine import hookspecs
from user_engine.errors import ConfigurationError, PluginError
from user_engine.ports import AuditSink, EventPublisher, Telemetry, UserEngineStore

__all__ = ["AdapterInfo", "AdapterKind", "LoadFailure", "PluginHost", "PluginInfo"]

AdapterKind = Literal["store", "events", "audit", "telemetry"]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A loaded plugin: its entry-point name and the distribution that ships it."""

    name: str
    distribution: str
    version: str


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A plugin that could not be loaded, and why (the exception's type and message)."""

    name: str
    distribution: str
    error: str


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """A registered adapter factory and where it came from."""

    kind: AdapterKind
    name: str
    plugin: str
    distribution: str
    version: str
    factory: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)


class PluginHost:
    """Discovers plugins and exposes their adapter factories, typed.

    :param disabled: entry-point names not to load (reported as disabled).
    :param load_entry_points: False to start with no plugins (tests register modules).
    """

    def __init__(self, *, disabled: Iterable[str] = (), load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self.disabled = frozenset(disabled)
        self.plugins: list[PluginInfo] = []
        self.failures: list[LoadFailure] = []
        self._adapters: dict[AdapterKind, dict[str, AdapterInfo]] | None = None
        if load_entry_points:
            self._load_entry_points()
        self._check_pending()

    def _check_pending(self) -> None:
        """``check_pending``, with pluggy's error turned into a ``PluginError`` naming the
        plugin, its distribution and the unknown hook (a misspelling fails at start-up)."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as error:
            name = self._pm.get_name(error.plugin) or "?"
            distribution = next((p.distribution for p in self.plugins if p.name == name), "?")
            unknown = sorted(
                caller.name
                for caller in self._pm.get_hookcallers(error.plugin) or []
                if not caller.has_spec()
            )
            raise PluginError(
                f"plugin {name} ({distribution}) implements unknown hook(s) "
                f"{', '.join(unknown)}: check the spelling against docs/plugin-hooks.md, "
                "or disable the plugin",
                code="plugin.unknown_hook",
                details={"plugin": name, "distribution": distribution},
            ) from error

    def _load_entry_points(self) -> None:
        for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
            distribution = entry_point.dist.name if entry_point.dist else "?"
            version = entry_point.dist.version if entry_point.dist else "?"
            if entry_point.name in self.disabled or self._pm.has_plugin(entry_point.name):
                continue
            try:
                module = entry_point.load()
                self._pm.register(module, name=entry_point.name)
            except Exception as error:  # a broken plugin is reported, never fatal
                self.failures.append(
                    LoadFailure(entry_point.name, distribution, f"{type(error).__name__}: {error}")
                )
                continue
            self.plugins.append(PluginInfo(entry_point.name, distribution, version))

    def register_module(
        self, module: ModuleType | object, *, name: str, distribution: str = "local"
    ) -> None:
        """Register a plugin object directly (for applications and tests without packaging)."""
        self._pm.register(module, name=name)
        self.plugins.append(PluginInfo(name, distribution, "local"))
        try:
            self._check_pending()
        except PluginError:
            self._pm.unregister(module)
            self.plugins.pop()
            raise
        self._adapters = None

    def _collect(self) -> dict[AdapterKind, dict[str, AdapterInfo]]:
        if self._adapters is not None:
            return self._adapters
        collected: dict[AdapterKind, dict[str, AdapterInfo]] = {
            "store": {},
            "events": {},
            "audit": {},
            "telemetry": {},
        }
        by_plugin = {info.name: info for info in self.plugins}
        hooks: list[tuple[AdapterKind, Any]] = [
            ("store", self._pm.hook.user_engine_register_stores),
            ("events", self._pm.hook.user_engine_register_event_publishers),
            ("audit", self._pm.hook.user_engine_register_audit_sinks),
            ("telemetry", self._pm.hook.user_engine_register_telemetry),
        ]
        for kind, hook in hooks:
            for implementation in hook.get_hookimpls():
                plugin_name = self._pm.get_name(implementation.plugin) or "?"
                info = by_plugin.get(plugin_name, PluginInfo(plugin_name, "?", "?"))

                def register(
                    name: str,
                    factory: Callable[[Mapping[str, Any]], Any],
                    _kind: AdapterKind = kind,
                    _info: PluginInfo = info,
                ) -> None:
                    if not isinstance(name, str) or not name or not callable(factory):
                        raise PluginError(
                            f"plugin {_info.name} ({_info.distribution}) registered an invalid "
                            f"{_kind} adapter: a name and a callable factory are required",
                            code="plugin.invalid_registration",
                        )
                    existing = collected[_kind].get(name)
                    if existing is not None:
                        raise PluginError(
                            f"{_kind} adapter name {name!r} is registered twice: by "
                            f"{existing.distribution} and by {_info.distribution}; uninstall "
                            "one or disable its plugin",
                            code="plugin.duplicate_name",
                            details={"name": name},
                        )
                    collected[_kind][name] = AdapterInfo(
                        _kind, name, _info.name, _info.distribution, _info.version, factory
                    )

                implementation.function(register=register)
        self._adapters = collected
        return collected

    def adapters(self, kind: AdapterKind) -> list[AdapterInfo]:
        """Registered adapters of one kind, by name. Raises ``PluginError`` on duplicates."""
        return sorted(self._collect()[kind].values(), key=lambda info: info.name)

    def adapter(self, kind: AdapterKind, name: str) -> AdapterInfo:
        """The adapter registered under ``name``; ``ConfigurationError`` naming the choices."""
        found = self._collect()[kind].get(name)
        if found is None:
            choices = ", ".join(sorted(self._collect()[kind])) or "none installed"
            raise ConfigurationError(
                f"no {kind} adapter named {name!r} is installed (available: {choices})",
                code="configuration.unknown_adapter",
                details={"kind": kind, "name": name},
            )
        return found

    def create_store(self, name: str, settings: Mapping[str, Any]) -> UserEngineStore:
        """Build the store registered under ``name`` from its settings."""
        store: UserEngineStore = self.adapter("store", name).factory(settings)
        return store

    def create_event_publisher(self, name: str, settings: Mapping[str, Any]) -> EventPublisher:
        """Build the event publisher registered under ``name``."""
        publisher: EventPublisher = self.adapter("events", name).factory(settings)
        return publisher

    def create_audit_sink(self, name: str, settings: Mapping[str, Any]) -> AuditSink:
        """Build the audit sink registered under ``name``."""
        sink: AuditSink = self.adapter("audit", name).factory(settings)
        return sink

    def create_telemetry(self, name: str, settings: Mapping[str, Any]) -> Telemetry:
        """Build the telemetry registered under ``name``."""
        telemetry: Telemetry = self.adapter("telemetry", name).factory(settings)
        return telemetry
