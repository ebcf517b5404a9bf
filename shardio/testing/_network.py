"""``open_stream_to_socket_listener``: connect to a listener a test opened."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shardio_net import SocketListener, SocketStream

__all__ = ["open_stream_to_socket_listener"]

# A listener on a wildcard address is reached through the loopback address.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


async def open_stream_to_socket_listener(socket_listener: SocketListener) -> SocketStream:
    """Connect to ``socket_listener`` (a :class:`shardio_net.SocketListener`,
    TCP or Unix-domain) and return the client's stream. A checkpoint.

    Trio's helper, for tests that let a server pick its own port::

        listeners = await shardio_net.open_tcp_listeners(0)
        client = await shardio.testing.open_stream_to_socket_listener(listeners[0])

    A listener on a wildcard address (``0.0.0.0``, ``::``) is reached through
    the loopback address of its family.
    """
    # shardio_net is built on shardio: imported here, when a test needs it.
    import shardio_net

    sock = socket_listener.socket
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return await shardio_net.open_unix_socket(address)
    host, port = address[0], address[1]
    return await shardio_net.open_tcp_stream(_LOOPBACK.get(host, host), port)
