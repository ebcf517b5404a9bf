"""Where a profile's time goes, by layer of the network stacks: ``python -m bench._layers RAW``.

``RAW`` is a py-spy profile in its raw (collapsed stacks) format, for instance
of one P1 or P2 trial::

    .venv/bin/py-spy record -r 1000 -f raw -o /tmp/p1.txt -- \\
        .venv/bin/python -m bench._run_one P1 native --cpu 0
    .venv/bin/python -m bench._layers /tmp/p1.txt

Only the samples taken inside ``shardio.run`` (under a frame of
``shardio/_core/_run.py``) and outside the import machinery are counted, so
the interpreter's start and the imports (some happen in the warm-up trial's
run) are left out; what is left is the two trials of ``_run_one`` (warm-up
and measured), connection setup included. Each sample is charged to the
function at the top of its stack -- its *self* time, C calls (a checksum, a
``bytes.join``, a system call) included in the Python function that made
them -- and that function to a layer by its file: the native stack's ``wire`` formats (the checksum
module apart), ``phy`` (the simulated link and the fault injector), ``iface``,
``tcp``, the stack's pump (``_stack.py``), its socket layer (``_stream.py``,
``_listener.py``, ``_udp.py``) or the posix stack's (``_socket_stream.py``),
the scheduler (``shardio/_core``), and the benchmark's own code. py-spy does
not see into the kernel: a system call's time is its caller's, and the split
between user and system time comes from ``getrusage``, not from here.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

LAYERS = (
    ("checksum", re.compile(r"native/wire/checksum\.py")),
    ("wire parse/emit", re.compile(r"native/wire/")),
    ("phy: link, faults", re.compile(r"native/phy/")),
    ("iface", re.compile(r"native/iface/")),
    ("tcp connection", re.compile(r"native/tcp/")),
    ("stack pump", re.compile(r"native/_stack\.py")),
    ("socket layer", re.compile(r"native/_(stream|listener|udp)\.py|shardio_net/_socket_stream")),
    ("scheduler", re.compile(r"shardio/_core/")),
    ("benchmark", re.compile(r"bench/")),
)
"""(layer, pattern of the file paths that belong to it), the first match wins."""

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*):\d+\)$")
"""One frame of a raw py-spy stack: ``function (path:line)``."""

WITHIN = "(shardio/_core/_run.py:"
"""A frame every counted sample has above it: inside ``shardio.run``."""

IMPORTING = "(<frozen importlib._bootstrap>"
"""A frame that leaves a sample out: a module being imported."""


def layer_of(path: str) -> str:
    """The layer a source file belongs to; ``other`` for the rest (attrs, the stdlib)."""
    for name, pattern in LAYERS:
        if pattern.search(path):
            return name
    return "other"


def tally(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples counted, samples per layer, samples per function) of raw py-spy ``lines``."""
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if WITHIN not in stack or IMPORTING in stack:
            continue
        count = int(count_text)
        total += count
        top = stack.rsplit(";", 1)[-1]
        match = FRAME.match(top)
        function, path = (match["function"], match["file"]) if match else (top, "?")
        layers[layer_of(path)] += count
        functions[f"{function} ({path})"] += count
    return total, layers, functions


def main(argv: list[str] | None = None) -> None:
    """Print the share of each layer and of the top functions."""
    parser = argparse.ArgumentParser(prog="python -m bench._layers", description=__doc__)
    parser.add_argument("raw", help="a py-spy profile recorded with -f raw")
    parser.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    args = parser.parse_args(argv)
    with open(args.raw) as file:
        total, layers, functions = tally(file.readlines())
    if not total:
        raise SystemExit(f"{args.raw}: no samples inside shardio.run")
    print(f"{total:,} samples inside shardio.run\n\nby layer (self time):")
    for name, count in layers.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\nthe top {args.top} functions (self time):")
    for name, count in functions.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
