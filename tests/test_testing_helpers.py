"""shardio.testing's Sequencer, assert_checkpoints, assert_no_checkpoints and
open_stream_to_socket_listener."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import shardio
import shardio_net
from shardio import lowlevel
from shardio.testing import (
    MockClock,
    Sequencer,
    assert_checkpoints,
    assert_no_checkpoints,
    open_stream_to_socket_listener,
)


async def test_a_sequencer_runs_blocks_of_several_tasks_in_order() -> None:
    seq = Sequencer()
    order: list[int] = []

    async def worker(*positions: int) -> None:
        for position in positions:
            async with seq(position):
                order.append(position)
                await shardio.sleep(0)  # yielding inside a block keeps the order

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(worker, 5, 6)
        nursery.start_soon(worker, 2, 4)
        nursery.start_soon(worker, 0, 3)
        nursery.start_soon(worker, 1)
    assert order == [0, 1, 2, 3, 4, 5, 6]


async def test_a_sequence_point_is_used_once() -> None:
    seq = Sequencer()
    async with seq(0):
        pass
    with pytest.raises(RuntimeError, match="reuse sequence point 0"):
        async with seq(0):
            pass


async def test_a_waiter_cancelled_breaks_the_sequence_for_everyone(
    autojump_clock: MockClock,
) -> None:
    seq = Sequencer()
    errors: list[str] = []

    async def waits_for(position: int) -> None:
        try:
            async with seq(position):
                errors.append(f"{position} ran")
        except RuntimeError as exc:
            errors.append(f"{position}: {exc}")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waits_for, 3)
        with shardio.move_on_after(1):
            await waits_for(2)
    await waits_for(4)
    assert errors == [
        "2: Sequencer wait cancelled -- sequence broken",
        "3: sequence broken!",
        "4: sequence broken!",
    ]


async def test_assert_checkpoints_passes_a_block_that_yields_and_fails_one_that_does_not() -> None:
    with assert_checkpoints():
        await shardio.sleep(0)
    lock = shardio.Lock()
    with assert_checkpoints():
        await lock.acquire()  # uncontended: the fast path still checkpoints
    lock.release()
    with (
        pytest.raises(AssertionError, match="assert_checkpoints block did not yield"),
        assert_checkpoints(),
    ):
        await lowlevel.checkpoint_if_cancelled()
    with pytest.raises(KeyError), assert_checkpoints():  # an error is left alone
        raise KeyError("no checkpoint needed")


async def test_assert_no_checkpoints_passes_sync_code_and_fails_a_yield() -> None:
    send, receive = shardio.open_memory_channel[int](1)
    with assert_no_checkpoints():
        send.send_nowait(1)
        assert receive.receive_nowait() == 1
    with (
        pytest.raises(AssertionError, match="assert_no_checkpoints block yielded"),
        assert_no_checkpoints(),
    ):
        await shardio.sleep(0)
    with (
        pytest.raises(AssertionError, match="assert_no_checkpoints block yielded"),
        assert_no_checkpoints(),
    ):
        await shardio.sleep(0)
        raise KeyError("the block raised after yielding")


async def test_half_checkpoints_count_by_their_schedule_point_unlike_trio() -> None:
    # Documented: shardio sees schedule points only (Trio wants both halves).
    with assert_checkpoints():
        await lowlevel.cancel_shielded_checkpoint()
    with assert_checkpoints():
        async with shardio.open_nursery():
            pass
    with assert_no_checkpoints():
        await lowlevel.checkpoint_if_cancelled()


async def roundtrip(listener: shardio_net.SocketListener) -> bytes:
    async with await open_stream_to_socket_listener(listener) as client:
        server = await listener.accept()
        async with server:
            await client.send_all(b"hello")
            return await server.receive_some()


async def test_open_stream_to_socket_listener_reaches_tcp_and_unix_listeners(
    tmp_path: Path,
) -> None:
    listeners = await shardio_net.open_tcp_listeners(0, host="0.0.0.0")
    listeners += await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    if socket.has_ipv6:
        try:
            listeners += await shardio_net.open_tcp_listeners(0, host="::")
        except OSError:
            pass  # no IPv6 on this machine
    listeners.append(await shardio_net.open_unix_listener(tmp_path / "socket"))
    for listener in listeners:
        async with listener:
            assert await roundtrip(listener) == b"hello"
