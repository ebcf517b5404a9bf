"""open_signal_receiver under Trio and shardio: the same signals raised, and
what each library let the program see of them.

Each scenario is ``observe(lib)``, run once under ``trio.run`` and once under
``shardio.run``, returning plain data. Signals are raised in the process with
:func:`signal.raise_signal` (their Python handler runs at once, in the main
thread), over handlers that record what reaches them, so that nothing falls
to ``SIG_DFL`` and ends the test process.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import shardio
import shardio.lowlevel
import shardio.testing

from ._harness import shape

USR1, USR2, WINCH = signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH


@contextmanager
def recording_handlers(*signals: int) -> Iterator[list[int]]:
    seen: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = {signum: signal.signal(signum, record) for signum in signals}
    try:
        yield seen
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def outcome_of(awaitable: Awaitable[Any]) -> object:
    try:
        return ("ok", await awaitable)
    except BaseException as exc:
        return ("raised", shape(exc))


async def order_and_coalescing(lib: ModuleType) -> Any:
    with (
        recording_handlers(USR1, USR2, WINCH) as elsewhere,
        lib.open_signal_receiver(USR1, USR2, WINCH, USR1) as received,
    ):
        for signum in (USR2, USR1, USR2, WINCH, USR1):
            signal.raise_signal(signum)
        got = [await received.__anext__() for _ in range(3)]
        signal.raise_signal(USR1)
        got.append(await received.__anext__())
    return got, elsewhere


async def restoring_and_redelivering(lib: ModuleType) -> Any:
    with recording_handlers(USR1, USR2, WINCH) as elsewhere:
        before = [signal.getsignal(s) for s in (USR1, USR2, WINCH)]
        with lib.open_signal_receiver(USR1, USR2, WINCH) as received:
            signal.raise_signal(WINCH)
            signal.raise_signal(USR2)
            await lib.lowlevel.checkpoint()  # both are pending now
            first = await received.__anext__()
            signal.raise_signal(USR1)  # on its way: not pending yet
            during = list(elsewhere)
        restored = [signal.getsignal(s) for s in (USR1, USR2, WINCH)] == before
        after_block = list(elsewhere)
        # The one on its way is redelivered when it lands. When that is
        # depends on the library's scheduling: wait for it here, while the
        # recording handlers are still there to receive it.
        arrived = lib.Event()
        signal.signal(USR1, lambda signum, frame: (elsewhere.append(signum), arrived.set()))
        await arrived.wait()
        return first, during, restored, after_block, list(elsewhere)


async def mistakes(lib: ModuleType) -> Any:
    def enter(*signals: int) -> object:
        try:
            lib.open_signal_receiver(*signals).__enter__()
        except BaseException as exc:
            return shape(exc)
        return "entered"

    seen = [
        enter(),
        enter(USR1, signal.SIGKILL),
        signal.getsignal(USR1) is signal.SIG_DFL,
        await lib.to_thread.run_sync(enter, USR1),
    ]
    with recording_handlers(USR1):
        with lib.open_signal_receiver(USR1) as received:
            async with lib.open_nursery() as nursery:
                nursery.start_soon(received.__anext__)
                await lib.testing.wait_all_tasks_blocked()
                seen.append(await outcome_of(received.__anext__()))
                signal.raise_signal(USR1)
        seen.append(await outcome_of(received.__anext__()))
    return seen


async def a_sigint_receiver_keeps_ctrl_c(lib: ModuleType) -> Any:
    with lib.open_signal_receiver(signal.SIGINT) as received:
        signal.raise_signal(signal.SIGINT)
        got = await received.__anext__()
        await lib.sleep(0.001)  # nothing stops the run
    return got


async def an_unread_sigint_reaches_the_run_after_the_block(lib: ModuleType) -> Any:
    with lib.open_signal_receiver(signal.SIGINT):
        signal.raise_signal(signal.SIGINT)
    await lib.sleep_forever()


SCENARIOS: dict[str, Callable[[ModuleType], Awaitable[Any]]] = {
    f.__name__: f
    for f in (
        order_and_coalescing,
        restoring_and_redelivering,
        mistakes,
        a_sigint_receiver_keeps_ctrl_c,
        an_unread_sigint_reaches_the_run_after_the_block,
    )
}


def run(lib: ModuleType, name: str) -> object:
    try:
        return ("returned", lib.run(SCENARIOS[name], lib))
    except BaseException as exc:
        return ("raised", shape(exc))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_trio_and_shardio_receive_the_same_signals(name: str) -> None:
    assert run(shardio, name) == run(trio, name)
