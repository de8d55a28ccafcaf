"""The clauses of the port contracts, by id, and the ``@clause`` marker that names them.

Every conformance test checks exactly one clause; a failure names the clause it broke. The ids
are the ones in brackets in ``user_engine.ports`` docstrings, plus finer ones for what those
docstrings promise without an id. Ids are stable: they are how adapter authors, the
``user-engine conformance`` verdict and ``docs/conformance.md`` talk about the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import pytest
from user_engine.ports import StoreCapability

__all__ = [
    "CLAUSES",
    "CLAUSE_ATTRIBUTE",
    "CLAUSE_MARKER",
    "Clause",
    "Port",
    "clause",
    "clause_of",
]

Port = Literal["store", "events", "audit"]

CLAUSE_MARKER: Final = "user_engine_clause"
"""Name of the pytest marker carrying a test's clause id."""

CLAUSE_ATTRIBUTE: Final = "__user_engine_clause__"
"""Attribute ``@clause`` sets on a test function (read by the override check)."""


@dataclass(frozen=True, slots=True)
class Clause:
    """One clause of a port contract.

    :param id: stable id, ``<port>.<topic>[.<detail>]``.
    :param port: the port the clause belongs to.
    :param summary: the guarantee, in one sentence.
    :param requires: store capabilities (``StoreCapability``) the clause needs; an adapter
        that does not declare them gets the clause skipped with a reason.
    :param hook: the test-class fixture the clause needs from the adapter's author (for
        observing a broker or inducing a failure); without it the clause is skipped with a
        reason naming the fixture.
    """

    id: str
    port: Port
    summary: str
    requires: frozenset[str] = frozenset()
    hook: str = ""


_CONCURRENT = frozenset({StoreCapability.CONCURRENT_WRITERS})
_RECORD_KINDS = (
    ("tenant", "a tenant"),
    ("user", "a user"),
    ("account", "an account"),
    ("tenant-account", "a tenant account, roles included"),
    ("membership", "a membership, deleted again"),
    ("identity", "an external identity link, unlinked again"),
    ("factor", "a factor (its secret reference only), removed again"),
    ("application", "an application"),
    ("binding", "an application binding, replaced and deleted"),
    ("catalog", "a catalog version with every attribute option set"),
    ("profile-value", "a profile value of every scalar type, type preserved"),
    ("audit-record", "an audit record, details included"),
    ("outbox-event", "an outbox event with a nested JSON payload"),
)

_ALL: tuple[Clause, ...] = (
    # -- store: lifecycle -------------------------------------------------------------------
    Clause(
        "store.readiness",
        "store",
        "After migrate, readiness is ready at the code's schema version with no problems.",
    ),
    Clause(
        "store.readiness.fail-closed",
        "store",
        "A closed store reports not ready with a problem code and never raises; close is "
        "idempotent.",
    ),
    Clause(
        "store.readiness.behind",
        "store",
        "A store whose schema was never migrated reports schema.behind until migrate.",
        hook="unmigrated_adapter_settings",
    ),
    Clause(
        "store.migrate.idempotent",
        "store",
        "migrate may run again: it returns the latest version and keeps the data.",
    ),
    Clause(
        "store.migrate.concurrent",
        "store",
        "migrate called from several threads at once succeeds everywhere.",
        requires=_CONCURRENT,
    ),
    # -- store: records ---------------------------------------------------------------------
    *(
        Clause(
            f"store.roundtrip.{kind}",
            "store",
            f"Writing and reading back {what} returns exactly what was written.",
        )
        for kind, what in _RECORD_KINDS
    ),
    Clause(
        "store.roundtrip.text",
        "store",
        "Unicode, quotes, backslashes, LIKE wildcards and injection strings round-trip "
        "exactly and match nothing else.",
    ),
    Clause(
        "store.update.optimistic",
        "store",
        "Versioned records update only at the expected version (next version stored); a "
        "stale version is ConflictError 'stale', a missing row NotFoundError.",
    ),
    Clause(
        "store.unique.keys",
        "store",
        "Inserting a key that exists is ConflictError with the documented code (handles "
        "compare case-insensitively); the first row stays.",
    ),
    Clause(
        "store.identity.unique",
        "store",
        "An (issuer, subject) is linked to at most one user: a second link is ConflictError "
        "'identity.already_linked'.",
    ),
    Clause(
        "store.identity.unique-concurrent",
        "store",
        "Writers racing to link one identity in separate transactions: exactly one wins.",
        requires=_CONCURRENT,
    ),
    Clause(
        "store.catalog.immutable",
        "store",
        "A published catalog version never changes: publishing it again is ConflictError "
        "'catalog.version_exists'.",
    ),
    Clause(
        "store.profile.optimistic",
        "store",
        "put/delete of a profile value honour expected_version (None, 0, n); a mismatch is "
        "ConflictError 'profile.stale' and changes nothing.",
    ),
    Clause(
        "store.profile.optimistic-concurrent",
        "store",
        "Writers racing with the same expected version: exactly one wins.",
        requires=_CONCURRENT,
    ),
    # -- store: queries the service uses ---------------------------------------------------
    Clause("store.query.list-tenants", "store", "list_tenants returns visible tenants by id."),
    Clause(
        "store.query.accounts-of-user",
        "store",
        "list_accounts returns the user's accounts by id, nobody else's.",
    ),
    Clause(
        "store.query.tenant-accounts-of-tenant",
        "store",
        "list_tenant_accounts_of_tenant returns that tenant's accounts by user id.",
    ),
    Clause(
        "store.query.tenant-accounts-of-user",
        "store",
        "list_tenant_accounts_of_user returns the user's tenant accounts by tenant id.",
    ),
    Clause(
        "store.query.memberships",
        "store",
        "list_memberships returns a tenant's memberships (optionally one user's) by (user, group).",
    ),
    Clause(
        "store.query.identities",
        "store",
        "get_identity finds a link by (issuer, subject); list_identities returns a user's "
        "links by (issuer, subject).",
    ),
    Clause(
        "store.query.factors-of-user", "store", "list_factors returns the user's factors by id."
    ),
    Clause(
        "store.query.list-applications", "store", "list_applications returns applications by id."
    ),
    Clause(
        "store.query.bindings-of-user",
        "store",
        "list_bindings_of_user returns the user's bindings by (application, tenant).",
    ),
    Clause(
        "store.query.catalogs",
        "store",
        "get_current_catalog is the highest version; list_current_catalogs has one per "
        "application by id; list_catalog_versions is oldest first.",
    ),
    Clause(
        "store.query.profile-values-for",
        "store",
        "profile_values_for returns the user's user-layer values, application defaults and, "
        "for a tenant, that tenant's user-in-tenant and default values: nothing else.",
    ),
    # -- store: transactions and isolation -------------------------------------------------
    Clause(
        "store.tx.atomic",
        "store",
        "A transaction commits records, audit and outbox together, or none of them.",
    ),
    Clause(
        "store.tx.nested-rollback",
        "store",
        "An exception leaving a savepoint undoes only the savepoint's writes; the outer "
        "transaction still commits.",
    ),
    Clause(
        "store.tx.savepoint-after-error",
        "store",
        "A store error raised inside a savepoint leaves the outer transaction usable.",
    ),
    Clause(
        "store.tx.savepoint-scope",
        "store",
        "savepoint(scope) runs under that scope and restores the outer scope on exit.",
    ),
    Clause(
        "store.tenant.isolation",
        "store",
        "Every tenant-scoped read returns only rows the scope allows; a write outside the "
        "scope raises NotFoundError (deletes report False) and changes nothing.",
    ),
    Clause(
        "store.tenant.platform-rows",
        "store",
        "Platform rows (users, accounts, identities, factors, applications, catalogs) are "
        "visible in every scope.",
    ),
    # -- store: audit log -------------------------------------------------------------------
    Clause(
        "store.audit.order",
        "store",
        "Audit records get strictly increasing sequences and read back in append order.",
    ),
    Clause(
        "store.audit.sequence-after-commit",
        "store",
        "After commit, audit_sequences gives each record appended in the transaction (in a "
        "savepoint too) the sequence it reads back with.",
    ),
    Clause(
        "store.audit.filter",
        "store",
        "read_audit honours every filter field; time bounds are since <= t < until.",
    ),
    Clause(
        "store.audit.paging",
        "store",
        "read_audit returns at most limit records; next_after continues, None at the end.",
    ),
    Clause(
        "store.audit.isolation",
        "store",
        "A platform scope reads every record; any other scope only its tenant's.",
    ),
    Clause(
        "store.audit.denial-survives-rollback",
        "store",
        "append_audit_autonomous commits at once, even inside a transaction of the same "
        "thread that then rolls back.",
    ),
    # -- store: outbox relay contract ------------------------------------------------------
    Clause(
        "store.outbox.append",
        "store",
        "append_event assigns increasing sequences; the event is pending with no attempts.",
    ),
    Clause(
        "store.outbox.claim",
        "store",
        "claim_events hands out available, unleased events oldest first, at most limit, "
        "under a lease ending at now + lease.",
    ),
    Clause(
        "store.outbox.ack",
        "store",
        "ack_events removes live claims for good and counts them; unknown claims count 0.",
    ),
    Clause(
        "store.outbox.release",
        "store",
        "release_events counts a failure, keeps the error text and makes the event "
        "available again after the policy's delay.",
    ),
    Clause(
        "store.outbox.backoff",
        "store",
        "Successive releases wait the policy's growing delays, capped at max_delay.",
    ),
    Clause(
        "store.outbox.dead-letter",
        "store",
        "Once the policy is exhausted the event is dead: never claimed, listed by "
        "dead_letters, not blocking later events of its aggregate.",
    ),
    Clause(
        "store.outbox.requeue",
        "store",
        "requeue_dead_letters makes dead events pending again with zero attempts.",
    ),
    Clause(
        "store.outbox.lease-expiry",
        "store",
        "An expired lease makes its events claimable again; ack and release with the old "
        "claim are then ignored.",
    ),
    Clause(
        "store.outbox.order-per-key",
        "store",
        "Claims hand out only a prefix of each aggregate's pending events, never past one "
        "that is leased or waiting for a retry.",
    ),
    Clause(
        "store.outbox.order-per-key-concurrent",
        "store",
        "Two claimers running at once never hold events of one aggregate together and "
        "deliver each aggregate in sequence order, each event once.",
        requires=_CONCURRENT,
    ),
    Clause(
        "store.outbox.inspect",
        "store",
        "pending_events and dead_letters list by sequence, honour limit and after_sequence.",
    ),
    Clause(
        "store.outbox.stats",
        "store",
        "outbox_stats counts pending, leased and dead events and the oldest pending time.",
    ),
    Clause(
        "store.outbox.wait",
        "store",
        "wait_for_events returns a bool within its timeout and never raises.",
    ),
    Clause(
        "store.outbox.wake",
        "store",
        "wait_for_events wakes early when an event is committed.",
        requires=frozenset({StoreCapability.WAKE_ON_EVENT}),
    ),
    # -- store: diagnostics -----------------------------------------------------------------
    Clause(
        "store.diagnostics.redacted",
        "store",
        "record_counts, outbox_stats and readiness carry counts and codes, never a value.",
    ),
    Clause(
        "store.errors.redacted", "store", "Errors raised by the store never contain a stored value."
    ),
    Clause(
        "store.model.equivalence",
        "store",
        "Random sequences of service operations give the same results, errors, audit and "
        "outbox as on the reference memory store.",
    ),
    # -- event publisher --------------------------------------------------------------------
    Clause(
        "events.report-per-event",
        "events",
        "publish returns one report per event, in order; a delivered report means the "
        "broker has the event.",
    ),
    Clause(
        "events.order-per-key",
        "events",
        "Events of one aggregate are delivered in the order given.",
        hook="published_events",
    ),
    Clause(
        "events.stable-id",
        "events",
        "The event id travels with the message, the same on every redelivery.",
        hook="published_events",
    ),
    Clause(
        "events.fields-mapped",
        "events",
        "Event type, aggregate key, tenant and payload arrive intact.",
        hook="published_events",
    ),
    Clause(
        "events.failure-surfaced",
        "events",
        "A failed delivery is a report with delivered False and an error text, never a success.",
        hook="failing_publisher",
    ),
    Clause(
        "events.pipelined",
        "events",
        "A publisher offering begin_publish keeps several batches on their way at once; each "
        "batch's reports() are what publish returns: one report per event, in order.",
    ),
    Clause("events.close-idempotent", "events", "close may be called twice."),
    # -- audit sink -------------------------------------------------------------------------
    Clause(
        "audit.fields-mapped",
        "audit",
        "Every field of every record is exported.",
        hook="exported_audit",
    ),
    Clause(
        "audit.no-secrets",
        "audit",
        "Nothing beyond the record's fields is exported.",
        hook="exported_audit",
    ),
    Clause(
        "audit.exported-counted",
        "audit",
        "export counts what it exported; flush reports everything exported.",
    ),
    Clause(
        "audit.failure-surfaced",
        "audit",
        "A failed export is counted as dropped with a reason (in that result, or in the next "
        "one for a sink that delivers in the background, whose `flush` then returns False); "
        "export does not raise.",
        hook="failing_audit_sink",
    ),
    Clause("audit.close-idempotent", "audit", "close may be called twice."),
)

CLAUSES: Final[Mapping[str, Clause]] = {c.id: c for c in _ALL}
"""Every clause by id, in documentation order."""

_Test = TypeVar("_Test", bound=Callable[..., object])


def clause(clause_id: str) -> Callable[[_Test], _Test]:
    """Mark a conformance test as the check of one clause.

    Sets the ``user_engine_clause`` marker (so reports and the verdict name the clause) and
    the ``__user_engine_clause__`` attribute (so an override can be recognised). Raises
    ``KeyError`` at import time for an unknown id, so a typo cannot hide a clause.
    """
    if clause_id not in CLAUSES:
        raise KeyError(f"unknown conformance clause id {clause_id!r}")
    marker = getattr(pytest.mark, CLAUSE_MARKER)(clause_id)

    def decorate(test: _Test) -> _Test:
        marked: _Test = marker(test)
        setattr(marked, CLAUSE_ATTRIBUTE, clause_id)
        return marked

    return decorate


def clause_of(item: pytest.Item) -> Clause | None:
    """The clause a collected test checks, or None for a test that is not a clause."""
    marker = item.get_closest_marker(CLAUSE_MARKER)
    if marker is None or not marker.args:
        return None
    return CLAUSES.get(str(marker.args[0]))
