"""One measurement, in a subprocess of its own: ``python -m bench._run_one S1 trio``.

The process pins itself to one CPU before it imports anything it measures,
runs the implementation once to warm up (imports, caches, the allocator's
arenas), collects garbage so that every peer starts the timed trial from the
same collector state, runs it again, and prints the figures of that second
trial as one JSON object on the last line of stdout. The parent,
:mod:`bench._harness`, starts a fresh one of these for every round of every
implementation, so nothing one peer does (an event loop policy, a grown heap,
a module import) can change another's figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os

from . import _registry


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, measure, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench._run_one", description=__doc__)
    parser.add_argument("benchmark", help="benchmark id, e.g. S1")
    parser.add_argument("implementation", help="implementation name, e.g. trio")
    parser.add_argument("--size", type=int, help="workload size (default: the benchmark's)")
    parser.add_argument("--cpu", type=int, help="pin to this CPU (default: do not pin)")
    args = parser.parse_args(argv)

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    benchmark = _registry.load(args.benchmark)
    run = benchmark.implementation(args.implementation).run
    size = benchmark.size if args.size is None else args.size

    run(size)
    gc.collect()
    figures = dict(run(size))

    missing = {m.name for m in benchmark.metrics} - figures.keys()
    if missing:
        raise RuntimeError(f"{args.implementation} did not report {sorted(missing)}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
