"""Secret values never leave the store: canaries hunted everywhere they could leak.

Two canaries: a factor secret (it must reach the secrets port and nothing else) and the value
of a ``secret`` attribute (it may live in the store's profile table, and nowhere outside it).
A scenario uses them in every way a caller can, successful or not; then the audit log, the
outbox, what the audit sink received, diagnostics, every error (message, details, repr), the
log output at DEBUG, telemetry, effective profiles (explain included), projections and every
value returned are searched for them. The demo is checked for its own secrets the same way.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from user_engine.config import EngineConfig, build_engine
from user_engine.demo import DEMO_SECRETS, run_demo
from user_engine.domain import Principal
from user_engine.errors import UserEngineError
from user_engine.service import REDACTED

if TYPE_CHECKING:
    from conftest import World

FACTOR_CANARY = "CANARY-factor-secret-9b1e4f77"
VALUE_CANARY = "CANARY-secret-value-5d2c8a11"
CANARIES = (FACTOR_CANARY, VALUE_CANARY)


def _forms(secret: str) -> list[str]:
    """The ways a secret could be spelled in text: as is, as bytes' hex, reversed."""
    return [secret, secret.encode().hex(), secret[::-1]]


def assert_no_canary(text: str, canaries: tuple[str, ...] = CANARIES) -> None:
    """Fail naming the canary (not the text) if any form of one appears in ``text``."""
    for canary in canaries:
        for form in _forms(canary):
            assert form not in text, f"a form of canary {canary[:10]}... leaked"


class RecordingTelemetry:
    """``Telemetry`` that keeps every argument it receives."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    @contextmanager
    def operation(
        self, operation: str, *, tenant_id: str | None, principal_kind: str
    ) -> Iterator[RecordingTelemetry]:
        self.calls.append(("operation", operation, tenant_id, principal_kind))
        yield self

    def finish(self, outcome: str, error_code: str = "") -> None:
        self.calls.append(("finish", outcome, error_code))

    def relay_progress(self, **figures: object) -> None:
        self.calls.append(("relay", figures))


def _attempts(world: World) -> list[Callable[[], object]]:
    """Every use of the canaries a caller can make, allowed or not."""
    service, alice_id = world.service, world.alice.id
    alice, bob, crm = world.as_user(world.alice), world.as_user(world.bob), world.crm

    def write(caller: Any, attribute: str, value: object, **where: Any) -> Callable[[], object]:
        where.setdefault("layer", "user")
        if where["layer"] != "tenant-default":
            where.setdefault("user_id", alice_id)
        return lambda: service.write_profile_value(
            caller, attribute=attribute, value=value, **where
        )

    return [
        lambda: service.enroll_factor(
            alice, alice_id, kind="totp", label="phone", secret=FACTOR_CANARY
        ),
        lambda: service.enroll_factor(
            alice, alice_id, kind="backup", label="codes", secret=FACTOR_CANARY.encode()
        ),
        lambda: service.enroll_factor(
            bob, alice_id, kind="totp", label="stolen", secret=FACTOR_CANARY
        ),  # denied
        lambda: service.enroll_factor(
            alice, "no-such-user", kind="totp", label="x", secret=FACTOR_CANARY
        ),  # not found
        write(alice, "crm.token", VALUE_CANARY),
        write(crm, "crm.token", VALUE_CANARY, layer="user-in-tenant", tenant_id="acme"),
        write(alice, "crm.token", VALUE_CANARY, expected_version=0),  # stale
        write(bob, "crm.token", VALUE_CANARY),  # denied
        write(alice, "crm.pin", VALUE_CANARY),  # fails the pattern
        write(alice, "crm.age", VALUE_CANARY),  # wrong type
        write(alice, "crm.language", VALUE_CANARY),  # not in the enum
        write(alice, "crm.nickname", VALUE_CANARY * 5),  # too long
        write(alice, "crm.no_such", VALUE_CANARY),  # unknown attribute
        write(alice, "crm.token", VALUE_CANARY, layer="tenant-default", tenant_id="acme"),
        write(
            world.acme_admin, "crm.token", VALUE_CANARY, layer="user-in-tenant", tenant_id="acme"
        ),  # writer not allowed
        lambda: service.bind_application(
            world.acme_admin,
            "billing",
            tenant_id="acme",
            user_id=alice_id,
            granted_attributes=["crm.token", "crm.pin", "crm.nickname"],
        ),
        lambda: service.effective_profile(alice, alice_id, tenant_id="acme", explain=True),
        lambda: service.effective_profile(world.operator, alice_id, tenant_id="acme", explain=True),
        lambda: service.me(alice, tenant_id="acme"),
        lambda: service.project_profile(crm, "crm", tenant_id="acme", user_id=alice_id),
        lambda: service.project_profile(
            world.billing, "billing", tenant_id="acme", user_id=alice_id
        ),
        lambda: service.verify_secret_attribute(
            crm, attribute="crm.token", user_id=alice_id, tenant_id="acme", candidate=VALUE_CANARY
        ),
        lambda: service.verify_secret_attribute(
            crm,
            attribute="crm.token",
            user_id=alice_id,
            tenant_id="acme",
            candidate=VALUE_CANARY + "x",
        ),
        lambda: service.verify_secret_attribute(
            world.billing,
            attribute="crm.token",
            user_id=alice_id,
            tenant_id="acme",
            candidate=VALUE_CANARY,
        ),  # denied
        lambda: service.clear_profile_value(
            alice, attribute="crm.token", layer="user", user_id=alice_id, expected_version=7
        ),  # stale
        lambda: service.list_catalog_versions(alice, "crm"),
        lambda: service.diagnostics(world.operator),
        lambda: service.read_audit(world.operator, limit=1000),
        lambda: service.pending_events(world.operator, limit=1000),
    ]


def test_canary_secrets_never_leave_the_store(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = RecordingTelemetry()
    world.service.telemetry = telemetry
    returned: list[object] = []
    errors: list[UserEngineError] = []

    with caplog.at_level(logging.DEBUG):
        for attempt in _attempts(world):
            try:
                returned.append(attempt())
            except UserEngineError as error:
                errors.append(error)

    assert errors, "the scenario exercises failures too"
    assert_no_canary(repr(returned))
    assert_no_canary(repr([(str(e), e.details, e.to_dict(), repr(e)) for e in errors]))
    assert_no_canary(repr(world.audit_log()))
    assert_no_canary(repr(world.audit_sink.exported))
    assert_no_canary(repr(world.outbox()))
    assert_no_canary(repr(world.service.diagnostics(world.operator)))
    assert_no_canary(caplog.text)
    assert_no_canary(repr(telemetry.calls))
    tables = world.snapshot().tables
    assert VALUE_CANARY in repr(tables["profile"]), "the scenario stored the secret value"
    assert {e.code for e in errors} >= {"validation.pattern", "profile.stale", "denied.not_self"}
    assert_no_canary(repr({k: v for k, v in tables.items() if k != "profile"}))
    assert_no_canary(repr(tables["profile"]), (FACTOR_CANARY,))


def test_the_secret_value_is_stored_and_verifiable_but_only_ever_returned_redacted(
    world: World,
) -> None:
    alice = world.as_user(world.alice)
    written = world.service.write_profile_value(
        alice, attribute="crm.token", layer="user", user_id=world.alice.id, value=VALUE_CANARY
    )

    explained = world.service.effective_profile(alice, world.alice.id, explain=True)
    world.service.write_profile_value(
        world.crm,
        attribute="crm.token",
        layer="user-in-tenant",
        user_id=world.alice.id,
        tenant_id="acme",
        value="shadowing-" + VALUE_CANARY,
    )
    shadowing = world.service.effective_profile(
        alice, world.alice.id, tenant_id="acme", explain=True
    )

    assert written.value == REDACTED
    assert explained.attributes["crm.token"].value == REDACTED
    assert [s.value for s in shadowing.attributes["crm.token"].shadowed] == [REDACTED]
    assert (
        "crm.token"
        not in world.service.project_profile(
            world.crm, "crm", tenant_id="acme", user_id=world.alice.id
        ).attributes
    )
    assert world.service.verify_secret_attribute(
        world.crm,
        attribute="crm.token",
        user_id=world.alice.id,
        tenant_id="acme",
        candidate="shadowing-" + VALUE_CANARY,
    )
    [event] = [e for e in world.outbox() if e.payload.get("attribute") == "crm.token"][:1]
    assert event.payload.get("redacted") is True
    assert "value" not in event.payload


def test_a_factor_secret_reaches_the_secrets_port_and_only_its_reference_is_kept(
    world: World,
) -> None:
    factor = world.service.enroll_factor(
        world.as_user(world.alice), world.alice.id, kind="totp", label="x", secret=FACTOR_CANARY
    )

    assert world.secrets.reveal(factor.secret_ref) == FACTOR_CANARY.encode()
    assert FACTOR_CANARY not in repr(factor)
    assert_no_canary(repr(world.service.me(world.as_user(world.alice))), (FACTOR_CANARY,))
    world.service.remove_factor(world.as_user(world.alice), world.alice.id, factor.id)
    assert not world.secrets.has_secret(factor.secret_ref)


def test_the_demo_never_shows_its_secrets(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()

    with caplog.at_level(logging.DEBUG), build_engine(EngineConfig()) as engine:
        run_demo(engine, out)
        exported = repr(engine.audit_sink.exported)  # type: ignore[attr-defined]
        delivered = repr(engine.publisher.delivered)  # type: ignore[attr-defined]
        diagnostics = repr(engine.service.diagnostics(Principal.platform_operator("ops-check")))

    output = out.getvalue()
    assert "[redacted]" in output, "the demo shows the secret attribute, redacted"
    for text in (output, exported, delivered, diagnostics, caplog.text):
        assert_no_canary(text, DEMO_SECRETS)


def test_the_demo_command_output_never_shows_its_secrets() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "user_engine", "--verbose", "demo"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert "provenance" in finished.stdout
    assert_no_canary(finished.stdout + finished.stderr, DEMO_SECRETS)
