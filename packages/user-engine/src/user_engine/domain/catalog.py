"""Catalogs: the attributes an application owns, versioned and immutable once published."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from user_engine.domain.limits import (
    MAX_ATTRIBUTES_PER_CATALOG,
    MAX_ENUM_CHOICES,
    MAX_PATTERN_LENGTH,
    MAX_STRING_VALUE_LENGTH,
    check_attribute_name,
)
from user_engine.errors import ValidationError

__all__ = [
    "AttributeDefinition",
    "AttributeType",
    "CatalogVersion",
    "Layer",
    "ProfileScalar",
    "Sensitivity",
    "WriterRole",
    "qualified_name",
    "split_qualified_name",
]

ProfileScalar = str | int | float | bool
"""A profile value: one JSON scalar."""


class AttributeType(enum.StrEnum):
    """The type of an attribute's values."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class Sensitivity(enum.StrEnum):
    """How far a value may travel. ``secret`` values never leave the store."""

    PUBLIC = "public"
    INTERNAL = "internal"
    PERSONAL = "personal"
    SECRET = "secret"  # noqa: S105 - a sensitivity level, not a password


class WriterRole(enum.StrEnum):
    """Who may write an attribute."""

    SELF = "self"
    APPLICATION = "application"
    TENANT_ADMIN = "tenant-admin"
    PLATFORM_OPERATOR = "platform-operator"


class Layer(enum.StrEnum):
    """Profile layers, highest precedence first (catalog default is implicit and lowest)."""

    USER_IN_TENANT = "user-in-tenant"
    USER = "user"
    TENANT_DEFAULT = "tenant-default"
    APPLICATION_DEFAULT = "application-default"
    CATALOG_DEFAULT = "catalog-default"

    @property
    def precedence(self) -> int:
        """0 for the highest-precedence layer."""
        return _PRECEDENCE[self]


_PRECEDENCE = {layer: number for number, layer in enumerate(Layer)}
WRITABLE_LAYERS = frozenset(Layer) - {Layer.CATALOG_DEFAULT}


def qualified_name(application_id: str, attribute: str) -> str:
    """``"<application>.<attribute>"``: the name an attribute has in a profile."""
    return f"{application_id}.{attribute}"


def split_qualified_name(name: object) -> tuple[str, str]:
    """Split ``"<application>.<attribute>"``; raise a typed error when malformed."""
    if not isinstance(name, str) or name.count(".") != 1:
        raise ValidationError(
            "attribute must be a qualified name '<application>.<attribute>'",
            code="validation.malformed_name",
            details={"field": "attribute"},
        )
    application_id, attribute = name.split(".")
    return application_id, check_attribute_name(attribute)


def _type_error(name: str, expected: str) -> ValidationError:
    return ValidationError(
        f"value of {name} must be {expected}",
        code="validation.type",
        details={"attribute": name},
    )


@dataclass(frozen=True, slots=True)
class AttributeDefinition:
    """One attribute of a catalog: type, validation, sensitivity, writers, layers, default.

    Validation fields are optional and checked in this order: type, enum, length, pattern,
    range. ``required`` means the attribute always resolves; publishing therefore needs a
    catalog ``default`` for it, and nothing may clear it down to no value.
    """

    name: str
    type: AttributeType
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    writers: frozenset[WriterRole] = frozenset({WriterRole.SELF})
    layers: frozenset[Layer] = frozenset({Layer.USER})
    required: bool = False
    enum: tuple[ProfileScalar, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    default: ProfileScalar | None = None
    description: str = ""

    def check_definition(self) -> None:
        """Raise ``ValidationError`` unless this definition is coherent."""
        check_attribute_name(self.name, "attribute name")
        where = {"attribute": self.name}
        if not self.writers:
            raise ValidationError(
                f"attribute {self.name} names no writer", code="validation.catalog", details=where
            )
        if not self.layers or Layer.CATALOG_DEFAULT in self.layers:
            raise ValidationError(
                f"attribute {self.name} must allow at least one writable layer "
                "(catalog-default is set through 'default')",
                code="validation.catalog",
                details=where,
            )
        if self.enum is not None:
            if not 0 < len(self.enum) <= MAX_ENUM_CHOICES:
                raise ValidationError(
                    f"enum of {self.name} must have 1-{MAX_ENUM_CHOICES} choices",
                    code="validation.catalog",
                    details=where,
                )
            for choice in self.enum:
                self._check_type(choice)
        if self.pattern is not None:
            if self.type is not AttributeType.STRING or len(self.pattern) > MAX_PATTERN_LENGTH:
                raise ValidationError(
                    f"pattern of {self.name} needs a string attribute and at most "
                    f"{MAX_PATTERN_LENGTH} characters",
                    code="validation.catalog",
                    details=where,
                )
            try:
                re.compile(self.pattern)
            except re.error as error:
                raise ValidationError(
                    f"pattern of {self.name} is not a valid regular expression",
                    code="validation.catalog",
                    details=where,
                ) from error
        for bound in (self.min_length, self.max_length):
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, int) or bound < 0
            ):
                raise ValidationError(
                    f"length bounds of {self.name} must be non-negative integers",
                    code="validation.catalog",
                    details=where,
                )
        for number in (self.minimum, self.maximum):
            if number is not None and (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(number)
            ):
                raise ValidationError(
                    f"range bounds of {self.name} must be finite numbers",
                    code="validation.catalog",
                    details=where,
                )
        if self.sensitivity is Sensitivity.SECRET and self.default is not None:
            # A catalog is readable by every principal: a default there would publish the secret.
            raise ValidationError(
                f"secret attribute {self.name} cannot have a catalog default",
                code="validation.catalog",
                details=where,
            )
        if self.required and self.default is None:
            raise ValidationError(
                f"required attribute {self.name} needs a catalog default",
                code="validation.catalog",
                details=where,
            )
        if self.default is not None:
            self.validate(self.default, qualified=self.name)

    def _check_type(self, value: object, qualified: str | None = None) -> None:
        name = qualified or self.name
        match self.type:
            case AttributeType.STRING:
                if not isinstance(value, str):
                    raise _type_error(name, "a string")
            case AttributeType.INTEGER:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise _type_error(name, "an integer")
                if abs(value) > 2**53:
                    raise _type_error(name, "an integer within +/- 2**53")
            case AttributeType.NUMBER:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise _type_error(name, "a number")
                if not math.isfinite(value) or abs(value) > 2**53:
                    raise _type_error(name, "a finite number within +/- 2**53")
            case AttributeType.BOOLEAN:
                if not isinstance(value, bool):
                    raise _type_error(name, "a boolean")

    def validate(self, value: object, *, qualified: str | None = None) -> ProfileScalar:
        """Return ``value`` if it satisfies this definition, else raise ``ValidationError``.

        The message names the attribute and the rule, never the value (it may be secret).
        """
        name = qualified or self.name
        where = {"attribute": name}
        self._check_type(value, name)
        assert isinstance(value, str | int | float | bool)
        if self.enum is not None and value not in self.enum:
            raise ValidationError(
                f"value of {name} is not one of the allowed choices",
                code="validation.enum",
                details=where,
            )
        if isinstance(value, str):
            if len(value) > MAX_STRING_VALUE_LENGTH:
                raise ValidationError(
                    f"value of {name} is longer than {MAX_STRING_VALUE_LENGTH} characters",
                    code="validation.too_long",
                    details=where,
                )
            if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                raise ValidationError(
                    f"value of {name} contains a NUL or an unpaired surrogate",
                    code="validation.unprintable",
                    details=where,
                )
            if self.min_length is not None and len(value) < self.min_length:
                raise ValidationError(
                    f"value of {name} is shorter than {self.min_length} characters",
                    code="validation.too_short",
                    details=where,
                )
            if self.max_length is not None and len(value) > self.max_length:
                raise ValidationError(
                    f"value of {name} is longer than {self.max_length} characters",
                    code="validation.too_long",
                    details=where,
                )
            if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
                raise ValidationError(
                    f"value of {name} does not match the attribute's pattern",
                    code="validation.pattern",
                    details=where,
                )
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise ValidationError(
                    f"value of {name} is below the minimum {self.minimum}",
                    code="validation.range",
                    details=where,
                )
            if self.maximum is not None and value > self.maximum:
                raise ValidationError(
                    f"value of {name} is above the maximum {self.maximum}",
                    code="validation.range",
                    details=where,
                )
        return value

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, stable key order (used by stores to persist catalogs)."""
        return {
            "name": self.name,
            "type": self.type.value,
            "sensitivity": self.sensitivity.value,
            "writers": sorted(w.value for w in self.writers),
            "layers": sorted(layer.value for layer in self.layers),
            "required": self.required,
            "enum": list(self.enum) if self.enum is not None else None,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "pattern": self.pattern,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AttributeDefinition:
        """Build a definition from :meth:`to_dict` output or caller input; typed errors."""
        allowed = {
            "name",
            "type",
            "sensitivity",
            "writers",
            "layers",
            "required",
            "enum",
            "min_length",
            "max_length",
            "pattern",
            "minimum",
            "maximum",
            "default",
            "description",
        }
        if not isinstance(data, Mapping):
            raise ValidationError(
                "each attribute must be a mapping",
                code="validation.type",
                details={"field": "attributes"},
            )
        unknown = set(data) - allowed
        if unknown:
            raise ValidationError(
                "unknown attribute definition field(s): " + ", ".join(sorted(map(str, unknown))),
                code="validation.unknown_field",
                details={"field": "attributes"},
            )
        try:
            enum_value = data.get("enum")
            definition = cls(
                name=check_attribute_name(data.get("name"), "attribute name"),
                type=AttributeType(str(data.get("type"))),
                sensitivity=Sensitivity(str(data.get("sensitivity", "internal"))),
                writers=frozenset(
                    WriterRole(str(w)) for w in _as_list(data.get("writers", ["self"]))
                ),
                layers=frozenset(Layer(str(v)) for v in _as_list(data.get("layers", ["user"]))),
                required=_as_bool(data.get("required", False)),
                enum=tuple(_as_list(enum_value)) if enum_value is not None else None,  # type: ignore[arg-type]
                min_length=data.get("min_length"),  # type: ignore[arg-type]
                max_length=data.get("max_length"),  # type: ignore[arg-type]
                pattern=data.get("pattern"),  # type: ignore[arg-type]
                minimum=data.get("minimum"),  # type: ignore[arg-type]
                maximum=data.get("maximum"),  # type: ignore[arg-type]
                default=data.get("default"),  # type: ignore[arg-type]
                description=str(data.get("description", ""))[:500],
            )
        except (ValueError, TypeError) as error:
            raise ValidationError(
                "attribute definition has an invalid type, sensitivity, writer or layer",
                code="validation.catalog",
                details={"field": "attributes"},
            ) from error
        if definition.pattern is not None and not isinstance(definition.pattern, str):
            raise ValidationError(
                "pattern must be a string",
                code="validation.catalog",
                details={"attribute": definition.name},
            )
        definition.check_definition()
        return definition


def _as_list(value: object) -> list[object]:
    if isinstance(value, list | tuple | frozenset | set):
        return list(value)
    raise TypeError("expected a list")


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError("expected a boolean")


T = TypeVar("T")


def _index(catalog: CatalogVersion) -> dict[str, AttributeDefinition]:
    """Definitions by name; the first of a (never valid) repeated name wins."""
    index: dict[str, AttributeDefinition] = {}
    for definition in catalog.attributes:
        index.setdefault(definition.name, definition)
    return index


@dataclass(frozen=True, slots=True)
class CatalogVersion:
    """One published version of an application's catalog. Immutable once published."""

    application_id: str
    version: int
    attributes: tuple[AttributeDefinition, ...]
    published_at: datetime
    published_by: str
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: str, build: Callable[[CatalogVersion], T]) -> T:
        """``build(self)``, computed on first use and kept with this version: a published
        version never changes, so what is derived from it never goes stale (the attribute
        index here, the resolution's defaults in ``profile``). ``key`` names what is kept."""
        found = self._derived.get(key)
        if found is None:
            found = self._derived[key] = build(self)
        return cast(T, found)

    def attribute(self, name: str) -> AttributeDefinition | None:
        """The definition named ``name`` (unqualified), or None."""
        return self.derived("catalog.index", _index).get(name)

    def check(self) -> None:
        """Raise ``ValidationError`` unless every attribute is coherent and names are unique."""
        if len(self.attributes) > MAX_ATTRIBUTES_PER_CATALOG:
            raise ValidationError(
                f"a catalog holds at most {MAX_ATTRIBUTES_PER_CATALOG} attributes",
                code="validation.catalog",
                details={"application": self.application_id},
            )
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ValidationError(
                "attribute names in a catalog must be unique",
                code="validation.catalog",
                details={"application": self.application_id},
            )
        for definition in self.attributes:
            definition.check_definition()
