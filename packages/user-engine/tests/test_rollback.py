"""Rollback: a mutation commits its domain change, audit record and event together or not at
all; ``service.transaction()`` groups operations and nests; denials survive every rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from user_engine.domain import AuditOutcome
from user_engine.errors import (
    AuthorizationDenied,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    UserEngineError,
)

if TYPE_CHECKING:
    from conftest import FailingStore, World


class Boom(Exception):
    """A failure that is not the engine's (a bug, a crash in a driver)."""


MUTATIONS: dict[str, Callable[[World], object]] = {
    "create_user in a tenant": lambda w: w.service.create_user(
        w.acme_admin, display_name="Erin", tenant_id="acme", roles=["viewer"]
    ),
    "remove_from_tenant (cascades)": lambda w: w.service.remove_from_tenant(
        w.operator, "acme", w.alice.id
    ),
    "write_profile_value": lambda w: w.service.write_profile_value(
        w.as_user(w.alice),
        attribute="crm.nickname",
        layer="user",
        user_id=w.alice.id,
        value="new",
    ),
    "publish_catalog": lambda w: w.service.publish_catalog(w.crm, "crm", []),
    "link_identity": lambda w: w.service.link_identity(
        w.operator, w.bob.id, issuer="https://idp.example", subject="bob-sub"
    ),
    "close_user": lambda w: w.service.close_user(w.operator, w.bob.id),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize(
    ("step", "failure"),
    [
        ("append_event", Boom("broker row rejected")),
        ("append_audit", StoreUnavailableError("connection lost")),
    ],
    ids=["event-step-crashes", "audit-step-store-unavailable"],
)
def test_a_failure_mid_mutation_leaves_no_domain_change_no_audit_and_no_event(
    failing_world: World, mutation: str, step: str, failure: Exception
) -> None:
    store: FailingStore = failing_world.store  # type: ignore[assignment]
    before = failing_world.snapshot()
    store.arm(step, failure)

    with pytest.raises(type(failure)):
        MUTATIONS[mutation](failing_world)

    store.arm("", failure)
    after = failing_world.snapshot()
    assert after.tables == before.tables
    assert after.counts == before.counts
    assert after.audit == before.audit
    assert after.outbox == before.outbox
    assert after.exported == before.exported


def test_a_failed_factor_enrollment_deletes_the_secret_it_already_stored(
    failing_world: World,
) -> None:
    store: FailingStore = failing_world.store  # type: ignore[assignment]
    stored: list[str] = []
    put_secret = failing_world.secrets.put_secret

    def recording_put(owner_id: str, secret: bytes) -> str:
        stored.append(put_secret(owner_id, secret))
        return stored[-1]

    failing_world.secrets.put_secret = recording_put  # type: ignore[method-assign]
    store.arm("append_audit", Boom("crash after the factor row"))

    with pytest.raises(Boom):
        failing_world.service.enroll_factor(
            failing_world.operator, failing_world.bob.id, kind="totp", label="x", secret="s3cret"
        )

    assert len(stored) == 1
    assert not failing_world.secrets.has_secret(stored[0])


def test_an_exception_inside_a_service_transaction_rolls_back_every_operation_in_it(
    world: World,
) -> None:
    before = world.snapshot()

    with pytest.raises(Boom), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
        world.service.create_tenant(world.operator, "initech", name="Initech")
        world.service.create_user(world.operator, display_name="Erin", tenant_id="initech")
        raise Boom

    after = world.snapshot()
    assert after.tables == before.tables
    assert after.exported == before.exported


def test_operations_inside_a_committed_transaction_commit_together_and_export_after_commit(
    world: World,
) -> None:
    before = world.snapshot()
    exported_inside: list[int] = []

    with world.service.transaction():
        world.service.create_tenant(world.operator, "initech", name="Initech")
        world.service.create_user(world.operator, display_name="Erin", tenant_id="initech")
        exported_inside.append(len(world.audit_sink.exported))

    assert exported_inside == [before.exported], "audit exported before the commit"
    new_audit = world.audit_since(before)
    assert [r.action for r in new_audit] == ["tenant.create", "user.create"]
    assert world.audit_sink.exported[before.exported :] == new_audit
    assert [e.event_type for e in world.events_since(before)] == [
        "tenant.created",
        "user.created",
        "tenant_account.added",
    ]


def test_a_nested_transaction_that_fails_rolls_back_only_its_own_part(world: World) -> None:
    before = world.snapshot()

    with world.service.transaction():
        world.service.create_tenant(world.operator, "initech", name="Initech")
        with pytest.raises(Boom), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
            world.service.create_tenant(world.operator, "umbrella", name="Umbrella")
            raise Boom
        world.service.create_tenant(world.operator, "hooli", name="Hooli")

    with pytest.raises(NotFoundError):
        world.service.get_tenant(world.operator, "umbrella")
    assert world.service.get_tenant(world.operator, "hooli").id == "hooli"
    assert world.store.record_counts()["tenants"] == before.counts["tenants"] + 2
    assert [r.target_id for r in world.audit_since(before)] == ["initech", "hooli"]
    assert [r.target_id for r in world.audit_sink.exported[before.exported :]] == [
        "initech",
        "hooli",
    ]
    assert [e.aggregate_id for e in world.events_since(before)] == ["initech", "hooli"]


def test_a_nested_transaction_that_commits_is_still_undone_by_the_outer_rollback(
    world: World,
) -> None:
    before = world.snapshot()

    with pytest.raises(Boom), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
        with world.service.transaction():
            world.service.create_tenant(world.operator, "initech", name="Initech")
        raise Boom

    assert world.snapshot().tables == before.tables


def test_an_operation_that_fails_inside_a_transaction_rolls_back_only_itself(
    world: World,
) -> None:
    before = world.snapshot()

    with world.service.transaction():
        world.service.add_membership(world.acme_admin, "acme", world.bob.id, "sales")
        with pytest.raises(ConflictError):
            # alice is already in staff: this operation alone is undone.
            world.service.add_membership(world.acme_admin, "acme", world.alice.id, "staff")
        world.service.add_membership(world.acme_admin, "acme", world.bob.id, "staff")

    groups = {(m.user_id, m.group) for m in world.service.list_memberships(world.operator, "acme")}
    assert groups == {(world.alice.id, "staff"), (world.bob.id, "sales"), (world.bob.id, "staff")}
    outcomes = [(r.outcome, r.reason_code) for r in world.audit_since(before)]
    assert outcomes == [
        (AuditOutcome.SUCCESS, ""),
        (AuditOutcome.FAILED, "membership.exists"),
        (AuditOutcome.SUCCESS, ""),
    ]


def test_a_denial_inside_a_rolled_back_outer_transaction_stays_audited_and_is_exported_once(
    world: World,
) -> None:
    before = world.snapshot()

    with pytest.raises(Boom), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
        world.service.create_user(world.acme_admin, display_name="Erin", tenant_id="acme")
        with pytest.raises(AuthorizationDenied):
            world.service.suspend_tenant(world.acme_admin, "globex")
        raise Boom

    after = world.snapshot()
    assert after.domain() == before.domain(), "the user creation was not rolled back"
    assert after.outbox == before.outbox, "an event survived the rollback"
    [denial] = world.audit_since(before)
    assert (denial.action, denial.outcome, denial.reason_code) == (
        "tenant.suspend",
        AuditOutcome.DENIED,
        "denied.role",
    )
    assert world.audit_sink.exported[before.exported :] == [denial]


def test_a_denial_that_escapes_a_nested_transaction_stays_audited_when_all_rolls_back(
    world: World,
) -> None:
    before = world.snapshot()

    with pytest.raises(AuthorizationDenied), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
        world.service.create_tenant(world.operator, "initech", name="Initech")
        with world.service.transaction():
            world.service.list_tenant_accounts(world.acme_admin, "globex")

    assert world.snapshot().domain() == before.domain()
    [denial] = world.audit_since(before)
    assert denial.outcome is AuditOutcome.DENIED
    assert denial.tenant_id == "globex"
    assert world.audit_sink.exported[before.exported :] == [denial]
    assert world.snapshot().outbox == before.outbox


def test_a_conflict_inside_a_rolled_back_transaction_stays_audited_as_failed(
    world: World,
) -> None:
    before = world.snapshot()

    with pytest.raises(ConflictError), world.service.transaction():
        world.service.link_identity(
            world.operator, world.bob.id, issuer="https://idp.example", subject="alice-sub"
        )

    [failure] = world.audit_since(before)
    assert (failure.outcome, failure.reason_code) == (
        AuditOutcome.FAILED,
        "identity.already_linked",
    )
    assert world.snapshot().outbox == before.outbox


def test_a_validation_error_is_neither_audited_nor_exported(world: World) -> None:
    before = world.snapshot()

    with pytest.raises(UserEngineError):
        world.service.write_profile_value(
            world.as_user(world.alice),
            attribute="crm.age",
            layer="user",
            user_id=world.alice.id,
            value=999,
        )

    assert world.snapshot() == before
