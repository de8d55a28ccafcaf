"""Run every benchmark in this folder (``*_bench.py``), one process each, and summarise.

Each benchmark measures its own limit in the same run and prints ratios against it, plus
absolute figures for context; each writes JSON into ``benchmarks/results/``. Usage::

    ./dev bench                 # all benchmarks, full size
    ./dev bench --quick         # smaller sizes (what CI-sized machines finish in minutes)
    ./dev bench memory          # only benchmarks whose name contains "memory"
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run the selected benchmarks; exit non-zero if one of them failed to run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="substrings of benchmark names to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("*_bench.py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s.stem for o in args.only)]
    if not scripts:
        print("no benchmark matched", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"\n#### {script.stem}", flush=True)
        started = time.perf_counter()
        command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(script.stem)
        print(f"#### {script.stem} took {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
