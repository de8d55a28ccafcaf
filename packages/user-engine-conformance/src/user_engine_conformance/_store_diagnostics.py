"""Store clauses: diagnostics and errors never carry a stored value (canary checks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from user_engine.domain import Layer
from user_engine.errors import ConflictError, UserEngineError
from user_engine.ports import RECORD_KINDS, StoreTransaction, UserEngineStore

from user_engine_conformance._samples import Sample, error_chain_text
from user_engine_conformance.clauses import clause

__all__ = ["RECORD_KINDS", "DiagnosticsClauses"]

def _seed_canaries(store: UserEngineStore, sample: Sample) -> None:
    """One row of every kind, with the canary wherever a value can go."""
    canary = sample.canary
    tenant = sample.tenant("a", name=canary)
    user = sample.user("1", display_name=canary)
    application = sample.application("a")
    with sample.write(store) as tx:
        tx.insert_tenant(tenant)
        tx.insert_user(user)
        tx.insert_account(sample.account(user.id, "1", handle=f"{canary}@example.com"))
        tx.insert_tenant_account(sample.tenant_account(tenant.id, user.id, roles=[canary]))
        tx.insert_membership(sample.membership(tenant.id, user.id, canary))
        tx.insert_identity(sample.identity(user.id, canary))
        tx.insert_factor(sample.factor(user.id, "1"))
        tx.insert_application(application)
        tx.insert_catalog_version(sample.rich_catalog(application.id))
        tx.put_binding(sample.binding(application.id, tenant.id, user.id))
        for layer in (Layer.USER, Layer.USER_IN_TENANT):
            key = sample.profile_key(
                application.id,
                "pin",
                layer=layer,
                user_id=user.id,
                tenant_id=tenant.id if layer is Layer.USER_IN_TENANT else None,
            )
            tx.put_profile_value(sample.profile_value(key, canary), expected_version=None)
        tx.append_audit(sample.audit_record(tenant_id=tenant.id))
        tx.append_event(sample.event("a", payload={"display_name": canary}))


class DiagnosticsClauses:
    """Redaction."""

    @clause("store.diagnostics.redacted")
    def test_diagnostics_report_counts_and_codes_never_values(self, store: UserEngineStore) -> None:
        sample = Sample()
        _seed_canaries(store, sample)

        counts = dict(store.record_counts())
        stats = store.outbox_stats()
        readiness = store.readiness()

        missing = [kind for kind in RECORD_KINDS if kind not in counts]
        assert missing == [], f"record_counts lacks the record kinds {missing}"
        for kind, count in counts.items():
            assert type(count) is int, f"{kind} is not a count: {count!r}"
            assert count >= 0, f"{kind} is not a count: {count!r}"
        assert all(counts[kind] >= 1 for kind in RECORD_KINDS), "every kind was written once"
        for name, text in (
            ("record_counts", repr(counts)),
            ("outbox_stats", repr(stats)),
            ("readiness", repr(readiness)),
            ("the store's repr", repr(store)),
        ):
            assert sample.canary not in text, f"{name} leaks a stored value: {text[:300]}"

    @clause("store.errors.redacted")
    def test_store_errors_never_contain_a_stored_value(self, store: UserEngineStore) -> None:
        sample = Sample()
        _seed_canaries(store, sample)
        key = sample.profile_key(sample.application_id("a"), "pin", user_id=sample.user_id("1"))
        errors: list[UserEngineError] = []

        attempts: list[Callable[[StoreTransaction], object]] = [
            lambda tx: tx.put_profile_value(
                sample.profile_value(key, sample.canary + "-new"), expected_version=0
            ),
            lambda tx: tx.delete_profile_value(key, expected_version=9),
        ]
        for attempt in attempts:
            with pytest.raises(ConflictError) as raised, sample.write(store) as tx:
                attempt(tx)
            errors.append(raised.value)

        for error in errors:
            text = error_chain_text(error) + repr(error.to_dict())
            assert sample.canary not in text, (
                f"error [{error.code}] carries a stored value: {text[:300]}"
            )
