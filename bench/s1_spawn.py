"""S1: spawn and join 100k no-op tasks in one nursery; the figure is tasks/s.

The timed part is the whole nursery block -- every spawn, every task's run
and the join at the end -- measured with ``time.perf_counter`` inside the
run, so starting and tearing down the event loop is not counted. Each peer
in its idiomatic form: trio's ``open_nursery``, ``asyncio.TaskGroup`` under
``asyncio.run``, and the very same asyncio code under ``uvloop.run``.

The cyclic garbage collector stays on, as users have it. With 100k live
tasks its full collections are a large share of every implementation's time
(about half of shardio's and two thirds of uvloop's on the machine this was
written on), so a change in how many objects a task allocates shows up here.
"""

from __future__ import annotations

import time

from ._spec import Benchmark, Figures, Implementation, Metric, Target


async def _noop() -> None:
    """The task every implementation spawns: returns at once, never yields."""


def shardio_spawn(tasks: int) -> Figures:
    """``shardio.open_nursery`` and ``start_soon``."""
    import shardio

    async def main() -> float:
        start = time.perf_counter()
        async with shardio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(_noop)
        return time.perf_counter() - start

    return {"rate": tasks / shardio.run(main)}


def trio_spawn(tasks: int) -> Figures:
    """``trio.open_nursery`` and ``start_soon``."""
    import trio

    async def main() -> float:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(_noop)
        return time.perf_counter() - start

    return {"rate": tasks / trio.run(main)}


async def _task_group_spawn(tasks: int) -> float:
    """The asyncio workload, shared by the asyncio and uvloop implementations."""
    import asyncio

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(_noop())
    return time.perf_counter() - start


def asyncio_spawn(tasks: int) -> Figures:
    """``asyncio.TaskGroup`` on the default event loop."""
    import asyncio

    return {"rate": tasks / asyncio.run(_task_group_spawn(tasks))}


def uvloop_spawn(tasks: int) -> Figures:
    """``asyncio.TaskGroup`` on uvloop's event loop."""
    import uvloop

    return {"rate": tasks / uvloop.run(_task_group_spawn(tasks))}


BENCHMARK = Benchmark(
    name="S1",
    title="spawn and join 100k no-op tasks in one nursery",
    metrics=(Metric("rate", "tasks/s"),),
    implementations=(
        Implementation("shardio", shardio_spawn),
        Implementation("trio", trio_spawn, requires_modules=("trio",)),
        Implementation("asyncio", asyncio_spawn),
        Implementation("uvloop", uvloop_spawn, requires_modules=("uvloop",)),
    ),
    targets=(Target("trio", 3.0), Target("uvloop", 1.5)),
    size=100_000,
    quick_size=10_000,
)
