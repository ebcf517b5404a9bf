"""shardio.from_thread: threads calling back into their run, and the thread
helpers of shardio.testing."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

import shardio
import shardio.testing
from shardio import from_thread, lowlevel, to_thread

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def here() -> lowlevel.Task:
    return lowlevel.current_task()


async def test_a_worker_calls_back_into_the_task_that_waits_for_it() -> None:
    def worker() -> tuple[lowlevel.Task, lowlevel.Task, int]:
        return from_thread.run(here), from_thread.run_sync(lowlevel.current_task), 7

    in_async, in_sync, value = await to_thread.run_sync(worker)
    assert in_async is in_sync is lowlevel.current_task()
    assert value == 7


async def test_cancelling_the_caller_cancels_what_its_thread_runs_in_the_run() -> None:
    started = shardio.Event()
    seen: list[str] = []

    async def wait_in_the_run() -> None:
        started.set()
        await shardio.sleep_forever()

    def worker() -> None:
        try:
            from_thread.run(wait_in_the_run)
        except shardio.Cancelled:
            seen.append("the thread saw Cancelled")
            raise

    with shardio.CancelScope() as scope:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(to_thread.run_sync, worker)
            await started.wait()
            scope.cancel()
    assert seen == ["the thread saw Cancelled"]
    assert scope.cancelled_caught


async def test_a_call_abandoned_on_cancel_calls_back_in_a_system_task_it_cannot_cancel() -> None:
    inside = threading.Event()
    release = threading.Event()
    called_back = shardio.Event()
    seen: list[bool] = []

    async def in_the_run() -> None:
        await lowlevel.checkpoint()  # not cancelled: this task is not in the caller's scope
        seen.append(lowlevel.current_task() is not caller)
        called_back.set()

    def worker() -> None:
        inside.set()
        release.wait(10)
        from_thread.run(in_the_run)

    async def cancel_when_inside() -> None:
        await to_thread.run_sync(inside.wait)
        scope.cancel()

    caller = lowlevel.current_task()
    async with shardio.open_nursery() as nursery:
        with shardio.CancelScope() as scope:
            nursery.start_soon(cancel_when_inside)
            await to_thread.run_sync(worker, abandon_on_cancel=True)
    assert scope.cancelled_caught
    assert seen == []  # abandoned while the thread still waits
    release.set()
    await called_back.wait()
    assert seen == [True]


@pytest.mark.parametrize("abandon_on_cancel", [False, True])
async def test_check_cancelled_raises_once_the_caller_is_cancelled(
    abandon_on_cancel: bool,
) -> None:
    ready = shardio.Event()
    cancelled = threading.Event()
    polls: list[str] = []

    def poll_until_cancelled() -> None:
        from_thread.check_cancelled()
        polls.append("not cancelled yet")
        from_thread.run_sync(ready.set)
        cancelled.wait(10)
        from_thread.check_cancelled()
        polls.append("unreachable")

    async def cancel_when_ready() -> None:
        await ready.wait()
        scope.cancel()
        cancelled.set()

    async with shardio.open_nursery() as nursery:
        with shardio.CancelScope() as scope:
            nursery.start_soon(cancel_when_ready)
            await to_thread.run_sync(poll_until_cancelled, abandon_on_cancel=abandon_on_cancel)
    assert scope.cancelled_caught
    assert polls == ["not cancelled yet"]


def test_check_cancelled_in_a_thread_shardio_did_not_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started by shardio"):
        from_thread.check_cancelled()


def test_a_foreign_thread_needs_the_token_and_gets_run_finished_after_the_run() -> None:
    results: dict[str, Any] = {}

    def foreign(token: lowlevel.Token) -> None:
        try:
            from_thread.run_sync(lambda: None)
        except RuntimeError as exc:
            results["no token"] = str(exc)
        request_id.set("the thread's")
        results["async"] = from_thread.run(context_and_task, token=token)
        results["sync"] = from_thread.run_sync(shardio.current_shard, token=token)

    async def context_and_task() -> tuple[str, str]:
        await lowlevel.checkpoint()
        return request_id.get(), lowlevel.current_task().name

    async def main() -> lowlevel.Token:
        token = lowlevel.current_token()
        request_id.set("the run's")
        thread = threading.Thread(target=foreign, args=(token,))
        thread.start()
        await to_thread.run_sync(thread.join)
        assert request_id.get() == "the run's"
        return token

    token = shardio.run(main)
    assert "not started by shardio.to_thread.run_sync" in results["no token"]
    assert "token=" in results["no token"]
    assert results["async"][0] == "the thread's"
    assert results["sync"] == 0
    with pytest.raises(shardio.RunFinishedError):
        from_thread.run_sync(lambda: None, token=token)
    with pytest.raises(shardio.RunFinishedError):
        from_thread.run(context_and_task, token=token)


async def test_calling_from_the_runs_own_thread_is_refused_instead_of_deadlocking() -> None:
    token = lowlevel.current_token()
    with pytest.raises(RuntimeError, match="from the run's own thread would wait forever"):
        from_thread.run_sync(lambda: None, token=token)
    with pytest.raises(RuntimeError, match="from the run's own thread would wait forever"):
        from_thread.run(here, token=token)


async def test_bad_arguments_say_what_was_wrong() -> None:
    async def not_sync() -> None:
        pass

    def not_async() -> int:
        return 1

    def worker() -> list[str]:
        errors = []
        for call in (
            lambda: from_thread.run(not_async),
            lambda: from_thread.run_sync(not_sync),
            lambda: from_thread.run(not_sync()),
            lambda: from_thread.run_sync(len, "x", token="not a token"),  # type: ignore[arg-type]
        ):
            try:
                call()
            except (TypeError, RuntimeError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        return errors

    errors = await to_thread.run_sync(worker)
    assert errors[0].startswith("TypeError: from_thread.run() expected an async function")
    assert "returned int" in errors[0]
    assert errors[1].startswith("TypeError: from_thread.run_sync() expected a sync function")
    assert errors[2].startswith("TypeError: from_thread.run() was given a coroutine object")
    assert errors[3].startswith("RuntimeError: token must be a shardio.lowlevel.Token")


async def test_calls_from_a_thread_see_its_context_and_leave_the_tasks_alone() -> None:
    async def read_and_set() -> str:
        seen = request_id.get()
        request_id.set("set in the run")
        await lowlevel.checkpoint()
        return seen

    def worker() -> tuple[str, str, str]:
        request_id.set("set in the thread")
        seen_async = from_thread.run(read_and_set)
        seen_sync = from_thread.run_sync(request_id.get)
        return seen_async, seen_sync, request_id.get()

    request_id.set("set by the caller")
    assert await to_thread.run_sync(worker) == (
        "set in the thread",
        "set in the thread",
        "set in the thread",
    )
    assert request_id.get() == "set by the caller"


async def test_exceptions_reach_the_thread_with_their_type() -> None:
    async def fail() -> None:
        await lowlevel.checkpoint()
        raise KeyError("in the run")

    def worker() -> str:
        try:
            from_thread.run(fail)
        except KeyError as exc:
            return f"caught {exc}"
        return "not raised"

    assert await to_thread.run_sync(worker) == "caught 'in the run'"


@pytest.mark.shardio(shards=2)
async def test_a_thread_calls_back_into_the_shard_that_started_it() -> None:
    async def on_shard() -> tuple[int, int]:
        def worker() -> tuple[int, int]:
            return from_thread.run_sync(shardio.current_shard), from_thread.run(shard_of_task)

        return await to_thread.run_sync(worker)

    async def shard_of_task() -> int:
        await lowlevel.checkpoint()
        return shardio.current_shard()

    assert await shardio.run_on(1, on_shard) == (1, 1)
    assert await on_shard() == (0, 0)


async def test_active_thread_count_follows_the_calls_in_progress() -> None:
    release = threading.Event()
    assert shardio.testing.active_thread_count() == 0
    finished: list[str] = []

    async def waiter() -> None:
        await shardio.testing.wait_all_threads_completed()
        finished.append("all threads completed")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(to_thread.run_sync, release.wait)
        nursery.start_soon(to_thread.run_sync, release.wait)
        await shardio.testing.wait_all_tasks_blocked()
        assert shardio.testing.active_thread_count() == 2
        nursery.start_soon(waiter)
        await shardio.testing.wait_all_tasks_blocked()
        assert finished == []
        release.set()
    assert finished == ["all threads completed"]
    assert shardio.testing.active_thread_count() == 0


def test_a_foreign_thread_calling_as_the_run_ends_never_hangs() -> None:
    outcomes: list[str] = []
    first = threading.Event()

    def keep_calling(token: lowlevel.Token) -> None:
        while True:
            try:
                from_thread.run(lowlevel.checkpoint, token=token)
            except shardio.RunFinishedError:
                outcomes.append("run finished")
                return
            except shardio.Cancelled:
                outcomes.append("cancelled")
            else:
                outcomes.append("ran")
            first.set()

    async def main() -> threading.Thread:
        thread = threading.Thread(target=keep_calling, args=(lowlevel.current_token(),))
        thread.start()
        await to_thread.run_sync(first.wait)
        return thread

    thread = shardio.run(main)
    thread.join(10)
    assert not thread.is_alive()
    assert outcomes[0] == "ran"
    assert outcomes[-1] == "run finished"
