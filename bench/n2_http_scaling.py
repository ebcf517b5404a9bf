"""N2: N1's server on 1, 2, 4, ... N shards; requests/s, and scaling against one shard.

``size`` is the measured wrk run in seconds, after one second of warm-up, as
in N1. The server is N1's shardio server (``serve_tcp(shards="all")`` and the
minimal handler, :mod:`bench._http_servers`), with the default balancing
(``SO_REUSEPORT``) and, for the largest shard count, also
``balance="least-connections"``.

The layout follows the machine, not the harness's ``--cpu``:

- N, the largest shard count, is half the CPUs (at least 2), so that wrk
  can have the other half; the shard counts measured are the powers of two
  below N, and N.
- A run with k shards pins them to CPUs 0..k-1.
- wrk runs on the CPUs after the first N, one thread per CPU, if there are
  any; on a machine with fewer than 2N CPUs -- a 2-CPU machine, where N is 2
  -- there are none left, and wrk runs on every CPU, competing with the
  shards. Every shard count of a run uses the same wrk placement.
- wrk keeps 64 connections per shard of the largest configuration open
  (``-c 64N``), the same for every shard count, so only the server differs.

The target is the ideal less 10%: N shards serve at least 0.9 N times what one
shard serves. With wrk competing for the shards' CPUs it cannot be met, and the
figure then says how much a second shard gains on a machine this small, not how
shardio scales.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ._spec import Benchmark, Figures, Implementation, Metric, Target
from ._wrk import requests_per_second

#: Connections per shard of the largest configuration, as in N1.
CONNECTIONS_PER_SHARD = 64


def _cpus() -> list[int]:
    """Every CPU of the machine (not this process's mask: the harness pins it)."""
    return list(range(os.cpu_count() or 1))


def _largest() -> int:
    return max(2, len(_cpus()) // 2)


def _shard_counts() -> list[int]:
    largest = _largest()
    counts = []
    count = 1
    while count < largest:
        counts.append(count)
        count *= 2
    return [*counts, largest]


def _wrk_cpus() -> list[int]:
    cpus = _cpus()
    return cpus[_largest() :] or cpus


def _runner(shards: int, balance: str) -> Callable[[int], Figures]:
    def run(seconds: int) -> Figures:
        wrk_cpus = _wrk_cpus()
        cpus = ",".join(map(str, _cpus()[:shards]))
        rate = requests_per_second(
            "shardio",
            seconds=seconds,
            connections=CONNECTIONS_PER_SHARD * _largest(),
            threads=len(wrk_cpus),
            wrk_cpus=wrk_cpus,
            server_options=["--shards", str(shards), "--cpus", cpus, "--balance", balance],
        )
        return {"rate": rate}

    run.__doc__ = f"N1's shardio server on {shards} shard(s), balance={balance!r}."
    return run


def _implementations() -> tuple[Implementation, ...]:
    wrk = ("wrk", "taskset")
    largest = _largest()
    return (
        *(
            Implementation(f"shardio-{count}", _runner(count, "reuseport"), requires_programs=wrk)
            for count in reversed(_shard_counts())
        ),
        Implementation(
            f"shardio-{largest}-least-connections",
            _runner(largest, "least-connections"),
            requires_programs=wrk,
        ),
    )


BENCHMARK = Benchmark(
    name="N2",
    title=f"N1's server on 1..{_largest()} shards, wrk -c{CONNECTIONS_PER_SHARD * _largest()}",
    metrics=(Metric("rate", "req/s"),),
    implementations=_implementations(),
    targets=(Target("shardio-1", 0.9 * _largest()),),
    size=5,
    quick_size=1,
    subject=f"shardio-{_largest()}",
)
