"""Run the benchmarks: every ``benchmarks/bench_<name>.py``, or the ones named.

Each module defines ``run(quick: bool = False) -> list[str]`` that measures side
by side in one run and returns its result lines (written to the README by hand,
with this command).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

import benchmarks


def main(argv: list[str] | None = None) -> int:
    available = sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(available)})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(available)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(available)}")
    results: list[str] = []
    for name in args.names or available:
        print(f"== {name} ==", flush=True)
        started = time.monotonic()
        lines = importlib.import_module(f"benchmarks.bench_{name}").run(quick=args.quick)
        results += [f"### {name}", "", *lines, "", f"({time.monotonic() - started:.0f} s)", ""]
    command = " ".join(["python -m benchmarks", *sys.argv[1:]])
    header = f"Command: `{command}` on {platform.machine()}, Python {platform.python_version()}, {_cores()} cores"
    report = "\n".join([header, "", *results])
    print("\n" + report)
    Path("benchmarks/results.md").write_text(report + "\n")
    return 0


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
