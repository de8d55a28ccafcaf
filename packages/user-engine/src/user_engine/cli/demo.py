"""``user-engine demo``: the scripted tour on the configured store (default: memory)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time

from user_engine.cli._common import add_engine_options, config_from_args
from user_engine.config import EngineConfig, build_engine
from user_engine.demo import run_demo
from user_engine.errors import ConfigurationError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo", help="run a scripted tour of the whole engine and print it"
    )
    add_engine_options(parser)
    parser.add_argument(
        "--local-broker",
        action="store_true",
        help="with --events kafka: start a throwaway local Kafka-protocol broker for the demo",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo on a fresh engine."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        config = config_from_args(args)
        if args.local_broker:
            config = _with_local_broker(config, stack)
        engine = stack.enter_context(build_engine(config))
        print(
            f"user-engine demo: store={engine.config.store} events={engine.config.events} "
            f"audit={engine.config.audit}\n"
        )
        run_demo(engine, sys.stdout)
    print(f"\ndemo finished in {time.perf_counter() - started:.2f} s")
    return 0


def _with_local_broker(config: EngineConfig, stack: contextlib.ExitStack) -> EngineConfig:
    """Start the local broker (``user-engine-events-kafka[local-broker]``) for this run."""
    if config.events != "kafka":
        raise ConfigurationError(
            "--local-broker only makes sense with --events kafka", code="configuration.invalid"
        )
    try:
        from user_engine_events_kafka.local_broker import LocalBroker  # noqa: PLC0415
    except ImportError as error:
        raise ConfigurationError(
            "--local-broker needs: pip install 'user-engine[kafka]'",
            code="configuration.missing_dependency",
        ) from error
    broker = stack.enter_context(LocalBroker())
    print(f"started a local broker at {broker.bootstrap_servers} (stopped when the demo ends)")
    settings = dict(config.settings_for("kafka")) | {"bootstrap_servers": broker.bootstrap_servers}
    return dataclasses.replace(config, adapters=dict(config.adapters) | {"kafka": settings})
