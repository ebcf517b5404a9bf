"""NativeUDPSocket: a UDP port of the native stack, with the posix UDP socket's API."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, final

import attrs

import shardio
from shardio import lowlevel
from shardio.abc import AsyncResource

from .._udp import DEFAULT_DATAGRAM_SIZE
from .wire.ipv4 import format_address, parse_address

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ._stack import NativeStack

__all__ = ["DEFAULT_RECEIVE_QUEUE", "NativeUDPSocket", "UDPStatistics"]

#: Datagrams a socket holds for its reader before it drops new ones (as a
#: kernel socket whose receive buffer is full).
DEFAULT_RECEIVE_QUEUE = 256


@attrs.frozen
class UDPStatistics:
    """What :meth:`NativeUDPSocket.statistics` reports."""

    datagrams_sent: int
    datagrams_received: int
    #: Arrived while the receive queue was full, and dropped.
    dropped_queue_full: int
    queued: int


def _address(value: Any) -> tuple[int, int]:
    try:
        host, port = value
        return parse_address(host), int(port)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"a native UDP address is (IPv4 address, port), like ('10.0.0.2', 53); "
            f"not {value!r} ({exc})"
        ) from None


@final
class NativeUDPSocket(lowlevel.ShardLocal, AsyncResource):
    """A bound UDP port of a :class:`NativeStack`; made by
    :meth:`NativeStack.open_udp_socket`. The methods are those of
    :class:`~shardio_net.UDPSocket`; addresses are ``(IPv4 address, port)``.
    Received payloads are copied out of their frames (a datagram is small).
    """

    __slots__ = (
        "_closed",
        "_dropped",
        "_limit",
        "_peer",
        "_queue",
        "_readers",
        "_received",
        "_receiving",
        "_sent",
        "_stack",
        "port",
    )

    def __init__(self, stack: NativeStack, port: int, receive_queue: int) -> None:
        self._stack = stack
        #: The local port.
        self.port = port
        self._limit = receive_queue
        self._queue: deque[tuple[memoryview, tuple[int, int]]] = deque()
        self._readers = lowlevel.ParkingLot()
        self._peer: tuple[int, int] | None = None
        self._closed = False
        self._receiving = False
        self._sent = self._received = self._dropped = 0

    def __repr__(self) -> str:
        return f"<NativeUDPSocket port {self.port}>"

    def _deliver(self, payload: memoryview, source: tuple[int, int]) -> None:
        peer = self._peer
        if peer is not None and source != peer:
            return  # a connected socket hears only its peer, as in the kernel
        if len(self._queue) >= self._limit:
            self._dropped += 1
            return
        self._received += 1
        self._queue.append((payload, source))
        self._readers.unpark()

    def getsockname(self) -> tuple[str, int]:
        """The local (address, port)."""
        return format_address(self._stack.address), self.port

    async def connect(self, address: Any) -> None:
        """Send to ``address`` by default, and receive only from it."""
        await lowlevel.checkpoint()
        self._peer = _address(address)

    async def sendto(self, data: Buffer, address: Any) -> int:
        """Send one datagram to ``address``; return its size. Larger than the
        MTU, it is sent in IP fragments. Up to 65,507 bytes."""
        return await self._send(data, _address(address))

    async def send(self, data: Buffer) -> int:
        """Send one datagram to the connected peer."""
        if self._peer is None:
            raise OSError("this socket is not connected: use sendto, or connect first")
        return await self._send(data, self._peer)

    @lowlevel.enable_ki_protection
    async def _send(self, data: Buffer, address: tuple[int, int]) -> int:
        await lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise shardio.ClosedResourceError("this socket was closed")
        with memoryview(data) as raw:
            size = raw.nbytes
            payload = bytes(raw)  # the caller may reuse its buffer at once
        self._stack._send_udp(self.port, address, payload)
        self._sent += 1
        await lowlevel.cancel_shielded_checkpoint()
        return size

    async def recvfrom(self, max_bytes: int = DEFAULT_DATAGRAM_SIZE) -> tuple[bytes, Any]:
        """Wait for a datagram; return (its first ``max_bytes`` bytes, sender)."""
        view, source = await self._receive()
        return bytes(view[:max_bytes]), (format_address(source[0]), source[1])

    async def recvfrom_into(self, buffer: Buffer, nbytes: int = 0) -> tuple[int, Any]:
        """Wait for a datagram and copy it into ``buffer`` (at most
        ``nbytes`` bytes, or the buffer's size); return (count, sender)."""
        view, source = await self._receive()
        with memoryview(buffer) as raw, raw.cast("B") as target:
            count = min(len(view), nbytes or len(target), len(target))
            target[:count] = view[:count]
        return count, (format_address(source[0]), source[1])

    @lowlevel.enable_ki_protection
    async def _receive(self) -> tuple[memoryview, tuple[int, int]]:
        if self._receiving:
            raise shardio.BusyResourceError("another task is already receiving on this socket")
        self._receiving = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            blocked = False
            while not self._queue:
                if self._closed:
                    raise shardio.ClosedResourceError("this socket was closed")
                await self._readers.park()
                blocked = True
            if self._closed:
                raise shardio.ClosedResourceError("this socket was closed")
            item = self._queue.popleft()
            if not blocked:
                await lowlevel.cancel_shielded_checkpoint()
            return item
        finally:
            self._receiving = False

    def close(self) -> None:
        """Release the port; waiting receivers get ClosedResourceError."""
        if not self._closed:
            self._closed = True
            self._stack._close_udp(self)
            self._queue.clear()
            self._readers.unpark_all()

    async def aclose(self) -> None:
        """:meth:`close`, as a checkpoint."""
        self.close()
        await lowlevel.checkpoint()

    def statistics(self) -> UDPStatistics:
        """Datagrams sent, received and dropped, and queued now."""
        return UDPStatistics(
            datagrams_sent=self._sent,
            datagrams_received=self._received,
            dropped_queue_full=self._dropped,
            queued=len(self._queue),
        )
