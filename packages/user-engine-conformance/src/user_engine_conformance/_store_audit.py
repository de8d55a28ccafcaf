"""Store clauses: the audit log (order, filters, paging, isolation, autonomous denials)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from user_engine.domain import AccessScope, AuditFilter, AuditOutcome, AuditRecord
from user_engine.ports import UserEngineStore

from user_engine_conformance._samples import PLATFORM, T0, Rollback, Sample, pairs, rolls_back
from user_engine_conformance.clauses import clause

__all__ = ["AuditClauses"]


def _ids(records: tuple[AuditRecord, ...] | list[AuditRecord]) -> list[str]:
    return [record.id for record in records]


class AuditClauses:
    """The audit log."""

    @clause("store.audit.order")
    def test_audit_records_read_back_in_append_order_with_increasing_sequences(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        records = [
            # Times deliberately out of order: the log is ordered by append, not by time.
            sample.audit_record(occurred_at=T0 + timedelta(minutes=5 - n))
            for n in range(5)
        ]
        sequences = []
        for part in (records[:2], records[2:3], records[3:]):
            if len(part) == 1:
                sequences.append(store.append_audit_autonomous(part[0]).sequence)
                continue
            with sample.write(store) as tx:
                for record in part:
                    tx.append_audit(record)
            sequences += [tx.audit_sequences()[r.id] for r in part]

        for first, second in pairs(sequences):
            assert first < second, "sequences increase in append order"
        page = store.read_audit(AuditFilter(actor_id=records[0].actor_id), PLATFORM)
        assert _ids(page.records) == _ids(records)
        assert [r.sequence for r in page.records] == sequences

    @clause("store.audit.sequence-after-commit")
    def test_sequences_after_commit_are_the_ones_read_back(self, store: UserEngineStore) -> None:
        sample = Sample()
        kept, nested = sample.audit_record(), sample.audit_record()
        with sample.write(store) as tx:
            tx.append_audit(kept)
            with tx.savepoint():
                tx.append_audit(nested)
        sequences = tx.audit_sequences()

        page = store.read_audit(AuditFilter(actor_id=kept.actor_id), PLATFORM)
        assert _ids(page.records) == _ids([kept, nested])
        assert [sequences.get(r.id) for r in page.records] == [r.sequence for r in page.records]
        assert sequences[kept.id] < sequences[nested.id]

    @clause("store.audit.filter")
    @pytest.mark.parametrize(
        "field", ["tenant_id", "actor_id", "action", "outcome", "since", "until", "after_sequence"]
    )
    def test_audit_reads_honour_each_filter_field(self, store: UserEngineStore, field: str) -> None:
        sample = Sample()
        tenant_a, tenant_b = sample.tenant_id("a"), sample.tenant_id("b")
        action = sample.action("filtered")
        layout = [
            # (tenant, actor, action, outcome, minutes after T0)
            (tenant_a, "alice", action, AuditOutcome.SUCCESS, 0),
            (tenant_b, "alice", action, AuditOutcome.DENIED, 1),
            (None, "bob", action, AuditOutcome.SUCCESS, 2),
            (tenant_a, "bob", sample.action("other"), AuditOutcome.FAILED, 3),
            (tenant_a, "alice", action, AuditOutcome.DENIED, 4),
        ]
        records = [
            sample.audit_record(
                tenant_id=t,
                actor=actor,
                action=act,
                outcome=o,
                occurred_at=T0 + timedelta(minutes=m),
            )
            for t, actor, act, o, m in layout
        ]
        with sample.write(store) as tx:
            for record in records:
                tx.append_audit(record)
        sequences = tx.audit_sequences()
        alice = f"alice_{sample.token}"
        cases = {
            "tenant_id": (AuditFilter(tenant_id=tenant_a), [0, 3, 4]),
            "actor_id": (AuditFilter(actor_id=alice), [0, 1, 4]),
            "action": (AuditFilter(action=action), [0, 1, 2, 4]),
            "outcome": (AuditFilter(action=action, outcome=AuditOutcome.DENIED), [1, 4]),
            # since <= t < until: both bounds hit a record exactly.
            "since": (AuditFilter(action=action, since=T0 + timedelta(minutes=1)), [1, 2, 4]),
            "until": (AuditFilter(action=action, until=T0 + timedelta(minutes=2)), [0, 1]),
            "after_sequence": (
                AuditFilter(action=action, after_sequence=sequences[records[1].id]),
                [2, 4],
            ),
        }
        audit_filter, expected = cases[field]

        page = store.read_audit(audit_filter, PLATFORM)

        assert _ids(page.records) == [records[n].id for n in expected]
        assert page.next_after is None

    @clause("store.audit.paging")
    def test_audit_reads_page_by_limit_and_next_after(self, store: UserEngineStore) -> None:
        sample = Sample()
        records = [sample.audit_record() for _ in range(5)]
        with sample.write(store) as tx:
            for record in records:
                tx.append_audit(record)
        action = records[0].action

        first = store.read_audit(AuditFilter(action=action, limit=2), PLATFORM)
        assert _ids(first.records) == _ids(records[:2])
        assert first.next_after == first.records[-1].sequence
        second = store.read_audit(
            AuditFilter(action=action, limit=3, after_sequence=first.next_after), PLATFORM
        )
        assert _ids(second.records) == _ids(records[2:])
        assert second.next_after is None, "a page that reaches the end has no next_after"
        rest = store.read_audit(
            AuditFilter(action=action, after_sequence=second.records[-1].sequence), PLATFORM
        )
        assert rest.records == ()
        assert rest.next_after is None

    @clause("store.audit.isolation")
    def test_audit_reads_outside_the_platform_scope_see_only_their_tenant(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        tenant_a, tenant_b = sample.tenant_id("a"), sample.tenant_id("b")
        records = [sample.audit_record(tenant_id=t) for t in (tenant_a, tenant_b, None)]
        with sample.write(store) as tx:
            for record in records:
                tx.append_audit(record)
        action = AuditFilter(action=records[0].action)

        def seen(scope: AccessScope, audit_filter: AuditFilter = action) -> list[str]:
            return _ids(store.read_audit(audit_filter, scope).records)

        assert seen(PLATFORM) == _ids(records)
        assert seen(AccessScope.for_tenant(tenant_a)) == [records[0].id]
        assert seen(AccessScope.for_tenant(tenant_b)) == [records[1].id]
        assert seen(AccessScope()) == [records[2].id]
        assert (
            seen(
                AccessScope.for_tenant(tenant_a),
                AuditFilter(action=records[0].action, tenant_id=tenant_b),
            )
            == []
        ), "a filter naming another tenant does not widen the scope"

    @clause("store.audit.denial-survives-rollback")
    def test_an_autonomous_denial_survives_the_rollback_of_the_surrounding_transaction(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        in_transaction = sample.audit_record(outcome=AuditOutcome.SUCCESS)
        denial = sample.audit_record(outcome=AuditOutcome.DENIED)

        with rolls_back(), sample.write(store) as tx:
            tx.insert_tenant(sample.tenant("a"))
            tx.append_audit(in_transaction)
            stored = store.append_audit_autonomous(denial)
            raise Rollback

        assert stored.sequence > 0
        page = store.read_audit(AuditFilter(action=denial.action), PLATFORM)
        assert _ids(page.records) == [denial.id], (
            "the denial is committed at once; the transaction's own record is rolled back"
        )
        assert page.records[0] == stored
        with sample.write(store) as tx:
            assert tx.get_tenant(sample.tenant_id("a")) is None
