"""Unix-domain stream sockets: connecting, listening, serving."""

from __future__ import annotations

import os
import socket
from typing import NoReturn, TypeAlias

import shardio
from shardio import TASK_STATUS_IGNORED, TaskStatus, lowlevel

from ._connect import connect
from ._serve import Handler, serve_listeners
from ._socket_listener import SocketListener
from ._socket_stream import SocketStream

__all__ = ["open_unix_listener", "open_unix_socket", "serve_unix"]

#: A filesystem path (or, starting with a NUL byte, a Linux abstract address).
UnixPath: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"

# The largest backlog; the kernel caps it at net.core.somaxconn.
_MAX_BACKLOG = 0xFFFF


async def open_unix_socket(path: UnixPath) -> SocketStream:
    """Connect to the Unix-domain stream socket at ``path``; a checkpoint.

    Returns a :class:`SocketStream`. Raises :class:`OSError` if the
    connection fails (no such file, no permission, nobody listening). A
    listener whose backlog is full is retried until it takes the connection.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await connect(sock, os.fspath(path))
    except BaseException:
        lowlevel.notify_closing(sock)
        sock.close()
        raise
    return SocketStream(sock)


async def open_unix_listener(path: UnixPath, *, backlog: int | None = None) -> SocketListener:
    """Listen on a new Unix-domain stream socket bound to ``path``; a checkpoint.

    The socket file must not exist yet (``OSError`` with ``EADDRINUSE``
    otherwise: a stale file from an earlier run is for the caller to
    remove). The returned :class:`SocketListener` removes the file when it
    is closed, if it is still the one it made. A path starting with a NUL
    byte is an abstract address (Linux): no file is made.
    """
    await lowlevel.checkpoint()
    address = os.fspath(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(_MAX_BACKLOG if backlog is None else min(backlog, _MAX_BACKLOG))
        unlink = None
        if address[:1] not in ("\0", b"\0"):
            info = os.stat(address)
            unlink = (os.fsdecode(address), info.st_dev, info.st_ino)
        return SocketListener(sock, _unlink_on_close=unlink)
    except BaseException:
        sock.close()
        raise


async def serve_unix(
    handler: Handler[SocketStream],
    path: UnixPath,
    *,
    backlog: int | None = None,
    handler_nursery: shardio.Nursery | None = None,
    task_status: TaskStatus[list[str | bytes]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Listen on the Unix-domain socket ``path`` and run ``handler(stream)``
    in a new task for each connection, on this shard; return only by being
    cancelled. The socket file is removed when serving ends.

    As :func:`serve_tcp` otherwise: a handler's exception is logged and
    closes only its own connection; with ``nursery.start``, returns the
    bound addresses (``[path]``).
    """
    listener = await open_unix_listener(path, backlog=backlog)
    task_status.started([listener.socket.getsockname()])
    await serve_listeners(handler, [listener], handler_nursery=handler_nursery)
