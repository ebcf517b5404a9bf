"""UDP sockets: datagrams, sent and received without blocking the shard."""

from __future__ import annotations

import socket
from contextlib import suppress
from typing import TYPE_CHECKING, Any, final

import attrs

import shardio
from shardio import lowlevel
from shardio.abc import AsyncResource

from ._resolve import getaddrinfo

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["DEFAULT_DATAGRAM_SIZE", "UDPSocket", "open_udp_socket"]

#: How many bytes ``recvfrom()`` accepts when given no size: the largest
#: UDP payload, so no datagram is cut short.
DEFAULT_DATAGRAM_SIZE = 65536


def _check_open(sock: socket.socket) -> None:
    if sock.fileno() == -1:
        raise shardio.ClosedResourceError("this UDP socket was closed")


@final
@attrs.define(eq=False, slots=True, repr=False)
class UDPSocket(lowlevel.ShardLocal, AsyncResource):
    """A UDP socket, made non-blocking; it owns ``socket``.

    Addresses are tuples as for :mod:`socket`: ``(host, port)`` for IPv4,
    ``(host, port[, flowinfo, scope_id])`` for IPv6. A host in an address
    given to :meth:`sendto` or :meth:`connect` may be a name: it is resolved
    without blocking the shard.

    One task at a time may send and one may receive; a second gets
    :class:`~shardio.BusyResourceError`. After :meth:`close` (or
    ``aclose``), every operation raises :class:`~shardio.ClosedResourceError`,
    also in tasks blocked on it at the time. Errors the network reports
    (``ECONNREFUSED`` on a connected socket whose peer has no listener, say)
    arrive as :class:`OSError`.
    """

    #: The socket this object wraps.
    socket: socket.socket
    _sending: bool = attrs.field(default=False, init=False)
    _receiving: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        sock = self.socket
        if not isinstance(sock, socket.socket):
            raise TypeError(f"UDPSocket needs a socket.socket, not {sock!r}")
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError(f"UDPSocket needs a SOCK_DGRAM socket, not {sock.type!r}")
        sock.setblocking(False)

    def __repr__(self) -> str:
        return f"<shardio_net.UDPSocket {self.socket!r}>"

    def getsockname(self) -> Any:
        """The local address (with the port the kernel picked, for port 0)."""
        return self.socket.getsockname()

    async def _resolve(self, address: Any) -> Any:
        """``address`` with its host resolved, for this socket's family."""
        sock = self.socket
        host, port, *rest = address
        try:
            socket.inet_pton(sock.family, host)
        except (OSError, TypeError):
            infos = await getaddrinfo(host, port, sock.family, socket.SOCK_DGRAM)
            if not infos:
                raise OSError(f"no {sock.family.name} address for {host!r}") from None
            resolved = infos[0][4]
            return (*resolved[:2], *rest) if rest else resolved
        return address

    async def connect(self, address: Any) -> None:
        """Set the default destination (see :meth:`send`), and receive only
        from it. A checkpoint."""
        await lowlevel.checkpoint_if_cancelled()
        _check_open(self.socket)
        self.socket.connect(await self._resolve(address))
        await lowlevel.cancel_shielded_checkpoint()

    async def sendto(self, data: Buffer, address: Any) -> int:
        """Send ``data`` as one datagram to ``address``; return its size.

        Waits while the socket's send buffer is full. A checkpoint.
        """
        return await self._send(data, await self._resolve(address))

    async def send(self, data: Buffer) -> int:
        """Send ``data`` as one datagram to the connected destination."""
        return await self._send(data, None)

    async def _send(self, data: Buffer, address: Any) -> int:
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this socket")
        self._sending = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            sock = self.socket
            _check_open(sock)
            waited = False
            while True:
                try:
                    sent = sock.send(data) if address is None else sock.sendto(data, address)
                    break
                except BlockingIOError:
                    await lowlevel.wait_writable(sock)
                    waited = True
            if not waited:
                await lowlevel.cancel_shielded_checkpoint()
            return sent
        finally:
            self._sending = False

    async def recvfrom(self, max_bytes: int = DEFAULT_DATAGRAM_SIZE) -> tuple[bytes, Any]:
        """Wait for a datagram; return its data (cut to ``max_bytes``) and
        the sender's address. A checkpoint."""
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        result: tuple[bytes, Any] = await self._receive(socket.socket.recvfrom, max_bytes)
        return result

    async def recvfrom_into(self, buffer: Buffer, nbytes: int = 0) -> tuple[int, Any]:
        """Wait for a datagram and write it into ``buffer`` (at most
        ``nbytes`` bytes of it, or the buffer's size if 0), without a copy;
        return the number of bytes written and the sender's address."""
        result: tuple[int, Any] = await self._receive(socket.socket.recvfrom_into, buffer, nbytes)
        return result

    async def _receive(self, operation: Any, *args: Any) -> Any:
        if self._receiving:
            raise shardio.BusyResourceError("another task is already receiving on this socket")
        self._receiving = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            sock = self.socket
            _check_open(sock)
            try:
                result = operation(sock, *args)
            except BlockingIOError:
                pass
            else:
                await lowlevel.cancel_shielded_checkpoint()
                return result
            while True:
                await lowlevel.wait_readable(sock)
                with suppress(BlockingIOError):
                    return operation(sock, *args)
        finally:
            self._receiving = False

    def close(self) -> None:
        """Close the socket (idempotent); blocked tasks wake with
        :class:`~shardio.ClosedResourceError`."""
        sock = self.socket
        if sock.fileno() != -1:
            lowlevel.notify_closing(sock)
            sock.close()

    async def aclose(self) -> None:
        """:meth:`close`, as an async resource; a checkpoint."""
        self.close()
        await lowlevel.checkpoint()


async def open_udp_socket(
    host: str | bytes | None = None,
    port: int = 0,
    *,
    family: int = 0,
    reuse_port: bool = False,
) -> UDPSocket:
    """A new :class:`UDPSocket` bound to ``host`` and ``port``; a checkpoint.

    ``host`` is a local address or name (resolved without blocking the
    shard); ``None`` is the wildcard address of ``family`` (IPv4 if
    ``family`` is 0). ``port`` 0 lets the kernel pick one (see
    :meth:`UDPSocket.getsockname`). The first address the name resolves to
    is used. ``reuse_port`` sets ``SO_REUSEPORT``, so that several sockets --
    one per shard, say -- can bind the same address, the kernel spreading
    the datagrams between them.
    """
    if host is None and family == 0:
        family = socket.AF_INET
    infos = await getaddrinfo(host, port, family, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"no local address found for {host!r}")
    address_family, kind, proto, _, address = infos[0]
    sock = socket.socket(address_family, kind, proto)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        return UDPSocket(sock)
    except BaseException:
        sock.close()
        raise
