"""Profile writes through the service: catalog rules, layers, writers, expected versions,
the effective profile and projections built from them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from user_engine.domain import Layer
from user_engine.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from user_engine.service import REDACTED

if TYPE_CHECKING:
    from conftest import World


@pytest.mark.parametrize(
    ("layer", "user", "tenant"),
    [
        ("user-in-tenant", True, False),
        ("user-in-tenant", False, True),
        ("user", True, True),
        ("user", False, False),
        ("tenant-default", True, True),
        ("application-default", False, True),
    ],
)
def test_each_layer_needs_exactly_its_user_and_tenant(
    world: World, layer: str, user: bool, tenant: bool
) -> None:
    with pytest.raises(ValidationError) as error:
        world.service.write_profile_value(
            world.operator,
            attribute="crm.nickname",
            layer=layer,
            value="x",
            user_id=world.alice.id if user else None,
            tenant_id="acme" if tenant else None,
        )

    assert error.value.code == "validation.layer"


def test_the_catalog_default_cannot_be_written(world: World) -> None:
    with pytest.raises(ValidationError):
        world.service.write_profile_value(
            world.operator, attribute="crm.language", layer="catalog-default", value="fr"
        )


def test_a_write_returns_the_stored_value_with_its_version_and_provenance(world: World) -> None:
    alice = world.as_user(world.alice)

    first = world.service.write_profile_value(
        alice, attribute="crm.age", layer=Layer.USER, user_id=world.alice.id, value=36
    )
    second = world.service.write_profile_value(
        alice, attribute="crm.age", layer="user", user_id=world.alice.id, value=37
    )

    assert (first.version, second.version) == (1, 2)
    assert second.value == 37
    assert second.written_by == alice.label
    assert second.catalog_version == 1
    assert second.written_at == world.clock.now()


def test_expected_version_zero_means_the_value_must_not_exist_yet(world: World) -> None:
    alice = world.as_user(world.alice)
    world.service.write_profile_value(
        alice,
        attribute="crm.age",
        layer="user",
        user_id=world.alice.id,
        value=36,
        expected_version=0,
    )

    with pytest.raises(ConflictError) as conflict:
        world.service.write_profile_value(
            alice,
            attribute="crm.age",
            layer="user",
            user_id=world.alice.id,
            value=37,
            expected_version=0,
        )

    assert conflict.value.code == "profile.stale"


def test_clearing_lets_the_lower_layer_show_through_and_checks_the_expected_version(
    world: World,
) -> None:
    alice = world.as_user(world.alice)
    world.service.write_profile_value(
        alice, attribute="crm.nickname", layer="user", user_id=world.alice.id, value="countess"
    )

    with pytest.raises(ConflictError):
        world.service.clear_profile_value(
            alice,
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=world.alice.id,
            tenant_id="acme",
            expected_version=5,
        )
    world.service.clear_profile_value(
        alice,
        attribute="crm.nickname",
        layer="user-in-tenant",
        user_id=world.alice.id,
        tenant_id="acme",
        expected_version=1,
    )

    resolved = world.service.effective_profile(alice, world.alice.id, tenant_id="acme")
    assert resolved.attributes["crm.nickname"].value == "countess"
    with pytest.raises(NotFoundError):
        world.service.clear_profile_value(
            alice,
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=world.alice.id,
            tenant_id="acme",
        )


def test_tenant_admins_write_only_the_tenant_layers(world: World) -> None:
    admin = world.acme_admin
    world.service.write_profile_value(
        admin, attribute="crm.nickname", layer="tenant-default", tenant_id="acme", value="colleague"
    )
    world.service.write_profile_value(
        admin,
        attribute="crm.nickname",
        layer="user-in-tenant",
        tenant_id="acme",
        user_id=world.bob.id,
        value="bobby",
    )

    with pytest.raises(AuthorizationDenied):
        world.service.write_profile_value(
            admin, attribute="crm.nickname", layer="application-default", value="x"
        )


def test_an_application_writes_only_its_own_attributes_for_users_bound_to_it(
    world: World,
) -> None:
    world.service.write_profile_value(
        world.crm, attribute="crm.nickname", layer="user", user_id=world.alice.id, value="from-crm"
    )
    world.service.write_profile_value(
        world.crm, attribute="crm.nickname", layer="application-default", value="friend"
    )

    with pytest.raises(AuthorizationDenied) as other_application:
        world.service.write_profile_value(
            world.crm, attribute="billing.plan", layer="application-default", value="team"
        )
    with pytest.raises(AuthorizationDenied) as not_bound:
        world.service.write_profile_value(
            world.crm, attribute="crm.nickname", layer="user", user_id=world.bob.id, value="x"
        )
    assert other_application.value.code == "denied.other_application"
    assert not_bound.value.code == "denied.not_bound"


def test_a_write_to_a_suspended_tenant_is_refused(world: World) -> None:
    world.service.suspend_tenant(world.operator, "acme")

    with pytest.raises(ConflictError) as conflict:
        world.service.write_profile_value(
            world.operator,
            attribute="crm.nickname",
            layer="tenant-default",
            tenant_id="acme",
            value="x",
        )

    assert conflict.value.code == "tenant.suspended"


def test_values_written_under_an_older_catalog_version_keep_resolving(world: World) -> None:
    world.service.publish_catalog(
        world.crm,
        "crm",
        [
            {"name": "nickname", "type": "string", "writers": ["self"], "layers": ["user"]},
        ],
    )

    profile = world.service.effective_profile(world.operator, world.alice.id, tenant_id="acme")

    resolved = profile.attributes["crm.nickname"]
    assert (resolved.value, resolved.catalog_version) == ("ali", 2)
    with pytest.raises(ValidationError):
        world.service.write_profile_value(
            world.as_user(world.alice),
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=world.alice.id,
            tenant_id="acme",
            value="x",
        )


def test_a_projection_is_deny_by_default_and_follows_the_binding_grants(world: World) -> None:
    billing, alice_id = world.billing, world.alice.id
    world.service.write_profile_value(
        world.as_user(world.alice), attribute="crm.age", layer="user", user_id=alice_id, value=36
    )
    world.service.write_profile_value(
        world.as_user(world.alice),
        attribute="crm.token",
        layer="user",
        user_id=alice_id,
        value="t0k3n",
    )
    world.service.bind_application(
        world.acme_admin,
        "billing",
        tenant_id="acme",
        user_id=alice_id,
        granted_attributes=["crm.nickname", "crm.age", "crm.token", "crm.language"],
    )
    world.service.write_profile_value(
        billing,
        attribute="billing.seats",
        layer="user-in-tenant",
        user_id=alice_id,
        tenant_id="acme",
        value=5,
    )

    crm_view = world.service.project_profile(world.crm, "crm", tenant_id="acme", user_id=alice_id)
    billing_view = world.service.project_profile(
        billing, "billing", tenant_id="acme", user_id=alice_id
    )

    # crm sees its own attributes except secrets; billing.plan was granted but crm's
    # binding grant is only honoured for public/personal attributes (plan is internal).
    assert set(crm_view.values()) == {"crm.nickname", "crm.language", "crm.age"}
    assert set(billing_view.values()) == {
        "billing.plan",
        "billing.seats",
        "crm.nickname",
        "crm.age",
        "crm.language",
    }
    assert REDACTED not in billing_view.values().values()


def test_binding_a_grant_for_an_attribute_no_catalog_has_is_refused(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.service.bind_application(
            world.acme_admin,
            "billing",
            tenant_id="acme",
            user_id=world.alice.id,
            granted_attributes=["crm.shoe_size"],
        )

    assert error.value.code == "validation.unknown_attribute"


def test_verifying_a_secret_needs_a_secret_attribute(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.service.verify_secret_attribute(
            world.crm,
            attribute="crm.nickname",
            user_id=world.alice.id,
            tenant_id="acme",
            candidate="ali",
        )

    assert error.value.code == "validation.not_secret"
    assert world.service.verify_secret_attribute(
        world.operator,
        attribute="crm.pin",
        user_id=world.alice.id,
        tenant_id="acme",
        candidate="1234",
    )
    assert not world.service.verify_secret_attribute(
        world.operator,
        attribute="crm.pin",
        user_id=world.alice.id,
        tenant_id="acme",
        candidate="4321",
    )


class _Catalogs(list):  # type: ignore[type-arg]
    """A catalog list that notes when it is first read."""

    def __init__(self, items: object, events: list[str]) -> None:
        super().__init__(items)  # type: ignore[call-overload]
        self.events = events

    def __iter__(self):  # type: ignore[no-untyped-def]
        self.events.append("catalogs read")
        return super().__iter__()


class _Noting:
    """A store transaction that notes the profile reads it is asked for."""

    def __init__(self, inner: object, events: list[str]) -> None:
        self.inner, self.events = inner, events

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def list_current_catalogs(self) -> object:
        self.events.append("catalogs asked")
        return _Catalogs(self.inner.list_current_catalogs(), self.events)  # type: ignore[attr-defined]

    def profile_values_for(self, user_id: str, tenant_id: str | None) -> object:
        self.events.append("values asked")
        return self.inner.profile_values_for(user_id, tenant_id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("read", ["effective_profile", "project_profile"])
def test_a_profile_read_asks_for_the_catalogs_first_and_reads_them_after_the_values(
    world: World, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """A store may then send the catalogs' read with the values' (one round trip)."""
    events: list[str] = []
    original = world.store.transaction

    @contextlib.contextmanager
    def transaction(scope: object) -> Iterator[object]:
        with original(scope) as tx:  # type: ignore[arg-type]
            yield _Noting(tx, events)

    monkeypatch.setattr(world.store, "transaction", transaction)
    if read == "project_profile":
        world.service.project_profile(world.crm, "crm", tenant_id="acme", user_id=world.alice.id)
    else:
        world.service.effective_profile(world.operator, world.alice.id, tenant_id="acme")
    resolution = [e for e in events if e.startswith(("catalogs", "values"))]
    assert resolution[:3] == ["catalogs asked", "values asked", "catalogs read"], events
