"""Profile values at layers and the pure resolution of the effective profile."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from user_engine.domain.catalog import (
    AttributeDefinition,
    CatalogVersion,
    Layer,
    ProfileScalar,
    qualified_name,
)

__all__ = [
    "EffectiveProfile",
    "ProfileKey",
    "ProfileValue",
    "ResolvedAttribute",
    "ShadowedValue",
    "resolve_profile",
]


@dataclass(frozen=True, slots=True)
class ProfileKey:
    """Where a value lives: layer, application, attribute, and the layer's tenant and user.

    user-in-tenant: tenant and user; user: user only; tenant-default: tenant only;
    application-default: neither.
    """

    layer: Layer
    application_id: str
    attribute: str
    tenant_id: str | None
    user_id: str | None

    @property
    def qualified_name(self) -> str:
        """``"<application>.<attribute>"``."""
        return qualified_name(self.application_id, self.attribute)


@dataclass(frozen=True, slots=True)
class ProfileValue:
    """A value written at one layer. ``version`` starts at 1 and grows with every write."""

    key: ProfileKey
    value: ProfileScalar
    version: int
    catalog_version: int
    written_by: str
    written_at: datetime


@dataclass(frozen=True, slots=True)
class ShadowedValue:
    """A lower-precedence value hidden by the resolved one (for ``explain``)."""

    layer: Layer
    value: ProfileScalar
    version: int
    written_by: str
    written_at: datetime | None


@dataclass(frozen=True, slots=True)
class ResolvedAttribute:
    """An effective value with its provenance: the layer, version, writer and time it came from.

    For the catalog default, ``version`` is the catalog version and ``written_by`` the publisher.
    """

    name: str
    value: ProfileScalar
    layer: Layer
    version: int
    catalog_version: int
    written_by: str
    written_at: datetime | None
    shadowed: tuple[ShadowedValue, ...] = ()


@dataclass(frozen=True, slots=True)
class EffectiveProfile:
    """The merged profile of a user, keyed by qualified attribute name."""

    user_id: str
    tenant_id: str | None
    attributes: Mapping[str, ResolvedAttribute]

    def values(self) -> dict[str, ProfileScalar]:
        """Plain ``{name: value}`` view."""
        return {name: resolved.value for name, resolved in sorted(self.attributes.items())}


_PRECEDENCE = {layer: layer.precedence for layer in Layer}
_USER_LAYERS = frozenset({Layer.USER_IN_TENANT, Layer.USER})


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a catalog version resolves to on its own, derived once per version."""

    entries: tuple[tuple[str, AttributeDefinition, ResolvedAttribute | None], ...]
    """Per attribute, in order: qualified name, definition, catalog default (or None)."""
    names: Mapping[str, str]
    """Qualified name by attribute name."""
    defaults: Mapping[str, ResolvedAttribute]
    """The catalog defaults by qualified name, in order: the profile of no values."""


def _plan(catalog: CatalogVersion) -> _Plan:
    entries = []
    for definition in catalog.attributes:
        name = qualified_name(catalog.application_id, definition.name)
        default = None
        if definition.default is not None:
            default = ResolvedAttribute(
                name=name,
                value=definition.default,
                layer=Layer.CATALOG_DEFAULT,
                version=catalog.version,
                catalog_version=catalog.version,
                written_by=catalog.published_by,
                written_at=catalog.published_at,
            )
        entries.append((name, definition, default))
    names: dict[str, str] = {}
    for name, definition, _ in entries:
        names.setdefault(definition.name, name)  # as ``CatalogVersion.attribute``
    defaults = {name: default for name, _, default in entries if default is not None}
    return _Plan(tuple(entries), names, defaults)


def _precedence(value: ProfileValue) -> int:
    return _PRECEDENCE[value.key.layer]


def resolve_profile(
    *,
    user_id: str,
    tenant_id: str | None,
    catalogs: Iterable[CatalogVersion],
    values: Iterable[ProfileValue],
    explain: bool = False,
) -> EffectiveProfile:
    """Merge layers, highest precedence first, and attach provenance.

    Only attributes present in the given (current) catalogs resolve; values of attributes a
    newer catalog dropped are ignored. ``values`` may contain rows of any layer for this user
    and tenant; rows for other users or tenants are ignored, so callers may over-fetch.

    What a catalog alone resolves to (its defaults) is derived once per catalog version, and
    what the catalogs and the shared layers (application and tenant defaults) resolve to is
    kept for as long as the same catalog and value objects come again (``_Bases``); both are
    immutable, so neither can go stale. A resolution's own work then follows the user's own
    values, not the size of the catalogs or of the shared layers.
    """
    catalogs = tuple(catalogs)
    own: list[ProfileValue] = []
    shared: list[ProfileValue] = []
    for row in values:
        key = row.key
        layer = key.layer
        if layer in _USER_LAYERS:
            if key.user_id != user_id:
                continue
            if layer is Layer.USER_IN_TENANT and (tenant_id is None or key.tenant_id != tenant_id):
                continue
            own.append(row)
        elif layer is Layer.TENANT_DEFAULT and (tenant_id is None or key.tenant_id != tenant_id):
            continue
        else:
            shared.append(row)
    if explain:
        return EffectiveProfile(
            user_id, tenant_id, _merge(_in_force(catalogs), [*own, *shared], True)
        )
    base = _BASES.get(catalogs, shared)
    # The user's layers outrank every shared one: the top own value of an attribute wins.
    tops: dict[str, tuple[ProfileValue, CatalogVersion]] = {}
    for row in own:
        key = row.key
        found = base.current.get(key.application_id)
        if found is None:
            continue
        catalog, plan = found
        name = plan.names.get(key.attribute)
        if name is None:
            continue
        prior = tops.get(name)
        if prior is None or _PRECEDENCE[key.layer] < _PRECEDENCE[prior[0].key.layer]:
            tops[name] = (row, catalog)
    winners = {
        name: ResolvedAttribute(name, row.value, row.key.layer, row.version, catalog.version,
                                row.written_by, row.written_at)
        for name, (row, catalog) in tops.items()
    }  # fmt: skip
    if winners.keys() <= base.attributes.keys():
        resolved = dict(base.attributes)
        resolved.update(winners)  # in place: the order stays the catalogs'
    else:
        # An attribute with neither a default nor a shared value has no place in the base:
        # lay the profile out again in catalog order.
        resolved = {}
        for name in base.order:
            attribute = winners.get(name) or base.attributes.get(name)
            if attribute is not None:
                resolved[name] = attribute
    return EffectiveProfile(user_id, tenant_id, resolved)


@dataclass(frozen=True, slots=True)
class _Base:
    """What some catalogs and shared-layer values resolve to, with no user values."""

    attributes: Mapping[str, ResolvedAttribute]
    current: Mapping[str, tuple[CatalogVersion, _Plan]]
    """The catalog in force and its plan, by application id."""
    order: tuple[str, ...]
    """Every attribute of those catalogs, in the order a profile lists them."""
    kept: tuple[object, ...]
    """The catalog and value objects the entry was computed from, kept alive (see _Bases)."""


class _Bases:
    """Resolutions of catalogs and shared values, by the identity of those objects.

    The key is the ``id`` of every object given. An entry keeps those objects alive, so no
    other object can have one of their ids while it exists: an equal key means the very same
    (immutable) objects. Stores that hand out the same objects for unchanged rows (the
    PostgreSQL store's shared-layer copies, the memory store's rows) thus skip most of a
    resolution; others only miss. At most ``size`` entries: all are dropped when full.
    Threads share it without a lock: each dict operation is atomic, and two threads that
    miss on one key compute equal entries (the last one stays).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[tuple[int, ...], _Base] = {}

    def get(self, catalogs: tuple[CatalogVersion, ...], shared: list[ProfileValue]) -> _Base:
        key = (len(catalogs), *map(id, catalogs), *map(id, shared))
        found = self._entries.get(key)
        if found is None:
            current = _in_force(catalogs)
            found = _Base(
                _merge(current, shared, False),
                current,
                tuple(name for application_id in sorted(current)
                      for name, _, _ in current[application_id][1].entries),
                (*catalogs, *shared),
            )  # fmt: skip
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = found
        return found


_BASES = _Bases(1024)


def _in_force(catalogs: tuple[CatalogVersion, ...]) -> dict[str, tuple[CatalogVersion, _Plan]]:
    """The catalog of each application (the last one given wins) and its plan."""
    current = {c.application_id: c for c in catalogs}
    return {
        application_id: (c, c.derived("profile.plan", _plan))
        for application_id, c in current.items()
    }


def _merge(
    current: Mapping[str, tuple[CatalogVersion, _Plan]], rows: list[ProfileValue], explain: bool
) -> dict[str, ResolvedAttribute]:
    """The profile of the catalogs in force (``_in_force``) and these rows (already
    filtered to the user and tenant being resolved), in catalog order: applications by id,
    attributes as listed."""
    candidates: dict[str, list[ProfileValue]] = {}
    touched: set[str] = set()  # applications with a value to merge
    for row in rows:
        key = row.key
        found = current.get(key.application_id)
        name = None if found is None else found[1].names.get(key.attribute)
        if name is None:
            continue
        candidates.setdefault(name, []).append(row)
        touched.add(key.application_id)
    resolved: dict[str, ResolvedAttribute] = {}
    for application_id, (catalog, plan) in sorted(current.items()):
        if application_id not in touched:
            resolved.update(plan.defaults)
            continue
        for name, definition, default in plan.entries:
            candidates_of = candidates.get(name)
            if candidates_of is None:
                if default is not None:
                    resolved[name] = default
                continue
            candidates_of.sort(key=_precedence)
            top = candidates_of[0]
            shadowed: tuple[ShadowedValue, ...] = ()
            if explain:
                shadowed = tuple(
                    ShadowedValue(r.key.layer, r.value, r.version, r.written_by, r.written_at)
                    for r in candidates_of[1:]
                )
                if definition.default is not None:
                    shadowed += (
                        ShadowedValue(
                            Layer.CATALOG_DEFAULT,
                            definition.default,
                            catalog.version,
                            catalog.published_by,
                            catalog.published_at,
                        ),
                    )
            resolved[name] = ResolvedAttribute(
                name=name,
                value=top.value,
                layer=top.key.layer,
                version=top.version,
                catalog_version=catalog.version,
                written_by=top.written_by,
                written_at=top.written_at,
                shadowed=shadowed,
            )
    return resolved
