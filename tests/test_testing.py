"""shardio.testing: MockClock, wait_all_tasks_blocked, and the pytest plugin."""

from __future__ import annotations

import time

import pytest

import shardio
from shardio.testing import MockClock, wait_all_tasks_blocked

pytest_plugins = ["pytester"]


def test_mock_clock_is_frozen_by_default_and_jumps_by_hand() -> None:
    clock = MockClock()
    assert clock.current_time() == 0
    time.sleep(0.001)
    assert clock.current_time() == 0
    clock.jump(3.5)
    assert clock.current_time() == 3.5
    with pytest.raises(ValueError, match="backwards"):
        clock.jump(-1)


def test_mock_clock_rate_scales_real_time() -> None:
    clock = MockClock(rate=1000)
    start = clock.current_time()
    time.sleep(0.01)
    assert clock.current_time() - start >= 10
    with pytest.raises(ValueError):
        clock.rate = -1


def test_autojump_runs_long_sleeps_instantly_in_order() -> None:
    order: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await shardio.sleep(seconds)
        order.append((name, shardio.current_time()))

    async def main() -> None:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(sleeper, "hour", 3600)
            nursery.start_soon(sleeper, "minute", 60)
            nursery.start_soon(sleeper, "day", 86400)

    started = time.monotonic()
    shardio.run(main, clock=MockClock(autojump_threshold=0))
    assert time.monotonic() - started < 5
    assert order == [("minute", 60), ("hour", 3600), ("day", 86400)]


def test_autojump_threshold_can_be_enabled_during_the_run() -> None:
    async def main() -> float:
        clock = shardio.lowlevel.current_clock()
        assert isinstance(clock, MockClock)
        clock.autojump_threshold = 0
        await shardio.sleep(1000)
        return shardio.current_time()

    assert shardio.run(main, clock=MockClock()) == 1000


async def test_wait_all_tasks_blocked_waits_for_every_other_task() -> None:
    progress: list[int] = []

    async def worker() -> None:
        for i in range(5):
            progress.append(i)
            await shardio.sleep(0)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await wait_all_tasks_blocked()
        assert progress == [0, 1, 2, 3, 4]


async def test_wait_all_tasks_blocked_smaller_cushion_wakes_first() -> None:
    woken: list[str] = []

    async def waiter(name: str, cushion: float) -> None:
        await wait_all_tasks_blocked(cushion)
        woken.append(name)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waiter, "slow", 0.02)
        nursery.start_soon(waiter, "fast", 0.0)
    assert woken == ["fast", "slow"]


def test_plugin_runs_marked_async_tests_with_shards_kwarg_and_clock(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest, shardio

        @pytest.mark.shardio
        async def test_marked(autojump_clock):
            await shardio.sleep(500)
            assert shardio.current_time() == 500

        @pytest.mark.shardio
        async def test_fails():
            await shardio.sleep(0)
            assert 1 == 2

        def test_sync_untouched():
            assert True
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-o", "shardio_mode=false")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])


def test_plugin_shardio_mode_runs_unmarked_async_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nshardio_mode = true\n")
    pytester.makepyfile(
        """
        import shardio, sniffio

        async def test_unmarked():
            assert sniffio.current_async_library() == "shardio"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
