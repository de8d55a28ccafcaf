"""Options every engine-using subcommand shares, and turning them into an engine."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from user_engine.config import Engine, EngineConfig, build_engine, load_config

__all__ = ["add_engine_options", "config_from_args", "engine_from_args", "print_json"]


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--store``, ``--events``, ``--audit``, ``--telemetry``."""
    group = parser.add_argument_group("engine")
    group.add_argument("--config", metavar="PATH", help="TOML configuration file")
    group.add_argument("--store", metavar="NAME", help="store adapter (default: memory)")
    group.add_argument("--events", metavar="NAME", help="event publisher (default: inprocess)")
    group.add_argument("--audit", metavar="NAME", help="audit sink (default: inprocess)")
    group.add_argument("--telemetry", metavar="NAME", help="telemetry adapter (default: none)")


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    """The configuration: file and environment, then the command-line choices."""
    return load_config(getattr(args, "config", None)).with_overrides(
        store=getattr(args, "store", None),
        events=getattr(args, "events", None),
        audit=getattr(args, "audit", None),
        telemetry=getattr(args, "telemetry", None),
    )


def engine_from_args(args: argparse.Namespace) -> Engine:
    """Build the engine the arguments describe."""
    return build_engine(config_from_args(args))


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (dates and sets as strings/lists)."""
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=_default)
    sys.stdout.write("\n")


def _default(value: object) -> object:
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str)
    return str(value)
