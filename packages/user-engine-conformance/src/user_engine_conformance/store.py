"""``StoreConformance``: the suite every ``UserEngineStore`` adapter runs.

Subclass it in a test module, name your adapter, and pytest runs every store clause::

    from user_engine_conformance import StoreConformance

    class TestAcmeStore(StoreConformance):
        adapter_name = "acme"
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
from user_engine.plugins import AdapterKind, PluginHost
from user_engine.ports import UserEngineStore

from user_engine_conformance._base import ConformanceBase
from user_engine_conformance._store_audit import AuditClauses
from user_engine_conformance._store_diagnostics import DiagnosticsClauses
from user_engine_conformance._store_isolation import IsolationClauses
from user_engine_conformance._store_lifecycle import LifecycleClauses
from user_engine_conformance._store_model import ModelClauses
from user_engine_conformance._store_outbox import OutboxClauses
from user_engine_conformance._store_queries import QueryClauses
from user_engine_conformance._store_records import RecordClauses
from user_engine_conformance._store_transactions import TransactionClauses

__all__ = ["StoreConformance"]


class StoreConformance(
    LifecycleClauses,
    RecordClauses,
    QueryClauses,
    TransactionClauses,
    IsolationClauses,
    AuditClauses,
    OutboxClauses,
    DiagnosticsClauses,
    ModelClauses,
    ConformanceBase,
):
    """Every clause of the ``UserEngineStore`` contract, as pytest tests.

    Set ``adapter_name``; override ``adapter_settings`` if the factory needs settings. Each
    test gets a fresh store from the factory (``store``), migrated, closed afterwards. Tests
    never rely on an empty store or on each other's order: ids are unique per test, and the
    outbox clauses drain what earlier tests left. Do not point concurrently running workers at
    one database, though: claims are global to a store.
    """

    adapter_kind: ClassVar[AdapterKind] = "store"

    def build_store(self, host: PluginHost, settings: Mapping[str, Any]) -> UserEngineStore:
        """Build the adapter through its registered factory, failing loudly with guidance."""
        store: UserEngineStore = self._build(host, settings, host.create_store)
        return store

    @pytest.fixture
    def store(
        self,
        request: pytest.FixtureRequest,
        plugin_host: PluginHost,
        adapter_settings: Mapping[str, Any],
    ) -> Iterator[UserEngineStore]:
        """A store built by the adapter's factory from ``adapter_settings``, migrated."""
        store = self.build_store(plugin_host, adapter_settings)
        try:
            self._require_capabilities(request, frozenset(store.capabilities), store.name)
            store.migrate()
            yield store
        finally:
            store.close()

    @pytest.fixture
    def unmigrated_adapter_settings(self) -> Mapping[str, Any] | None:
        """Settings under which the factory returns a store whose schema was never migrated
        (for ``store.readiness.behind``), or None when the adapter cannot provide one.

        For the memory store: ``{"migrate": False}``; for a database store, typically a fresh
        empty database and the option that turns automatic migration off.
        """
        return None

    @pytest.fixture
    def unmigrated_store(
        self,
        request: pytest.FixtureRequest,
        plugin_host: PluginHost,
        unmigrated_adapter_settings: Mapping[str, Any] | None,
    ) -> Iterator[UserEngineStore]:
        """A store built from ``unmigrated_adapter_settings``, not migrated."""
        if unmigrated_adapter_settings is None:
            self._hook_missing(
                request,
                "unmigrated_adapter_settings",
                "return settings that give a store whose schema was never migrated",
            )
        store = self.build_store(plugin_host, unmigrated_adapter_settings)
        try:
            yield store
        finally:
            store.close()
