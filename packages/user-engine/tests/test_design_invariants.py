"""DESIGN.md section 4, "Invariants that must hold in every store": one test per clause.

Deeper coverage of each clause lives in the files named for it (test_rollback.py,
test_concurrency.py, test_redaction.py, test_profile_writes.py, test_authorization_matrix.py).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest
from user_engine.domain import (
    AccessScope,
    AuditOutcome,
    Layer,
    Membership,
    Sensitivity,
    TenantAccount,
)
from user_engine.errors import (
    AuthorizationDenied,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from user_engine.service import REDACTED

if TYPE_CHECKING:
    from conftest import FailingStore, World

SECRET_CANARY = "canary-secret-value-7f3a9c"
ISSUER = "https://idp.example"


# -- an external identity (issuer, subject) is linked to at most one user, ever at once -------
def test_an_external_identity_is_linked_to_at_most_one_user_at_once(world: World) -> None:
    with pytest.raises(ConflictError) as conflict:
        world.service.link_identity(
            world.operator, world.bob.id, issuer=ISSUER, subject="alice-sub"
        )
    assert conflict.value.code == "identity.already_linked"
    owner = world.service.lookup_identity(world.operator, issuer=ISSUER, subject="alice-sub")
    assert owner is not None
    assert owner.user_id == world.alice.id

    world.service.unlink_identity(world.operator, issuer=ISSUER, subject="alice-sub")
    relinked = world.service.link_identity(
        world.operator, world.bob.id, issuer=ISSUER, subject="alice-sub"
    )
    assert relinked.user_id == world.bob.id


# -- a catalog version, once published, never changes; a newer version supersedes it ---------
def test_a_published_catalog_version_never_changes_and_a_newer_one_supersedes_it(
    world: World,
) -> None:
    version_1 = world.service.get_catalog(world.crm, "crm")
    world.service.write_profile_value(
        world.as_user(world.alice),
        attribute="crm.age",
        layer="user",
        user_id=world.alice.id,
        value=36,
    )

    version_2 = world.service.publish_catalog(
        world.crm, "crm", [{"name": "nickname", "type": "string", "writers": ["self"]}]
    )

    assert version_2.version == version_1.version + 1
    assert world.service.get_catalog(world.crm, "crm") == version_2
    assert world.service.get_catalog(world.crm, "crm", version=1) == version_1
    with world.store.transaction(AccessScope.all_tenants()) as tx, pytest.raises(ConflictError):
        tx.insert_catalog_version(dataclasses.replace(version_1, attributes=()))
    assert world.service.get_catalog(world.crm, "crm", version=1) == version_1
    with pytest.raises(dataclasses.FrozenInstanceError):
        version_1.version = 7  # type: ignore[misc]
    profile = world.service.effective_profile(world.operator, world.alice.id)
    assert "crm.age" not in profile.attributes, "an attribute the newer version dropped resolved"


# -- every mutation commits its domain change, audit record and event together, or none ------
def test_a_mutation_commits_its_domain_change_audit_and_event_together_or_none(
    failing_world: World,
) -> None:
    world = failing_world
    before = world.snapshot()
    world.service.create_tenant(world.operator, "initech", name="Initech")
    committed = world.snapshot()
    assert committed.counts["tenants"] == before.counts["tenants"] + 1
    assert [r.action for r in world.audit_since(before)] == ["tenant.create"]
    assert [e.event_type for e in world.events_since(before)] == ["tenant.created"]

    store: FailingStore = world.store  # type: ignore[assignment]
    store.arm("append_audit", StoreUnavailableError("lost"))
    with pytest.raises(StoreUnavailableError):
        world.service.create_tenant(world.operator, "umbrella", name="Umbrella")
    store.arm("", StoreUnavailableError("lost"))
    assert world.snapshot() == committed


# -- nested transactions roll back only their own part ---------------------------------------
def test_nested_transactions_roll_back_only_their_own_part(world: World) -> None:
    with world.service.transaction():
        world.service.create_tenant(world.operator, "initech", name="Initech")
        with pytest.raises(RuntimeError), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
            world.service.create_tenant(world.operator, "umbrella", name="Umbrella")
            raise RuntimeError

    assert world.service.get_tenant(world.operator, "initech").id == "initech"
    with pytest.raises(NotFoundError):
        world.service.get_tenant(world.operator, "umbrella")


# -- a denial is audited durably even when the surrounding work rolls back; no event ---------
def test_a_denial_is_audited_durably_through_a_rollback_and_emits_no_event(world: World) -> None:
    before = world.snapshot()

    with pytest.raises(AuthorizationDenied), world.service.transaction():  # noqa: PT012 - the error leaves the whole transaction block
        world.service.create_tenant(world.operator, "initech", name="Initech")
        world.service.create_tenant(world.acme_admin, "umbrella", name="Umbrella")

    after = world.snapshot()
    assert [(r.action, r.outcome) for r in world.audit_since(before)] == [
        ("tenant.create", AuditOutcome.DENIED)
    ]
    assert after.outbox == before.outbox
    assert after.domain() == before.domain()


# -- every tenant-scoped record carries its tenant -------------------------------------------
def test_every_tenant_scoped_record_carries_its_tenant(world: World) -> None:
    before = world.snapshot()
    world.service.add_to_tenant(world.globex_admin, "globex", world.dave.id)
    world.service.add_membership(world.globex_admin, "globex", world.dave.id, "ops")
    world.service.bind_application(
        world.globex_admin, "billing", tenant_id="globex", user_id=world.dave.id
    )
    world.service.write_profile_value(
        world.billing,
        attribute="billing.seats",
        layer="user-in-tenant",
        user_id=world.dave.id,
        tenant_id="globex",
        value=3,
    )
    world.service.write_profile_value(
        world.globex_admin,
        attribute="billing.seats",
        layer="tenant-default",
        tenant_id="globex",
        value=5,
    )

    tables = world.snapshot().tables
    accounts: dict[tuple[str, str], TenantAccount] = tables["tenant_accounts"]  # type: ignore[assignment]
    memberships: dict[tuple[str, str, str], Membership] = tables["memberships"]  # type: ignore[assignment]
    assert accounts[("globex", world.dave.id)].tenant_id == "globex"
    assert memberships[("globex", world.dave.id, "ops")].tenant_id == "globex"
    binding = world.service.store.transaction(AccessScope.for_tenant("globex"))
    with binding as tx:
        bound = tx.get_binding("billing", "globex", world.dave.id)
        assert bound is not None
        assert bound.tenant_id == "globex"
        values = tx.profile_values_for(world.dave.id, "globex")
    assert {
        (v.key.layer, v.key.tenant_id) for v in values if v.key.application_id == "billing"
    } == {(Layer.USER_IN_TENANT, "globex"), (Layer.TENANT_DEFAULT, "globex")}
    assert {r.tenant_id for r in world.audit_since(before)} == {"globex"}
    events = world.events_since(before)
    assert events
    assert {e.tenant_id for e in events} == {"globex"}


# -- no read or write crosses tenants unless the caller holds platform-operator --------------
def test_no_read_or_write_crosses_tenants_without_platform_operator(world: World) -> None:
    with pytest.raises(AuthorizationDenied):
        world.service.list_memberships(world.acme_admin, "globex")
    with pytest.raises(AuthorizationDenied):
        world.service.add_membership(world.acme_admin, "globex", world.carol.id, "x")
    acme_audit = world.service.read_audit(world.acme_admin, limit=1000).records
    assert acme_audit
    assert {r.tenant_id for r in acme_audit} == {"acme"}

    # The store enforces the scope again: an acme transaction neither sees nor writes globex.
    with world.store.transaction(AccessScope.for_tenant("acme")) as tx:
        assert tx.get_tenant_account("globex", world.carol.id) is None
        assert tx.list_memberships("globex") == []
        assert {t.id for t in tx.list_tenants()} == {"acme"}
        with pytest.raises(NotFoundError):
            tx.insert_membership(Membership("globex", world.carol.id, "x", world.clock.now()))

    assert world.service.list_tenant_accounts(world.operator, "globex")
    world.service.add_membership(world.operator, "globex", world.carol.id, "x")


# -- tenant admins act only inside their own tenant -------------------------------------------
def test_tenant_admins_act_only_inside_their_own_tenant(world: World) -> None:
    admin, carol = world.acme_admin, world.carol.id
    attempts = [
        lambda: world.service.get_tenant(admin, "globex"),
        lambda: world.service.create_user(admin, display_name="X", tenant_id="globex"),
        lambda: world.service.get_user(admin, carol),
        lambda: world.service.add_to_tenant(admin, "globex", world.dave.id),
        lambda: world.service.suspend_tenant_account(admin, "globex", carol),
        lambda: world.service.assign_tenant_roles(admin, "globex", carol, ["owner"]),
        lambda: world.service.bind_application(admin, "billing", tenant_id="globex", user_id=carol),
        lambda: world.service.effective_profile(admin, carol, tenant_id="globex"),
        lambda: world.service.write_profile_value(
            admin, attribute="crm.nickname", layer="tenant-default", tenant_id="globex", value="x"
        ),
        lambda: world.service.read_audit(admin, tenant_id="globex"),
        lambda: world.service.export_memberships(admin, "globex"),
    ]
    for attempt in attempts:
        with pytest.raises(AuthorizationDenied):
            attempt()

    world.service.add_to_tenant(admin, "acme", world.dave.id)
    assert world.service.get_user(admin, world.dave.id).id == world.dave.id


# -- profile writes check the catalog and support an expected version ------------------------
def test_profile_writes_check_that_the_attribute_exists(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.service.write_profile_value(
            world.operator,
            attribute="crm.shoe_size",
            layer="user",
            user_id=world.alice.id,
            value="44",
        )
    assert error.value.code == "validation.unknown_attribute"


def test_profile_writes_check_the_type_and_validation_rules(world: World) -> None:
    alice = world.as_user(world.alice)
    for attribute, value, code in [
        ("crm.age", "36", "validation.type"),
        ("crm.age", 151, "validation.range"),
        ("crm.language", "xx", "validation.enum"),
        ("crm.pin", "12ab", "validation.pattern"),
    ]:
        with pytest.raises(ValidationError) as error:
            world.service.write_profile_value(
                alice, attribute=attribute, layer="user", user_id=world.alice.id, value=value
            )
        assert error.value.code == code


def test_profile_writes_check_who_may_write(world: World) -> None:
    # billing.plan is written by applications and the operator, never by users.
    with pytest.raises(AuthorizationDenied) as denied:
        world.service.write_profile_value(
            world.as_user(world.alice),
            attribute="billing.plan",
            layer="user-in-tenant",
            user_id=world.alice.id,
            tenant_id="acme",
            value="enterprise",
        )
    assert denied.value.code == "denied.writer_not_allowed"


def test_profile_writes_check_the_layer(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.service.write_profile_value(
            world.operator, attribute="crm.age", layer="tenant-default", tenant_id="acme", value=30
        )
    assert error.value.code == "validation.layer"


def test_a_stale_expected_version_is_a_conflict(world: World) -> None:
    alice = world.as_user(world.alice)
    current = world.service.write_profile_value(
        alice,
        attribute="crm.age",
        layer="user",
        user_id=world.alice.id,
        value=30,
        expected_version=0,
    )

    with pytest.raises(ConflictError) as conflict:
        world.service.write_profile_value(
            alice,
            attribute="crm.age",
            layer="user",
            user_id=world.alice.id,
            value=31,
            expected_version=current.version - 1,
        )

    assert conflict.value.code == "profile.stale"
    updated = world.service.write_profile_value(
        alice,
        attribute="crm.age",
        layer="user",
        user_id=world.alice.id,
        value=31,
        expected_version=current.version,
    )
    assert updated.version == current.version + 1


# -- values of secret sensitivity never leave the store; diagnostics are counts only ---------
def test_secret_values_never_leave_the_store(world: World) -> None:
    alice = world.as_user(world.alice)
    before = world.snapshot()
    written = world.service.write_profile_value(
        alice, attribute="crm.token", layer="user", user_id=world.alice.id, value=SECRET_CANARY
    )

    profile = world.service.effective_profile(alice, world.alice.id, explain=True)
    diagnostics = world.service.diagnostics(world.operator)

    assert written.value == REDACTED
    assert profile.attributes["crm.token"].value == REDACTED
    seen = repr(
        (
            world.audit_since(before),
            world.events_since(before),
            profile,
            diagnostics,
            world.audit_sink.exported,
            written,
        )
    )
    assert SECRET_CANARY not in seen
    assert all(isinstance(count, int) for count in diagnostics.counts.values())
    assert world.service.verify_secret_attribute(
        world.crm,
        attribute="crm.token",
        user_id=world.alice.id,
        tenant_id="acme",
        candidate=SECRET_CANARY,
    )
    definition = world.service.get_catalog(world.crm, "crm").attribute("token")
    assert definition is not None
    assert definition.sensitivity is Sensitivity.SECRET
