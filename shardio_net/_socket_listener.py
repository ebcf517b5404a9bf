"""SocketListener: a listening stream socket that accepts SocketStreams."""

from __future__ import annotations

import errno
import os
import socket
from contextlib import suppress
from typing import final

import attrs

import shardio
from shardio import lowlevel
from shardio.abc import Listener

from ._socket_stream import SocketStream

__all__ = ["SocketListener", "accept_socket"]

# Errors that concern one incoming connection, not the listener (it was reset
# or aborted before we took it, or a firewall refused it): accept goes on.
_PER_CONNECTION_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "ECONNRESET",
        "EPROTO",
        "EPERM",
        "ETIMEDOUT",
        "ENETDOWN",
        "ENETUNREACH",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENONET",
        "ENOPROTOOPT",
        "EOPNOTSUPP",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
    )
    if hasattr(errno, name)
)


async def accept_socket(listener: SocketListener) -> socket.socket:
    """Accept one connection on ``listener``, as a bare non-blocking socket.

    :meth:`SocketListener.accept` without the stream around it: for code
    that hands the connection to another shard.
    """
    if listener._accepting:
        raise shardio.BusyResourceError("another task is already accepting on this listener")
    listener._accepting = True
    try:
        await lowlevel.checkpoint_if_cancelled()
        sock = listener.socket
        waited = False
        while True:
            try:
                connection, _ = sock.accept()
            except BlockingIOError:
                await lowlevel.wait_readable(sock)
                waited = True
            except OSError as exc:
                if sock.fileno() == -1:
                    raise shardio.ClosedResourceError("this listener was closed") from None
                if exc.errno not in _PER_CONNECTION_ERRNOS:
                    raise
            else:
                break
        connection.setblocking(False)
        if not waited:
            await lowlevel.cancel_shielded_checkpoint()
        return connection
    finally:
        listener._accepting = False


@final
@attrs.define(eq=False, slots=True, repr=False)
class SocketListener(lowlevel.ShardLocal, Listener[SocketStream]):
    """A listening ``SOCK_STREAM`` socket (TCP or Unix-domain) as a
    :class:`shardio.abc.Listener` of :class:`SocketStream`.

    The listener owns ``socket`` (made non-blocking here) and closes it in
    :meth:`aclose`. A Unix-domain listener made by
    :func:`~shardio_net.open_unix_listener` also removes its socket file when
    closed, if the file is still the one it bound.
    """

    #: The listening socket.
    socket: socket.socket
    # (path, device, inode) of a Unix socket file to remove on close.
    _unlink_on_close: tuple[str, int, int] | None = attrs.field(
        default=None, kw_only=True, alias="_unlink_on_close"
    )
    _accepting: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        sock = self.socket
        if not isinstance(sock, socket.socket):
            raise TypeError(f"SocketListener needs a socket.socket, not {sock!r}")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"SocketListener needs a SOCK_STREAM socket, not {sock.type!r}")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError("SocketListener needs a listening socket: call listen() first")
        sock.setblocking(False)

    def __repr__(self) -> str:
        return f"<shardio_net.SocketListener {self.socket!r}>"

    async def accept(self) -> SocketStream:
        """Wait for the next connection and return it as a :class:`SocketStream`.

        Errors that concern only that connection (it was reset or aborted
        before it was taken) are skipped. Raises
        :class:`~shardio.BusyResourceError` if another task is accepting,
        :class:`~shardio.ClosedResourceError` if the listener was closed, and
        :class:`OSError` for errors of the system, such as ``EMFILE`` (out of
        file descriptors), which :func:`~shardio_net.serve_listeners` rides out.
        """
        return SocketStream(await accept_socket(self))

    async def aclose(self) -> None:
        """Close the listening socket (a checkpoint; always done).

        Connections waiting in the backlog are reset; accepted ones are not
        affected. A task blocked in :meth:`accept` wakes with
        :class:`~shardio.ClosedResourceError`.
        """
        sock = self.socket
        if sock.fileno() != -1:
            lowlevel.notify_closing(sock)
            sock.close()
            if self._unlink_on_close is not None:
                path, device, inode = self._unlink_on_close
                self._unlink_on_close = None
                with suppress(OSError):
                    info = os.stat(path)
                    if (info.st_dev, info.st_ino) == (device, inode):
                        os.unlink(path)
        await lowlevel.checkpoint()
