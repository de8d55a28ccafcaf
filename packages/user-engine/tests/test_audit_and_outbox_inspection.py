"""Audit inspection (filters, paging, request ids, tenant isolation), outbox inspection,
diagnostics, and what happens when the audit sink fails."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from user_engine.domain import AuditOutcome, RetryPolicy
from user_engine.errors import AuthorizationDenied
from user_engine.ports import ExportResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from user_engine.domain import AuditRecord

    from conftest import World


def test_audit_records_are_filtered_by_actor_action_outcome_and_tenant(world: World) -> None:
    with pytest.raises(AuthorizationDenied):
        world.service.get_tenant(world.globex_admin, "acme")
    read = world.service.read_audit

    by_actor = read(world.operator, actor_id="adm-acme").records
    by_action = read(world.operator, action="profile.write").records
    denied = read(world.operator, outcome="denied").records
    in_globex = read(world.operator, tenant_id="globex").records

    assert by_actor
    assert {r.actor_id for r in by_actor} == {"adm-acme"}
    assert [r.target_id for r in by_action] == ["crm.nickname", "crm.pin"]
    assert [(r.actor_id, r.tenant_id) for r in denied] == [("adm-globex", "acme")]
    assert in_globex
    assert {r.tenant_id for r in in_globex} == {"globex"}


def test_audit_time_bounds_are_since_inclusive_until_exclusive(world: World) -> None:
    start = world.clock.now()
    world.clock.advance(timedelta(minutes=1))
    world.service.create_tenant(world.operator, "initech", name="Initech")
    middle = world.clock.now()
    world.clock.advance(timedelta(minutes=1))
    world.service.create_tenant(world.operator, "hooli", name="Hooli")

    window = world.service.read_audit(
        world.operator, since=middle, until=middle + timedelta(minutes=1)
    ).records
    before_start = world.service.read_audit(world.operator, until=start).records

    assert [r.target_id for r in window] == ["initech"]
    assert before_start == ()


def test_audit_pages_continue_from_next_after_without_gaps_or_repeats(world: World) -> None:
    everything = world.service.read_audit(world.operator, limit=1000).records
    seen: list[AuditRecord] = []
    after = 0

    while True:
        page = world.service.read_audit(world.operator, after=after, limit=5)
        seen.extend(page.records)
        if page.next_after is None:
            break
        after = page.next_after

    assert seen == list(everything)
    assert [r.sequence for r in seen] == sorted({r.sequence for r in seen})


def test_a_tenant_admin_reads_only_its_own_tenants_audit(world: World) -> None:
    records = world.service.read_audit(world.acme_admin, limit=1000).records

    assert records
    assert {r.tenant_id for r in records} == {"acme"}
    with pytest.raises(AuthorizationDenied):
        world.service.read_audit(world.acme_admin, tenant_id="globex")


def test_operations_inside_a_request_are_tagged_with_its_id(world: World) -> None:
    with world.service.request("req-42"):
        world.service.create_tenant(world.operator, "initech", name="Initech")
        with pytest.raises(AuthorizationDenied):
            world.service.suspend_tenant(world.acme_admin, "initech")
    world.service.create_tenant(world.operator, "hooli", name="Hooli")

    tagged = [r for r in world.audit_log() if r.request_id == "req-42"]
    assert [(r.action, r.outcome) for r in tagged] == [
        ("tenant.create", AuditOutcome.SUCCESS),
        ("tenant.suspend", AuditOutcome.DENIED),
    ]
    assert world.audit_log()[-1].request_id == ""


def test_pending_events_are_listed_in_order_and_paged(world: World) -> None:
    events = world.service.pending_events(world.operator, limit=1000)
    first = world.service.pending_events(world.operator, limit=3)
    rest = world.service.pending_events(world.operator, limit=1000, after=first[-1].sequence)

    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert first + rest == events
    assert events[0].event_type == "tenant.created"
    assert len({e.id for e in events}) == len(events), "event ids are unique"


def test_dead_lettered_events_are_listed_separately(world: World) -> None:
    now = world.clock.now()
    claimed = world.store.claim_events(limit=2, lease=timedelta(seconds=30), now=now)
    world.store.release_events(
        [c.claim for c in claimed], error="broker down", now=now, policy=RetryPolicy(max_attempts=1)
    )

    dead = world.service.dead_letters(world.operator)
    pending = world.service.pending_events(world.operator, limit=1000)

    assert [e.id for e in dead] == [c.event.id for c in claimed]
    assert {e.last_error for e in dead} == {"broker down"}
    assert not {e.id for e in dead} & {e.id for e in pending}
    assert world.service.diagnostics(world.operator).outbox.dead == 2


def test_diagnostics_are_counts_only(world: World) -> None:
    diagnostics = world.service.diagnostics(world.operator)

    assert diagnostics.counts == world.store.record_counts()
    assert all(isinstance(v, int) for v in diagnostics.counts.values())
    assert diagnostics.readiness.ready
    assert diagnostics.outbox.pending == len(world.outbox())
    assert diagnostics.audit_exports_dropped == 0


class _FailingSink:
    name = "failing"

    def __init__(self, *, raise_error: bool) -> None:
        self.raise_error = raise_error

    def export(self, records: Sequence[AuditRecord]) -> ExportResult:
        if self.raise_error:
            raise ConnectionError("collector unreachable")
        return ExportResult(0, len(records), ("collector unreachable",))

    def flush(self, timeout: float) -> bool:
        return False

    def close(self) -> None:
        """Nothing to release."""


@pytest.mark.parametrize("raise_error", [True, False], ids=["raises", "reports-dropped"])
def test_a_failing_audit_sink_never_fails_the_operation_and_is_counted(
    world: World, caplog: pytest.LogCaptureFixture, raise_error: bool
) -> None:
    world.service.audit_sink = _FailingSink(raise_error=raise_error)
    before = world.snapshot()

    with caplog.at_level(logging.WARNING, logger="user_engine"):
        world.service.create_tenant(world.operator, "initech", name="Initech")

    assert world.service.audit_exports_dropped == 1
    assert world.service.diagnostics(world.operator).audit_exports_dropped == 1
    assert [r.action for r in world.audit_since(before)] == ["tenant.create"], "still durable"
    assert "audit export" in caplog.text
