"""NativeStream: a TCP connection of the native stack, as a shardio stream.

The stream is both the application's end of a connection and the stack's
record of it: the stack (``_stack.py``) feeds its :class:`TcpConnection`
and hands its events here; the methods below turn them into Trio's stream
contract, the one :class:`~shardio_net.SocketStream` keeps.

Buffer lifetime
---------------
Zero copy both ways, with rules the caller can rely on.

*Received* data is kept as the views of the frames it arrived in, exactly
as the connection handed it up (``DataReceived``). :meth:`receive_some`
copies out the bytes it returns (a ``bytes`` object must own its memory);
:meth:`receive_into` copies straight into the caller's buffer, the one copy
there is; :meth:`receive_views` copies nothing and gives away the views
themselves. Each frame's memory is its own (the device's rule), so a view
stays valid as long as anyone holds it. The receive window reopens by what
was taken, at the moment it is taken.

*Sent* data is handed to the connection by reference, a list of views of the
caller's buffers; segments are slices of them, written with their headers
in one vectored transmit, and the connection holds them until they are
acknowledged (a ``BuffersReleased`` event says which). So ``send_all``
must not return while the caller could still change a buffer the
connection holds:

* a read-only buffer (``bytes``, a read-only ``memoryview``) cannot change:
  it is held by reference and ``send_all`` returns once it is queued;
* a writable buffer (``bytearray``, a writable ``memoryview``, an
  ``array``) of a send smaller than :data:`COPY_THRESHOLD` bytes is copied
  first -- a memcpy costs less than making the caller wait for an ACK;
* a larger writable one is held by reference, and ``send_all`` returns only
  once the peer has acknowledged it (as MSG_ZEROCOPY's contract in the posix
  stack). If that wait is cancelled, the connection is reset: the buffers
  are released at once, and the stream is broken, as a cancelled
  ``send_all`` leaves any stream.
"""

from __future__ import annotations

import errno
import operator
from collections import deque
from typing import TYPE_CHECKING, final

import shardio
from shardio import lowlevel
from shardio.abc import HalfCloseableStream

from .._socket_stream import DEFAULT_RECEIVE_SIZE, SendData, _byte_views
from .tcp.connection import TcpConnection, TcpStatistics
from .tcp.events import (
    BuffersReleased,
    Closed,
    Connected,
    DataReceived,
    EndOfStream,
    Event,
    Reset,
    TimedOut,
)
from .wire.ipv4 import format_address

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ._listener import NativeListener
    from ._stack import NativeStack

__all__ = ["COPY_THRESHOLD", "NativeStream"]

#: A ``send_all`` of writable buffers smaller than this (in all) copies them
#: and returns at once; a larger one waits until they are acknowledged.
COPY_THRESHOLD = 65536


@final
class NativeStream(HalfCloseableStream):
    """A TCP connection of a :class:`~shardio_net.native.NativeStack`.

    Follows the stream contract of :class:`~shardio_net.SocketStream`
    (``send_all`` of one buffer or a sequence of them, ``receive_some``,
    ``receive_into``, ``send_eof``, ``wait_send_all_might_not_block``,
    ``aclose``), plus :meth:`receive_views` (the received data itself, no
    copy) and :meth:`statistics` (the connection's TCP_INFO). Get one from
    :meth:`NativeStack.open_tcp_stream` or a listener's ``accept``. It
    belongs to the shard its stack runs on.
    """

    __slots__ = (
        "_available",
        "_closed",
        "_connect_lot",
        "_connected",
        "_eof",
        "_eof_sent",
        "_error",
        "_forgotten",
        "_listener",
        "_readers",
        "_received",
        "_receiving",
        "_released",
        "_sending",
        "_stack",
        "_taken",
        "_tcp",
        "_writers",
        "key",
        "local",
        "remote",
        "timer",
    )

    def __init__(
        self,
        stack: NativeStack,
        tcp: TcpConnection,
        local: tuple[int, int],
        remote: tuple[int, int],
        listener: NativeListener | None = None,
    ) -> None:
        self._stack = stack
        self._tcp = tcp
        #: (address as int, port) at each end.
        self.local = local
        self.remote = remote
        #: The stack's key for the connection: (local port, remote address, remote port).
        self.key = (local[1], remote[0], remote[1])
        #: The deadline of this connection's entry in the stack's timer heap
        #: (``inf``: none); the connection's own may have moved later since.
        self.timer = float("inf")
        self._listener = listener
        self._received: deque[memoryview] = deque()
        self._available = 0
        self._eof = False
        self._eof_sent = False
        # The handshake completed (at some point; the connection may be over).
        self._connected = False
        self._error: OSError | None = None
        self._closed = False
        self._forgotten = False
        self._sending = False
        self._receiving = False
        # Buffers the connection took by reference, and released again (in
        # order): a send_all waits for its own to be released.
        self._taken = 0
        self._released = 0
        self._readers = lowlevel.ParkingLot()
        self._writers = lowlevel.ParkingLot()
        self._connect_lot = lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return (
            f"<NativeStream {format_address(self.local[0])}:{self.local[1]} -> "
            f"{format_address(self.remote[0])}:{self.remote[1]} "
            f"{self._tcp.state.name}>"
        )

    # -- what the stack tells the stream ------------------------------------------

    def _on_events(self, events: list[Event]) -> None:
        # Hot path: once per pass for a connection that had something.
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                self._received.extend(event.data)  # type: ignore[union-attr]
                self._available += event.nbytes  # type: ignore[union-attr]
                self._readers.unpark_all()
            elif kind is BuffersReleased:
                self._released += event.count  # type: ignore[union-attr]
                self._writers.unpark_all()
            elif kind is Connected:
                self._connected = True
                self._connect_lot.unpark_all()
                if self._listener is not None:
                    self._listener._connection_ready()
            elif kind is EndOfStream:
                self._eof = True
                self._readers.unpark_all()
            elif kind is Reset or kind is TimedOut:
                reason: str = event.reason  # type: ignore[union-attr]
                code: int = event.errno  # type: ignore[union-attr]
                error_type = {
                    errno.ECONNREFUSED: ConnectionRefusedError,
                    errno.ECONNRESET: ConnectionResetError,
                }.get(code, TimeoutError)
                self._error = error_type(code, reason)
                self._wake_all()
            elif kind is Closed:
                self._forgotten = True
                self._stack._forget(self)
                self._wake_all()

    def _wake_all(self) -> None:
        self._readers.unpark_all()
        self._writers.unpark_all()
        self._connect_lot.unpark_all()

    def _broken(self, what: str) -> shardio.BrokenResourceError:
        error = self._error
        if error is None:
            return shardio.BrokenResourceError(f"the connection was closed by its stack ({what})")
        broken = shardio.BrokenResourceError(f"connection broken: {error.strerror}")
        broken.__cause__ = error
        return broken

    async def _wait_connected(self) -> None:
        """For open_tcp_stream: until the handshake is done, or failed."""
        try:
            while not self._connected and self._error is None and not self._forgotten:
                await self._connect_lot.park()
        except BaseException:
            self._tcp.abort(shardio.current_time())
            self._stack._touch(self)
            raise
        if self._error is not None:
            raise self._error
        if not self._connected:
            raise ConnectionAbortedError(errno.ECONNABORTED, "the connection attempt was aborted")

    # -- receiving --------------------------------------------------------------------

    async def _wait_readable(self) -> bool:
        """Wait for data, end-of-file or an error; False if it returned
        without blocking (the caller owes a schedule point)."""
        if self._closed:
            raise shardio.ClosedResourceError("this stream was closed")
        if self._available or self._eof or self._error is not None or self._forgotten:
            return False
        while not (self._available or self._eof or self._error is not None or self._forgotten):
            await self._readers.park()
            if self._closed:
                raise shardio.ClosedResourceError("this stream was closed")
        return True

    def _take_views(self, limit: int) -> list[memoryview]:
        """Up to ``limit`` bytes of received data, as views; reopens the window."""
        received = self._received
        views = []
        taken = 0
        while received and taken < limit:
            view = received[0]
            size = len(view)
            if taken + size <= limit:
                received.popleft()
                views.append(view)
                taken += size
            else:
                cut = limit - taken
                views.append(view[:cut])
                received[0] = view[cut:]
                taken = limit
        self._available -= taken
        self._tcp.consumed(taken)
        self._stack._touch(self)
        return views

    def _no_data(self) -> None:
        """Nothing to read and nothing will come: end-of-file, or the
        connection's error."""
        if self._error is not None:
            raise self._broken("receive")

    @lowlevel.enable_ki_protection
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait for data; return up to ``max_bytes`` (default 64 KiB) of it,
        at least one byte, or ``b""`` at end-of-file. A copy: the stack's
        views are released. :class:`~shardio.BrokenResourceError` if the
        connection was reset or timed out, with the ``OSError`` as cause."""
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        views = await self._receive(_positive(max_bytes))
        return bytes(views[0]) if len(views) == 1 else b"".join(views)

    @lowlevel.enable_ki_protection
    async def receive_into(self, buffer: Buffer) -> int:
        """Wait for data and copy it into ``buffer``; return how many bytes
        were written (0 at end-of-file). The one copy of the received data."""
        with memoryview(buffer) as raw, raw.cast("B") as target:
            size = len(target)
            if not size:
                raise ValueError("receive_into needs a non-empty buffer")
            count = 0
            for view in await self._receive(size):
                end = count + len(view)
                target[count:end] = view
                count = end
            return count

    @lowlevel.enable_ki_protection
    async def receive_views(self, max_bytes: int | None = None) -> list[memoryview]:
        """Wait for data; return up to ``max_bytes`` (default: all there is)
        of it as the read-only views of the frames it arrived in -- no copy.
        An empty list at end-of-file. The views are the caller's to keep."""
        return await self._receive(None if max_bytes is None else _positive(max_bytes))

    async def _receive(self, limit: int | None) -> list[memoryview]:
        """What the three receives share: wait for data, take up to
        ``limit`` bytes of views (None: all there is), an empty list at
        end-of-file; one receiver at a time, and Trio's checkpoints."""
        if self._receiving:
            raise shardio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            blocked = await self._wait_readable()
            if self._available:
                views = self._take_views(self._available if limit is None else limit)
            else:
                self._no_data()
                views = []
            if not blocked:
                await lowlevel.cancel_shielded_checkpoint()
            return views
        finally:
            self._receiving = False

    # -- sending ----------------------------------------------------------------------

    def _check_sendable(self) -> None:
        if self._closed:
            raise shardio.ClosedResourceError("this stream was closed")
        if self._error is not None or self._forgotten:
            raise self._broken("send")

    @lowlevel.enable_ki_protection
    async def send_all(self, data: SendData) -> None:
        """Send ``data`` -- one bytes-like object, or an iterable of them,
        sent in order without joining them. Returns once the stack holds
        it (see the module docs for how long it holds the caller's memory);
        waits while the send buffer is full."""
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            self._check_sendable()
            if self._eof_sent:
                raise shardio.ClosedResourceError("send_eof() was called on this stream")
            wait_for_ack = False
            if type(data) is bytes:
                # The commonest case, made cheap (2 us less per call): one
                # read-only buffer, held by reference.
                views = [memoryview(data)] if data else []
            else:
                views = _byte_views(data)
                if any(not view.readonly for view in views):
                    if sum(len(view) for view in views) < COPY_THRESHOLD:
                        views = [
                            memoryview(bytes(view)) if not view.readonly else view for view in views
                        ]
                    else:
                        wait_for_ack = True
            blocked = await self._queue(views)
            if wait_for_ack:
                target = self._taken
                try:
                    while self._released < target and not self._forgotten:
                        self._check_sendable()
                        await self._writers.park()
                        blocked = True
                except BaseException:
                    # The connection still holds buffers the caller may now
                    # change: reset it, which releases them at once.
                    self._tcp.abort(shardio.current_time())
                    self._stack._touch(self)
                    raise
            if not blocked:
                await lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def _queue(self, views: list[memoryview]) -> bool:
        """Hand ``views`` to the connection as its send buffer allows,
        waiting for room; True if it had to wait."""
        tcp = self._tcp
        stack = self._stack
        blocked = False
        index = 0
        count = len(views)
        while index < count:
            self._check_sendable()
            taken = tcp.send(views[index:]) if index else tcp.send(views)
            if taken:
                stack._touch(self)
                # Count the buffers it took (the last one perhaps in part).
                while taken and index < count:
                    size = len(views[index])
                    self._taken += 1
                    if taken >= size:
                        taken -= size
                        index += 1
                    else:
                        views[index] = views[index][taken:]
                        taken = 0
            if index < count:
                await self._writers.park()
                blocked = True
        return blocked

    @lowlevel.enable_ki_protection
    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the send buffer has room (or the stream is broken)."""
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            self._check_sendable()
            if self._tcp.send_space:
                await lowlevel.cancel_shielded_checkpoint()
                return
            while not self._tcp.send_space and self._error is None and not self._forgotten:
                await self._writers.park()
                if self._closed:
                    raise shardio.ClosedResourceError("this stream was closed")
        finally:
            self._sending = False

    @lowlevel.enable_ki_protection
    async def send_eof(self) -> None:
        """Send a FIN after the data queued: the peer reads end-of-file; this
        side may go on receiving. Idempotent."""
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        await lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise shardio.ClosedResourceError("this stream was closed")
        if not self._forgotten and not self._eof_sent:
            self._eof_sent = True
            self._tcp.shutdown_write(shardio.current_time())
            self._stack._touch(self)
        await lowlevel.cancel_shielded_checkpoint()

    @lowlevel.enable_ki_protection
    async def aclose(self) -> None:
        """Close the stream: the connection sends a FIN after what is queued
        and finishes in the stack (or is reset, if received data was left
        unread, as Linux does). Never blocks; closing twice does nothing."""
        if not self._closed:
            self._closed = True
            if not self._forgotten:
                self._tcp.close(shardio.current_time())
                self._stack._touch(self)
            self._received.clear()
            self._available = 0
            self._wake_all()
        await lowlevel.checkpoint()

    # -- looking ------------------------------------------------------------------------

    def getsockname(self) -> tuple[str, int]:
        """This end's (address, port)."""
        return format_address(self.local[0]), self.local[1]

    def getpeername(self) -> tuple[str, int]:
        """The peer's (address, port)."""
        return format_address(self.remote[0]), self.remote[1]

    def statistics(self) -> TcpStatistics:
        """The connection's state and counters (state, RTT/RTO, cwnd and
        ssthresh, retransmissions, SACKed bytes, ...), as Linux's TCP_INFO."""
        return self._tcp.statistics()


def _positive(max_bytes: int) -> int:
    """``max_bytes`` as an int of at least 1."""
    max_bytes = operator.index(max_bytes)
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
    return max_bytes
