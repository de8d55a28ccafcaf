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
_TENANT_LAYERS = frozenset({Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT})


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

    What a catalog alone resolves to (its defaults) is derived once per catalog version and
    shared by every profile (``ResolvedAttribute`` is immutable): a resolution's own work
    follows the values given, not the size of the catalogs.
    """
    current = {c.application_id: c for c in catalogs}
    plans = {
        application_id: c.derived("profile.plan", _plan) for application_id, c in current.items()
    }
    candidates: dict[str, list[ProfileValue]] = {}
    touched: set[str] = set()  # applications with a value to merge
    for row in values:
        key = row.key
        plan = plans.get(key.application_id)
        name = None if plan is None else plan.names.get(key.attribute)
        if name is None:
            continue
        if key.layer in _USER_LAYERS and key.user_id != user_id:
            continue
        if key.layer in _TENANT_LAYERS and (tenant_id is None or key.tenant_id != tenant_id):
            continue
        candidates.setdefault(name, []).append(row)
        touched.add(key.application_id)
    resolved: dict[str, ResolvedAttribute] = {}
    for application_id, catalog in sorted(current.items()):
        plan = plans[application_id]
        if application_id not in touched:
            resolved.update(plan.defaults)
            continue
        for name, definition, default in plan.entries:
            rows = candidates.get(name)
            if rows is None:
                if default is not None:
                    resolved[name] = default
                continue
            rows.sort(key=_precedence)
            top = rows[0]
            shadowed: tuple[ShadowedValue, ...] = ()
            if explain:
                shadowed = tuple(
                    ShadowedValue(r.key.layer, r.value, r.version, r.written_by, r.written_at)
                    for r in rows[1:]
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
    return EffectiveProfile(user_id=user_id, tenant_id=tenant_id, attributes=resolved)
