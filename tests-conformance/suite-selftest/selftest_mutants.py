"""Deliberately broken adapters, each breaking one clause of a port contract.

Store mutants are thin subclasses of the reference ``MemoryStore``; publisher and sink mutants
subclass small faithful in-process adapters defined here (``MessagePublisher``,
``FieldSink``), which keep what the "broker" or "pipeline" received so the suites can observe
it. Every adapter is registered through a ``PluginHost``, as an installed plugin would be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from user_engine.domain import (
    AccessScope,
    AuditFilter,
    AuditPage,
    AuditRecord,
    CatalogVersion,
    Claim,
    ClaimedEvent,
    EventStatus,
    ExternalIdentity,
    OutboxEvent,
    ProfileKey,
    ProfileValue,
    RetryPolicy,
)
from user_engine.errors import ConfigurationError
from user_engine.hookspecs import Register, hookimpl
from user_engine.plugins import PluginHost
from user_engine.ports import DeliveryReport, ExportResult
from user_engine_conformance import ObservedEvent, audit_record_fields, observed_event
from user_engine_store_memory import MemoryStore
from user_engine_store_memory.store import _MemoryTransaction

# -- store mutants -------------------------------------------------------------------------


class _MutantStore(MemoryStore):
    """A memory store whose transactions are of ``transaction_class``."""

    transaction_class: type[_MemoryTransaction] = _MemoryTransaction

    @contextlib.contextmanager
    def transaction(self, scope: AccessScope) -> Iterator[_MemoryTransaction]:
        with self._lock:
            transaction = self.transaction_class(self, scope)
            try:
                yield transaction
            except BaseException:
                transaction.rollback_to(0)
                raise
            if transaction.appended_events:
                self._events_committed.notify_all()


class _OverwritingIdentities(_MemoryTransaction):
    def insert_identity(self, identity: ExternalIdentity) -> None:
        self._set(self._t.identities, (identity.issuer, identity.subject), identity)


class DuplicateIdentityLink(_MutantStore):
    """Links an (issuer, subject) again instead of refusing: the last writer wins."""

    transaction_class = _OverwritingIdentities


class _SavepointsThatKeepWrites(_MemoryTransaction):
    @contextlib.contextmanager
    def savepoint(self, scope: AccessScope | None = None) -> Iterator[None]:
        self._scopes.append(scope or self.scope)
        try:
            yield  # no undo mark: a failed savepoint keeps its writes
        finally:
            self._scopes.pop()


class LostNestedRollback(_MutantStore):
    """A savepoint left by an exception keeps its writes."""

    transaction_class = _SavepointsThatKeepWrites


class DenialDroppedOnRollback(MemoryStore):
    """Appends "autonomous" audit records inside the calling thread's open transaction."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name)
        self._open = threading.local()

    @contextlib.contextmanager
    def transaction(self, scope: AccessScope) -> Iterator[_MemoryTransaction]:
        with super().transaction(scope) as transaction:
            self._open.transaction = transaction
            try:
                yield transaction
            finally:
                self._open.transaction = None

    def append_audit_autonomous(self, record: AuditRecord) -> AuditRecord:
        transaction = getattr(self._open, "transaction", None)
        if transaction is not None:
            transaction.append_audit(record)
            sequence = transaction.audit_sequences()[record.id]
            return dataclasses.replace(record, sequence=sequence)
        return super().append_audit_autonomous(record)


class OutboxReorderedForOneKey(MemoryStore):
    """Hands out the events of one aggregate within a claim newest first."""

    def claim_events(self, *, limit: int, lease: timedelta, now: datetime) -> list[ClaimedEvent]:
        claimed = super().claim_events(limit=limit, lease=lease, now=now)
        by_key: dict[str, list[ClaimedEvent]] = {}
        for item in claimed:
            by_key.setdefault(item.event.aggregate_id, []).append(item)
        reversed_per_key = {key: list(reversed(items)) for key, items in by_key.items()}
        return [reversed_per_key[item.event.aggregate_id].pop(0) for item in claimed]


class LeaseNeverExpires(MemoryStore):
    """Treats every lease as live forever."""

    def claim_events(self, *, limit: int, lease: timedelta, now: datetime) -> list[ClaimedEvent]:
        with self._lock:
            for held in self._tables.leases.values():
                held.expires_at = datetime.max.replace(tzinfo=now.tzinfo)
            return super().claim_events(limit=limit, lease=lease, now=now)


class _LeakyBindings(_MemoryTransaction):
    def list_bindings_of_user(self, user_id: str) -> list[Any]:
        return [b for (_, _, u), b in sorted(self._t.bindings.items()) if u == user_id]


class TenantLeakInOneQuery(_MutantStore):
    """``list_bindings_of_user`` forgets the transaction's scope."""

    transaction_class = _LeakyBindings


class SecretInDiagnostics(MemoryStore):
    """``record_counts`` names each stored profile value in a key."""

    def record_counts(self) -> Mapping[str, int]:
        counts = dict(super().record_counts())
        for value in self._tables.profile.values():
            counts[f"profile_values[{value.value}]"] = 1
        return counts


class _IgnoringExpectedVersion(_MemoryTransaction):
    def put_profile_value(
        self, value: ProfileValue, *, expected_version: int | None
    ) -> ProfileValue:
        return super().put_profile_value(value, expected_version=None)

    def delete_profile_value(
        self, key: ProfileKey, *, expected_version: int | None
    ) -> ProfileValue | None:
        return super().delete_profile_value(key, expected_version=None)


class StaleProfileWriteAccepted(_MutantStore):
    """Writes profile values whatever version the writer expected."""

    transaction_class = _IgnoringExpectedVersion


class _OverwritingCatalogs(_MemoryTransaction):
    def insert_catalog_version(self, catalog: CatalogVersion) -> None:
        self._set(self._t.catalogs, (catalog.application_id, catalog.version), catalog)
        if catalog.version >= self._t.current_catalog.get(catalog.application_id, 0):
            self._set(self._t.current_catalog, catalog.application_id, catalog.version)


class CatalogVersionOverwritten(_MutantStore):
    """Publishing an existing catalog version replaces it."""

    transaction_class = _OverwritingCatalogs


class _EventsSurviveRollback(_MemoryTransaction):
    def append_event(self, event: OutboxEvent) -> None:
        super().append_event(event)
        self._undo.pop()  # forget how to undo it: a rollback keeps the event


class OutboxAppendSurvivesRollback(_MutantStore):
    """Outbox events stay when their transaction rolls back."""

    transaction_class = _EventsSurviveRollback


class BackoffNotGrowing(MemoryStore):
    """Waits the first retry's delay after every failure."""

    def release_events(
        self, claims: Sequence[Claim], *, error: str, now: datetime, policy: RetryPolicy
    ) -> int:
        flat = dataclasses.replace(policy, max_delay=policy.delay_after(1))
        return super().release_events(claims, error=error, now=now, policy=flat)


class DeadLetterBlocksItsAggregate(MemoryStore):
    """A dead-lettered event holds back every later event of its aggregate."""

    def claim_events(self, *, limit: int, lease: timedelta, now: datetime) -> list[ClaimedEvent]:
        with self._lock:
            dead = {
                e.aggregate_id for e in self._tables.outbox.values() if e.status is EventStatus.DEAD
            }
            claimed = super().claim_events(limit=limit, lease=lease, now=now)
            kept = [c for c in claimed if c.event.aggregate_id not in dead]
            for item in claimed:
                if item not in kept:
                    del self._tables.leases[item.event.id]
            return kept


class AuditFilterIgnoresOutcome(MemoryStore):
    """``read_audit`` drops the outcome from the filter."""

    def read_audit(self, audit_filter: AuditFilter, scope: AccessScope) -> AuditPage:
        return super().read_audit(dataclasses.replace(audit_filter, outcome=None), scope)


class StoreWithoutCapabilities(MemoryStore):
    """A correct store that declares no optional capability."""

    capabilities: frozenset[str] = frozenset()


class StoreNeedingARegion(MemoryStore):
    """A correct store whose factory requires the setting ``region``."""


STORES: dict[str, type[MemoryStore]] = {
    "reference-store": MemoryStore,
    "duplicate-identity-link": DuplicateIdentityLink,
    "lost-nested-rollback": LostNestedRollback,
    "denial-dropped-on-rollback": DenialDroppedOnRollback,
    "outbox-reordered-for-one-key": OutboxReorderedForOneKey,
    "lease-never-expires": LeaseNeverExpires,
    "tenant-leak-in-one-query": TenantLeakInOneQuery,
    "secret-in-diagnostics": SecretInDiagnostics,
    "stale-profile-write-accepted": StaleProfileWriteAccepted,
    "catalog-version-overwritten": CatalogVersionOverwritten,
    "outbox-append-survives-rollback": OutboxAppendSurvivesRollback,
    "backoff-not-growing": BackoffNotGrowing,
    "dead-letter-blocks-its-aggregate": DeadLetterBlocksItsAggregate,
    "audit-filter-ignores-outcome": AuditFilterIgnoresOutcome,
    "store-without-capabilities": StoreWithoutCapabilities,
    "store-needing-a-region": StoreNeedingARegion,
}


def _store_factory(name: str) -> Callable[[Mapping[str, Any]], MemoryStore]:
    def create(settings: Mapping[str, Any]) -> MemoryStore:
        allowed = {"migrate", "region"} if name == "store-needing-a-region" else {"migrate"}
        unknown = set(settings) - allowed
        if unknown:
            raise ConfigurationError(f"unknown settings: {', '.join(sorted(unknown))}")
        if name == "store-needing-a-region" and "region" not in settings:
            raise ConfigurationError("the setting 'region' is required (e.g. 'eu-west')")
        store = STORES[name](name)
        if settings.get("migrate", True):
            store.migrate()
        return store

    return create


# -- publisher mutants ---------------------------------------------------------------------


class MessagePublisher:
    """A faithful in-process publisher: ``broker`` is what a broker would hold. With
    ``broken`` set, every delivery fails."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.broker: list[ObservedEvent] = []
        self.broken = False

    def deliver(self, event: OutboxEvent) -> None:
        """Put one event on the broker."""
        self.broker.append(observed_event(event))

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        if self.broken:
            return [DeliveryReport(e.id, False, "broker unreachable") for e in events]
        for event in events:
            self.deliver(event)
        return [DeliveryReport(e.id, True) for e in events]

    def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> Delivered:
        """Deliver at once (an in-process broker answers immediately)."""
        return Delivered(self.publish(events, timeout=timeout))

    def close(self) -> None:
        """Nothing to release."""


class Delivered:
    """A ``PendingPublish`` whose verdicts are already in."""

    def __init__(self, reports: list[DeliveryReport]) -> None:
        self._reports = reports

    def reports(self) -> list[DeliveryReport]:
        return self._reports


class PublisherSwallowingFailure(MessagePublisher):
    """Reports success when the broker is down."""

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        super().publish(events, timeout=timeout)
        return [DeliveryReport(e.id, True) for e in events]


class PublisherLosingTheEventId(MessagePublisher):
    """Gives a redelivered event a fresh id."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._seen: set[str] = set()

    def deliver(self, event: OutboxEvent) -> None:
        if event.id in self._seen:
            event = dataclasses.replace(event, id=f"evt_{uuid.uuid4().hex}")
        self._seen.add(event.id)
        super().deliver(event)


class PublisherReorderingAKey(MessagePublisher):
    """Delivers each batch in reverse order (reports stay in order)."""

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        super().publish(list(reversed(events)), timeout=timeout)
        return [DeliveryReport(e.id, not self.broken, "" if not self.broken else "down")
                for e in events]  # fmt: skip


class PublisherDroppingAReport(MessagePublisher):
    """Returns no report for the last event of a batch."""

    def publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> list[DeliveryReport]:
        return super().publish(events, timeout=timeout)[:-1]


class PublisherPipeliningReportsOutOfOrder(MessagePublisher):
    """``begin_publish`` hands back the reports of a batch in reverse order."""

    def begin_publish(self, events: Sequence[OutboxEvent], *, timeout: float) -> Delivered:
        return Delivered(self.publish(events, timeout=timeout)[::-1])


PUBLISHERS: dict[str, type[MessagePublisher]] = {
    "reference-publisher": MessagePublisher,
    "publisher-swallowing-failure": PublisherSwallowingFailure,
    "publisher-losing-the-event-id": PublisherLosingTheEventId,
    "publisher-reordering-a-key": PublisherReorderingAKey,
    "publisher-dropping-a-report": PublisherDroppingAReport,
    "publisher-pipelining-reports-out-of-order": PublisherPipeliningReportsOutOfOrder,
}

# -- audit sink mutants --------------------------------------------------------------------


class FieldSink:
    """A faithful in-process audit sink: ``pipeline`` holds what a collector would receive.
    With ``broken`` set, every export fails."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pipeline: list[dict[str, object]] = []
        self.broken = False

    def encode(self, record: AuditRecord) -> dict[str, object]:
        """The exported form of one record."""
        return audit_record_fields(record)

    def export(self, records: Sequence[AuditRecord]) -> ExportResult:
        if self.broken:
            return ExportResult(0, len(records), ("collector unreachable",))
        self.pipeline.extend(self.encode(r) for r in records)
        return ExportResult(len(records))

    def flush(self, timeout: float) -> bool:
        return not self.broken

    def close(self) -> None:
        """Nothing to release."""


class SinkDroppingAField(FieldSink):
    """Leaves the request id out of the export."""

    def encode(self, record: AuditRecord) -> dict[str, object]:
        fields = super().encode(record)
        fields.pop("request_id")
        return fields


class SinkReportingAFailedExportAsExported(FieldSink):
    """Counts records as exported when the collector refused them."""

    def export(self, records: Sequence[AuditRecord]) -> ExportResult:
        super().export(records)
        return ExportResult(len(records))


class SinkExportingExtraData(FieldSink):
    """Adds the process environment's user to every export."""

    def encode(self, record: AuditRecord) -> dict[str, object]:
        return {**super().encode(record), "process.owner": "root", "debug.repr": repr(record)}


SINKS: dict[str, type[FieldSink]] = {
    "reference-sink": FieldSink,
    "sink-dropping-a-field": SinkDroppingAField,
    "sink-reporting-a-failed-export-as-exported": SinkReportingAFailedExportAsExported,
    "sink-exporting-extra-data": SinkExportingExtraData,
}


class _Plugin:
    """The mutants' plugin: registers every mutant under its name."""

    @hookimpl
    def user_engine_register_stores(self, register: Register) -> None:
        for name in STORES:
            register(name, _store_factory(name))

    @hookimpl
    def user_engine_register_event_publishers(self, register: Register) -> None:
        for name, cls in PUBLISHERS.items():
            register(name, lambda settings, cls=cls, name=name: cls(name))

    @hookimpl
    def user_engine_register_audit_sinks(self, register: Register) -> None:
        for name, cls in SINKS.items():
            register(name, lambda settings, cls=cls, name=name: cls(name))


def mutant_host() -> PluginHost:
    """A plugin host with only the mutants' plugin registered."""
    host = PluginHost(load_entry_points=False)
    host.register_module(_Plugin(), name="selftest-mutants", distribution="suite-selftest")
    return host
