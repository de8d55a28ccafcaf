"""Store clauses: atomic transactions, nested rollback, savepoint scopes."""

from __future__ import annotations

import pytest
from user_engine.domain import AccessScope, AuditFilter, Layer
from user_engine.errors import ConflictError
from user_engine.ports import StoreTransaction, UserEngineStore

from user_engine_conformance._samples import PLATFORM, Rollback, Sample, all_pending, rolls_back
from user_engine_conformance.clauses import clause

__all__ = ["TransactionClauses"]


def _pending_aggregates(store: UserEngineStore) -> set[str]:
    return {event.aggregate_id for event in all_pending(store)}


def _audited_actions(store: UserEngineStore, sample: Sample) -> list[str]:
    page = store.read_audit(AuditFilter(actor_id=f"operator_{sample.token}"), PLATFORM)
    return [record.action for record in page.records]


class TransactionClauses:
    """Atomicity and nesting."""

    def _write_everything(self, tx: StoreTransaction, sample: Sample, label: str) -> None:
        """One mutation as the service makes it: records, an audit record and an event."""
        tenant = sample.tenant(label)
        user = sample.user(label)
        application = sample.application(label)
        tx.insert_tenant(tenant)
        tx.insert_user(user)
        tx.insert_account(sample.account(user.id, label))
        tx.insert_tenant_account(sample.tenant_account(tenant.id, user.id))
        tx.insert_identity(sample.identity(user.id, f"subject-{label}"))
        tx.insert_application(application)
        tx.insert_catalog_version(sample.catalog(application.id, 1))
        key = sample.profile_key(application.id, user_id=user.id)
        tx.put_profile_value(sample.profile_value(key, label), expected_version=None)
        tx.append_audit(sample.audit_record(action=sample.action(label)))
        tx.append_event(sample.event(label))

    def _present(self, store: UserEngineStore, sample: Sample, label: str) -> list[bool]:
        with sample.write(store) as tx:
            user_id = sample.user_id(label)
            return [
                tx.get_tenant(sample.tenant_id(label)) is not None,
                tx.get_user(user_id) is not None,
                tx.list_accounts(user_id) != [],
                tx.get_tenant_account(sample.tenant_id(label), user_id) is not None,
                tx.get_identity(sample.issuer(), f"subject-{label}") is not None,
                tx.get_application(sample.application_id(label)) is not None,
                tx.get_current_catalog(sample.application_id(label)) is not None,
                tx.profile_values_for(user_id, None) != [],
                sample.action(label) in _audited_actions(store, sample),
                f"usr_{sample.token}_{label}" in _pending_aggregates(store),
            ]

    @clause("store.tx.atomic")
    def test_a_transaction_commits_records_audit_and_events_together_or_not_at_all(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        with rolls_back(), sample.write(store) as tx:
            self._write_everything(tx, sample, "lost")
            raise Rollback

        with sample.write(store) as tx:
            self._write_everything(tx, sample, "kept")

        assert self._present(store, sample, "lost") == [False] * 10, (
            "every write of a rolled-back transaction is undone (records, audit, outbox)"
        )
        assert self._present(store, sample, "kept") == [True] * 10

    @clause("store.tx.nested-rollback")
    def test_a_failed_savepoint_undoes_only_its_own_writes(self, store: UserEngineStore) -> None:
        sample = Sample()
        with sample.write(store) as tx:
            self._write_everything(tx, sample, "outer")
            with rolls_back(), tx.savepoint():
                self._write_everything(tx, sample, "inner")
                raise Rollback
            assert tx.get_tenant(sample.tenant_id("inner")) is None, (
                "the rolled-back savepoint's writes are gone inside the transaction too"
            )
            with tx.savepoint():
                self._write_everything(tx, sample, "second")
                with rolls_back(), tx.savepoint():
                    self._write_everything(tx, sample, "deepest")
                    raise Rollback
            assert tx.get_tenant(sample.tenant_id("outer")) is not None

        assert self._present(store, sample, "outer") == [True] * 10
        assert self._present(store, sample, "second") == [True] * 10
        assert self._present(store, sample, "inner") == [False] * 10
        assert self._present(store, sample, "deepest") == [False] * 10

    @clause("store.tx.savepoint-after-error")
    def test_a_store_error_inside_a_savepoint_leaves_the_transaction_usable(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        user = sample.seed_user(store)
        identity = sample.identity(user.id, "taken")
        [tenant] = sample.seed_tenants(store, "a")
        with sample.write(store) as tx:
            tx.insert_identity(identity)

        with sample.write(store) as tx:
            tx.insert_tenant(sample.tenant("before"))
            with pytest.raises(ConflictError), tx.savepoint():
                tx.insert_identity(identity)
            with pytest.raises(ConflictError), tx.savepoint():
                tx.update_tenant(tenant, expected_version=7)
            tx.insert_tenant(sample.tenant("after"))
            assert tx.get_tenant(sample.tenant_id("before")) is not None

        with sample.write(store) as tx:
            assert tx.get_tenant(sample.tenant_id("before")) is not None
            assert tx.get_tenant(sample.tenant_id("after")) is not None
            assert tx.get_tenant(tenant.id) == tenant

    @clause("store.tx.savepoint-scope")
    def test_a_savepoint_may_run_under_another_scope_and_restores_the_outer_one(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        tenant_a, tenant_b = sample.seed_tenants(store, "a", "b")
        scope_a = AccessScope.for_tenant(tenant_a.id)
        scope_b = AccessScope.for_tenant(tenant_b.id)
        application = sample.seed_application(store)
        key_b = sample.profile_key(
            application.id, layer=Layer.TENANT_DEFAULT, tenant_id=tenant_b.id
        )

        with store.transaction(scope_a) as tx:
            assert tx.scope == scope_a
            with tx.savepoint(scope_b):
                assert tx.scope == scope_b
                assert tx.get_tenant(tenant_b.id) == tenant_b
                assert tx.get_tenant(tenant_a.id) is None
                tx.put_profile_value(sample.profile_value(key_b, "b"), expected_version=None)
            assert tx.scope == scope_a
            assert tx.get_tenant(tenant_b.id) is None
            with rolls_back(), tx.savepoint(scope_b):
                raise Rollback
            assert tx.scope == scope_a
            with tx.savepoint():
                assert tx.scope == scope_a
            assert tx.get_tenant(tenant_a.id) == tenant_a

        with sample.write(store) as tx:
            found = tx.get_profile_value(key_b)
            assert found is not None
            assert found.value == "b"
