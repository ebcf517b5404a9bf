"""Cancel scopes: what Cancelled carries, deadlines, and bookkeeping."""

from __future__ import annotations

import math
import pickle

import pytest

import shardio
from shardio import lowlevel
from shardio.testing import MockClock, wait_all_tasks_blocked


async def test_cancelled_carries_the_explicit_reason_and_source_task() -> None:
    caught: list[shardio.Cancelled] = []
    with shardio.CancelScope() as scope:
        scope.cancel("user pressed stop")
        try:
            await lowlevel.checkpoint()
        except shardio.Cancelled as exc:
            caught.append(exc)
            raise
    assert scope.cancelled_caught
    (exc,) = caught
    assert exc.source == "explicit"
    assert exc.reason == "user pressed stop"
    assert exc.source_task is not None and "Task" in exc.source_task
    assert "user pressed stop" in str(exc)


async def test_deadline_cancellation_says_deadline(autojump_clock: MockClock) -> None:
    with shardio.move_on_after(5):
        try:
            await shardio.sleep_forever()
        except shardio.Cancelled as exc:
            assert exc.source == "deadline"
            raise


async def test_sibling_failure_cancellation_says_nursery() -> None:
    sources: list[str] = []

    async def victim() -> None:
        try:
            await shardio.sleep_forever()
        except shardio.Cancelled as exc:
            sources.append(exc.source)
            raise

    async def failer() -> None:
        await wait_all_tasks_blocked()
        raise ValueError("boom")

    with pytest.raises(ExceptionGroup):
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(victim)
            nursery.start_soon(failer)
    assert sources == ["nursery"]


def test_cancelled_pickles_with_its_reason() -> None:
    async def main() -> shardio.Cancelled:
        with shardio.CancelScope() as scope:
            scope.cancel("why")
            try:
                await lowlevel.checkpoint()
            except shardio.Cancelled as exc:
                return exc
        raise AssertionError("not cancelled")

    exc = shardio.run(main)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is shardio.Cancelled
    assert (copy.source, copy.reason) == ("explicit", "why")


async def test_moving_a_deadline_many_times_keeps_the_heap_small(
    autojump_clock: MockClock,
) -> None:
    runner_deadlines = lowlevel.current_statistics
    with shardio.CancelScope() as scope:
        for i in range(20_000):
            scope.deadline = 1000 + i
        # Only one deadline is live; stale entries are pruned as they pile up.
        assert runner_deadlines().seconds_to_next_deadline == pytest.approx(1000 + 19_999)
        heap_size = len(lowlevel.current_task()._runner.deadlines._heap)
        assert heap_size < 3000


async def test_relative_deadline_is_counted_from_entry(autojump_clock: MockClock) -> None:
    scope = shardio.move_on_after(10)
    assert scope.is_relative is True
    assert scope.relative_deadline == 10
    await shardio.sleep(100)
    with scope:
        assert scope.deadline == pytest.approx(shardio.current_time() + 10)
        assert scope.is_relative is None
        scope.relative_deadline = 1
        assert scope.deadline == pytest.approx(shardio.current_time() + 1)


def test_relative_and_absolute_deadline_together_is_an_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        shardio.CancelScope(deadline=5, relative_deadline=5)
    with pytest.raises(RuntimeError, match="absolute deadline"):
        shardio.CancelScope(deadline=5).relative_deadline  # noqa: B018


async def test_cancel_called_turns_true_when_the_deadline_passes(
    autojump_clock: MockClock,
) -> None:
    with shardio.CancelScope(deadline=shardio.current_time() + 5) as scope:
        assert not scope.cancel_called
        autojump_clock.jump(5)
        assert scope.cancel_called


async def test_repr_describes_state(autojump_clock: MockClock) -> None:
    scope = shardio.CancelScope(deadline=shardio.current_time() + 2)
    assert "unbound" in repr(scope) and "deadline is 2.00 seconds from now" in repr(scope)
    with scope:
        assert "active" in repr(scope)
        scope.cancel()
        assert "cancelled" in repr(scope)
    assert "exited" in repr(scope)


async def test_effective_deadline_sees_through_unshielded_scopes_only() -> None:
    assert shardio.current_effective_deadline() == math.inf
    now = shardio.current_time()
    with shardio.move_on_at(now + 100):
        with shardio.move_on_at(now + 200):
            assert shardio.current_effective_deadline() == now + 100
            with shardio.CancelScope(shield=True):
                assert shardio.current_effective_deadline() == math.inf
        with shardio.CancelScope() as cancelled:
            cancelled.cancel()
            assert shardio.current_effective_deadline() == -math.inf


async def test_cancellation_reaches_older_tasks_first() -> None:
    order: list[str] = []

    async def worker(name: str) -> None:
        try:
            await shardio.sleep_forever()
        except shardio.Cancelled:
            order.append(name)
            raise

    async with shardio.open_nursery() as nursery:
        for name in ("first", "second", "third"):
            nursery.start_soon(worker, name)
        await wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert order == ["first", "second", "third"]


async def test_cancellation_reaches_nested_scopes_in_creation_order() -> None:
    order: list[str] = []

    async def worker(name: str) -> None:
        with shardio.CancelScope():  # an inner scope of its own
            try:
                await shardio.sleep_forever()
            except shardio.Cancelled:
                order.append(name)
                raise

    async with shardio.open_nursery() as nursery:
        for name in ("a", "b", "c"):
            nursery.start_soon(worker, name)
        await wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert order == ["a", "b", "c"]
