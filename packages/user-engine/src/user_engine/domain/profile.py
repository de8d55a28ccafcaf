"""Profile values at layers and the pure resolution of the effective profile."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from user_engine.domain.catalog import CatalogVersion, Layer, ProfileScalar, qualified_name

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
    """
    current = {c.application_id: c for c in catalogs}
    candidates: dict[str, list[ShadowedValue]] = {}
    for row in values:
        key = row.key
        if key.application_id not in current:
            continue
        if current[key.application_id].attribute(key.attribute) is None:
            continue
        if key.layer in (Layer.USER_IN_TENANT, Layer.USER) and key.user_id != user_id:
            continue
        if key.layer in (Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT) and (
            tenant_id is None or key.tenant_id != tenant_id
        ):
            continue
        candidates.setdefault(key.qualified_name, []).append(
            ShadowedValue(key.layer, row.value, row.version, row.written_by, row.written_at)
        )
    resolved: dict[str, ResolvedAttribute] = {}
    for application_id, catalog in sorted(current.items()):
        for definition in catalog.attributes:
            name = qualified_name(application_id, definition.name)
            found = sorted(candidates.get(name, []), key=lambda s: s.layer.precedence)
            if definition.default is not None:
                found.append(
                    ShadowedValue(
                        Layer.CATALOG_DEFAULT,
                        definition.default,
                        catalog.version,
                        catalog.published_by,
                        catalog.published_at,
                    )
                )
            if not found:
                continue
            top = found[0]
            resolved[name] = ResolvedAttribute(
                name=name,
                value=top.value,
                layer=top.layer,
                version=top.version,
                catalog_version=catalog.version,
                written_by=top.written_by,
                written_at=top.written_at,
                shadowed=tuple(found[1:]) if explain else (),
            )
    return EffectiveProfile(user_id=user_id, tenant_id=tenant_id, attributes=resolved)
