"""Registration of the memory store through the ``user_engine`` entry point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from user_engine.errors import ConfigurationError
from user_engine.hookspecs import Register, hookimpl

from user_engine_store_memory.store import MemoryStore


def create_store(settings: Mapping[str, Any]) -> MemoryStore:
    """Build a memory store. It takes no settings; any given is a configuration error."""
    unknown = set(settings) - {"migrate"}
    if unknown:
        raise ConfigurationError(
            "the memory store takes no settings besides 'migrate'; unknown: "
            + ", ".join(sorted(unknown)),
            code="configuration.unknown_setting",
        )
    store = MemoryStore()
    if settings.get("migrate", True):
        store.migrate()
    return store


@hookimpl
def user_engine_register_stores(register: Register) -> None:
    """Register the reference store as ``memory``."""
    register("memory", create_store)
