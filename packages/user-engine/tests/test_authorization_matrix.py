"""The authorization matrix: every public operation x every kind of caller.

The target of each operation lives in tenant ``acme`` (user alice, application crm, alice bound
to crm there). The callers are named by their relation to that target:

==========================  =============================================================
column                      caller
==========================  =============================================================
``self``                    the target user itself (alice; dave for ``add_to_tenant``)
``other``                   another user of the same tenant (bob)
``x-tenant``                a user of the other tenant (carol, in globex)
``app``                     the application that owns the target (crm, alice bound to it)
``other-app``               another application (billing; alice is not bound to it)
``admin``                   a tenant admin of the target's tenant (acme)
``x-admin``                 a tenant admin of the other tenant (globex)
``operator``                the platform operator
==========================  =============================================================

The expectation table below is written out by hand from the rules in docs/concepts.md, not
derived from ``user_engine.authorization.ACTIONS``: ``A`` allowed, ``-`` denied, ``N`` allowed
but the target does not exist for that caller (the operator has no ``me``). Every denial must
raise ``AuthorizationDenied``, append exactly one audit record (outcome ``denied``, the reason
code of the error), export it once to the audit sink, emit no outbox event and change nothing.
The own-tenant / other-tenant axis for users and applications acting *on themselves* is covered
by the two tests at the end.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from user_engine.domain import AuditOutcome, Principal
from user_engine.errors import AuthorizationDenied, ConflictError, NotFoundError
from user_engine.service import UserEngineService

if TYPE_CHECKING:
    from conftest import World

CALLERS = ("self", "other", "x-tenant", "app", "other-app", "admin", "x-admin", "operator")

#                                 self other x-tenant app other-app admin x-admin operator
# fmt: off
EXPECTED: dict[str, str] = {
    "diagnostics":                "-    -     -        -   -         -     -       A",
    "me":                         "A    A     -        -   -         -     -       N",
    "create_tenant":              "-    -     -        -   -         -     -       A",
    "suspend_tenant":             "-    -     -        -   -         -     -       A",
    "reactivate_tenant":          "-    -     -        -   -         -     -       A",
    "get_tenant":                 "-    -     -        -   -         A     -       A",
    "create_user":                "-    -     -        -   -         A     -       A",
    "get_user":                   "A    -     -        -   -         A     -       A",
    "suspend_user":               "-    -     -        -   -         -     -       A",
    "reactivate_user":            "-    -     -        -   -         -     -       A",
    "close_user":                 "A    -     -        -   -         -     -       A",
    "create_account":             "A    -     -        -   -         -     -       A",
    "suspend_account":            "-    -     -        -   -         -     -       A",
    "reactivate_account":         "-    -     -        -   -         -     -       A",
    "close_account":              "A    -     -        -   -         -     -       A",
    "add_to_tenant":              "-    -     -        -   -         A     -       A",
    "suspend_tenant_account":     "-    -     -        -   -         A     -       A",
    "reactivate_tenant_account":  "-    -     -        -   -         A     -       A",
    "remove_from_tenant":         "-    -     -        -   -         A     -       A",
    "assign_tenant_roles":        "-    -     -        -   -         A     -       A",
    "list_tenant_accounts":       "-    -     -        -   -         A     -       A",
    "add_membership":             "-    -     -        -   -         A     -       A",
    "remove_membership":          "-    -     -        -   -         A     -       A",
    "list_memberships":           "-    -     -        -   -         A     -       A",
    "export_memberships":         "-    -     -        -   -         A     -       A",
    "link_identity":              "A    -     -        A   -         A     -       A",
    "unlink_identity":            "A    -     -        -   -         A     -       A",
    "lookup_identity":            "-    -     -        A   A         -     -       A",
    "enroll_factor":              "A    -     -        -   -         -     -       A",
    "remove_factor":              "A    -     -        -   -         -     -       A",
    "register_application":       "-    -     -        -   -         -     -       A",
    "bind_application":           "-    -     -        -   -         A     -       A",
    "unbind_application":         "-    -     -        -   -         A     -       A",
    "publish_catalog":            "-    -     -        A   -         -     -       A",
    "get_catalog":                "A    A     A        A   A         A     A       A",
    "list_catalog_versions":      "A    A     A        A   A         A     A       A",
    "write_profile_value":        "A    -     -        A   -         A     -       A",
    "clear_profile_value":        "A    -     -        A   -         A     -       A",
    "effective_profile":          "A    -     -        -   -         A     -       A",
    "project_profile":            "-    -     -        A   -         -     -       A",
    "verify_secret_attribute":    "-    -     -        A   -         -     -       A",
    "read_audit":                 "-    -     -        -   -         A     -       A",
    "pending_events":             "-    -     -        -   -         -     -       A",
    "dead_letters":               "-    -     -        -   -         -     -       A",
}
# fmt: on

WITHOUT_CALLER = {
    "health": "liveness: answers anyone, touches nothing",
    "readiness": "readiness probe: answers anyone, reveals only the schema version",
    "request": "context manager tagging audit records with a request id",
    "transaction": "context manager grouping operations; each operation inside is authorized",
}
"""Public methods that take no caller, and why they are outside the matrix."""


@dataclass(frozen=True)
class Operation:
    """How to call one service operation against the fixture world."""

    action: str
    act: Callable[[World, Principal], object]
    arrange: Callable[[World], object] | None = None
    mutation: bool = True
    target: str = "alice"


def _nickname(world: World, caller: Principal, **extra: Any) -> Any:
    return world.service.write_profile_value(
        caller,
        attribute="crm.nickname",
        layer="user-in-tenant",
        user_id=world.alice.id,
        tenant_id="acme",
        value="nick",
        **extra,
    )


OPERATIONS: dict[str, Operation] = {
    "diagnostics": Operation(
        "diagnostics.read", lambda w, p: w.service.diagnostics(p), mutation=False
    ),
    "me": Operation("me", lambda w, p: w.service.me(p, tenant_id="acme"), mutation=False),
    "create_tenant": Operation(
        "tenant.create", lambda w, p: w.service.create_tenant(p, "initech", name="Initech")
    ),
    "suspend_tenant": Operation("tenant.suspend", lambda w, p: w.service.suspend_tenant(p, "acme")),
    "reactivate_tenant": Operation(
        "tenant.reactivate",
        lambda w, p: w.service.reactivate_tenant(p, "acme"),
        arrange=lambda w: w.service.suspend_tenant(w.operator, "acme"),
    ),
    "get_tenant": Operation(
        "tenant.read", lambda w, p: w.service.get_tenant(p, "acme"), mutation=False
    ),
    "create_user": Operation(
        "user.create",
        lambda w, p: w.service.create_user(p, display_name="Erin", tenant_id="acme"),
    ),
    "get_user": Operation(
        "user.read", lambda w, p: w.service.get_user(p, w.alice.id), mutation=False
    ),
    "suspend_user": Operation("user.suspend", lambda w, p: w.service.suspend_user(p, w.alice.id)),
    "reactivate_user": Operation(
        "user.reactivate",
        lambda w, p: w.service.reactivate_user(p, w.alice.id),
        arrange=lambda w: w.service.suspend_user(w.operator, w.alice.id),
    ),
    "close_user": Operation("user.close", lambda w, p: w.service.close_user(p, w.alice.id)),
    "create_account": Operation(
        "account.create",
        lambda w, p: w.service.create_account(p, w.alice.id, handle="alice@work.example"),
    ),
    "suspend_account": Operation(
        "account.suspend", lambda w, p: w.service.suspend_account(p, w.alice_account.id)
    ),
    "reactivate_account": Operation(
        "account.reactivate",
        lambda w, p: w.service.reactivate_account(p, w.alice_account.id),
        arrange=lambda w: w.service.suspend_account(w.operator, w.alice_account.id),
    ),
    "close_account": Operation(
        "account.close", lambda w, p: w.service.close_account(p, w.alice_account.id)
    ),
    "add_to_tenant": Operation(
        "tenant_account.add",
        lambda w, p: w.service.add_to_tenant(p, "acme", w.dave.id, roles=["viewer"]),
        target="dave",
    ),
    "suspend_tenant_account": Operation(
        "tenant_account.suspend",
        lambda w, p: w.service.suspend_tenant_account(p, "acme", w.alice.id),
    ),
    "reactivate_tenant_account": Operation(
        "tenant_account.reactivate",
        lambda w, p: w.service.reactivate_tenant_account(p, "acme", w.alice.id),
        arrange=lambda w: w.service.suspend_tenant_account(w.operator, "acme", w.alice.id),
    ),
    "remove_from_tenant": Operation(
        "tenant_account.remove", lambda w, p: w.service.remove_from_tenant(p, "acme", w.alice.id)
    ),
    "assign_tenant_roles": Operation(
        "tenant_account.assign_roles",
        lambda w, p: w.service.assign_tenant_roles(p, "acme", w.alice.id, ["owner"]),
    ),
    "list_tenant_accounts": Operation(
        "tenant_account.list",
        lambda w, p: w.service.list_tenant_accounts(p, "acme"),
        mutation=False,
    ),
    "add_membership": Operation(
        "membership.add", lambda w, p: w.service.add_membership(p, "acme", w.alice.id, "sales")
    ),
    "remove_membership": Operation(
        "membership.remove",
        lambda w, p: w.service.remove_membership(p, "acme", w.alice.id, "staff"),
    ),
    "list_memberships": Operation(
        "membership.list", lambda w, p: w.service.list_memberships(p, "acme"), mutation=False
    ),
    "export_memberships": Operation(
        "membership.export", lambda w, p: w.service.export_memberships(p, "acme")
    ),
    "link_identity": Operation(
        "identity.link",
        lambda w, p: w.service.link_identity(
            p, w.alice.id, issuer="https://other-idp.example", subject="alice-2"
        ),
    ),
    "unlink_identity": Operation(
        "identity.unlink",
        lambda w, p: w.service.unlink_identity(
            p, issuer="https://idp.example", subject="alice-sub"
        ),
    ),
    "lookup_identity": Operation(
        "identity.lookup",
        lambda w, p: w.service.lookup_identity(
            p, issuer="https://idp.example", subject="alice-sub"
        ),
        mutation=False,
    ),
    "enroll_factor": Operation(
        "factor.enroll",
        lambda w, p: w.service.enroll_factor(
            p, w.alice.id, kind="webauthn", label="key", secret=b"\x01\x02\x03"
        ),
    ),
    "remove_factor": Operation(
        "factor.remove",
        lambda w, p: w.service.remove_factor(p, w.alice.id, w.alice_factor.id),
    ),
    "register_application": Operation(
        "application.register",
        lambda w, p: w.service.register_application(p, "helpdesk", name="Helpdesk"),
    ),
    "bind_application": Operation(
        "application.bind",
        lambda w, p: w.service.bind_application(p, "billing", tenant_id="acme", user_id=w.alice.id),
    ),
    "unbind_application": Operation(
        "application.unbind",
        lambda w, p: w.service.unbind_application(p, "crm", tenant_id="acme", user_id=w.alice.id),
    ),
    "publish_catalog": Operation(
        "catalog.publish",
        lambda w, p: w.service.publish_catalog(
            p, "crm", [{"name": "nickname", "type": "string", "writers": ["self"]}]
        ),
    ),
    "get_catalog": Operation(
        "catalog.read", lambda w, p: w.service.get_catalog(p, "crm"), mutation=False
    ),
    "list_catalog_versions": Operation(
        "catalog.read", lambda w, p: w.service.list_catalog_versions(p, "crm"), mutation=False
    ),
    "write_profile_value": Operation("profile.write", _nickname),
    "clear_profile_value": Operation(
        "profile.clear",
        lambda w, p: w.service.clear_profile_value(
            p,
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=w.alice.id,
            tenant_id="acme",
        ),
    ),
    "effective_profile": Operation(
        "profile.read",
        lambda w, p: w.service.effective_profile(p, w.alice.id, tenant_id="acme", explain=True),
        mutation=False,
    ),
    "project_profile": Operation(
        "profile.project",
        lambda w, p: w.service.project_profile(p, "crm", tenant_id="acme", user_id=w.alice.id),
        mutation=False,
    ),
    "verify_secret_attribute": Operation(
        "profile.verify_secret",
        lambda w, p: w.service.verify_secret_attribute(
            p, attribute="crm.token", user_id=w.alice.id, tenant_id="acme", candidate="guess"
        ),
        mutation=False,
    ),
    "read_audit": Operation(
        "audit.read", lambda w, p: w.service.read_audit(p, tenant_id="acme"), mutation=False
    ),
    "pending_events": Operation(
        "outbox.read", lambda w, p: w.service.pending_events(p), mutation=False
    ),
    "dead_letters": Operation(
        "outbox.read", lambda w, p: w.service.dead_letters(p), mutation=False
    ),
}


def _caller(world: World, column: str, target: str) -> Principal:
    target_user = getattr(world, target)
    return {
        "self": Principal.user(target_user.id),
        "other": Principal.user(world.bob.id),
        "x-tenant": Principal.user(world.carol.id),
        "app": world.crm,
        "other-app": world.billing,
        "admin": world.acme_admin,
        "x-admin": world.globex_admin,
        "operator": world.operator,
    }[column]


def _cells() -> list[tuple[str, str, str]]:
    cells = []
    for operation, row in EXPECTED.items():
        for column, expected in zip(CALLERS, row.split(), strict=True):
            cells.append((operation, column, expected))
    return cells


def test_every_public_service_method_is_in_the_matrix_or_takes_no_caller() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(UserEngineService, inspect.isfunction)
        if not name.startswith("_")
    }

    assert public - set(OPERATIONS) - set(WITHOUT_CALLER) == set(), "missing from the matrix"
    assert set(OPERATIONS) | set(WITHOUT_CALLER) == public, "the matrix names unknown methods"


def test_the_expectation_table_has_one_row_per_operation_and_one_cell_per_caller() -> None:
    assert set(EXPECTED) == set(OPERATIONS)
    for operation, row in EXPECTED.items():
        cells = row.split()
        assert len(cells) == len(CALLERS), operation
        assert set(cells) <= {"A", "-", "N"}, operation


@pytest.mark.parametrize(
    ("operation", "column", "expected"),
    _cells(),
    ids=[f"{o}-{c}" for o, c, _ in _cells()],
)
def test_authorization_matrix(world: World, operation: str, column: str, expected: str) -> None:
    spec = OPERATIONS[operation]
    if spec.arrange is not None:
        spec.arrange(world)
    caller = _caller(world, column, spec.target)
    before = world.snapshot()

    if expected == "-":
        with pytest.raises(AuthorizationDenied) as denied:
            spec.act(world, caller)
        after = world.snapshot()
        new_audit = world.audit_since(before)
        assert len(new_audit) == 1
        record = new_audit[0]
        assert record.outcome is AuditOutcome.DENIED
        assert record.reason_code == denied.value.code
        assert record.reason_code.startswith("denied.")
        assert record.action == spec.action
        assert (record.actor_id, record.actor_kind) == (caller.id, caller.kind.value)
        assert after.outbox == before.outbox, "a denial emitted an event"
        assert after.domain() == before.domain(), "a denial changed state"
        assert world.audit_sink.exported[before.exported :] == [record]
    elif expected == "N":
        with pytest.raises(NotFoundError):
            spec.act(world, caller)
        assert all(r.outcome is not AuditOutcome.DENIED for r in world.audit_since(before))
    else:
        spec.act(world, caller)
        new_audit = world.audit_since(before)
        assert all(r.outcome is AuditOutcome.SUCCESS for r in new_audit)
        if spec.mutation:
            assert [(r.action, r.actor_id) for r in new_audit] == [(spec.action, caller.id)]
            assert world.audit_sink.exported[before.exported :] == new_audit
        else:
            assert new_audit == [], "reads are audited only when denied"
            assert world.snapshot().domain() == before.domain()


@pytest.mark.parametrize(
    "act",
    [
        lambda w, p: w.service.me(p, tenant_id="globex"),
        lambda w, p: w.service.effective_profile(p, w.alice.id, tenant_id="globex"),
        lambda w, p: w.service.write_profile_value(
            p,
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=w.alice.id,
            tenant_id="globex",
            value="x",
        ),
    ],
    ids=["me", "effective_profile", "write_profile_value"],
)
def test_a_user_acting_on_itself_in_a_tenant_it_is_not_in_is_denied(
    world: World, act: Callable[[World, Principal], object]
) -> None:
    before = world.snapshot()

    with pytest.raises(AuthorizationDenied) as denied:
        act(world, world.as_user(world.alice))

    assert denied.value.code == "denied.not_member"
    [record] = world.audit_since(before)
    assert (record.outcome, record.tenant_id) == (AuditOutcome.DENIED, "globex")
    assert world.snapshot().outbox == before.outbox


@pytest.mark.parametrize(
    "act",
    [
        lambda w, p: w.service.project_profile(p, "crm", tenant_id="acme", user_id=w.carol.id),
        lambda w, p: w.service.verify_secret_attribute(
            p, attribute="crm.token", user_id=w.carol.id, tenant_id="acme", candidate="x"
        ),
        lambda w, p: w.service.write_profile_value(
            p,
            attribute="crm.nickname",
            layer="user-in-tenant",
            user_id=w.carol.id,
            tenant_id="acme",
            value="x",
        ),
    ],
    ids=["project_profile", "verify_secret_attribute", "write_profile_value"],
)
def test_an_application_acting_on_a_user_bound_to_it_only_in_another_tenant_is_denied(
    world: World, act: Callable[[World, Principal], object]
) -> None:
    # carol is bound to crm in globex, not in acme.
    before = world.snapshot()

    with pytest.raises(AuthorizationDenied) as denied:
        act(world, world.crm)

    assert denied.value.code == "denied.not_bound"
    [record] = world.audit_since(before)
    assert record.outcome is AuditOutcome.DENIED
    assert world.snapshot().outbox == before.outbox


@pytest.mark.parametrize(
    ("caller", "act", "reason"),
    [
        (
            "acme_admin",
            lambda w, p: w.service.list_tenant_accounts(p, "globex"),
            "denied.other_tenant",
        ),
        ("acme_admin", lambda w, p: w.service.get_user(p, w.carol.id), "denied.platform_only"),
        ("bob", lambda w, p: w.service.get_user(p, w.alice.id), "denied.not_self"),
        (
            "crm",
            lambda w, p: w.service.publish_catalog(p, "billing", []),
            "denied.other_application",
        ),
        (
            "billing",
            lambda w, p: w.service.project_profile(
                p, "billing", tenant_id="acme", user_id=w.alice.id
            ),
            "denied.not_bound",
        ),
        ("crm", lambda w, p: w.service.suspend_user(p, w.alice.id), "denied.role"),
        (
            "acme_admin",
            lambda w, p: w.service.write_profile_value(
                p,
                attribute="billing.plan",
                layer="user-in-tenant",
                user_id=w.alice.id,
                tenant_id="acme",
                value="team",
            ),
            "denied.writer_not_allowed",
        ),
    ],
    ids=[
        "other-tenant",
        "platform-only",
        "not-self",
        "other-application",
        "not-bound",
        "role",
        "writer-not-allowed",
    ],
)
def test_each_kind_of_denial_has_its_own_stable_reason_code(
    world: World, caller: str, act: Callable[[World, Principal], object], reason: str
) -> None:
    principal = getattr(world, caller)
    if not isinstance(principal, Principal):
        principal = world.as_user(principal)
    before = world.snapshot()

    with pytest.raises(AuthorizationDenied) as denied:
        act(world, principal)

    assert denied.value.code == reason
    assert [r.reason_code for r in world.audit_since(before)] == [reason]


def test_a_suspended_tenant_account_no_longer_counts_as_membership(world: World) -> None:
    world.service.suspend_tenant_account(world.acme_admin, "acme", world.alice.id)

    with pytest.raises(AuthorizationDenied) as denied:
        world.service.effective_profile(
            world.as_user(world.alice), world.alice.id, tenant_id="acme"
        )

    assert denied.value.code == "denied.not_member"


def test_a_closed_user_keeps_no_write_access_to_its_profile(world: World) -> None:
    alice = world.as_user(world.alice)
    world.service.close_user(alice, world.alice.id)
    world.clock.advance(timedelta(seconds=1))

    with pytest.raises(ConflictError) as refused:
        world.service.write_profile_value(
            alice, attribute="crm.age", layer="user", user_id=world.alice.id, value=30
        )

    assert refused.value.code == "user.closed"
