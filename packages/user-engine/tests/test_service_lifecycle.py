"""Lifecycles and conflicts of tenants, users, accounts, tenant accounts, memberships,
identities, factors, applications and catalogs through the service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from user_engine.domain import AccessScope, TenantAccountStatus, TenantStatus, UserStatus
from user_engine.errors import (
    AuthorizationDenied,
    ConflictError,
    NotFoundError,
    UserEngineError,
    ValidationError,
)
from user_engine.ports import Readiness
from user_engine.testing import TrustingIdentityVerifier

if TYPE_CHECKING:
    from conftest import World


def code_of(call: object) -> str:
    """Run ``call`` and return the code of the ``UserEngineError`` it raises."""
    with pytest.raises(UserEngineError) as error:
        call()  # type: ignore[operator]
    return error.value.code


def test_a_user_goes_active_suspended_active_closed_and_stays_closed(world: World) -> None:
    service, operator, bob = world.service, world.operator, world.bob.id

    suspended = service.suspend_user(operator, bob)
    reactivated = service.reactivate_user(operator, bob)
    closed = service.close_user(world.as_user(world.bob), bob)

    assert [suspended.status, reactivated.status, closed.status] == [
        UserStatus.SUSPENDED,
        UserStatus.ACTIVE,
        UserStatus.CLOSED,
    ]
    assert closed.version == world.bob.version + 3
    assert code_of(lambda: service.reactivate_user(operator, bob)) == "user.status"
    assert code_of(lambda: service.close_user(operator, bob)) == "user.status"
    assert code_of(lambda: service.create_account(operator, bob, handle="b@x")) == "user.closed"
    assert code_of(lambda: service.add_to_tenant(operator, "globex", bob)) == "user.closed"


def test_a_tenant_is_suspended_and_reactivated_once_each(world: World) -> None:
    assert world.service.suspend_tenant(world.operator, "acme").status is TenantStatus.SUSPENDED
    assert code_of(lambda: world.service.suspend_tenant(world.operator, "acme")) == "tenant.status"
    assert world.service.reactivate_tenant(world.operator, "acme").status is TenantStatus.ACTIVE
    assert (
        code_of(lambda: world.service.create_tenant(world.operator, "acme", name="Again"))
        == "tenant.exists"
    )


@pytest.mark.parametrize(
    "attempt",
    [
        lambda w: w.service.create_user(w.operator, display_name="x", tenant_id="acme"),
        lambda w: w.service.add_to_tenant(w.operator, "acme", w.dave.id),
        lambda w: w.service.assign_tenant_roles(w.operator, "acme", w.bob.id, ["x"]),
        lambda w: w.service.add_membership(w.operator, "acme", w.bob.id, "g"),
        lambda w: w.service.bind_application(
            w.operator, "billing", tenant_id="acme", user_id=w.bob.id
        ),
        lambda w: w.service.write_profile_value(
            w.operator,
            attribute="crm.nickname",
            layer="tenant-default",
            tenant_id="acme",
            value="x",
        ),
    ],
    ids=["create_user", "add_to_tenant", "assign_roles", "add_membership", "bind", "write"],
)
def test_a_suspended_tenant_refuses_writes_that_add_or_change(
    world: World, attempt: object
) -> None:
    world.service.suspend_tenant(world.operator, "acme")
    before = world.snapshot()

    assert code_of(lambda: attempt(world)) == "tenant.suspended"  # type: ignore[operator]
    assert world.snapshot().domain() == before.domain()


def test_account_handles_are_unique_case_insensitively(world: World) -> None:
    code = code_of(
        lambda: world.service.create_account(
            world.operator, world.bob.id, handle="ALICE@example.com"
        )
    )

    assert code == "account.handle_taken"


def test_an_account_follows_the_user_lifecycle(world: World) -> None:
    account = world.alice_account.id
    assert world.service.suspend_account(world.operator, account).status is UserStatus.SUSPENDED
    assert world.service.reactivate_account(world.operator, account).status is UserStatus.ACTIVE
    closed = world.service.close_account(world.as_user(world.alice), account)
    assert closed.status is UserStatus.CLOSED
    assert (
        code_of(lambda: world.service.suspend_account(world.operator, account)) == "account.status"
    )
    assert (
        code_of(lambda: world.service.close_account(world.operator, "acc_nope"))
        == "account.not_found"
    )


def test_removing_a_user_from_a_tenant_removes_its_memberships_and_bindings_there(
    world: World,
) -> None:
    alice = world.alice.id
    world.service.add_to_tenant(world.operator, "globex", alice)
    world.service.bind_application(world.operator, "crm", tenant_id="globex", user_id=alice)

    removed = world.service.remove_from_tenant(world.acme_admin, "acme", alice)

    assert removed.status is TenantAccountStatus.REMOVED
    assert world.service.list_memberships(world.operator, "acme", user_id=alice) == []
    with world.store.transaction(AccessScope.all_tenants()) as tx:
        assert [b.tenant_id for b in tx.list_bindings_of_user(alice)] == ["globex"]


def test_a_removed_tenant_account_is_revived_by_adding_the_user_again(world: World) -> None:
    removed = world.service.remove_from_tenant(world.operator, "acme", world.bob.id)

    revived = world.service.add_to_tenant(world.operator, "acme", world.bob.id, roles=["viewer"])

    assert revived.status is TenantAccountStatus.ACTIVE
    assert revived.version == removed.version + 1
    assert revived.roles == {"viewer"}
    assert (
        code_of(lambda: world.service.add_to_tenant(world.operator, "acme", world.bob.id))
        == "tenant_account.exists"
    )


def test_tenant_account_lifecycle_conflicts_and_missing_accounts(world: World) -> None:
    service, operator = world.service, world.operator
    assert (
        code_of(lambda: service.reactivate_tenant_account(operator, "acme", world.bob.id))
        == "tenant_account.status"
    )
    assert (
        code_of(lambda: service.suspend_tenant_account(operator, "acme", world.dave.id))
        == "tenant_account.not_found"
    )
    service.remove_from_tenant(operator, "acme", world.bob.id)
    assert (
        code_of(lambda: service.assign_tenant_roles(operator, "acme", world.bob.id, ["x"]))
        == "tenant_account.not_found"
    )
    assert (
        code_of(lambda: service.add_membership(operator, "acme", world.bob.id, "g"))
        == "tenant_account.inactive"
    )


def test_roles_are_replaced_as_a_whole(world: World) -> None:
    updated = world.service.assign_tenant_roles(
        world.acme_admin, "acme", world.alice.id, ["owner", "billing", "owner"]
    )

    assert updated.roles == {"owner", "billing"}
    [account] = [
        a
        for a in world.service.list_tenant_accounts(world.acme_admin, "acme")
        if a.user_id == world.alice.id
    ]
    assert account.roles == {"owner", "billing"}


def test_memberships_are_unique_and_exported_to_the_configured_exporter(world: World) -> None:
    assert (
        code_of(
            lambda: world.service.add_membership(world.operator, "acme", world.alice.id, "staff")
        )
        == "membership.exists"
    )
    assert (
        code_of(
            lambda: world.service.remove_membership(world.operator, "acme", world.bob.id, "staff")
        )
        == "membership.not_found"
    )

    exported = world.service.export_memberships(world.acme_admin, "acme")

    assert exported == 1
    assert [(m.user_id, m.group) for m in world.exporter.exports["acme"]] == [
        (world.alice.id, "staff")
    ]


def test_exporting_memberships_without_an_exporter_is_refused(world: World) -> None:
    world.service.membership_exporter = None

    assert (
        code_of(lambda: world.service.export_memberships(world.operator, "acme"))
        == "configuration.exporter"
    )


def test_linking_needs_evidence_when_the_verifier_asks_for_it(world: World) -> None:
    world.service.verifier = TrustingIdentityVerifier(require_evidence=True)

    with pytest.raises(AuthorizationDenied) as denied:
        world.service.link_identity(
            world.operator, world.bob.id, issuer="https://idp.example", subject="bob"
        )
    linked = world.service.link_identity(
        world.operator,
        world.bob.id,
        issuer="https://idp.example",
        subject="bob",
        evidence="id-token",
    )

    assert denied.value.code == "denied.evidence"
    assert linked.user_id == world.bob.id


def test_unlinking_an_identity_that_is_not_linked_is_not_found(world: World) -> None:
    assert (
        code_of(lambda: world.service.unlink_identity(world.operator, issuer="x", subject="y"))
        == "identity.not_found"
    )
    assert world.service.lookup_identity(world.operator, issuer="x", subject="y") is None


def test_a_factor_is_removed_only_by_its_own_user_id(world: World) -> None:
    factor = world.alice_factor.id

    assert (
        code_of(lambda: world.service.remove_factor(world.operator, world.bob.id, factor))
        == "factor.not_found"
    )
    world.service.remove_factor(world.operator, world.alice.id, factor)
    assert not world.secrets.has_secret(world.alice_factor.secret_ref)


def test_application_and_catalog_conflicts(world: World) -> None:
    service, operator = world.service, world.operator
    assert (
        code_of(lambda: service.register_application(operator, "crm", name="Again"))
        == "application.exists"
    )
    assert (
        code_of(
            lambda: service.bind_application(
                operator, "ghost", tenant_id="acme", user_id=world.bob.id
            )
        )
        == "application.not_found"
    )
    assert (
        code_of(
            lambda: service.bind_application(
                operator, "crm", tenant_id="acme", user_id=world.carol.id
            )
        )
        == "tenant_account.inactive"
    )
    assert (
        code_of(
            lambda: service.unbind_application(
                operator, "billing", tenant_id="acme", user_id=world.bob.id
            )
        )
        == "binding.not_found"
    )
    assert (
        code_of(lambda: service.publish_catalog(operator, "ghost", [])) == "application.not_found"
    )
    assert code_of(lambda: service.get_catalog(operator, "crm", version=9)) == "catalog.not_found"


def test_catalog_versions_are_listed_oldest_first(world: World) -> None:
    world.service.publish_catalog(world.crm, "crm", [])

    versions = world.service.list_catalog_versions(world.operator, "crm")

    assert [v.version for v in versions] == [1, 2]
    assert versions[0].published_by == "application:crm"


def test_me_returns_the_callers_own_records(world: World) -> None:
    me = world.service.me(world.as_user(world.alice), tenant_id="acme")

    assert me.user == world.alice
    assert [a.id for a in me.accounts] == [world.alice_account.id]
    assert [t.tenant_id for t in me.tenant_accounts] == ["acme"]
    assert [(i.issuer, i.subject) for i in me.identities] == [("https://idp.example", "alice-sub")]
    assert [f.id for f in me.factors] == [world.alice_factor.id]
    assert me.profile.attributes["crm.nickname"].value == "ali"


def test_health_answers_without_the_store_and_readiness_fails_closed(world: World) -> None:
    assert world.service.health() == {"status": "ok"}
    assert world.service.readiness().ready

    world.store.close()
    closed = world.service.readiness()

    def unreachable() -> Readiness:
        raise OSError("connection refused")

    world.store.readiness = unreachable  # type: ignore[method-assign]
    broken = world.service.readiness()
    assert (closed.ready, closed.problems) == (False, ("store.closed",))
    assert (broken.ready, broken.problems) == (False, ("store.unreachable",))


def test_a_conflict_is_audited_as_failed_with_its_code(world: World) -> None:
    before = world.snapshot()

    with pytest.raises(ConflictError):
        world.service.create_tenant(world.operator, "acme", name="Again")

    [record] = world.audit_since(before)
    assert (record.outcome.value, record.reason_code) == ("failed", "tenant.exists")


def test_a_not_found_mutation_is_audited_as_failed_and_a_not_found_read_is_not(
    world: World,
) -> None:
    before = world.snapshot()

    with pytest.raises(NotFoundError):
        world.service.suspend_user(world.operator, "usr_missing")
    with pytest.raises(NotFoundError):
        world.service.get_user(world.operator, "usr_missing")

    assert [(r.action, r.reason_code) for r in world.audit_since(before)] == [
        ("user.suspend", "user.not_found")
    ]


def test_a_validation_failure_inside_a_mutation_changes_nothing(world: World) -> None:
    before = world.snapshot()

    with pytest.raises(ValidationError):
        world.service.publish_catalog(world.crm, "crm", [{"name": "x", "type": "string"}] * 2)

    assert world.snapshot() == before
