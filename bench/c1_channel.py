"""C1: one-way channel, shard 0 -> shard 1, 500k small tuples; the figure is messages/s.

Every implementation moves ``size`` tuples ``(i, "payload", 3.5)``, one at a
time, from a producer to a consumer that counts them and checks the count.
The timed span runs from the first send to the moment the producer side
knows the consumer has received everything; starting the processes or tasks
is not counted.

The cross-process ones use two CPUs: the one the harness pinned this process
to (the producer) and the next one (the consumer), whatever the run.

- shardio: ``send, recv = shardio.open_channel(1000)``; the consumer runs on
  shard 1 as a child of shard 0's nursery (``start_soon(consume, recv,
  shard=1)``) and does ``async for item in recv``; shard 0 awaits
  ``send.send(item)`` for every item, then ``send.aclose()``. The span ends
  at the nursery's exit, i.e. when shard 0 has learnt the consumer finished.
- queue, pipe, faster-fifo: the producer puts every item (``Queue.put``,
  ``Connection.send``, ``faster_fifo.Queue.put``) and then a ``None``
  sentinel; a child process pinned to the other CPU reads until the sentinel
  (``get``, ``recv``, and faster-fifo's batched ``get_many``, its idiomatic
  read) and sends its count back on a pipe, which ends the span. Each in its
  default configuration (unbounded ``multiprocessing.Queue``, the OS pipe
  buffer, faster-fifo's default 1 MB buffer).
- trio, asyncio: in one process, on one CPU: a producer and a consumer task
  in one nursery / ``TaskGroup`` over a buffer of 1000 like shardio's
  (``trio.open_memory_channel(1000)``; ``asyncio.Queue(maxsize=1000)`` with a
  ``None`` sentinel). The span is the nursery / ``TaskGroup`` block.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._spec import Benchmark, Figures, Implementation, Metric, Target

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import shardio.abc

BUFFER = 1000
"""The channel buffer of shardio, trio and asyncio, in messages."""


def _cpu_pair() -> tuple[int, int]:
    """The CPU this process runs on (its lowest allowed one) and the next CPU, wrapping."""
    here = min(os.sched_getaffinity(0))
    count = os.cpu_count() or 1
    return here, (here + 1) % count


def _check(count: int, expected: int) -> int:
    if count != expected:
        raise RuntimeError(f"the consumer received {count:,} messages, not {expected:,}")
    return count


# -- shardio -----------------------------------------------------------------------


async def _shardio_consume(recv: shardio.abc.ReceiveChannel[Any], expected: int) -> int:
    """Shard 1's consumer: module level, so it travels to shard 1 by reference."""
    count = 0
    async for _ in recv:
        count += 1
    return _check(count, expected)


def shardio_channel(messages: int) -> Figures:
    """``shardio.open_channel(1000)``, consumer on shard 1 started from shard 0's nursery."""
    import shardio

    here, other = _cpu_pair()

    async def main() -> float:
        send, recv = shardio.open_channel(BUFFER)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(_shardio_consume, recv, messages, shard=1)
            start = time.perf_counter()
            for i in range(messages):
                await send.send((i, "payload", 3.5))
            await send.aclose()
        return time.perf_counter() - start

    return {"rate": messages / shardio.run(main, shards=2, cpus=[here, other])}


# -- the cross-process peers ---------------------------------------------------------


def _across_processes(
    messages: int,
    make: Callable[[Any], tuple[Callable[[Any], None], Callable[[Connection], None]]],
) -> Figures:
    """Run a producer here and a consumer in a child process pinned to the other CPU.

    ``make(context)`` returns the producer's ``put`` and the child's body,
    ``consume(report)``, which must read until the ``None`` sentinel and send
    its count on ``report``.
    """
    import multiprocessing

    here, other = _cpu_pair()
    os.sched_setaffinity(0, {here})
    context = multiprocessing.get_context("fork")
    report, child_report = context.Pipe()
    put, consume = make(context)
    child = context.Process(
        target=_child, args=(consume, child_report, other), daemon=True, name="consumer"
    )
    child.start()
    try:
        if not report.poll(30) or report.recv() != "ready":
            raise RuntimeError("the consumer process did not start")
        start = time.perf_counter()
        for i in range(messages):
            put((i, "payload", 3.5))
        put(None)
        count = report.recv()
        elapsed = time.perf_counter() - start
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()
    _check(count, messages)
    if child.exitcode != 0:
        raise RuntimeError(f"the consumer process exited with status {child.exitcode}")
    return {"rate": messages / elapsed}


def _child(consume: Callable[[Connection], None], report: Connection, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    report.send("ready")
    consume(report)


def queue_channel(messages: int) -> Figures:
    """``multiprocessing.Queue``: ``put`` here, ``get`` in the consumer process."""

    def make(context: Any) -> tuple[Callable[[Any], None], Callable[[Connection], None]]:
        queue = context.Queue()

        def consume(report: Connection) -> None:
            get = queue.get
            count = 0
            while get() is not None:
                count += 1
            report.send(count)

        return queue.put, consume

    return _across_processes(messages, make)


def pipe_channel(messages: int) -> Figures:
    """``multiprocessing.Pipe(duplex=False)``: ``send`` here, ``recv`` in the consumer process."""

    def make(context: Any) -> tuple[Callable[[Any], None], Callable[[Connection], None]]:
        reader, writer = context.Pipe(duplex=False)

        def consume(report: Connection) -> None:
            recv = reader.recv
            count = 0
            while recv() is not None:
                count += 1
            report.send(count)

        return writer.send, consume

    return _across_processes(messages, make)


def faster_fifo_channel(messages: int) -> Figures:
    """``faster_fifo.Queue``: ``put`` here, ``get_many`` in the consumer process."""
    faster_fifo = importlib.import_module("faster_fifo")

    def make(context: Any) -> tuple[Callable[[Any], None], Callable[[Connection], None]]:
        queue = faster_fifo.Queue()

        def consume(report: Connection) -> None:
            get_many = queue.get_many
            count = 0
            while True:
                batch = get_many(timeout=600.0)
                if batch[-1] is None:
                    count += len(batch) - 1
                    break
                count += len(batch)
            report.send(count)

        return queue.put, consume

    return _across_processes(messages, make)


# -- the in-process peers ------------------------------------------------------------


def trio_channel(messages: int) -> Figures:
    """``trio.open_memory_channel(1000)``: a producer and a consumer task in one nursery."""
    import trio

    counts: list[int] = []

    async def consume(recv: trio.MemoryReceiveChannel[tuple[int, str, float]]) -> None:
        count = 0
        async with recv:
            async for _ in recv:
                count += 1
        counts.append(count)

    async def main() -> float:
        send, recv = trio.open_memory_channel[tuple[int, str, float]](BUFFER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, recv)
            start = time.perf_counter()
            async with send:
                for i in range(messages):
                    await send.send((i, "payload", 3.5))
        return time.perf_counter() - start

    elapsed = trio.run(main)
    _check(counts[0], messages)
    return {"rate": messages / elapsed}


def asyncio_channel(messages: int) -> Figures:
    """``asyncio.Queue(maxsize=1000)``: a producer and a consumer task in one ``TaskGroup``."""
    import asyncio

    async def consume(queue: asyncio.Queue[tuple[int, str, float] | None]) -> int:
        get = queue.get
        count = 0
        while await get() is not None:
            count += 1
        return count

    async def main() -> tuple[float, int]:
        queue: asyncio.Queue[tuple[int, str, float] | None] = asyncio.Queue(maxsize=BUFFER)
        async with asyncio.TaskGroup() as group:
            consumer = group.create_task(consume(queue))
            start = time.perf_counter()
            put = queue.put
            for i in range(messages):
                await put((i, "payload", 3.5))
            await put(None)
        return time.perf_counter() - start, consumer.result()

    elapsed, count = asyncio.run(main())
    _check(count, messages)
    return {"rate": messages / elapsed}


BENCHMARK = Benchmark(
    name="C1",
    title="one-way channel, shard 0 -> shard 1, 500k small tuples",
    metrics=(Metric("rate", "messages/s"),),
    implementations=(
        Implementation("shardio", shardio_channel),
        Implementation("queue", queue_channel),
        Implementation("pipe", pipe_channel),
        Implementation("faster-fifo", faster_fifo_channel, requires_modules=("faster_fifo",)),
        Implementation("trio", trio_channel, requires_modules=("trio",)),
        Implementation("asyncio", asyncio_channel),
    ),
    targets=(Target("queue", 15.0), Target("asyncio", 1.5)),
    size=500_000,
    quick_size=50_000,
)
