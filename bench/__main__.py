"""``python -m bench [NAME ...]``: run benchmarks, print their tables, write results.

With no names, every benchmark runs. Each prints its table and writes
``bench/results/NAME.json``; at the end ``bench/results/summary.png`` is
redrawn from all the results files. The exit status is 1 if an
implementation failed (a target missed is a figure to read, not a failure).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import _registry
from ._chart import draw_summary
from ._harness import measure
from ._report import machine_info, table, write_json
from ._summary import summarise

DEFAULT_ROUNDS = 7
QUICK_ROUNDS = 3


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run shardio's benchmarks against their peers (see bench/README.md).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmark ids, e.g. S1 s2")
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"interleaved rounds per implementation (default {DEFAULT_ROUNDS}, "
        f"{QUICK_ROUNDS} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: each benchmark's small workload size and fewer rounds",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="CPU every measuring subprocess is pinned to (default 0; -1: do not pin)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.cpu >= 0 and args.cpu not in os.sched_getaffinity(0):
        parser.error(f"CPU {args.cpu} is not available; have {sorted(os.sched_getaffinity(0))}")
    known = _registry.names()
    unknown = [name for name in args.names if name.upper() not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; there are: {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks the command line names; return the exit status."""
    args = _parse(argv)
    if args.list:
        for name in _registry.names():
            print(f"{name}  {_registry.load(name).title}")
        return 0
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    cpu = None if args.cpu < 0 else args.cpu
    names = [name.upper() for name in args.names] or _registry.names()
    failed = False
    for name in dict.fromkeys(names):
        benchmark = _registry.load(name)
        distributions = ["shardio"] + [
            module for impl in benchmark.implementations for module in impl.requires_modules
        ]
        machine = machine_info(distributions)
        measurement = measure(
            benchmark,
            rounds=rounds,
            size=benchmark.quick_size if args.quick else benchmark.size,
            cpu=cpu,
            quick=args.quick,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        summary = summarise(measurement)
        path = write_json(summary, machine)
        print(f"\n{table(summary)}\n  raw figures: {path}\n", flush=True)
        failed |= any(run.status == "failed" for run in measurement.runs.values())
    chart = draw_summary()
    if chart is not None:
        print(f"chart: {chart}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
