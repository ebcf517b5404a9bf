"""wait_readable / wait_writable / notify_closing on real sockets."""

from __future__ import annotations

import socket

import pytest

import shardio
from shardio import lowlevel
from shardio.testing import wait_all_tasks_blocked


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def test_wait_readable_wakes_when_data_arrives() -> None:
    a, b = _pair()
    with a, b:
        got: list[bytes] = []

        async def reader() -> None:
            await lowlevel.wait_readable(a)
            got.append(a.recv(100))

        async with shardio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert got == []
            b.send(b"ping")
        assert got == [b"ping"]


async def test_wait_readable_accepts_a_plain_fd() -> None:
    a, b = _pair()
    with a, b:
        b.send(b"x")
        await lowlevel.wait_readable(a.fileno())
        assert a.recv(10) == b"x"


async def test_wait_writable_returns_when_buffer_has_room() -> None:
    a, b = _pair()
    with a, b:
        # Fill the send buffer until the kernel refuses more.
        sent = 0
        try:
            while True:
                sent += a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        done: list[str] = []

        async def writer() -> None:
            await lowlevel.wait_writable(a)
            done.append("writable")

        async with shardio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            assert done == []
            received = 0
            while received < sent:
                try:
                    received += len(b.recv(1 << 20))
                except BlockingIOError:
                    await shardio.sleep(0)
        assert done == ["writable"]


async def test_two_readers_of_one_fd_get_busy_resource_error() -> None:
    a, b = _pair()
    with a, b:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(lowlevel.wait_readable, a)
            await wait_all_tasks_blocked()
            with pytest.raises(shardio.BusyResourceError, match="already reading"):
                await lowlevel.wait_readable(a)
            nursery.cancel_scope.cancel()


async def test_reader_and_writer_of_one_fd_wait_together() -> None:
    a, b = _pair()
    with a, b:
        order: list[str] = []

        async def reader() -> None:
            await lowlevel.wait_readable(a)
            order.append("read")

        async def writer() -> None:
            await lowlevel.wait_writable(a)
            order.append("write")

        async with shardio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            assert order == ["write"]
            b.send(b"x")
        assert order == ["write", "read"]


async def test_notify_closing_wakes_waiters_with_closed_resource_error() -> None:
    a, b = _pair()
    with b:
        errors: list[BaseException] = []

        async def reader() -> None:
            try:
                await lowlevel.wait_readable(a)
            except shardio.ClosedResourceError as exc:
                errors.append(exc)

        async with shardio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            lowlevel.notify_closing(a)
            a.close()
        assert len(errors) == 1


async def test_cancelled_wait_unregisters_so_the_fd_can_be_waited_again() -> None:
    a, b = _pair()
    with a, b:
        with shardio.move_on_after(0.01) as scope:
            await lowlevel.wait_readable(a)
        assert scope.cancelled_caught
        b.send(b"again")
        await lowlevel.wait_readable(a)
        assert a.recv(10) == b"again"


async def test_hang_up_wakes_the_reader() -> None:
    a, b = _pair()
    with a:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(lowlevel.wait_readable, a)
            await wait_all_tasks_blocked()
            b.close()
        assert a.recv(10) == b""


async def test_busy_task_still_sees_io_readiness() -> None:
    # A task that only checkpoints keeps the run queue non-empty; I/O must
    # still be polled so the reader makes progress.
    a, b = _pair()
    with a, b:
        stop = False

        async def spinner() -> int:
            spins = 0
            while not stop:
                await lowlevel.checkpoint()
                spins += 1
            return spins

        async with shardio.open_nursery() as nursery:
            nursery.start_soon(spinner)
            b.send(b"x")
            await lowlevel.wait_readable(a)
            stop = True
        assert a.recv(1) == b"x"


async def test_waiting_on_an_fd_epoll_cannot_watch_raises_its_oserror(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "plain-file"
    path.write_bytes(b"data")
    with open(path, "rb") as f:  # noqa: ASYNC230 - the point is a regular file's fd
        with pytest.raises(PermissionError):  # EPERM: regular files are not pollable
            await lowlevel.wait_readable(f)
        # The failed wait left nothing behind: the next one fails the same way.
        with pytest.raises(PermissionError):
            await lowlevel.wait_readable(f)
