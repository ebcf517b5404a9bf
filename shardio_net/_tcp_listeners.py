"""Opening TCP listeners: one per local address, and sharing a port between shards.

A port is one server's
----------------------
A listener must not take connections that belong to another server: a
second copy of a program started on a port that is already served must
fail with ``OSError(EADDRINUSE)``, as in Trio, and not silently take half
the connections (for the memcached example, half the keys). Yet the shards
of one :func:`~shardio_net.serve_tcp` do share a port, with a listening
socket each. The facts of Linux this relies on:

* ``SO_REUSEPORT`` lets a socket bind an address that listening sockets
  already hold only if it *and every one of them* have the option set, and
  all belong to the same effective user. The sockets listening on one
  address form a *reuseport group*; the kernel hashes each incoming
  connection's addresses to pick one of them. Any process of that user
  that sets the option may join the group: the kernel has no way to keep
  it private (socket(7)), and Seastar's posix stack, nginx's ``reuseport``
  and other prefork servers live with that.
* The option is read when the socket binds (on the new socket and on the
  ones already there) and when it starts listening; it may be set after
  ``bind``. A socket bound *without* it succeeds only if no listener holds
  the address at all (``SO_REUSEADDR``, always set here, only lets it past
  connections lingering in ``TIME_WAIT``).

So a listener here first *opens* its address: it binds without
``SO_REUSEPORT``, which proves that no other server holds the address,
whatever that server's options. Only then, if the listener is to be shared
(``reuse_port=True``), does it set ``SO_REUSEPORT``, before ``listen``, so
that the other shards of the same server can *join* it: they set the option
before binding (``join=True``), and bind exactly the addresses the first
shard got. A second server, shardio or Trio or anything that does not ask
for ``SO_REUSEPORT``, fails at its first bind. What is left is the kernel's
rule above: a program of the same user that itself sets ``SO_REUSEPORT``
can still join a shared listener. A listener that is not shared (a single
shard's; ``reuse_port=False``) never sets the option, so nothing can join it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Any, TypeAlias

from ._native_route import installed_native_stack, native_address
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
    reuse_port: bool = False,
    join: bool = False,
    share_first_port: bool = False,
) -> list[SocketListener]:
    """Bind and listen on each of ``addresses`` (IPv4 or IPv6 tuples).

    By default each address must be free (``OSError(EADDRINUSE)`` if any
    listener holds it, whatever its options). ``reuse_port`` then sets
    ``SO_REUSEPORT`` before listening, so that the other shards of the same
    server may join; ``join`` sets it before binding, to join the listeners
    that another shard opened so on exactly these addresses (see the top of
    this module). ``share_first_port`` binds the others on the port the
    first one got (for port 0). Families the system lacks are skipped,
    unless all are.
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
                if join:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    # One socket per family, so "::" must not take IPv4 too.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port is not None:
                    address = (address[0], port, *address[2:])
                sock.bind(address)
                if reuse_port and not join:
                    # Bound without it: the address was free. Now let our
                    # other shards in.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
    (``None``: the largest the system allows).

    The addresses must be free: if any listener holds one, on this shard or
    in any process, with or without ``SO_REUSEPORT``, this raises
    ``OSError(EADDRINUSE)``, as in Trio. ``reuse_port`` then sets
    ``SO_REUSEPORT`` on the new listeners, which lets other sockets -- one
    per shard, see :func:`serve_tcp` -- join them: sockets that set
    ``SO_REUSEPORT`` *before* binding the same address, in a process of the
    same user. The kernel then spreads the connections between them.
    ``reuse_port=False`` lets nothing join. ``SO_REUSEADDR`` is always set
    (a port whose old connections linger in ``TIME_WAIT`` can be bound).
    """
    native = installed_native_stack()
    if native is not None:
        native_host = None if host is None else await native_address(host, port)
        listeners = await native.open_tcp_listeners(port, host=native_host, backlog=backlog)
        return listeners  # type: ignore[return-value]
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
