"""Opening TCP listeners: one per local address, optionally SO_REUSEPORT."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Any, TypeAlias

from ._resolve import getaddrinfo
from ._socket_listener import SocketListener

__all__ = ["BoundAddress", "bind_tcp_listeners", "open_tcp_listeners"]

#: A local address as ``getsockname()`` gives it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6.
BoundAddress: TypeAlias = tuple[Any, ...]

# The kernel caps the backlog at net.core.somaxconn; asking for the most
# means "as much as the system allows".
_MAX_BACKLOG = 0xFFFF
# With port 0 and several addresses, the port the kernel picked for the
# first may be taken on another; try again with a new one this many times.
_SHARED_PORT_ATTEMPTS = 10


def _backlog(backlog: int | None) -> int:
    if backlog is None:
        return _MAX_BACKLOG
    if not isinstance(backlog, int):
        raise TypeError(f"backlog must be an int or None, not {backlog!r}")
    return min(backlog, _MAX_BACKLOG)


def family_of(address: BoundAddress) -> socket.AddressFamily:
    """The family of an IP socket address tuple, from its shape."""
    return socket.AF_INET6 if len(address) == 4 else socket.AF_INET


def bind_tcp_listeners(
    addresses: Sequence[BoundAddress],
    backlog: int | None = None,
    *,
    reuse_port: bool = True,
    share_first_port: bool = False,
) -> list[SocketListener]:
    """Bind and listen on each of ``addresses`` (IPv4 or IPv6 tuples).

    ``reuse_port`` sets ``SO_REUSEPORT``, so that other sockets (of other
    shards) may bind the same address and share its connections.
    ``share_first_port`` binds the others on the port the first one got (for
    port 0). Families the system lacks are skipped, unless all are.
    """
    listen_backlog = _backlog(backlog)
    listeners: list[SocketListener] = []
    unsupported: list[OSError] = []
    port = None
    try:
        for address in addresses:
            family = family_of(address)
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                if exc.errno != errno.EAFNOSUPPORT:
                    raise
                unsupported.append(exc)
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    # One socket per family, so "::" must not take IPv4 too.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port is not None:
                    address = (address[0], port, *address[2:])
                sock.bind(address)
                sock.listen(listen_backlog)
                if share_first_port and port is None:
                    port = sock.getsockname()[1]
                listeners.append(SocketListener(sock))
            except BaseException:
                sock.close()
                raise
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    if not listeners:
        message = "this system supports none of the address families of " + repr(addresses)
        raise OSError(errno.EAFNOSUPPORT, message) from ExceptionGroup(message, unsupported)
    return listeners


async def open_tcp_listeners(
    port: int,
    *,
    host: str | bytes | None = None,
    backlog: int | None = None,
    reuse_port: bool = True,
) -> list[SocketListener]:
    """Listen for TCP connections on ``port``; return one
    :class:`SocketListener` per local address. A checkpoint.

    ``host`` is the local address or name to bind (resolved with
    ``AI_PASSIVE``, without blocking the shard); ``None`` binds the wildcard
    address of each family, IPv4 (``0.0.0.0``) and IPv6 (``::``), as two
    listeners -- IPv6 sockets are made IPv6-only so the two do not clash.
    A name with several addresses gets a listener on each. Pass
    ``"0.0.0.0"`` or ``"::"`` to listen on one family only.

    ``port`` 0 lets the kernel pick a free port; **shardio differs** from
    Trio there: every listener gets the same port (Trio gives each address
    its own), so one number reaches them all.

    ``backlog`` is the length of the queue of connections not yet accepted
    (``None``: the largest the system allows). ``reuse_port`` sets
    ``SO_REUSEPORT``, which lets several sockets -- one per shard, see
    :func:`serve_tcp` -- listen on the same address, the kernel spreading
    the connections between them. ``SO_REUSEADDR`` is always set.
    """
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    infos = await getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses: list[BoundAddress] = []
    for family, _, _, _, address in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and address not in addresses:
            addresses.append(address)
    if port != 0 or len(addresses) < 2:
        return bind_tcp_listeners(addresses, backlog, reuse_port=reuse_port)
    attempts_left = _SHARED_PORT_ATTEMPTS
    while True:
        try:
            return bind_tcp_listeners(
                addresses, backlog, reuse_port=reuse_port, share_first_port=True
            )
        except OSError as exc:
            attempts_left -= 1
            if exc.errno != errno.EADDRINUSE or not attempts_left:
                raise
