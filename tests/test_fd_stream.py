"""shardio.lowlevel.FdStream: a stream over a pipe or socket fd, passing the
conformance checks Trio's FdStream passes."""

from __future__ import annotations

import os
import socket

import pytest

import shardio
from shardio.lowlevel import FdStream
from shardio.testing import check_one_way_stream, check_two_way_stream


async def make_pipe() -> tuple[FdStream, FdStream]:
    read_end, write_end = os.pipe()
    return FdStream(write_end), FdStream(read_end)


def fill(fd: int) -> None:
    # Writes larger than PIPE_BUF: a smaller one is all-or-nothing, and could
    # fail while a little room is still left.
    chunk = b"x" * 65536
    while True:
        try:
            os.write(fd, chunk)
        except BlockingIOError:
            break
    chunk = b"x"
    while True:
        try:
            os.write(fd, chunk)
        except BlockingIOError:
            return


async def make_clogged_pipe() -> tuple[FdStream, FdStream]:
    send, receive = await make_pipe()
    fill(send.fileno())
    return send, receive


async def make_socket_pair() -> tuple[FdStream, FdStream]:
    left, right = socket.socketpair()
    return FdStream(left.detach()), FdStream(right.detach())


async def make_clogged_socket_pair() -> tuple[FdStream, FdStream]:
    left, right = await make_socket_pair()
    fill(left.fileno())
    fill(right.fileno())
    return left, right


async def test_a_pipe_passes_the_one_way_stream_checks() -> None:
    await check_one_way_stream(make_pipe, make_clogged_pipe)


async def test_a_socket_pair_passes_the_two_way_stream_checks() -> None:
    await check_two_way_stream(make_socket_pair, make_clogged_socket_pair)


@pytest.mark.shardio(shards=2)
async def test_fd_streams_work_on_another_shard() -> None:
    async def round_trip() -> tuple[int, bytes]:
        send, receive = await make_pipe()
        async with send, receive:
            await send.send_all(b"on shard 1")
            return shardio.current_shard(), await receive.receive_some()

    assert await shardio.run_on(1, round_trip) == (1, b"on shard 1")


async def test_closing_closes_the_fd_and_restores_its_blocking_mode() -> None:
    read_end, write_end = os.pipe()
    keep = os.dup(read_end)  # shares the open file description, and so its mode
    stream = FdStream(read_end)
    assert not os.get_blocking(keep)
    assert repr(stream) == f"<shardio.lowlevel.FdStream fd={read_end}>"
    await stream.aclose()
    assert stream.fileno() == -1
    assert repr(stream) == "<shardio.lowlevel.FdStream closed>"
    assert os.get_blocking(keep)
    with pytest.raises(OSError):
        os.fstat(read_end)
    with pytest.raises(shardio.ClosedResourceError):
        await stream.receive_some()
    await stream.aclose()  # again: nothing more
    os.close(keep)
    os.close(write_end)


async def test_a_write_to_a_pipe_nobody_reads_is_a_broken_resource() -> None:
    send, receive = await make_pipe()
    await receive.aclose()
    with pytest.raises(shardio.BrokenResourceError) as caught:
        await send.send_all(b"lost")
    assert isinstance(caught.value.__cause__, BrokenPipeError)
    await send.aclose()


async def test_bad_arguments_say_what_was_wrong() -> None:
    with pytest.raises(TypeError, match="takes a file descriptor"):
        FdStream("3")  # type: ignore[arg-type]
    send, receive = await make_pipe()
    async with send, receive:
        with pytest.raises(ValueError, match="max_bytes must be >= 1, not 0"):
            await receive.receive_some(0)
        with pytest.raises(TypeError, match="max_bytes must be an int"):
            await receive.receive_some(1.5)  # type: ignore[arg-type]


def test_an_fd_stream_dropped_without_closing_closes_its_fd() -> None:
    read_end, write_end = os.pipe()
    stream = FdStream(read_end)
    del stream
    with pytest.raises(OSError):
        os.fstat(read_end)
    os.close(write_end)
