"""``user-engine conformance``: run the conformance suite against installed adapters.

The zero-line way in: no test module to write. It runs the same suites as a three-line test
module (``user_engine_conformance``), against the adapters registered under the names given,
and prints a verdict per contract clause. Exit code 0 only when every clause ran passed (or
was skipped for an undeclared capability, with its reason printed); 1 when a clause failed;
2 for a usage or configuration problem.

The kit (and pytest with it) is imported only when the command runs: the core never needs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tomllib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from user_engine.config import load_config
from user_engine.errors import ConfigurationError
from user_engine.plugins import PluginHost

if TYPE_CHECKING:
    from user_engine_conformance.runner import Verdict

__all__ = ["main", "parse_settings", "register", "run"]

EXIT_OK, EXIT_NOT_CONFORMANT, EXIT_USAGE = 0, 1, 2
_Kind = Literal["store", "events", "audit"]
_KINDS: tuple[_Kind, ...] = ("store", "events", "audit")
_MARKS = {"pass": "PASS ", "fail": "FAIL ", "skip": "SKIP ", "xfail": "XFAIL"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``conformance`` command."""
    parser = subparsers.add_parser(
        "conformance",
        help="run the conformance suite against installed adapters; exit 0 only if conformant",
        description="Run the user-engine conformance suite (pip install "
        "user-engine-conformance) against the adapters named, built through their "
        "'user_engine' entry points, and print a verdict per contract clause.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="NAME", help="store adapter to check")
    parser.add_argument("--events", metavar="NAME", help="event publisher to check")
    parser.add_argument("--audit", metavar="NAME", help="audit sink to check")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="[ADAPTER.]KEY=VALUE",
        help="an adapter setting; VALUE is read as a TOML value when it is one (true, 4, "
        "[1, 2]), else as text. Prefix ADAPTER. when more than one adapter is named. Settings "
        "also come from --config and USER_ENGINE_<ADAPTER>__<KEY>, as for the engine.",
    )
    parser.add_argument("--config", metavar="PATH", help="TOML file with adapter settings")
    parser.add_argument(
        "--clause",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only clauses matching this id pattern (e.g. 'store.outbox.*'); repeatable",
    )
    parser.add_argument(
        "--skip-clause",
        action="append",
        default=[],
        metavar="PATTERN",
        help="do not run clauses matching this id pattern; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.add_argument(
        "--pytest-output", action="store_true", help="also show pytest's own report"
    )


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_settings(
    pairs: Sequence[str], adapters: Sequence[str], base: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Settings per adapter: ``base`` (file and environment), then each ``--setting``.

    :raises ConfigurationError: for a malformed pair, or an unprefixed key when several
        adapters are named.
    """
    settings = {name: dict(base.get(name, {})) for name in adapters}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigurationError(
                f"--setting {pair!r} is not KEY=VALUE", code="configuration.invalid"
            )
        prefix, dot, rest = key.partition(".")
        if dot and prefix in settings:
            settings[prefix][rest] = _value(text)
        elif len(set(adapters)) == 1:
            settings[adapters[0]][key] = _value(text)
        else:
            raise ConfigurationError(
                f"--setting {key}: several adapters are named; write ADAPTER.{key}=VALUE with "
                f"one of {', '.join(sorted(set(adapters)))}",
                code="configuration.invalid",
            )
    return settings


def _print_verdict(verdict: Verdict, adapters: Mapping[_Kind, str], host: PluginHost) -> None:
    from user_engine_conformance.clauses import CLAUSES  # noqa: PLC0415 - optional kit

    order = {clause_id: n for n, clause_id in enumerate(CLAUSES)}
    for kind, name in adapters.items():
        info = host.adapter(kind, name)
        print(f"{kind} adapter {name!r} ({info.distribution} {info.version})")
        for clause in sorted(
            (c for c in verdict.clauses if c.port == kind), key=lambda c: order[c.clause_id]
        ):
            print(f"  {_MARKS[clause.outcome]} {clause.clause_id}")
            for line in clause.detail.splitlines() if clause.outcome != "pass" else ():
                print(f"         {line}")
    for problem in verdict.problems:
        print(f"problem: {problem}")
    counts = verdict.counts()
    summary = (
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped, "
        f"{counts['xfail']} xfailed"
    )
    print(f"{summary} -> {'CONFORMANT' if verdict.conformant else 'NOT CONFORMANT'}")


def run(args: argparse.Namespace) -> int:
    """Run the suites for the adapters named; print the verdict; 0 only if conformant."""
    adapters: dict[_Kind, str] = {k: getattr(args, k) for k in _KINDS if getattr(args, k)}
    if not adapters:
        print(
            "user-engine conformance: name at least one of --store, --events, --audit",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if importlib.util.find_spec("user_engine_conformance") is None:
        print(
            "user-engine conformance: the conformance kit is not installed; install it with "
            "`pip install user-engine-conformance` (or `pip install 'user-engine[conformance]'`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    host = PluginHost()
    for kind, name in adapters.items():
        host.adapter(kind, name)  # ConfigurationError naming the installed choices
    config = load_config(args.config)
    settings = parse_settings(
        args.setting,
        list(adapters.values()),
        {n: config.settings_for(n) for n in adapters.values()},
    )
    # Imported here, after argument checks: importing the kit imports pytest.
    from user_engine_conformance.runner import run_conformance  # noqa: PLC0415

    verdict = run_conformance(
        adapters,
        settings=settings,
        clauses=args.clause,
        exclude=args.skip_clause,
        show_pytest_output=args.pytest_output,
    )
    if not verdict.clauses and not verdict.problems:
        print("user-engine conformance: no clause matched --clause", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        json.dump(verdict.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_verdict(verdict, adapters, host)
    return EXIT_OK if verdict.conformant else EXIT_NOT_CONFORMANT


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``conformance`` on its own (``python -m user_engine.cli.conformance``)."""
    parser = argparse.ArgumentParser(prog="user-engine conformance")
    _add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ConfigurationError as error:
        print(f"user-engine conformance: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
