"""The conformance kit of user-engine: one suite per port, run against any adapter.

Import path frozen: ``from user_engine_conformance import StoreConformance`` works in every
release. Subclass a suite in a test module, set ``adapter_name``, and pytest runs each clause
of the port's contract against the adapter built through its ``user_engine`` entry point::

    from user_engine_conformance import StoreConformance

    class TestAcmeStore(StoreConformance):
        adapter_name = "acme"
"""

import pytest

# The suites' asserts live in these modules, not in the adapter's test module: without this
# pytest would report a bare AssertionError instead of the compared values. It must run
# before the modules are imported.
pytest.register_assert_rewrite(
    "user_engine_conformance._base",
    "user_engine_conformance._samples",
    "user_engine_conformance._threads",
    "user_engine_conformance._store_audit",
    "user_engine_conformance._store_diagnostics",
    "user_engine_conformance._store_isolation",
    "user_engine_conformance._store_lifecycle",
    "user_engine_conformance._store_model",
    "user_engine_conformance._store_outbox",
    "user_engine_conformance._store_queries",
    "user_engine_conformance._store_records",
    "user_engine_conformance._store_transactions",
    "user_engine_conformance.audit",
    "user_engine_conformance.events",
    "user_engine_conformance.observers",
    "user_engine_conformance.store",
)

from user_engine_conformance.audit import AuditSinkConformance  # noqa: E402
from user_engine_conformance.clauses import CLAUSES, Clause, clause  # noqa: E402
from user_engine_conformance.events import EventPublisherConformance  # noqa: E402
from user_engine_conformance.observers import (  # noqa: E402
    AuditObserver,
    EventObserver,
    ExportedAudit,
    ObservedEvent,
    PollingObserver,
    audit_record_fields,
    observed_event,
)
from user_engine_conformance.store import StoreConformance  # noqa: E402

__all__ = [
    "CLAUSES",
    "AuditObserver",
    "AuditSinkConformance",
    "Clause",
    "EventObserver",
    "EventPublisherConformance",
    "ExportedAudit",
    "ObservedEvent",
    "PollingObserver",
    "StoreConformance",
    "audit_record_fields",
    "clause",
    "observed_event",
]
