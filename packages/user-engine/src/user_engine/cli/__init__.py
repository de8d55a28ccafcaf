"""The ``user-engine`` command. Each subcommand lives in a module of this package.

Exit codes: 0 success; 1 the command ran and found a problem (not ready, a failed check);
2 usage or configuration error; 3 an engine error (store unreachable, adapter failure).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from user_engine import __version__
from user_engine.cli import audit, check, conformance, demo, migrate, plugins, relay
from user_engine.errors import ConfigurationError, PluginError, UserEngineError, ValidationError

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_ENGINE = 0, 1, 2, 3
_COMMANDS = (plugins, check, migrate, demo, relay, audit, conformance)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="user-engine",
        description="Headless multi-tenant user, account and profile engine.",
    )
    parser.add_argument("--version", action="version", version=f"user-engine {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
    except (ConfigurationError, PluginError, ValidationError) as error:
        print(f"user-engine: {error}", file=sys.stderr)
        return EXIT_USAGE
    except UserEngineError as error:
        print(f"user-engine: {error}", file=sys.stderr)
        return EXIT_ENGINE
    except KeyboardInterrupt:
        return 130
    return code
