"""``AuditSinkConformance``: the suite every ``AuditSink`` adapter runs.

Clauses that look at what the pipeline received need the ``exported_audit`` fixture (an
``AuditObserver``); ``audit.failure-surfaced`` needs ``failing_audit_sink``. Without them those
clauses are skipped with a reason naming the fixture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from user_engine.domain import AuditOutcome, AuditRecord
from user_engine.plugins import AdapterKind, PluginHost
from user_engine.ports import AuditSink

from user_engine_conformance._base import ConformanceBase
from user_engine_conformance._samples import T0, Sample
from user_engine_conformance.clauses import clause
from user_engine_conformance.observers import (
    AuditObserver,
    ExportedAudit,
    audit_record_fields,
    comparable,
)

__all__ = ["AuditSinkConformance"]


def _records(sample: Sample) -> list[AuditRecord]:
    """Records that use every field: with and without tenant, every outcome, details."""
    return [
        sample.audit_record(
            tenant_id=sample.tenant_id(),
            outcome=AuditOutcome.SUCCESS,
            details={"attribute": "app.nickname", "layer": "user"},
        ),
        sample.audit_record(
            tenant_id=None,
            outcome=AuditOutcome.DENIED,
            occurred_at=T0 + timedelta(seconds=1, microseconds=7),
        ),
        sample.audit_record(
            tenant_id=sample.tenant_id("b"),
            outcome=AuditOutcome.FAILED,
            details={"code": "identity.already_linked"},
        ),
    ]


def _stored(records: list[AuditRecord], first_sequence: int = 41) -> list[AuditRecord]:
    """As the service hands them over: durable, with sequences."""
    return [dataclasses.replace(r, sequence=first_sequence + n) for n, r in enumerate(records)]


class AuditSinkConformance(ConformanceBase):
    """Every clause of the ``AuditSink`` contract, as pytest tests.

    Set ``adapter_name``; override ``adapter_settings`` for endpoints, ``exported_audit`` to
    let the suite see what the pipeline received, and ``failing_audit_sink`` to give it a
    sink whose exports fail.
    """

    adapter_kind: ClassVar[AdapterKind] = "audit"

    export_timeout: ClassVar[float] = 10.0
    """Seconds ``flush`` may take, and observers may wait for exported records."""

    exported_extra_fields: ClassVar[frozenset[str]] = frozenset()
    """Names the export carries besides the record's fields (an event name, a severity);
    they must be constants of the mapping, never data. Anything else fails audit.no-secrets."""

    def build_audit_sink(self, host: PluginHost, settings: Mapping[str, Any]) -> AuditSink:
        """Build the adapter through its registered factory, failing loudly with guidance."""
        sink: AuditSink = self._build(host, settings, host.create_audit_sink)
        return sink

    @pytest.fixture
    def audit_sink(
        self, plugin_host: PluginHost, adapter_settings: Mapping[str, Any]
    ) -> Iterator[AuditSink]:
        """A sink built by the adapter's factory from ``adapter_settings``."""
        sink = self.build_audit_sink(plugin_host, adapter_settings)
        try:
            yield sink
        finally:
            sink.close()

    @pytest.fixture
    def exported_audit(
        self, request: pytest.FixtureRequest, audit_sink: AuditSink
    ) -> AuditObserver:
        """Override: an ``AuditObserver`` of what ``audit_sink`` exported (an in-memory
        exporter, a collector ...). ``PollingObserver`` and ``audit_record_fields`` help."""
        self._hook_missing(
            request, "exported_audit", "return an AuditObserver of what the pipeline received"
        )

    @pytest.fixture
    def failing_audit_sink(
        self, request: pytest.FixtureRequest, plugin_host: PluginHost
    ) -> AuditSink:
        """Override: a sink of this adapter whose exports fail (an unreachable collector, a
        rejecting exporter ...). The suite closes it."""
        self._hook_missing(request, "failing_audit_sink", "return a sink whose exports fail")

    # -- clauses ----------------------------------------------------------------------------
    def _received(
        self, observer: AuditObserver, records: list[AuditRecord]
    ) -> dict[str, ExportedAudit]:
        ids = {r.id for r in records}
        seen = observer.collect(lambda e: e.get("id") in ids, len(records), self.export_timeout)
        return {str(e["id"]): e for e in seen}

    @clause("audit.fields-mapped")
    def test_every_field_of_every_record_is_exported(
        self, audit_sink: AuditSink, exported_audit: AuditObserver
    ) -> None:
        records = _stored(_records(Sample()))
        audit_sink.export(records)
        audit_sink.flush(self.export_timeout)

        received = self._received(exported_audit, records)

        for record in records:
            assert record.id in received, f"record {record.id} was not exported"
            exported = received[record.id]
            for name, value in audit_record_fields(record).items():
                if value in (None, ""):
                    # An empty field may be left out, or exported empty.
                    assert exported.get(name) in (None, ""), f"{name} should be empty"
                    continue
                assert name in exported, f"field {name} of {record.id} was not exported"
                assert comparable(exported[name]) == comparable(value), (
                    f"field {name} of {record.id} was exported as {exported[name]!r}, not {value!r}"
                )

    @clause("audit.no-secrets")
    def test_nothing_beyond_the_record_fields_is_exported(
        self, audit_sink: AuditSink, exported_audit: AuditObserver
    ) -> None:
        records = _stored(_records(Sample()))
        audit_sink.export(records)
        audit_sink.flush(self.export_timeout)

        received = self._received(exported_audit, records)

        for record in records:
            allowed = set(audit_record_fields(record)) | set(self.exported_extra_fields)
            extra = sorted(set(received.get(record.id, {})) - allowed)
            assert extra == [], (
                f"the export of {record.id} carries {extra}, which are not fields of the "
                "record (declare constant additions in exported_extra_fields)"
            )

    @clause("audit.exported-counted")
    def test_export_counts_what_it_exported_and_flush_completes(
        self, audit_sink: AuditSink
    ) -> None:
        records = _stored(_records(Sample()))

        result = audit_sink.export(records)

        assert (result.exported, result.dropped, result.errors) == (len(records), 0, ())
        assert audit_sink.flush(self.export_timeout) is True
        assert audit_sink.export([]).exported == 0

    @clause("audit.failure-surfaced")
    def test_a_failed_export_is_counted_as_dropped_with_a_reason(
        self, failing_audit_sink: AuditSink
    ) -> None:
        records = _stored(_records(Sample()))
        try:
            result = failing_audit_sink.export(records)
            flushed = failing_audit_sink.flush(self.export_timeout)
            # A sink that delivers in the background learns of the failure after export()
            # returned: the contract lets it report the drop in the next result instead.
            later = failing_audit_sink.export([])
        finally:
            failing_audit_sink.close()

        dropped = result.dropped + later.dropped
        assert dropped == len(records), (
            f"{len(records)} records failed to export but {dropped} were reported dropped"
        )
        assert result.errors or later.errors, "a drop comes with a reason"
        if result.exported:
            assert not flushed, "records accepted then lost, yet flush() reported success"

    @clause("audit.close-idempotent")
    def test_closing_twice_is_harmless(self, audit_sink: AuditSink) -> None:
        audit_sink.close()
        audit_sink.close()
