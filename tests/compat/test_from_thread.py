"""from_thread under Trio and shardio: the same threads calling back into
their run, and what each library let them see.

Threads need the real clock, so these scenarios do not use the MockClock
harness of ``_harness.py``: each is a function ``observe(lib)`` run once under
``trio.run`` and once under ``shardio.run``, returning plain data (results,
exception shapes, who ran what) to compare. Threads and tasks are ordered with
events, never with sleeps. Trio names the token argument ``trio_token``,
shardio ``token``; :func:`token_kw` hides that difference.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest
import sniffio
import trio
import trio.lowlevel
import trio.testing

import shardio
import shardio.lowlevel
import shardio.testing

from ._harness import shape

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def token_kw(lib: ModuleType, token: object) -> dict[str, object]:
    return {"trio_token": token} if lib is trio else {"token": token}


def current_token(lib: ModuleType) -> object:
    if lib is trio:
        return trio.lowlevel.current_trio_token()
    return shardio.lowlevel.current_token()


def outcome_of(call: Callable[[], object]) -> object:
    """What a thread saw: ("ok", value) or ("raised", shape)."""
    try:
        return ("ok", call())
    except BaseException as exc:
        return ("raised", shape(exc))


async def runs_in_the_waiting_task(lib: ModuleType) -> Any:
    """Without a token, a worker's calls run in the task waiting for it,
    unless that call may be abandoned on cancel; with a token, never."""
    caller = lib.lowlevel.current_task()
    token = current_token(lib)

    async def in_caller() -> bool:
        await lib.lowlevel.checkpoint()
        return lib.lowlevel.current_task() is caller

    def worker() -> tuple[bool, bool, bool]:
        return (
            lib.from_thread.run(in_caller),
            lib.from_thread.run(in_caller, **token_kw(lib, token)),
            lib.from_thread.run_sync(lambda: lib.lowlevel.current_task() is caller),
        )

    def abandonable() -> bool:
        # (A sync call outside the caller's task runs in a run_sync_soon
        # callback: in Trio that is a system task, in shardio no task at all.)
        return lib.from_thread.run(in_caller)

    waiting = await lib.to_thread.run_sync(worker)
    return waiting, await lib.to_thread.run_sync(abandonable, abandon_on_cancel=True)


async def cancelling_the_caller_cancels_the_call_back(lib: ModuleType) -> Any:
    started = lib.Event()
    seen: list[object] = []

    async def wait_in_the_run() -> None:
        started.set()
        await lib.sleep_forever()

    def worker() -> None:
        seen.append(outcome_of(lambda: lib.from_thread.run(wait_in_the_run)))
        lib.from_thread.check_cancelled()

    with lib.CancelScope() as scope:
        async with lib.open_nursery() as nursery:
            nursery.start_soon(lib.to_thread.run_sync, worker)
            await started.wait()
            scope.cancel()
    return seen, scope.cancelled_caught


async def check_cancelled_before_and_after(lib: ModuleType) -> Any:
    results = []
    for abandon in (False, True):
        ready = lib.Event()
        cancelled, polled = threading.Event(), threading.Event()
        seen: list[object] = []

        def worker(
            ready: Any = ready,
            cancelled: threading.Event = cancelled,
            polled: threading.Event = polled,
            seen: list[object] = seen,
        ) -> None:
            seen.append(outcome_of(lib.from_thread.check_cancelled))
            lib.from_thread.run_sync(ready.set)
            cancelled.wait(10)
            seen.append(outcome_of(lib.from_thread.check_cancelled))
            polled.set()

        async def cancel_when_ready(
            scope: Any, ready: Any = ready, cancelled: threading.Event = cancelled
        ) -> None:
            await ready.wait()
            scope.cancel()
            cancelled.set()

        async with lib.open_nursery() as nursery:
            with lib.CancelScope() as scope:
                nursery.start_soon(cancel_when_ready, scope)
                await lib.to_thread.run_sync(worker, abandon_on_cancel=abandon)
        # An abandoned thread may still be running: wait for its last poll.
        await lib.to_thread.run_sync(polled.wait, 10)
        results.append((abandon, scope.cancelled_caught, seen))
    return results


async def errors_a_user_can_make(lib: ModuleType) -> Any:
    token = current_token(lib)

    async def not_sync() -> None:
        await lib.lowlevel.checkpoint()

    def worker() -> list[object]:
        return [
            outcome_of(lambda: lib.from_thread.run(len, "x")),
            outcome_of(lambda: lib.from_thread.run_sync(not_sync)),
            outcome_of(lambda: lib.from_thread.run_sync(len, "x", **token_kw(lib, "junk"))),
        ]

    in_run = [
        outcome_of(lambda: lib.from_thread.run_sync(len, "x", **token_kw(lib, token))),
        outcome_of(lib.from_thread.check_cancelled),
    ]
    foreign: list[object] = []

    def foreign_thread() -> None:
        foreign.append(outcome_of(lambda: lib.from_thread.run_sync(len, "x")))
        foreign.append(outcome_of(lib.from_thread.check_cancelled))

    thread = threading.Thread(target=foreign_thread)
    thread.start()
    await lib.to_thread.run_sync(thread.join)
    return await lib.to_thread.run_sync(worker), in_run, foreign


async def exceptions_and_context_cross_both_ways(lib: ModuleType) -> Any:
    async def fail() -> None:
        await lib.lowlevel.checkpoint()
        raise KeyError("in the run")

    async def context_and_library() -> tuple[str, str]:
        seen = request_id.get()
        request_id.set("set in the run")
        await lib.lowlevel.checkpoint()
        return seen, sniffio.current_async_library()

    def worker() -> list[object]:
        request_id.set("set in the thread")
        return [
            outcome_of(lambda: lib.from_thread.run(fail)),
            outcome_of(lambda: lib.from_thread.run(context_and_library)),
            request_id.get(),
        ]

    request_id.set("set by the caller")
    seen = await lib.to_thread.run_sync(worker)
    seen[1] = (seen[1][0], (seen[1][1][0], seen[1][1][1] == lib.__name__))
    return seen, request_id.get()


async def active_threads_are_counted(lib: ModuleType) -> Any:
    release = threading.Event()
    counts = [lib.testing.active_thread_count()]
    async with lib.open_nursery() as nursery:
        nursery.start_soon(lib.to_thread.run_sync, release.wait)
        await lib.testing.wait_all_tasks_blocked()
        counts.append(lib.testing.active_thread_count())
        release.set()
        await lib.testing.wait_all_threads_completed()
        counts.append(lib.testing.active_thread_count())
    return counts


SCENARIOS: dict[str, Callable[[ModuleType], Awaitable[Any]]] = {
    f.__name__: f
    for f in (
        runs_in_the_waiting_task,
        cancelling_the_caller_cancels_the_call_back,
        check_cancelled_before_and_after,
        errors_a_user_can_make,
        exceptions_and_context_cross_both_ways,
        active_threads_are_counted,
    )
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_trio_and_shardio_threads_see_the_same(name: str) -> None:
    with_trio = trio.run(SCENARIOS[name], trio)
    with_shardio = shardio.run(SCENARIOS[name], shardio)
    assert with_shardio == with_trio


async def token_of(lib: ModuleType) -> object:
    return current_token(lib)


def after_the_run(lib: ModuleType) -> list[object]:
    token = lib.run(token_of, lib)
    return [
        outcome_of(lambda: lib.from_thread.run_sync(len, "x", **token_kw(lib, token))),
        outcome_of(lambda: lib.from_thread.run(lib.lowlevel.checkpoint, **token_kw(lib, token))),
    ]


def test_after_the_run_both_refuse_with_run_finished() -> None:
    assert after_the_run(trio) == after_the_run(shardio) == [("raised", "RunFinishedError")] * 2
