"""C2: ``run_on`` round trip of a no-op, shard 0 -> shard 1; p50 and p99 in microseconds.

``size`` is the number of timed round trips, made one after another; each
trial first makes ``size // 10`` untimed ones to warm up (on top of the
harness's own warm-up trial). Every round trip is timed on its own with
``time.perf_counter_ns`` by the caller, and the figures are the 50th and 99th
percentiles (nearest rank) of those latencies; lower is better.

The two ends sit on two CPUs: the CPU the harness pinned this process to
(the caller) and the next one (the callee), whatever the run.

- shardio: ``shardio.run(main, shards=2, cpus=[here, other])``; ``main`` on
  shard 0 awaits ``shardio.run_on(1, noop)``, with the default idle poll.
- pipe: ``multiprocessing.Pipe``; a child process pinned to the other CPU
  echoes every object it receives; the caller sends ``None`` and waits for it.
- queue: the same with two ``multiprocessing.Queue`` objects, one each way.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

from ._spec import Benchmark, Figures, Implementation, Metric, Target

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.queues import Queue

_STOP = "stop"
"""What the caller sends a peer's echo process to make it exit (the payload is ``None``)."""


def noop() -> None:
    """The function shard 0 calls on shard 1: module level, so it travels by reference."""


def _cpu_pair() -> tuple[int, int]:
    """The CPU this process runs on (its lowest allowed one) and the next CPU, wrapping."""
    here = min(os.sched_getaffinity(0))
    count = os.cpu_count() or 1
    return here, (here + 1) % count


def _warm_up_trips(trips: int) -> int:
    return max(trips // 10, 100)


def _figures(latencies_ns: list[int]) -> Figures:
    """p50 and p99 (nearest rank) of ``latencies_ns``, in microseconds."""
    ordered = sorted(latencies_ns)

    def rank(q: float) -> float:
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] / 1e3

    return {"p50": rank(0.50), "p99": rank(0.99)}


def shardio_round_trip(trips: int) -> Figures:
    """``await shardio.run_on(1, noop)`` from shard 0, one call at a time."""
    import shardio

    here, other = _cpu_pair()

    async def main() -> list[int]:
        for _ in range(_warm_up_trips(trips)):
            await shardio.run_on(1, noop)
        latencies: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(trips):
            start = clock()
            await shardio.run_on(1, noop)
            latencies.append(clock() - start)
        return latencies

    return _figures(shardio.run(main, shards=2, cpus=[here, other]))


def _pipe_echo(conn: Connection, cpu: int) -> None:
    """The pipe peer's child: send back whatever arrives until ``_STOP``."""
    os.sched_setaffinity(0, {cpu})
    conn.send("ready")
    recv, send = conn.recv, conn.send
    while (item := recv()) != _STOP:
        send(item)


def pipe_round_trip(trips: int) -> Figures:
    """``conn.send(None); conn.recv()`` against a pinned child process that echoes."""
    import multiprocessing

    here, other = _cpu_pair()
    os.sched_setaffinity(0, {here})
    context = multiprocessing.get_context("fork")
    conn, child_conn = context.Pipe()
    child = context.Process(target=_pipe_echo, args=(child_conn, other), daemon=True)
    child.start()
    try:
        if conn.recv() != "ready":
            raise RuntimeError("the echo process did not start")
        send, recv = conn.send, conn.recv
        for _ in range(_warm_up_trips(trips)):
            send(None)
            recv()
        latencies: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(trips):
            start = clock()
            send(None)
            recv()
            latencies.append(clock() - start)
        send(_STOP)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the echo process exited with status {child.exitcode}")
    return _figures(latencies)


def _queue_echo(inbox: Queue[Any], outbox: Queue[Any], cpu: int) -> None:
    """The queue peer's child: put back on ``outbox`` whatever arrives, until ``_STOP``."""
    os.sched_setaffinity(0, {cpu})
    outbox.put("ready")
    get, put = inbox.get, outbox.put
    while (item := get()) != _STOP:
        put(item)


def queue_round_trip(trips: int) -> Figures:
    """``requests.put(None); replies.get()`` against a pinned child process that echoes."""
    import multiprocessing

    here, other = _cpu_pair()
    os.sched_setaffinity(0, {here})
    context = multiprocessing.get_context("fork")
    requests: Queue[Any] = context.Queue()
    replies: Queue[Any] = context.Queue()
    child = context.Process(target=_queue_echo, args=(requests, replies, other), daemon=True)
    child.start()
    try:
        if replies.get(timeout=30) != "ready":
            raise RuntimeError("the echo process did not start")
        put, get = requests.put, replies.get
        for _ in range(_warm_up_trips(trips)):
            put(None)
            get()
        latencies: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(trips):
            start = clock()
            put(None)
            get()
            latencies.append(clock() - start)
        put(_STOP)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the echo process exited with status {child.exitcode}")
    return _figures(latencies)


BENCHMARK = Benchmark(
    name="C2",
    title="run_on round trip of a no-op, shard 0 -> shard 1",
    metrics=(Metric("p50", "us", better="lower"), Metric("p99", "us", better="lower")),
    implementations=(
        Implementation("shardio", shardio_round_trip),
        Implementation("pipe", pipe_round_trip),
        Implementation("queue", queue_round_trip),
    ),
    targets=(Target("pipe", 4.0, metric="p50"),),  # p50 <= 0.25x Pipe: pipe/shardio >= 4
    size=20_000,
    quick_size=2_000,
)
