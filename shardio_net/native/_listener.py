"""NativeListener: a listening TCP port of the native stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import shardio
from shardio import lowlevel
from shardio.abc import Listener

from ._stream import NativeStream
from .tcp.listener import TcpListener, TcpListenerStatistics
from .wire.ipv4 import format_address

if TYPE_CHECKING:
    from ._stack import NativeStack

__all__ = ["NativeListener"]


@final
class NativeListener(Listener[NativeStream]):
    """Accepts the TCP connections a :class:`NativeStack` receives on one
    port; made by :meth:`NativeStack.open_tcp_listeners`.

    The stack answers SYNs itself (the SYN queue and the accept queue are
    bounded: ``backlog``); :meth:`accept` hands over established
    connections, oldest first. Closing it resets the connections not yet
    accepted, as closing a listening socket does.
    """

    __slots__ = ("_acceptors", "_closed", "_stack", "_tcp", "port")

    def __init__(self, stack: NativeStack, tcp: TcpListener) -> None:
        self._stack = stack
        self._tcp = tcp
        #: The port listened on.
        self.port = tcp.local[1]
        self._closed = False
        self._acceptors = lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return f"<NativeListener {format_address(self._tcp.local[0])}:{self.port}>"

    def _connection_ready(self) -> None:
        self._acceptors.unpark()

    @lowlevel.enable_ki_protection
    async def accept(self) -> NativeStream:
        """Wait for an established connection and return it as a stream."""
        await lowlevel.checkpoint_if_cancelled()
        blocked = False
        while True:
            if self._closed:
                raise shardio.ClosedResourceError("this listener was closed")
            conn = self._tcp.accept()
            if conn is not None:
                stream = self._stack._accepted(conn)
                if stream is not None:
                    if not blocked:
                        await lowlevel.cancel_shielded_checkpoint()
                    return stream
                continue
            await self._acceptors.park()
            blocked = True

    @lowlevel.enable_ki_protection
    async def aclose(self) -> None:
        """Stop listening; connections not yet accepted are reset."""
        if not self._closed:
            self._closed = True
            self._stack._close_listener(self)
            self._acceptors.unpark_all()
        await lowlevel.checkpoint()

    def getsockname(self) -> tuple[str, int]:
        """The (address, port) listened on."""
        return format_address(self._tcp.local[0]), self.port

    def statistics(self) -> TcpListenerStatistics:
        """The SYN and accept queues and their drop counters."""
        return self._tcp.statistics()
