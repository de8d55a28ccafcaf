"""Catalog definitions and value validation: one test per rule, plus hypothesis properties."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.domain import (
    AttributeDefinition,
    AttributeType,
    CatalogVersion,
    Layer,
    Sensitivity,
    WriterRole,
    split_qualified_name,
)
from user_engine.domain.limits import (
    MAX_ATTRIBUTES_PER_CATALOG,
    MAX_ENUM_CHOICES,
    MAX_PATTERN_LENGTH,
    MAX_STRING_VALUE_LENGTH,
)
from user_engine.errors import ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def definition(**fields: Any) -> AttributeDefinition:
    """A definition built from caller input, as ``publish_catalog`` receives it."""
    return AttributeDefinition.from_dict({"name": "bio", "type": "string", **fields})


def refused(code: str, **fields: Any) -> None:
    with pytest.raises(ValidationError) as error:
        definition(**fields)
    assert error.value.code == code


# -- definitions ---------------------------------------------------------------------------
def test_a_minimal_definition_gets_the_documented_defaults() -> None:
    bio = definition()

    assert bio.sensitivity is Sensitivity.INTERNAL
    assert bio.writers == {WriterRole.SELF}
    assert bio.layers == {Layer.USER}
    assert (bio.required, bio.enum, bio.default) == (False, None, None)


def test_to_dict_and_from_dict_round_trip() -> None:
    full = definition(
        sensitivity="personal",
        writers=["self", "application"],
        layers=["user", "user-in-tenant"],
        enum=["a", "bb"],
        min_length=1,
        max_length=2,
        pattern="[ab]+",
        default="a",
        required=True,
        description="short",
    )

    assert AttributeDefinition.from_dict(full.to_dict()) == full


def test_an_unknown_definition_field_is_refused() -> None:
    refused("validation.unknown_field", colour="red")


@pytest.mark.parametrize("name", ["Bio", "1bio", "bio-x", "", "b" * 64, "bïo", "bio\x00"])
def test_an_attribute_name_must_be_lowercase_snake_case(name: str) -> None:
    refused("validation.malformed_name", name=name)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "text"},
        {"sensitivity": "classified"},
        {"writers": ["anyone"]},
        {"layers": ["everywhere"]},
        {"writers": "self"},
        {"required": "yes"},
    ],
)
def test_types_sensitivities_writers_and_layers_come_from_closed_sets(
    fields: dict[str, Any],
) -> None:
    refused("validation.catalog", **fields)


def test_an_attribute_needs_a_writer_and_a_writable_layer() -> None:
    refused("validation.catalog", writers=[])
    refused("validation.catalog", layers=[])
    refused("validation.catalog", layers=["user", "catalog-default"])


def test_an_enum_has_one_to_the_maximum_choices_of_the_attribute_type() -> None:
    refused("validation.catalog", enum=[])
    refused("validation.catalog", enum=[f"c{i}" for i in range(MAX_ENUM_CHOICES + 1)])
    refused("validation.type", enum=["a", 1])
    assert definition(enum=[f"c{i}" for i in range(MAX_ENUM_CHOICES)]).enum is not None


def test_a_pattern_is_a_valid_bounded_regular_expression_on_a_string() -> None:
    refused("validation.catalog", pattern="(")
    refused("validation.catalog", pattern="a" * (MAX_PATTERN_LENGTH + 1))
    refused("validation.catalog", pattern=7)
    refused("validation.catalog", type="integer", pattern="[0-9]+")


def test_length_bounds_are_non_negative_integers() -> None:
    refused("validation.catalog", min_length=-1)
    refused("validation.catalog", max_length="3")
    refused("validation.catalog", max_length=True)


def test_range_bounds_are_finite_numbers() -> None:
    refused("validation.catalog", type="number", minimum=float("nan"))
    refused("validation.catalog", type="number", maximum=float("-inf"))
    refused("validation.catalog", type="integer", minimum="0")


def test_a_required_attribute_needs_a_catalog_default() -> None:
    refused("validation.catalog", required=True)
    assert definition(required=True, default="x").required


def test_the_default_must_satisfy_the_definition() -> None:
    refused("validation.enum", enum=["a"], default="b")
    refused("validation.type", type="integer", default="1")
    refused("validation.too_long", max_length=1, default="ab")


def test_a_catalog_has_unique_names_and_at_most_the_maximum_attributes() -> None:
    bio = definition()
    with pytest.raises(ValidationError):
        CatalogVersion("crm", 1, (bio, bio), T0, "x").check()
    many = tuple(definition(name=f"a{i}") for i in range(MAX_ATTRIBUTES_PER_CATALOG + 1))
    with pytest.raises(ValidationError):
        CatalogVersion("crm", 1, many, T0, "x").check()
    CatalogVersion("crm", 1, many[:-1], T0, "x").check()


@pytest.mark.parametrize(
    ("name", "parts"),
    [("crm.nickname", ("crm", "nickname")), ("a.b", ("a", "b"))],
)
def test_qualified_names_split_into_application_and_attribute(
    name: str, parts: tuple[str, str]
) -> None:
    assert split_qualified_name(name) == parts


@pytest.mark.parametrize("name", ["crm", "crm.a.b", "crm.Nick", 5, None, "crm."])
def test_malformed_qualified_names_are_refused(name: object) -> None:
    with pytest.raises(ValidationError):
        split_qualified_name(name)


# -- values --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", "x", [1, True, None, b"x", ["x"]]),
        ("integer", 3, [3.0, True, "3", None, 2**53 + 1]),
        ("number", 2.5, [True, "2.5", float("nan"), float("inf"), None, 2.0**60]),
        ("boolean", False, [0, "false", None]),
    ],
)
def test_values_must_have_the_attribute_type(kind: str, good: object, bad: list[object]) -> None:
    attribute = definition(type=kind)

    assert attribute.validate(good) == good
    for value in bad:
        with pytest.raises(ValidationError) as error:
            attribute.validate(value)
        assert error.value.code == "validation.type"


def test_each_value_rule_has_its_own_code() -> None:
    cases = [
        (definition(enum=["en", "fr"]), "de", "validation.enum"),
        (definition(min_length=3), "ab", "validation.too_short"),
        (definition(max_length=3), "abcd", "validation.too_long"),
        (definition(), "x" * (MAX_STRING_VALUE_LENGTH + 1), "validation.too_long"),
        (definition(pattern="[0-9]+"), "12a", "validation.pattern"),
        (definition(type="integer", minimum=1), 0, "validation.range"),
        (definition(type="number", maximum=1), 1.5, "validation.range"),
        (definition(), "a\x00b", "validation.unprintable"),
        (definition(), "a\ud800b", "validation.unprintable"),
    ]
    for attribute, value, code in cases:
        with pytest.raises(ValidationError) as error:
            attribute.validate(value, qualified="crm.bio")
        assert error.value.code == code
        assert error.value.details == {"attribute": "crm.bio"}


def test_a_refused_value_is_never_quoted_in_the_error() -> None:
    secret = "hunter2-the-secret"
    attribute = definition(sensitivity="secret", pattern="[0-9]+", max_length=10)

    for candidate in (secret, secret * 100):
        with pytest.raises(ValidationError) as error:
            attribute.validate(candidate)
        assert secret not in repr((str(error.value), error.value.to_dict()))


@given(
    bounds=st.tuples(st.integers(0, 20), st.integers(0, 20)).map(sorted),
    text=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=30,
    ),
)
def test_a_string_passes_exactly_when_its_length_is_within_the_bounds(
    bounds: list[int], text: str
) -> None:
    attribute = definition(min_length=bounds[0], max_length=bounds[1])
    within = bounds[0] <= len(text) <= bounds[1]

    if within:
        assert attribute.validate(text) == text
    else:
        with pytest.raises(ValidationError):
            attribute.validate(text)


@given(
    bounds=st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)).map(sorted),
    number=st.integers(-2000, 2000),
)
def test_an_integer_passes_exactly_when_it_is_within_the_range(
    bounds: list[int], number: int
) -> None:
    attribute = definition(type="integer", minimum=bounds[0], maximum=bounds[1])

    if bounds[0] <= number <= bounds[1]:
        assert attribute.validate(number) == number
    else:
        with pytest.raises(ValidationError):
            attribute.validate(number)


@given(text=st.text(alphabet="ab01", max_size=8))
def test_a_string_passes_exactly_when_it_fully_matches_the_pattern(text: str) -> None:
    attribute = definition(pattern="[ab]+[01]?")

    if re.fullmatch("[ab]+[01]?", text):
        attribute.validate(text)
    else:
        with pytest.raises(ValidationError):
            attribute.validate(text)


@given(value=st.one_of(st.text(max_size=3), st.integers(), st.booleans(), st.none()))
def test_an_enum_accepts_exactly_its_choices(value: object) -> None:
    attribute = definition(enum=["", "a", "bc"])

    if value in ("", "a", "bc"):
        assert attribute.validate(value) == value
    else:
        with pytest.raises(ValidationError):
            attribute.validate(value)


def test_definitions_are_constructible_directly_with_typed_fields() -> None:
    direct = AttributeDefinition("bio", AttributeType.STRING, default="x")
    direct.check_definition()

    assert direct == definition(default="x")
