"""Misuse gets a clear error that says what was wrong and what to do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import shardio
from shardio import lowlevel


async def test_awaiting_an_asyncio_future_is_a_type_error_naming_asyncio() -> None:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        with pytest.raises(TypeError, match="asyncio") as info:
            await future
        assert "shardio cannot wait for" in str(info.value)
    finally:
        loop.close()


async def test_start_soon_of_a_sync_function_says_use_async_def() -> None:
    def sync() -> None:
        pass

    async with shardio.open_nursery() as nursery:
        with pytest.raises(TypeError, match="async def"):
            nursery.start_soon(sync)  # type: ignore[arg-type]


async def test_start_soon_of_a_coroutine_object_shows_the_fix() -> None:
    async def work(x: int) -> None:
        pass

    async with shardio.open_nursery() as nursery:
        with pytest.raises(TypeError, match=r"start_soon\(fn, arg1, arg2\)"):
            nursery.start_soon(work(1))  # type: ignore[arg-type]


async def test_start_of_an_async_generator_function_is_a_type_error() -> None:
    async def agen(task_status: Any = shardio.TASK_STATUS_IGNORED) -> AsyncIterator[int]:
        yield 1

    async with shardio.open_nursery() as nursery:
        with pytest.raises(TypeError, match="async generator"):
            await nursery.start(agen)


async def test_start_soon_of_something_returning_an_asyncio_future() -> None:
    loop = asyncio.new_event_loop()
    try:

        def returns_future() -> asyncio.Future[None]:
            return loop.create_future()

        async with shardio.open_nursery() as nursery:
            with pytest.raises(TypeError, match="from asyncio"):
                nursery.start_soon(returns_future)  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.mark.parametrize("seconds", [-1, -0.001, float("-inf")])
async def test_negative_sleep_is_a_value_error(seconds: float) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        await shardio.sleep(seconds)


async def test_nan_sleep_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="NaN"):
        await shardio.sleep(float("nan"))


@pytest.mark.parametrize("factory", [shardio.move_on_after, shardio.fail_after])
async def test_negative_timeout_is_a_value_error(factory: Any) -> None:
    with pytest.raises(ValueError, match="must be >= 0"), factory(-5):
        pass


def test_cancelled_cannot_be_raised_by_user_code() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        shardio.Cancelled()


async def test_exiting_a_scope_entered_by_another_task_is_a_runtime_error() -> None:
    scope = shardio.CancelScope()
    errors: list[BaseException] = []

    async def enter_it() -> None:
        scope.__enter__()
        await shardio.sleep_forever()

    async def exit_it() -> None:
        try:
            scope.__exit__(None, None, None)
        except RuntimeError as exc:
            errors.append(exc)

    with shardio.CancelScope() as outer:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(enter_it)
            await shardio.testing.wait_all_tasks_blocked()
            nursery.start_soon(exit_it)
            await shardio.testing.wait_all_tasks_blocked()
            outer.cancel()
    assert len(errors) == 1
    assert "misnesting" in str(errors[0])
    assert "not inside" in str(errors[0])


def test_exiting_an_outer_scope_before_the_inner_one_is_a_runtime_error() -> None:
    async def main() -> None:
        outer = shardio.CancelScope()
        inner = shardio.CancelScope()
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError, match="still inside an inner scope"):
            outer.__exit__(None, None, None)
        # The abandoned inner scope unwinds without a second error.
        inner.__exit__(None, None, None)

    shardio.run(main)


async def test_a_cancel_scope_can_be_entered_once() -> None:
    scope = shardio.CancelScope()
    with scope:
        pass
    with pytest.raises(RuntimeError, match="one 'with' block"), scope:
        pass


async def test_a_nursery_with_plain_with_says_use_async_with() -> None:
    with pytest.raises(RuntimeError, match="async with"), shardio.open_nursery():  # type: ignore[attr-defined]
        pass


async def test_reschedule_of_a_task_that_is_not_parked_is_an_internal_error() -> None:
    with pytest.raises(shardio.ShardioInternalError, match="not parked"):
        lowlevel.reschedule(lowlevel.current_task())


def test_abort_function_returning_garbage_fails_the_run_clearly() -> None:
    cleaned_up: list[str] = []

    async def main() -> None:
        try:
            with shardio.CancelScope() as scope:
                scope.cancel()
                await lowlevel.wait_task_rescheduled(lambda _: "yes")  # type: ignore[arg-type,return-value]
        finally:
            cleaned_up.append("main")

    with pytest.raises(shardio.ShardioInternalError, match=r"Abort\.SUCCEEDED or"):
        shardio.run(main)
    # The crashed run closed the task it abandoned, right away.
    assert cleaned_up == ["main"]


def test_shield_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="bool"):
        shardio.CancelScope().shield = 1  # type: ignore[assignment]


def test_nan_deadline_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="NaN"):
        shardio.CancelScope(deadline=float("nan"))
