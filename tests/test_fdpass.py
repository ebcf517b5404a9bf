"""Passing file descriptors between shards (lowlevel.send_fd / receive_fd)."""

from __future__ import annotations

import os
import socket

import pytest

import shardio
from shardio import lowlevel

pytestmark = pytest.mark.shardio(shards=2)


async def talk_over(fd_id: tuple[int, int]) -> str:
    fd = await lowlevel.receive_fd(fd_id)
    with socket.socket(fileno=fd) as sock:
        sock.setblocking(False)
        await lowlevel.wait_readable(sock)
        request = sock.recv(100)
        sock.send(b"shard %d got " % shardio.current_shard() + request)
    return "done"


async def test_a_connected_socket_handed_to_another_shard_keeps_working() -> None:
    mine, theirs = socket.socketpair()
    with mine:
        fd_id = await lowlevel.send_fd(1, theirs.fileno())
        theirs.close()  # the sender's copy; shard 1 has its own now
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(shardio.run_on, 1, talk_over, fd_id)
            mine.send(b"hello")
            mine.setblocking(False)
            await lowlevel.wait_readable(mine)
            assert mine.recv(100) == b"shard 1 got hello"


async def test_the_id_may_arrive_before_the_fd() -> None:
    # receive_fd waits for the fd if the id (a message) outran it.
    r, w = os.pipe()
    try:
        fd_id = await lowlevel.send_fd(1, r)
        assert await shardio.run_on(1, read_one_byte_after_write, fd_id) == b"x"
    finally:
        os.close(r)
        os.close(w)


async def read_one_byte_after_write(fd_id: tuple[int, int]) -> bytes:
    fd = await lowlevel.receive_fd(fd_id)
    try:
        return b"x" if os.fstat(fd) else b""
    finally:
        os.close(fd)


async def test_sending_to_this_shard_duplicates_locally() -> None:
    r, w = os.pipe()
    try:
        fd_id = await lowlevel.send_fd(0, w)
        dup = await lowlevel.receive_fd(fd_id)
        assert dup != w
        os.write(dup, b"y")
        os.close(dup)
        assert os.read(r, 1) == b"y"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.shardio(shards=1)
async def test_single_shard_send_and_receive() -> None:
    r, w = os.pipe()
    try:
        dup = await lowlevel.receive_fd(await lowlevel.send_fd(0, w))
        os.write(dup, b"z")
        os.close(dup)
        assert os.read(r, 1) == b"z"
        with pytest.raises(KeyError):
            await lowlevel.receive_fd((0, 12345))
    finally:
        os.close(r)
        os.close(w)


async def test_send_fd_and_receive_fd_are_cancel_points() -> None:
    r, w = os.pipe()
    try:
        with shardio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(shardio.Cancelled):
                await lowlevel.send_fd(1, w)
        fd_id = await lowlevel.send_fd(0, w)
        with shardio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(shardio.Cancelled):
                await lowlevel.receive_fd(fd_id)
        # The cancelled receive took nothing: the fd is still there.
        os.close(await lowlevel.receive_fd(fd_id))
    finally:
        os.close(r)
        os.close(w)


def test_fds_nobody_received_are_closed_when_the_run_ends() -> None:
    async def main() -> None:
        r, w = os.pipe()
        await lowlevel.send_fd(0, r)
        await lowlevel.send_fd(1, w)
        os.close(r)
        os.close(w)

    before = set(os.listdir("/proc/self/fd"))
    shardio.run(main, shards=2, cpus=False)
    assert set(os.listdir("/proc/self/fd")) == before
