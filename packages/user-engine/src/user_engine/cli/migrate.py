"""``user-engine migrate``: bring the configured store's schema to the latest version."""

from __future__ import annotations

import argparse

from user_engine.cli._common import add_engine_options, engine_from_args

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``migrate`` command."""
    parser = subparsers.add_parser("migrate", help="apply pending schema migrations")
    add_engine_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Migrate and report the version reached."""
    with engine_from_args(args) as engine:
        version = engine.store.migrate()
        readiness = engine.store.readiness()
        print(f"store {engine.config.store} at schema version {version}")
        for problem in readiness.problems:
            print(f"  problem: {problem}")
        return 0 if readiness.ready else 1
