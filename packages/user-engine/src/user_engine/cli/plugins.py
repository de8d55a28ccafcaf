"""``user-engine plugins``: installed plugins and the adapters they register."""

from __future__ import annotations

import argparse

from user_engine.cli._common import print_json
from user_engine.plugins import AdapterKind, PluginHost

__all__ = ["register", "run"]

_KINDS: tuple[AdapterKind, ...] = ("store", "events", "audit", "telemetry")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plugins`` command."""
    parser = subparsers.add_parser(
        "plugins", help="list plugins and adapters (by kind, distribution, version)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--disable", action="append", default=[], metavar="NAME", help="do not load a plugin"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List adapters by kind; exit 1 if a plugin failed to load or names clash."""
    host = PluginHost(disabled=args.disable)
    adapters = {kind: host.adapters(kind) for kind in _KINDS}
    if args.json:
        print_json(
            {
                "adapters": {
                    kind: [
                        {"name": a.name, "distribution": a.distribution, "version": a.version}
                        for a in found
                    ]
                    for kind, found in adapters.items()
                },
                "plugins": [
                    {"name": p.name, "distribution": p.distribution, "version": p.version}
                    for p in host.plugins
                ],
                "failures": [
                    {"name": f.name, "distribution": f.distribution, "error": f.error}
                    for f in host.failures
                ],
                "disabled": sorted(host.disabled),
            }
        )
    else:
        for kind, found in adapters.items():
            print(f"{kind}:")
            for adapter in found or []:
                print(f"  {adapter.name:<12} {adapter.distribution} {adapter.version}")
            if not found:
                print("  (none)")
        for failure in host.failures:
            print(f"failed to load plugin {failure.name} ({failure.distribution}): {failure.error}")
        for name in sorted(host.disabled):
            print(f"disabled: {name}")
    return 1 if host.failures else 0
