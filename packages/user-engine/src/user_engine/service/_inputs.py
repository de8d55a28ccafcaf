"""Input checks shared by the service operations, and value redaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from user_engine.domain import (
    AttributeDefinition,
    Layer,
    Principal,
    ProfileValue,
    ResolvedAttribute,
    Sensitivity,
)
from user_engine.domain.limits import (
    MAX_PAGE_SIZE,
    MAX_ROLES,
    check_name,
)
from user_engine.errors import (
    ValidationError,
)
from user_engine.service._views import REDACTED


def check_principal(principal: object) -> Principal:
    if not isinstance(principal, Principal):
        raise ValidationError(
            "the caller must be a user_engine.Principal", code="validation.principal"
        )
    return principal.check()


def check_roles(roles: object) -> frozenset[str]:
    if isinstance(roles, str) or not isinstance(roles, Iterable):
        raise ValidationError(
            "roles must be a list of role names",
            code="validation.type",
            details={"field": "roles"},
        )
    checked = frozenset(check_name(role, "role") for role in roles)
    if len(checked) > MAX_ROLES:
        raise ValidationError(
            f"at most {MAX_ROLES} roles", code="validation.too_many", details={"field": "roles"}
        )
    return checked


def check_expected_version(expected: object) -> int | None:
    if expected is None:
        return None
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValidationError(
            "expected_version must be a non-negative integer or None",
            code="validation.type",
            details={"field": "expected_version"},
        )
    return expected


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_PAGE_SIZE}",
            code="validation.range",
            details={"field": "limit"},
        )
    return limit


def check_sequence(after: object, field_name: str) -> int:
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationError(
            f"{field_name} must be a non-negative integer",
            code="validation.type",
            details={"field": field_name},
        )
    return after


def check_time(value: object, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(
            f"{field_name} must be a timezone-aware datetime",
            code="validation.type",
            details={"field": field_name},
        )
    return value


def check_layer(layer: object) -> Layer:
    try:
        checked = Layer(str(layer)) if isinstance(layer, str) else Layer("")
    except ValueError as error:
        raise ValidationError(
            "layer must be one of: "
            + ", ".join(v.value for v in Layer if v.value != "catalog-default"),
            code="validation.layer",
            details={"field": "layer"},
        ) from error
    if checked is Layer.CATALOG_DEFAULT:
        raise ValidationError(
            "the catalog default is set by publishing a catalog, not written",
            code="validation.layer",
            details={"field": "layer"},
        )
    return checked


def redact_value(value: ProfileValue, definition: AttributeDefinition) -> ProfileValue:
    if definition.sensitivity is Sensitivity.SECRET:
        return replace(value, value=REDACTED)
    return value


def redact_resolved(resolved: ResolvedAttribute) -> ResolvedAttribute:
    return replace(
        resolved,
        value=REDACTED,
        shadowed=tuple(replace(s, value=REDACTED) for s in resolved.shadowed),
    )
