"""shardio.to_thread.run_sync: blocking code in worker threads."""

from __future__ import annotations

import contextvars
import gc
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest
import sniffio
import trio

import shardio


async def test_runs_in_another_thread_and_returns_the_result() -> None:
    def work(x: int) -> tuple[int, str]:
        return x * 2, threading.current_thread().name

    value, name = await shardio.to_thread.run_sync(work, 21, thread_name="my worker")
    assert value == 42
    assert name == "my worker"
    assert threading.current_thread() is threading.main_thread()


async def test_exceptions_come_back_with_their_type() -> None:
    def fail() -> None:
        raise KeyError("from the thread")

    with pytest.raises(KeyError, match="from the thread"):
        await shardio.to_thread.run_sync(fail)


async def test_other_tasks_run_while_the_thread_blocks() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await shardio.sleep(0.005)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await shardio.to_thread.run_sync(time.sleep, 0.1)
        nursery.cancel_scope.cancel()
    assert ticks >= 5


async def test_a_cancelled_call_waits_for_its_thread_unless_abandoned() -> None:
    release = threading.Event()
    finished: list[str] = []

    def blocker(name: str) -> None:
        release.wait(5)
        finished.append(name)

    threading.Timer(0.2, release.set).start()
    with shardio.move_on_after(0.05) as scope:
        await shardio.to_thread.run_sync(blocker, "waited")
    # Not abandoned: the scope's deadline passed, yet the call waited -- and
    # returned the thread's result, as a finished operation does.
    assert finished == ["waited"]
    assert scope.cancel_called and not scope.cancelled_caught

    release.clear()
    with shardio.move_on_after(0.05):
        await shardio.to_thread.run_sync(blocker, "abandoned", abandon_on_cancel=True)
    assert finished == ["waited"]  # returned while the thread still blocks
    release.set()


async def test_the_limiter_bounds_concurrent_threads() -> None:
    limiter = shardio.CapacityLimiter(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async with shardio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(lambda: shardio.to_thread.run_sync(work, limiter=limiter))
    assert peak == 2
    assert limiter.borrowed_tokens == 0


async def test_the_default_limiter_has_forty_tokens() -> None:
    assert shardio.to_thread.current_default_thread_limiter().total_tokens == 40


@pytest.mark.shardio(shards=2)
async def test_each_shard_has_its_own_threads() -> None:
    async def thread_in(_: int) -> int:
        return await shardio.to_thread.run_sync(threading.get_native_id)

    here = await thread_in(0)
    there = await shardio.run_on(1, thread_in, 1)
    assert here != there


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


async def test_the_thread_sees_the_callers_context_and_cannot_change_it() -> None:
    def swap() -> str:
        seen = request_id.get()
        request_id.set("set in the thread")
        return seen

    request_id.set("set by the caller")
    assert await shardio.to_thread.run_sync(swap) == "set by the caller"
    assert request_id.get() == "set by the caller"


class Payload:
    """Something whose lifetime a test follows with a weak reference."""


async def test_an_idle_worker_keeps_nothing_of_the_call_it_ran_alive() -> None:
    argument, in_context = Payload(), Payload()
    refs = [weakref.ref(argument), weakref.ref(in_context)]
    outer = request_id.set(in_context)  # type: ignore[arg-type]

    def work(payload: Payload) -> Payload:
        return Payload()

    result = await shardio.to_thread.run_sync(work, argument)
    refs.append(weakref.ref(result))
    request_id.reset(outer)
    del argument, in_context, result
    gc.disable()  # refcounting alone must free them: nothing may hold them
    try:
        assert [ref() for ref in refs] == [None, None, None]
    finally:
        gc.enable()


# Differential: the same calls under Trio and shardio, what a user sees.


def stop_iteration() -> None:
    raise StopIteration("from the thread")


async def not_sync() -> None:
    pass


def context_and_library() -> tuple[str, str]:
    value = request_id.get()
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = "none"
    return value, library


def thread_name() -> str:
    return threading.current_thread().name


async def observe(lib: ModuleType, scenario: str) -> Any:
    run_sync: Callable[..., Awaitable[Any]] = lib.to_thread.run_sync
    if scenario == "StopIteration":
        try:
            await run_sync(stop_iteration)
        except BaseException as exc:
            return type(exc).__name__, str(exc), repr(exc.__cause__)
    if scenario == "async function":
        try:
            await run_sync(not_sync)
        except BaseException as exc:
            return type(exc).__name__
    if scenario == "context and sniffio":
        request_id.set("caller's")
        return await run_sync(context_and_library)
    if scenario == "thread names":
        named = await run_sync(thread_name, thread_name="given")
        default = await run_sync(thread_name)
        task = lib.lowlevel.current_task().name
        return named, default == f"thread_name from {task}", thread_name()
    raise AssertionError(scenario)


@pytest.mark.parametrize(
    "scenario", ["StopIteration", "async function", "context and sniffio", "thread names"]
)
def test_trio_and_shardio_threads_look_the_same(scenario: str) -> None:
    with_shardio = shardio.run(observe, shardio, scenario)
    with_trio = trio.run(observe, trio, scenario)
    assert with_shardio == with_trio
