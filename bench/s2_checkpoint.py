"""S2: two tasks each doing 100k checkpoints; the figure is checkpoints/s, both tasks counted.

A checkpoint yields to the scheduler and is rescheduled at once, so with two
tasks this measures the cost of one task switch. The timed part is the whole
nursery block, spawn and join included. Each peer in its idiomatic form of
"let others run": ``trio.lowlevel.checkpoint()``, and ``asyncio.sleep(0)``
(which asyncio special-cases into a bare yield) under ``asyncio.run`` and
under ``uvloop.run``.
"""

from __future__ import annotations

import time

from ._spec import Benchmark, Figures, Implementation, Metric, Target


def shardio_checkpoints(per_task: int) -> Figures:
    """``await shardio.lowlevel.checkpoint()`` in two tasks of one nursery."""
    import shardio
    import shardio.lowlevel

    async def worker() -> None:
        for _ in range(per_task):
            await shardio.lowlevel.checkpoint()

    async def main() -> float:
        start = time.perf_counter()
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(worker)
        return time.perf_counter() - start

    return {"rate": 2 * per_task / shardio.run(main)}


def trio_checkpoints(per_task: int) -> Figures:
    """``await trio.lowlevel.checkpoint()`` in two tasks of one nursery."""
    import trio

    async def worker() -> None:
        for _ in range(per_task):
            await trio.lowlevel.checkpoint()

    async def main() -> float:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(worker)
        return time.perf_counter() - start

    return {"rate": 2 * per_task / trio.run(main)}


async def _task_group_checkpoints(per_task: int) -> float:
    """The asyncio workload, shared by the asyncio and uvloop implementations."""
    import asyncio

    async def worker() -> None:
        for _ in range(per_task):
            await asyncio.sleep(0)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        group.create_task(worker())
        group.create_task(worker())
    return time.perf_counter() - start


def asyncio_checkpoints(per_task: int) -> Figures:
    """``await asyncio.sleep(0)`` in two tasks of a ``TaskGroup``, default event loop."""
    import asyncio

    return {"rate": 2 * per_task / asyncio.run(_task_group_checkpoints(per_task))}


def uvloop_checkpoints(per_task: int) -> Figures:
    """``await asyncio.sleep(0)`` in two tasks of a ``TaskGroup``, uvloop's event loop."""
    import uvloop

    return {"rate": 2 * per_task / uvloop.run(_task_group_checkpoints(per_task))}


BENCHMARK = Benchmark(
    name="S2",
    title="two tasks each doing 100k checkpoints",
    metrics=(Metric("rate", "checkpoints/s"),),
    implementations=(
        Implementation("shardio", shardio_checkpoints),
        Implementation("trio", trio_checkpoints, requires_modules=("trio",)),
        Implementation("asyncio", asyncio_checkpoints),
        Implementation("uvloop", uvloop_checkpoints, requires_modules=("uvloop",)),
    ),
    targets=(Target("trio", 3.0), Target("uvloop", 1.0)),
    size=100_000,
    quick_size=10_000,
)
