"""``user-engine audit export``: replay audit records from the store through the audit sink.

The store's audit log is the source of truth; exporting to the sink is best-effort. After an
outage of the export pipeline, this command sends the records of a time window again, in
sequence order, so the external trail can be made whole. Records keep their own time and id
(a receiver can drop duplicates by the record id), so re-exporting a window that was partly
delivered is safe.

Each page is exported and then flushed before the next is read: that keeps a sink with a
bounded queue from overflowing (back-pressure), and makes the final count meaningful.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from user_engine.cli._common import add_engine_options, engine_from_args
from user_engine.domain import AccessScope, AuditFilter
from user_engine.domain.limits import MAX_PAGE_SIZE, check_slug
from user_engine.errors import ValidationError
from user_engine.ports import AuditSink, UserEngineStore

__all__ = ["ReexportSummary", "parse_time", "reexport_audit", "register", "run"]

_DEFAULT_BATCH = 500
_DEFAULT_FLUSH_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ReexportSummary:
    """What a re-export did: records read from the store, accepted and dropped by the sink,
    whether every flush confirmed delivery, and the last sequence read (0: none)."""

    read: int
    exported: int
    dropped: int
    flushed: bool
    last_sequence: int
    errors: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True if every record read was exported and confirmed delivered."""
        return self.dropped == 0 and self.flushed and self.exported == self.read


def parse_time(text: object, option: str) -> datetime:
    """An ISO 8601 time (``2026-01-31``, ``2026-01-31T12:00:00+02:00``, ``...Z``); a time
    without a zone is UTC. ``ValidationError`` naming the option otherwise."""
    if not isinstance(text, str) or not 0 < len(text) <= 64:
        raise ValidationError(
            f"{option} must be an ISO 8601 time such as 2026-01-31T12:00:00Z",
            code="validation.time",
            details={"field": option},
        )
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"{option} must be an ISO 8601 time such as 2026-01-31T12:00:00Z",
            code="validation.time",
            details={"field": option},
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _positive_number(text: object, option: str, *, integer: bool, high: float) -> float:
    try:
        value = int(str(text)) if integer else float(str(text))
    except ValueError:
        value = -1
    if not math.isfinite(value) or not 0 < value <= high:
        kind = "a whole number" if integer else "a number"
        raise ValidationError(
            f"{option} must be {kind} above 0 and at most {high:g}",
            code="validation.range",
            details={"field": option},
        )
    return value


def reexport_audit(
    store: UserEngineStore,
    sink: AuditSink,
    *,
    since: datetime,
    until: datetime | None = None,
    tenant_id: str | None = None,
    batch_size: int = _DEFAULT_BATCH,
    flush_timeout: float = _DEFAULT_FLUSH_TIMEOUT,
    progress: Callable[[ReexportSummary], None] | None = None,
) -> ReexportSummary:
    """Export every stored audit record with ``since <= occurred_at < until`` (of one tenant
    if given) through ``sink``, page by page in sequence order; call ``progress`` after each.

    Raises ``ValidationError`` for a bad window, tenant or batch size (nothing is exported).
    """
    if not isinstance(since, datetime) or (until is not None and not isinstance(until, datetime)):
        raise ValidationError("since and until must be datetimes", code="validation.time")
    if since.tzinfo is None or (until is not None and until.tzinfo is None):
        raise ValidationError("since and until must carry a time zone", code="validation.time")
    if until is not None and until <= since:
        raise ValidationError(
            "--until must be later than --since", code="validation.time", details={"field": "until"}
        )
    if tenant_id is not None:
        tenant_id = check_slug(tenant_id, "tenant")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValidationError("batch size must be a whole number", code="validation.type")
    batch = int(_positive_number(batch_size, "batch size", integer=True, high=MAX_PAGE_SIZE))
    read = exported = dropped = 0
    flushed = True
    errors: list[str] = []
    after = 0
    while True:
        page = store.read_audit(
            AuditFilter(
                tenant_id=tenant_id, since=since, until=until, after_sequence=after, limit=batch
            ),
            AccessScope.all_tenants(),
        )
        if page.records:
            result = sink.export(page.records)
            read += len(page.records)
            exported += result.exported
            dropped += result.dropped
            errors.extend(result.errors)
            # Flushing each page is the back-pressure: a bounded queue never overflows.
            flushed = sink.flush(flush_timeout) and flushed
            after = page.records[-1].sequence
            if progress is not None:
                progress(ReexportSummary(read, exported, dropped, flushed, after, tuple(errors)))
        if page.next_after is None or not page.records:
            break
        after = page.next_after
    # A sink that learns of failures in the background reports them in its next result; an
    # empty export collects them (and costs nothing for a sink that does not).
    late = sink.export([])
    dropped += late.dropped
    errors.extend(late.errors)
    return ReexportSummary(read, exported, dropped, flushed, after, tuple(dict.fromkeys(errors)))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` command (``audit export``)."""
    parser = subparsers.add_parser("audit", help="audit trail tools")
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    actions.required = True
    export = actions.add_parser(
        "export",
        help="re-export stored audit records through the configured audit sink",
        description=(
            "Replay audit records from the store (the source of truth) through the configured "
            "audit sink, in sequence order, to fill a gap left by an export outage. Records "
            "keep their own id and time, so a receiver can drop duplicates."
        ),
    )
    add_engine_options(export)
    export.add_argument(
        "--since", required=True, metavar="TIME", help="ISO 8601 start, inclusive (UTC if no zone)"
    )
    export.add_argument("--until", metavar="TIME", help="ISO 8601 end, exclusive (default: now)")
    export.add_argument("--tenant", metavar="TENANT", help="only this tenant's records")
    export.add_argument(
        "--batch-size",
        default=str(_DEFAULT_BATCH),
        metavar="N",
        help=f"records per page, 1-{MAX_PAGE_SIZE} (default {_DEFAULT_BATCH})",
    )
    export.add_argument(
        "--flush-timeout",
        default=str(_DEFAULT_FLUSH_TIMEOUT),
        metavar="SECONDS",
        help=f"how long to wait for each page's delivery (default {_DEFAULT_FLUSH_TIMEOUT:g})",
    )
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Re-export and print progress and the final count; exit 0 only if every record was
    exported and confirmed, 1 otherwise (2 for bad arguments, raised as ``ValidationError``)."""
    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until") if args.until is not None else None
    tenant = check_slug(args.tenant, "--tenant") if args.tenant is not None else None
    batch = int(_positive_number(args.batch_size, "--batch-size", integer=True, high=MAX_PAGE_SIZE))
    flush_timeout = _positive_number(
        args.flush_timeout, "--flush-timeout", integer=False, high=3600
    )
    if until is not None and until <= since:
        raise ValidationError(
            "--until must be later than --since", code="validation.time", details={"field": "until"}
        )

    def report(summary: ReexportSummary) -> None:
        print(
            f"audit export: {summary.read} read, {summary.exported} exported, "
            f"{summary.dropped} dropped (up to sequence {summary.last_sequence})",
            flush=True,
        )

    with engine_from_args(args) as engine:
        summary = reexport_audit(
            engine.store,
            engine.audit_sink,
            since=since,
            until=until,
            tenant_id=tenant,
            batch_size=batch,
            flush_timeout=flush_timeout,
            progress=report,
        )
    window = f"{since.isoformat()} to {until.isoformat() if until else 'now'}"
    tenant_text = f" of tenant {tenant}" if tenant else ""
    verdict = "complete" if summary.complete else "INCOMPLETE"
    print(
        f"audit export {verdict}: {summary.exported} of {summary.read} record(s){tenant_text} "
        f"from {window} exported to {engine.config.audit}, {summary.dropped} dropped, "
        f"delivery {'confirmed' if summary.flushed else 'not confirmed'}"
    )
    for error in summary.errors:
        print(f"  dropped: {error}")
    return 0 if summary.complete else 1
