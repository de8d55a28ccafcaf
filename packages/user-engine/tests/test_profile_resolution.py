"""``resolve_profile``: layer precedence, provenance, explain, catalog defaults, dropped
attributes; pure unit tests plus hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.domain import (
    AttributeDefinition,
    AttributeType,
    CatalogVersion,
    Layer,
    ProfileKey,
    ProfileValue,
    resolve_profile,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WRITABLE = [Layer.USER_IN_TENANT, Layer.USER, Layer.TENANT_DEFAULT, Layer.APPLICATION_DEFAULT]


def catalog(
    *definitions: AttributeDefinition, version: int = 1, app: str = "crm"
) -> CatalogVersion:
    return CatalogVersion(app, version, definitions, T0, "application:crm")


def attribute(name: str = "nickname", default: object = None) -> AttributeDefinition:
    return AttributeDefinition(
        name, AttributeType.STRING, layers=frozenset(WRITABLE), default=default
    )  # type: ignore[arg-type]


def value(
    layer: Layer,
    text: str,
    *,
    user: str = "u1",
    tenant: str = "acme",
    name: str = "nickname",
    app: str = "crm",
    version: int = 1,
    minutes: int = 0,
) -> ProfileValue:
    key = ProfileKey(
        layer,
        app,
        name,
        tenant if layer in (Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT) else None,
        user if layer in (Layer.USER_IN_TENANT, Layer.USER) else None,
    )
    return ProfileValue(
        key, text, version, 1, f"writer-{layer.value}", T0 + timedelta(minutes=minutes)
    )


def test_layers_resolve_in_precedence_order() -> None:
    assert [layer.precedence for layer in Layer] == [0, 1, 2, 3, 4]
    values = [value(layer, layer.value) for layer in WRITABLE]

    for highest in range(len(WRITABLE) + 1):
        # Drop the layers above ``highest``; the lowest written layer is last, the list is
        # handed over lowest first so order of arrival cannot matter.
        profile = resolve_profile(
            user_id="u1",
            tenant_id="acme",
            catalogs=[catalog(attribute(default="catalog"))],
            values=list(reversed(values[highest:])),
        )
        expected = ([*WRITABLE, Layer.CATALOG_DEFAULT])[highest]
        assert profile.attributes["crm.nickname"].layer is expected


def test_the_resolved_value_carries_its_provenance() -> None:
    written = value(Layer.USER, "ali", version=3, minutes=5)

    resolved = resolve_profile(
        user_id="u1", tenant_id=None, catalogs=[catalog(attribute())], values=[written]
    ).attributes["crm.nickname"]

    assert (resolved.name, resolved.value, resolved.layer, resolved.version) == (
        "crm.nickname",
        "ali",
        Layer.USER,
        3,
    )
    assert resolved.catalog_version == 1
    assert (resolved.written_by, resolved.written_at) == ("writer-user", T0 + timedelta(minutes=5))
    assert resolved.shadowed == ()


def test_explain_lists_the_shadowed_values_of_lower_layers_in_order() -> None:
    values = [value(layer, layer.value) for layer in WRITABLE]

    resolved = resolve_profile(
        user_id="u1",
        tenant_id="acme",
        catalogs=[catalog(attribute(default="catalog"))],
        values=values,
        explain=True,
    ).attributes["crm.nickname"]

    assert resolved.layer is Layer.USER_IN_TENANT
    assert [(s.layer, s.value) for s in resolved.shadowed] == [
        (Layer.USER, "user"),
        (Layer.TENANT_DEFAULT, "tenant-default"),
        (Layer.APPLICATION_DEFAULT, "application-default"),
        (Layer.CATALOG_DEFAULT, "catalog"),
    ]


def test_the_catalog_default_resolves_when_no_layer_has_a_value() -> None:
    current = catalog(attribute(default="hello"), version=4)

    resolved = resolve_profile(
        user_id="u1", tenant_id=None, catalogs=[current], values=[]
    ).attributes["crm.nickname"]

    assert (resolved.value, resolved.layer) == ("hello", Layer.CATALOG_DEFAULT)
    assert (resolved.version, resolved.written_by, resolved.written_at) == (
        4,
        "application:crm",
        T0,
    )


def test_an_attribute_without_value_or_default_does_not_resolve() -> None:
    profile = resolve_profile(
        user_id="u1", tenant_id=None, catalogs=[catalog(attribute())], values=[]
    )

    assert profile.attributes == {}


def test_values_of_attributes_a_newer_catalog_dropped_are_ignored() -> None:
    current = catalog(attribute("language"), version=2)
    stale = [value(Layer.USER, "ali", name="nickname"), value(Layer.USER, "fr", name="language")]

    profile = resolve_profile(user_id="u1", tenant_id=None, catalogs=[current], values=stale)

    assert profile.values() == {"crm.language": "fr"}


def test_values_of_applications_without_a_catalog_are_ignored() -> None:
    profile = resolve_profile(
        user_id="u1",
        tenant_id=None,
        catalogs=[catalog(attribute())],
        values=[value(Layer.USER, "x", app="ghost")],
    )

    assert profile.attributes == {}


def test_rows_of_other_users_and_other_tenants_are_ignored() -> None:
    rows = [
        value(Layer.USER_IN_TENANT, "other user", user="u2"),
        value(Layer.USER, "other user", user="u2"),
        value(Layer.USER_IN_TENANT, "other tenant", tenant="globex"),
        value(Layer.TENANT_DEFAULT, "other tenant", tenant="globex"),
    ]

    profile = resolve_profile(
        user_id="u1", tenant_id="acme", catalogs=[catalog(attribute())], values=rows
    )

    assert profile.attributes == {}


def test_tenant_layers_are_ignored_when_resolving_without_a_tenant() -> None:
    rows = [
        value(Layer.USER_IN_TENANT, "in acme"),
        value(Layer.TENANT_DEFAULT, "acme default"),
        value(Layer.APPLICATION_DEFAULT, "app default"),
    ]

    profile = resolve_profile(
        user_id="u1", tenant_id=None, catalogs=[catalog(attribute())], values=rows
    )

    assert profile.attributes["crm.nickname"].layer is Layer.APPLICATION_DEFAULT


def test_each_application_resolves_its_own_attributes() -> None:
    catalogs = [catalog(attribute("nickname")), catalog(attribute("plan"), app="billing")]
    rows = [value(Layer.USER, "ali"), value(Layer.USER, "team", app="billing", name="plan")]

    profile = resolve_profile(user_id="u1", tenant_id=None, catalogs=catalogs, values=rows)

    assert profile.values() == {"billing.plan": "team", "crm.nickname": "ali"}


layers_present = st.sets(st.sampled_from(WRITABLE))


@given(present=layers_present, with_default=st.booleans(), order=st.randoms())
def test_resolution_always_picks_the_highest_precedence_present_layer(
    present: set[Layer], with_default: bool, order: object
) -> None:
    rows = [value(layer, layer.value) for layer in present]
    order.shuffle(rows)  # type: ignore[attr-defined]
    current = catalog(attribute(default="catalog" if with_default else None))

    profile = resolve_profile(
        user_id="u1", tenant_id="acme", catalogs=[current], values=rows, explain=True
    )

    candidates = sorted(present, key=lambda layer: layer.precedence)
    if with_default:
        candidates.append(Layer.CATALOG_DEFAULT)
    if not candidates:
        assert "crm.nickname" not in profile.attributes
        return
    resolved = profile.attributes["crm.nickname"]
    assert resolved.layer is candidates[0]
    assert [s.layer for s in resolved.shadowed] == candidates[1:]


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(WRITABLE),
            st.sampled_from(["u1", "u2"]),
            st.sampled_from(["acme", "globex"]),
            st.text(max_size=5),
        ),
        max_size=12,
    ),
    tenant=st.sampled_from(["acme", "globex", None]),
)
def test_resolution_never_uses_a_row_of_another_user_or_tenant(
    rows: list[tuple[Layer, str, str, str]], tenant: str | None
) -> None:
    values = [
        value(layer, text, user=user, tenant=row_tenant) for layer, user, row_tenant, text in rows
    ]

    profile = resolve_profile(
        user_id="u1", tenant_id=tenant, catalogs=[catalog(attribute())], values=values, explain=True
    )

    resolved = profile.attributes.get("crm.nickname")
    if resolved is None:
        return
    allowed = {
        (v.key.layer, v.value)
        for v in values
        if v.key.user_id in (None, "u1")
        and v.key.tenant_id in (None, tenant)
        and not (v.key.tenant_id is not None and tenant is None)
    }
    for layer, text in [(resolved.layer, resolved.value)] + [
        (s.layer, s.value) for s in resolved.shadowed
    ]:
        assert (layer, text) in allowed


def reference_resolution(
    user_id: str,
    tenant_id: str | None,
    catalogs: list[CatalogVersion],
    values: list[ProfileValue],
    explain: bool,
) -> dict[str, tuple[object, ...]]:
    """The resolution rules spelled out plainly, without any derived per-catalog data."""
    result: dict[str, tuple[object, ...]] = {}
    for current in sorted(catalogs, key=lambda c: c.application_id):
        for definition in current.attributes:
            found = [
                v
                for v in values
                if v.key.application_id == current.application_id
                and v.key.attribute == definition.name
                and (v.key.user_id is None or v.key.user_id == user_id)
                and (v.key.tenant_id is None or v.key.tenant_id == tenant_id)
            ]
            chain = [
                (v.key.layer, v.value, v.version, v.written_by, v.written_at)
                for v in sorted(found, key=lambda v: v.key.layer.precedence)
            ]
            if definition.default is not None:
                chain.append((Layer.CATALOG_DEFAULT, definition.default, current.version,
                              current.published_by, current.published_at))  # fmt: skip
            if chain:
                shadowed = tuple(chain[1:]) if explain else ()
                result[f"{current.application_id}.{definition.name}"] = (
                    *chain[0], current.version, shadowed,
                )  # fmt: skip
    return result


def _owners(layer: Layer, user: str, tenant: str) -> tuple[str, str]:
    """The user and tenant a value of ``layer`` is keyed by (unused ones blank)."""
    return (
        user if layer in (Layer.USER, Layer.USER_IN_TENANT) else "",
        tenant if layer in (Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT) else "",
    )


@given(
    definitions=st.dictionaries(
        st.tuples(st.sampled_from(["crm", "billing"]), st.sampled_from(["a", "b", "c"])),
        st.one_of(st.none(), st.text(max_size=3)),
        min_size=1,
    ),
    rows=st.lists(
        st.tuples(
            st.sampled_from(WRITABLE),
            st.sampled_from(["u1", "u2"]),
            st.sampled_from(["acme", "globex"]),
            st.sampled_from(["crm", "billing", "other"]),
            st.sampled_from(["a", "b", "c", "d"]),
        ),
        max_size=16,
        unique_by=lambda r: (r[0], r[3], r[4], *_owners(r[0], r[1], r[2])),
    ),
    resolutions=st.lists(
        st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(["acme", "globex", None])),
        min_size=1,
        max_size=6,
    ),
    explain=st.booleans(),
)
def test_resolution_matches_the_plain_rules_and_repeats_exactly(
    definitions: dict[tuple[str, str], str | None],
    rows: list[tuple[Layer, str, str, str, str]],
    resolutions: list[tuple[str, str | None]],
    explain: bool,
) -> None:
    apps = sorted({app for app, _ in definitions})
    catalogs = [
        catalog(*(attribute(n, d) for (a, n), d in sorted(definitions.items()) if a == app),
                app=app)
        for app in apps
    ]  # fmt: skip
    values = [
        value(layer, f"{layer.value}:{user}:{row_tenant}", user=user, tenant=row_tenant, app=app,
              name=name)
        for layer, user, row_tenant, app, name in rows
    ]  # fmt: skip
    fresh = [catalog(*c.attributes, app=c.application_id) for c in catalogs]
    # Several users and tenants on the same catalog and value objects (what one of them
    # derived and kept is reused by the next), each on the same objects twice, then on equal
    # fresh catalogs.
    for user, tenant in resolutions:
        expected = reference_resolution(user, tenant, catalogs, values, explain)
        for current in (catalogs, catalogs, fresh):
            profile = resolve_profile(
                user_id=user, tenant_id=tenant, catalogs=current, values=values, explain=explain
            )
            got = {
                name: (r.layer, r.value, r.version, r.written_by, r.written_at,
                       r.catalog_version,
                       tuple((s.layer, s.value, s.version, s.written_by, s.written_at)
                             for s in r.shadowed))
                for name, r in profile.attributes.items()
            }  # fmt: skip
            assert got == expected
            assert list(profile.attributes) == list(expected)
            assert (profile.user_id, profile.tenant_id) == (user, tenant)


def test_a_kept_resolution_of_the_shared_layers_is_never_changed_by_a_caller() -> None:
    catalogs = [catalog(attribute("nickname", "anon"), attribute("theme", "light"))]
    shared = [value(Layer.TENANT_DEFAULT, "dark", name="theme")]
    mine = [value(Layer.USER, "Ada", name="nickname"), *shared]

    first = resolve_profile(user_id="u1", tenant_id="acme", catalogs=catalogs, values=mine)
    assert first.values() == {"crm.nickname": "Ada", "crm.theme": "dark"}
    first.attributes.clear()  # type: ignore[attr-defined]  # it is a plain dict

    # Another user, the same shared objects: the kept part is intact.
    other = resolve_profile(user_id="u2", tenant_id="acme", catalogs=catalogs, values=shared)
    assert other.values() == {"crm.nickname": "anon", "crm.theme": "dark"}
    again = resolve_profile(user_id="u1", tenant_id="acme", catalogs=catalogs, values=mine)
    assert again.values() == {"crm.nickname": "Ada", "crm.theme": "dark"}


@pytest.mark.parametrize("reverse", [False, True])
def test_the_user_in_tenant_value_beats_the_user_value_in_either_order(reverse: bool) -> None:
    catalogs = [catalog(attribute("nickname", "anon"))]
    rows = [value(Layer.USER_IN_TENANT, "in tenant"), value(Layer.USER, "everywhere")]
    for _ in range(2):  # the second time on the kept resolution of the shared layers
        profile = resolve_profile(
            user_id="u1", tenant_id="acme", catalogs=catalogs, values=rows[:: -1 if reverse else 1]
        )
        assert profile.values() == {"crm.nickname": "in tenant"}
        assert profile.attributes["crm.nickname"].layer is Layer.USER_IN_TENANT


def test_a_user_value_of_an_attribute_without_default_keeps_its_place_in_catalog_order() -> None:
    catalogs = [catalog(attribute("alpha"), attribute("beta", "b"), attribute("gamma"))]
    shared = [value(Layer.APPLICATION_DEFAULT, "g", name="gamma")]
    for _ in range(2):
        profile = resolve_profile(
            user_id="u1", tenant_id=None, catalogs=catalogs,
            values=[value(Layer.USER, "a", name="alpha"), *shared],
        )  # fmt: skip
        assert list(profile.attributes) == ["crm.alpha", "crm.beta", "crm.gamma"]
