"""The scripted demo: a realistic tour of the whole surface, printed readably.

Two tenants with their admins, two applications publishing catalogs, users with linked
identities and accounts in both tenants, layered profile writes, an effective profile with
provenance, two projections that differ, a stale write rejected, a denied cross-tenant attempt,
the audit trail, and the outbox relayed to the configured event publisher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from user_engine.config import Engine
from user_engine.domain import EffectiveProfile, Principal
from user_engine.errors import AuthorizationDenied, ConflictError
from user_engine.relay import Relay, RelaySettings

__all__ = ["DEMO_SECRETS", "run_demo"]

DEMO_SECRETS = ("demo-totp-seed-JBSWY3DPEHPK3PXP", "4321-demo-recovery-pin")
"""The secret values the demo writes; its output must never contain them (tested)."""


def run_demo(engine: Engine, out: TextIO) -> None:
    """Run the scenario against ``engine`` and print what happens to ``out``."""

    def say(text: str = "") -> None:
        print(text, file=out)

    service = engine.service
    if not engine.store.readiness().ready:
        engine.store.migrate()

    operator = Principal.platform_operator("ops-olga")
    # A persistent store (say, the embedded Postgres data dir) may hold an earlier run: give
    # this run's tenants, applications and identities a fresh suffix instead of colliding.
    earlier_runs = engine.store.record_counts().get("tenants", 0) // 2
    tag = f"-run{earlier_runs + 1}" if earlier_runs else ""
    acme, globex = f"acme{tag}", f"globex{tag}"
    crm_id, billing_id = f"crm{tag}", f"billing{tag}"
    ada_subject = f"ada-123{tag}"
    if tag:
        say(f"(the store holds {earlier_runs} earlier demo run(s): ids get the suffix {tag})\n")
    acme_admin = Principal.tenant_admin("adm-alice", acme)
    globex_admin = Principal.tenant_admin("adm-gus", globex)

    say("== 1. Tenants and administrators")
    for tenant_id, name in ((acme, "Acme Corp"), (globex, "Globex Inc")):
        service.create_tenant(operator, tenant_id, name=name)
        say(f"   operator created tenant {tenant_id!r} ({name})")
    say("   tenant admins: adm-alice administers acme, adm-gus administers globex")

    say("\n== 2. Applications publish catalogs")
    service.register_application(operator, crm_id, name="Customer Relations")
    service.register_application(operator, billing_id, name="Billing")
    crm, billing = Principal.application(crm_id), Principal.application(billing_id)
    crm_catalog = service.publish_catalog(
        crm,
        crm_id,
        [
            {"name": "nickname", "type": "string", "sensitivity": "public", "max_length": 32,
             "writers": ["self", "tenant-admin", "application"],
             "layers": ["user", "user-in-tenant", "tenant-default", "application-default"]},
            {"name": "language", "type": "string", "enum": ["en", "fr", "de"], "default": "en",
             "sensitivity": "public", "writers": ["self", "tenant-admin"],
             "layers": ["user", "user-in-tenant", "tenant-default"]},
            {"name": "recovery_pin", "type": "string", "sensitivity": "secret",
             "pattern": "[0-9-a-z]{4,32}", "writers": ["self"], "layers": ["user"]},
        ],
    )  # fmt: skip
    billing_catalog = service.publish_catalog(
        billing,
        billing_id,
        [
            {"name": "plan", "type": "string", "enum": ["free", "team", "enterprise"],
             "default": "free", "sensitivity": "internal", "writers": ["application"],
             "layers": ["user-in-tenant", "application-default"]},
            {"name": "seats", "type": "integer", "minimum": 1, "maximum": 10000,
             "sensitivity": "internal", "writers": ["application", "tenant-admin"],
             "layers": ["user-in-tenant"]},
        ],
    )  # fmt: skip
    for catalog in (crm_catalog, billing_catalog):
        names = ", ".join(a.name for a in catalog.attributes)
        say(f"   {catalog.application_id} catalog v{catalog.version}: {names}")

    say("\n== 3. Users, accounts, identities, factors")
    ada = service.create_user(acme_admin, display_name="Ada", tenant_id=acme, roles=["editor"])
    grace = service.create_user(acme_admin, display_name="Grace", tenant_id=acme)
    # Users cross tenants only through the operator (or the tenant admin of the target).
    service.add_to_tenant(operator, globex, ada.id, roles=["viewer"])
    service.create_account(Principal.user(ada.id), ada.id, handle=f"ada{tag}@example.com")
    service.link_identity(operator, ada.id, issuer="https://idp.example", subject=ada_subject)
    factor = service.enroll_factor(
        Principal.user(ada.id), ada.id, kind="totp", label="phone", secret=DEMO_SECRETS[0]
    )
    say(f"   Ada = {ada.id}: accounts in acme (editor) and globex (viewer), handle ada@example.com")
    say(f"   Grace = {grace.id}: account in acme")
    say("   Ada's identity (https://idp.example, ada-123) linked")
    say(
        f"   Ada enrolled a {factor.kind} factor; stored reference only: {factor.secret_ref[:8]}..."
    )
    try:
        service.link_identity(operator, grace.id, issuer="https://idp.example", subject=ada_subject)
    except ConflictError as error:
        say(f"   linking the same identity to Grace: refused [{error.code}]")

    say("\n== 4. Bindings and layered profile writes")
    service.bind_application(
        acme_admin, crm_id, tenant_id=acme, user_id=ada.id,
    )  # fmt: skip
    service.bind_application(
        acme_admin, billing_id, tenant_id=acme, user_id=ada.id,
        granted_attributes=[f"{crm_id}.nickname", f"{crm_id}.language", f"{crm_id}.recovery_pin"],
    )  # fmt: skip
    ada_user = Principal.user(ada.id)
    service.write_profile_value(
        crm, attribute=f"{crm_id}.nickname", layer="application-default", value="friend"
    )
    service.write_profile_value(
        acme_admin, attribute=f"{crm_id}.nickname", layer="tenant-default", tenant_id=acme,
        value="acme-colleague",
    )  # fmt: skip
    service.write_profile_value(
        ada_user, attribute=f"{crm_id}.nickname", layer="user", user_id=ada.id, value="countess"
    )
    in_acme = service.write_profile_value(
        ada_user, attribute=f"{crm_id}.nickname", layer="user-in-tenant", user_id=ada.id,
        tenant_id=acme, value="ada-at-acme",
    )  # fmt: skip
    service.write_profile_value(
        acme_admin, attribute=f"{crm_id}.language", layer="tenant-default", tenant_id=acme,
        value="fr",
    )  # fmt: skip
    service.write_profile_value(
        ada_user, attribute=f"{crm_id}.recovery_pin", layer="user", user_id=ada.id,
        value=DEMO_SECRETS[1],
    )  # fmt: skip
    service.write_profile_value(
        billing, attribute=f"{billing_id}.plan", layer="user-in-tenant", user_id=ada.id,
        tenant_id=acme, value="team",
    )  # fmt: skip
    service.write_profile_value(
        billing, attribute=f"{billing_id}.seats", layer="user-in-tenant", user_id=ada.id,
        tenant_id=acme, value=25,
    )  # fmt: skip
    say("   crm.nickname: application default, acme default, Ada's own, Ada-in-acme")
    say("   crm.language: acme default 'fr'; crm.recovery_pin: a secret Ada set")
    say("   billing.plan and billing.seats: written by billing for Ada in acme")
    say("   Ada bound to crm and to billing (billing granted crm.nickname, crm.language, ")
    say("   crm.recovery_pin; secrets are never projected, whatever is granted)")

    say("\n== 5. Ada's effective profile in acme, with provenance")
    profile = service.effective_profile(ada_user, ada.id, tenant_id=acme, explain=True)
    _print_profile(say, profile, explain=True)

    say("\n== 6. Two projections that differ")
    for application in (crm, billing):
        projection = service.project_profile(
            application, application.id, tenant_id=acme, user_id=ada.id
        )
        say(f"   {application.id} sees: {projection.values()}")

    say("\n== 7. A stale write is rejected")
    try:
        service.write_profile_value(
            ada_user, attribute=f"{crm_id}.nickname", layer="user-in-tenant", user_id=ada.id,
            tenant_id=acme, value="too-late", expected_version=in_acme.version - 1 or 0,
        )  # fmt: skip
    except ConflictError as error:
        say(f"   write with expected_version={in_acme.version - 1}: refused [{error.code}]")
    updated = service.write_profile_value(
        ada_user, attribute=f"{crm_id}.nickname", layer="user-in-tenant", user_id=ada.id,
        tenant_id=acme, value="ada-lovelace", expected_version=in_acme.version,
    )  # fmt: skip
    say(f"   write with expected_version={in_acme.version}: accepted, now v{updated.version}")

    say("\n== 8. A cross-tenant attempt is denied (and audited)")
    try:
        service.suspend_tenant_account(globex_admin, acme, grace.id)
    except AuthorizationDenied as error:
        say(f"   globex admin suspending Grace in acme: denied [{error.code}]")
    try:
        with service.transaction():
            service.write_profile_value(
                acme_admin, attribute=f"{crm_id}.nickname", layer="tenant-default",
                tenant_id=globex, value="sneaky",
            )  # fmt: skip
    except AuthorizationDenied as error:
        say(f"   acme admin writing globex's default: denied [{error.code}]")

    say("\n== 9. The audit trail (operator view)")
    page = service.read_audit(operator, limit=200)
    for record in page.records:
        where = record.tenant_id or "-"
        reason = f" ({record.reason_code})" if record.reason_code else ""
        say(
            f"   #{record.sequence:<3} {record.outcome.value:<7} {record.action:<28} "
            f"tenant={where:<7} actor={record.actor_kind}:{record.actor_id}{reason}"
        )

    say("\n== 10. The outbox, relayed to the event publisher")
    before = engine.store.outbox_stats()
    relay = Relay(
        engine.store,
        engine.publisher,
        settings=RelaySettings(batch_size=100, lanes=1, publish_timeout=10.0),
        clock=engine.service.clock,
        telemetry=engine.telemetry,
    )
    relayed = relay.drain().published
    after = engine.store.outbox_stats()
    say(
        f"   {before.pending} events pending -> {relayed} delivered through "
        f"{engine.publisher.name!r}; {after.pending} pending, {after.dead} dead-lettered"
    )
    delivered = getattr(engine.publisher, "delivered", None)
    if delivered:
        for event in delivered[:8]:
            say(f"   {event.event_type:<26} key={event.aggregate_id} id={event.id}")
        if len(delivered) > 8:
            say(f"   ... and {len(delivered) - 8} more")

    say("\n== 11. Diagnostics (counts only)")
    counts = service.diagnostics(operator).counts
    say("   " + ", ".join(f"{kind}={count}" for kind, count in counts.items()))


def _print_profile(say: Callable[[str], None], profile: EffectiveProfile, explain: bool) -> None:
    for name, resolved in sorted(profile.attributes.items()):
        say(
            f"   {name:<20} = {resolved.value!r:<16} from {resolved.layer.value:<19} "
            f"v{resolved.version} by {resolved.written_by}"
        )
        if explain:
            for shadow in resolved.shadowed:
                say(f"   {'':<20}   shadows {shadow.value!r} ({shadow.layer.value})")
