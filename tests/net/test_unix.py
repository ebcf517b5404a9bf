"""Unix-domain streams: connecting, listening, serving, the socket file."""

from __future__ import annotations

import errno
import functools
import os
import socket
from pathlib import Path

import pytest

import shardio
import shardio_net
from shardio_net import SocketStream

from ._pairs import unix_pair


async def shout(stream: SocketStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk.upper())


async def test_serve_unix_round_trip_and_file_removed_after(tmp_path: Path) -> None:
    path = str(tmp_path / "shout.sock")
    assert not os.listdir(tmp_path)
    async with shardio.open_nursery() as nursery:
        assert await nursery.start(functools.partial(shardio_net.serve_unix, shout, path)) == [path]
        async with await shardio_net.open_unix_socket(path) as stream:
            await stream.send_all(b"quiet please")
            assert await stream.receive_some() == b"QUIET PLEASE"
            assert stream.socket.family == socket.AF_UNIX
        nursery.cancel_scope.cancel()
    assert not os.listdir(tmp_path)


async def test_half_close_and_large_transfer_over_unix(tmp_path: Path) -> None:
    client, server = await unix_pair(tmp_path)
    data = os.urandom(3 << 20)

    async def send() -> None:
        await client.send_all(data)
        await client.send_eof()

    received = bytearray()
    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(send)
        async for chunk in server:
            received += chunk
        await server.send_all(b"thanks")
        assert await client.receive_some() == b"thanks"
    assert received == data


async def test_connecting_to_a_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await shardio_net.open_unix_socket(tmp_path / "nobody.sock")


async def test_listening_on_an_existing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "taken.sock"
    path.write_text("not a socket")
    with pytest.raises(OSError) as info:
        await shardio_net.open_unix_listener(path)
    assert info.value.errno == errno.EADDRINUSE
    assert path.read_text() == "not a socket"


async def test_a_listener_leaves_a_file_that_replaced_its_own(tmp_path: Path) -> None:
    path = tmp_path / "replaced.sock"
    listener = await shardio_net.open_unix_listener(path)
    path.unlink()
    path.write_text("someone else's")
    await listener.aclose()
    assert path.read_text() == "someone else's"


async def test_abstract_addresses_work_and_leave_no_file() -> None:
    name = f"\0shardio-test-{os.getpid()}"
    async with (
        await shardio_net.open_unix_listener(name) as listener,
        await shardio_net.open_unix_socket(name) as client,
        await listener.accept() as server,
    ):
        await client.send_all(b"abstract")
        assert await server.receive_some() == b"abstract"


async def test_peer_closing_gives_end_of_file_then_broken_sends(tmp_path: Path) -> None:
    client, server = await unix_pair(tmp_path)
    await server.aclose()
    assert await client.receive_some() == b""
    with pytest.raises(shardio.BrokenResourceError):
        await client.send_all(b"anyone?")
    await client.aclose()
