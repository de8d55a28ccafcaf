"""``user-engine demo``: the scripted tour on the configured store (default: memory)."""

from __future__ import annotations

import argparse
import sys
import time

from user_engine.cli._common import add_engine_options, engine_from_args
from user_engine.demo import run_demo

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo", help="run a scripted tour of the whole engine and print it"
    )
    add_engine_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo on a fresh engine."""
    started = time.perf_counter()
    with engine_from_args(args) as engine:
        print(
            f"user-engine demo: store={engine.config.store} events={engine.config.events} "
            f"audit={engine.config.audit}\n"
        )
        run_demo(engine, sys.stdout)
    print(f"\ndemo finished in {time.perf_counter() - started:.2f} s")
    return 0
