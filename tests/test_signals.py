"""shardio.open_signal_receiver: signals as an async iterator on shard 0, and
how it shares SIGINT and SIGTERM with shardio's orderly stop."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

import shardio
from shardio import lowlevel


@contextmanager
def recording_handlers(*signals: int) -> Iterator[list[int]]:
    """Install handlers that record what reaches them (instead of SIG_DFL,
    which would end the test process); restore the old ones after."""
    seen: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = {signum: signal.signal(signum, record) for signum in signals}
    try:
        yield seen
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def test_signals_arrive_in_order_of_first_arrival_and_repeats_coalesce() -> None:
    with (
        recording_handlers(signal.SIGUSR1, signal.SIGUSR2) as elsewhere,
        shardio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as received,
    ):
        for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1, signal.SIGUSR1):
            signal.raise_signal(signum)
        assert await received.__anext__() == signal.SIGUSR1
        assert await received.__anext__() == signal.SIGUSR2
        signal.raise_signal(signal.SIGUSR2)
        # Had the repeats of SIGUSR1 been queued, one would come first.
        assert await received.__anext__() == signal.SIGUSR2
    assert elsewhere == []


async def test_leaving_restores_the_handlers_and_redelivers_what_was_not_read() -> None:
    with recording_handlers(signal.SIGUSR1, signal.SIGUSR2) as elsewhere:
        before = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)
        with shardio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2):
            signal.raise_signal(signal.SIGUSR2)
            await lowlevel.checkpoint()  # its callback has run: it is pending
            signal.raise_signal(signal.SIGUSR1)  # its callback is still queued
            assert elsewhere == []
        assert (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)) == before
        assert elsewhere == [signal.SIGUSR2]
        await lowlevel.checkpoint()
        assert elsewhere == [signal.SIGUSR2, signal.SIGUSR1]


async def test_mistakes_get_clear_errors() -> None:
    with pytest.raises(TypeError, match="needs at least one signal"):
        shardio.open_signal_receiver().__enter__()
    with pytest.raises(OSError):
        shardio.open_signal_receiver(signal.SIGUSR1, signal.SIGKILL).__enter__()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # undone

    def in_a_thread() -> str:
        try:
            with shardio.open_signal_receiver(signal.SIGUSR1):
                return "entered"
        except RuntimeError as exc:
            return str(exc)

    assert "only in the main thread" in await shardio.to_thread.run_sync(in_a_thread)

    with recording_handlers(signal.SIGUSR1):
        with shardio.open_signal_receiver(signal.SIGUSR1) as received:
            async with shardio.open_nursery() as nursery:
                nursery.start_soon(received.__anext__)
                await shardio.testing.wait_all_tasks_blocked()
                with pytest.raises(shardio.BusyResourceError):
                    await received.__anext__()
                signal.raise_signal(signal.SIGUSR1)
        with pytest.raises(RuntimeError, match="already exited"):
            await received.__anext__()


def test_a_sigint_receiver_takes_ctrl_c_from_the_orderly_stop() -> None:
    async def main() -> str:
        with shardio.open_signal_receiver(signal.SIGINT) as received:
            signal.raise_signal(signal.SIGINT)
            assert await received.__anext__() == signal.SIGINT
            await shardio.sleep(0.01)  # not cancelled: the run was not asked to stop
        return "still running"

    assert shardio.run(main) == "still running"


def test_a_sigint_left_unread_stops_the_run_once_the_block_is_left() -> None:
    seen: list[str] = []

    async def main() -> None:
        with shardio.open_signal_receiver(signal.SIGINT):
            signal.raise_signal(signal.SIGINT)
            seen.append("the block goes on")
        try:
            await shardio.sleep_forever()
        except shardio.Cancelled as exc:
            seen.append(exc.source)
            raise

    with pytest.raises(KeyboardInterrupt):
        shardio.run(main)
    assert seen == ["the block goes on", "KeyboardInterrupt"]


def test_a_sigterm_receiver_keeps_sigterm_until_it_is_left() -> None:
    async def main() -> None:
        with shardio.open_signal_receiver(signal.SIGTERM) as received:
            os.kill(os.getpid(), signal.SIGTERM)
            assert await received.__anext__() == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)
        await shardio.sleep_forever()

    with pytest.raises(SystemExit) as caught:
        shardio.run(main)
    assert caught.value.code == 143


async def signal_shard_0() -> None:
    os.kill(os.getppid(), signal.SIGUSR1)


async def try_on_this_shard() -> str:
    try:
        with shardio.open_signal_receiver(signal.SIGUSR1):
            return "opened"
    except RuntimeError as exc:
        return str(exc)


@pytest.mark.shardio(shards=2)
async def test_only_shard_0_receives_signals_and_it_receives_them_from_anywhere() -> None:
    refusal = await shardio.run_on(1, try_on_this_shard)
    assert refusal.startswith("open_signal_receiver() works on shard 0 only, not on shard 1")
    with (
        recording_handlers(signal.SIGUSR1),
        shardio.open_signal_receiver(signal.SIGUSR1) as received,
    ):
        await shardio.run_on(1, signal_shard_0)
        assert await received.__anext__() == signal.SIGUSR1
