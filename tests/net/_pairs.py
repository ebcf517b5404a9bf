"""Connected stream pairs for the network tests (loopback and tmp paths only)."""

from __future__ import annotations

import itertools
import os
import socket

import shardio_net
from shardio_net import SocketStream

_unix_names = itertools.count()


async def tcp_pair(host: str = "127.0.0.1") -> tuple[SocketStream, SocketStream]:
    """(client, server) ends of a fresh TCP connection over loopback."""
    [listener] = await shardio_net.open_tcp_listeners(0, host=host)
    async with listener:
        client = await shardio_net.open_tcp_stream(host, listener.socket.getsockname()[1])
        server = await listener.accept()
    return client, server


async def unix_pair(directory: str | os.PathLike[str]) -> tuple[SocketStream, SocketStream]:
    """(client, server) ends of a fresh Unix-domain connection in ``directory``."""
    path = os.path.join(directory, f"s{next(_unix_names)}.sock")
    async with await shardio_net.open_unix_listener(path) as listener:
        client = await shardio_net.open_unix_socket(path)
        server = await listener.accept()
    return client, server


def clog(stream: SocketStream) -> None:
    """Fill ``stream``'s send path until the kernel takes no more: its next
    ``send_all`` blocks until the peer receives."""
    chunk = b"x" * 65536
    try:
        while True:
            stream.socket.send(chunk)
    except BlockingIOError:
        pass


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def reset_on_close(stream: SocketStream) -> None:
    """Make closing ``stream`` send a reset (SO_LINGER with a zero timeout)."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
