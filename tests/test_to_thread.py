"""shardio.to_thread.run_sync: blocking code in worker threads."""

from __future__ import annotations

import threading
import time

import pytest

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
