"""``user-engine check``: readiness of the configured engine (for probes and operators)."""

from __future__ import annotations

import argparse

from user_engine.cli._common import add_engine_options, engine_from_args, print_json
from user_engine.relay import outbox_lag

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` command."""
    parser = subparsers.add_parser(
        "check", help="report readiness (schema version, outbox lag); exit 0 only when ready"
    )
    add_engine_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--migrate", action="store_true", help="migrate first (memory store: always needed)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print readiness and outbox figures; exit 0 ready, 1 not ready."""
    with engine_from_args(args) as engine:
        if args.migrate:
            engine.store.migrate()
        readiness = engine.service.readiness()
        outbox = (
            outbox_lag(engine.store, now=engine.service.clock.now()) if readiness.ready else None
        )
        report: dict[str, object] = {
            "ready": readiness.ready,
            "store": engine.config.store,
            "schema_version": readiness.schema_version,
            "expected_schema_version": readiness.expected_version,
            "problems": list(readiness.problems),
        }
        if outbox is not None:
            report["outbox"] = outbox.to_dict()
        if args.json:
            print_json(report)
        else:
            state = "ready" if readiness.ready else "NOT READY"
            print(
                f"{state}: store {engine.config.store}, schema {readiness.schema_version} "
                f"(code expects {readiness.expected_version})"
            )
            for problem in readiness.problems:
                print(f"  problem: {problem}")
            if outbox is not None:
                print(
                    f"  outbox: {outbox.pending} pending, {outbox.in_flight} in flight, "
                    f"{outbox.dead} dead-lettered, oldest pending "
                    f"{_age(outbox.oldest_pending_age_seconds)}"
                )
        return 0 if readiness.ready else 1


def _age(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds:.1f} s ago"
