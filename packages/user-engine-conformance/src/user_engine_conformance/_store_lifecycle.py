"""Store clauses: readiness, migrate, close."""

from __future__ import annotations

from user_engine.migrations import LATEST_SCHEMA_VERSION
from user_engine.ports import UserEngineStore

from user_engine_conformance._samples import Sample
from user_engine_conformance._threads import run_at_once
from user_engine_conformance.clauses import clause

__all__ = ["LifecycleClauses"]


class LifecycleClauses:
    """Readiness and migration."""

    @clause("store.readiness")
    def test_a_migrated_store_is_ready_at_the_code_schema_version(
        self, store: UserEngineStore
    ) -> None:
        readiness = store.readiness()
        assert readiness.problems == ()
        assert readiness.ready is True
        assert readiness.schema_version == LATEST_SCHEMA_VERSION
        assert readiness.expected_version == LATEST_SCHEMA_VERSION

    @clause("store.readiness.fail-closed")
    def test_a_closed_store_is_not_ready_and_closing_twice_is_harmless(
        self, store: UserEngineStore
    ) -> None:
        store.close()
        store.close()
        readiness = store.readiness()
        assert readiness.ready is False
        assert readiness.problems, "a store that is not ready must say why (a problem code)"
        assert readiness.expected_version == LATEST_SCHEMA_VERSION

    @clause("store.readiness.behind")
    def test_a_store_never_migrated_is_behind_until_migrated(
        self, unmigrated_store: UserEngineStore
    ) -> None:
        before = unmigrated_store.readiness()
        assert before.ready is False
        assert "schema.behind" in before.problems
        assert before.schema_version is None or before.schema_version < LATEST_SCHEMA_VERSION

        assert unmigrated_store.migrate() == LATEST_SCHEMA_VERSION

        after = unmigrated_store.readiness()
        assert after.ready is True
        assert after.schema_version == LATEST_SCHEMA_VERSION

    @clause("store.migrate.idempotent")
    def test_migrating_again_keeps_the_version_and_the_data(self, store: UserEngineStore) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")

        assert store.migrate() == LATEST_SCHEMA_VERSION
        assert store.migrate() == LATEST_SCHEMA_VERSION

        with sample.write(store) as tx:
            assert tx.get_tenant(tenant.id) == tenant
        assert store.readiness().ready is True

    @clause("store.migrate.concurrent")
    def test_migrations_started_in_several_threads_at_once_all_succeed(
        self, store: UserEngineStore
    ) -> None:
        outcomes = run_at_once([store.migrate for _ in range(4)])

        assert [o.error for o in outcomes] == [None] * 4
        assert [o.value for o in outcomes] == [LATEST_SCHEMA_VERSION] * 4
        assert store.readiness().ready is True
