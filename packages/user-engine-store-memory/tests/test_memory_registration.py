"""The memory store registers through its distribution's ``user_engine`` entry point."""

from __future__ import annotations

import importlib.metadata

import pytest
from user_engine.errors import ConfigurationError
from user_engine.plugins import PluginHost
from user_engine.ports import StoreCapability, UserEngineStore
from user_engine_store_memory import MemoryStore


def test_the_distribution_declares_its_entry_point() -> None:
    distribution = importlib.metadata.distribution("user-engine-store-memory")

    [entry_point] = [e for e in distribution.entry_points if e.group == "user_engine"]

    assert (entry_point.name, entry_point.value) == ("memory", "user_engine_store_memory.hooks")


def test_the_plugin_host_builds_a_ready_memory_store_from_it() -> None:
    host = PluginHost()
    [info] = [a for a in host.adapters("store") if a.name == "memory"]

    store = host.create_store("memory", {})

    assert info.distribution == "user-engine-store-memory"
    assert isinstance(store, MemoryStore)
    assert isinstance(store, UserEngineStore)
    assert store.readiness().ready
    assert StoreCapability.CONCURRENT_WRITERS in store.capabilities


def test_the_store_can_be_built_unmigrated() -> None:
    store = PluginHost().create_store("memory", {"migrate": False})

    assert store.readiness().problems == ("schema.behind",)


def test_unknown_settings_are_a_configuration_error_naming_them() -> None:
    with pytest.raises(ConfigurationError) as error:
        PluginHost().create_store("memory", {"dsn": "x", "pool": 3})

    assert "dsn" in error.value.message
    assert "pool" in error.value.message
