"""Async generators abandoned before they were exhausted: when and how their
cleanup runs (in a task, cancelled, shielded), at garbage collection and at
the end of the run."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from ._harness import Scenarios, Trace, shape

SCENARIOS = Scenarios()
scenario = SCENARIOS.add

# Generators a scenario keeps alive past its own end (cleared by the next).
_KEPT: list[Any] = []


def _numbers(lib: ModuleType, t: Trace, name: str) -> AsyncIterator[int]:
    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            t.at(name, "cleanup starts")
            try:
                await lib.sleep(1)
                t.at(name, "cleanup slept")
            except BaseException as exc:
                t.at(name, "cleanup's sleep raised", shape(exc))
                raise
            finally:
                t.at(name, "cleanup ends")

    return numbers()


@scenario
async def a_generator_dropped_mid_iteration_is_closed_in_a_task(lib: ModuleType, t: Trace) -> None:
    """Breaking out of ``async for`` and dropping the generator: its cleanup
    runs soon after, in another task, in a cancelled scope (so its await
    raises Cancelled), with a ResourceWarning; the consumer is not disturbed."""
    t.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async for i in _numbers(lib, t, "dropped"):
            t("got", i)
            if i == 1:
                break  # the generator has no other reference: collected here
        t.at("consumer after break")
        await lib.sleep(2)
        t.at("consumer slept")
    t("warnings", sorted({w.category.__name__ for w in caught}))


@scenario
async def a_generator_still_suspended_at_the_end_is_closed_by_the_run(
    lib: ModuleType, t: Trace
) -> None:
    """A generator kept alive past the main task is closed after it, before
    run() returns, in a cancelled scope."""
    _KEPT.clear()
    t.start()
    agen = _numbers(lib, t, "kept")
    t("first", await agen.__anext__())
    _KEPT.append(agen)
    t.at("main returns")


@scenario
async def a_generator_closed_by_its_consumer_is_not_closed_again(lib: ModuleType, t: Trace) -> None:
    """aclose() by the consumer runs the cleanup there, uncancelled; the run
    has nothing left to do for it."""
    _KEPT.clear()
    t.start()
    agen = _numbers(lib, t, "closed")
    t("first", await agen.__anext__())
    _KEPT.append(agen)
    await agen.aclose()
    t.at("after aclose")


@scenario
async def a_cleanup_error_does_not_reach_the_run(lib: ModuleType, t: Trace) -> None:
    """An exception raised by an abandoned generator's cleanup is logged, not
    raised: the main task and run() finish normally."""
    t.start()

    async def failing() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            t.at("cleanup raises")
            raise ValueError("from the cleanup")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        async for _ in failing():
            break
        await lib.sleep(1)
    t.at("main done")


@scenario
async def a_generator_first_iterated_by_a_child_task_is_the_runs(lib: ModuleType, t: Trace) -> None:
    """The generator started by a child and dropped when the child ends is
    closed like any other, while the nursery's parent goes on."""
    t.start()

    async def child() -> None:
        agen = _numbers(lib, t, "child's")
        t("child got", await agen.__anext__())
        # returns with agen suspended: dropped with the child's frame

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        async with lib.open_nursery() as nursery:
            nursery.start_soon(child)
        t.at("nursery done")
        await lib.sleep(3)
    t.at("main done")


test_trio_and_shardio_traces_match = SCENARIOS.test()
