"""Guest mode: a shardio run inside another event loop, as Trio's start_guest_run.

The host is asyncio (its call_soon_threadsafe / call_soon), and the same
scenarios run under trio's guest mode for comparison.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import pytest
import sniffio
import trio

import shardio
from shardio import lowlevel


def _in_asyncio(
    start: Callable[..., None], async_fn: Callable[..., Awaitable[Any]], *args: Any
) -> tuple[Any, list[str]]:
    """Run ``async_fn`` as a guest of an asyncio loop; return its result and
    what the host saw happen meanwhile."""
    seen: list[str] = []

    async def host() -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[Any]] = loop.create_future()

        async def ticker() -> None:
            # The host keeps running its own work while the guest waits.
            while not done.done():
                seen.append("host tick")
                await asyncio.sleep(0.01)

        start(
            async_fn,
            *args,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done.set_result,
        )
        ticking = asyncio.create_task(ticker())
        result = await done
        await ticking
        return result.unwrap()

    return asyncio.run(host()), seen


@pytest.fixture(params=["shardio", "trio"])
def library(request: pytest.FixtureRequest) -> Any:
    return shardio if request.param == "shardio" else trio


def _start(library: Any) -> Callable[..., None]:
    return library.lowlevel.start_guest_run  # type: ignore[no-any-return]


def test_a_guest_run_sleeps_while_the_host_keeps_running(library: Any) -> None:
    async def main() -> str:
        await library.sleep(0.1)
        return sniffio.current_async_library()

    result, seen = _in_asyncio(_start(library), main)
    assert result == library.__name__
    assert len(seen) >= 3  # the host ran all along


def test_a_guest_run_does_socket_io(library: Any) -> None:
    left, right = socket.socketpair()
    left.setblocking(False)

    async def main() -> bytes:
        async def write_later() -> None:
            await library.sleep(0.05)
            right.send(b"ping")

        async with library.open_nursery() as nursery:
            nursery.start_soon(write_later)
            await library.lowlevel.wait_readable(left)
        return left.recv(10)

    try:
        result, _ = _in_asyncio(_start(library), main)
    finally:
        left.close()
        right.close()
    assert result == b"ping"


def test_an_exception_in_the_guest_reaches_the_done_callback(library: Any) -> None:
    async def main() -> None:
        await library.sleep(0.01)
        raise KeyError("from the guest")

    with pytest.raises(KeyError, match="from the guest"):
        _in_asyncio(_start(library), main)


def test_host_code_between_ticks_can_cancel_a_guest_scope(library: Any) -> None:
    # A scope cancelled by a host callback ends the guest's long wait at once.
    async def main() -> bool:
        with library.CancelScope() as scope:
            host_loop.call_later(0.05, scope.cancel)
            await library.sleep(3600)
        return bool(scope.cancelled_caught)

    host_loop: asyncio.AbstractEventLoop

    async def host() -> bool:
        nonlocal host_loop
        host_loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[bool]] = host_loop.create_future()
        _start(library)(
            main,
            run_sync_soon_threadsafe=host_loop.call_soon_threadsafe,
            done_callback=done.set_result,
        )
        return (await done).unwrap()

    assert asyncio.run(asyncio.wait_for(host(), 10)) is True


def test_start_guest_run_inside_a_run_is_a_runtime_error() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="inside a running"):
            lowlevel.start_guest_run(
                shardio.sleep, 0, run_sync_soon_threadsafe=print, done_callback=print
            )

    shardio.run(main)


def test_a_guest_with_an_autojump_clock_gives_the_host_its_thread_while_it_waits() -> None:
    # The guest's task waits for the host with no deadline: an autojump
    # clock makes every wait a poll of 0 s, and each must still be a turn
    # of the host's loop, or the host never runs the code that wakes it.
    from shardio.testing import MockClock

    async def host() -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[str]] = loop.create_future()
        event_holder: list[shardio.Event] = []

        async def guest() -> str:
            event_holder.append(shardio.Event())
            await event_holder[0].wait()
            await shardio.sleep(3600)  # jumped over
            return "woken by the host"

        lowlevel.start_guest_run(
            guest,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done.set_result,
            clock=MockClock(autojump_threshold=0),
        )
        await asyncio.sleep(0.05)  # the host's own work runs meanwhile
        event_holder[0].set()
        return (await done).unwrap()

    assert asyncio.run(asyncio.wait_for(host(), 10)) == "woken by the host"
