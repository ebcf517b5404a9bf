"""In-memory streams for tests: no sockets, no kernel, full control.

Two families, with Trio's semantics:

* **Memory streams** (:class:`MemorySendStream`, :class:`MemoryReceiveStream`)
  buffer without limit. Each end is a standalone object with a buffer the
  test can read (``get_data``) or fill (``put_data``, ``put_eof``), and
  hooks that run on every operation. :func:`memory_stream_pump` moves bytes
  from a send end to a receive end; :func:`memory_stream_one_way_pair` wires
  two ends so that every ``send_all`` and ``aclose`` pumps, and
  :func:`memory_stream_pair` staples two such pipes into a bidirectional,
  socketpair-like couple. Replacing a hook changes how data flows: stall it,
  trickle it one byte at a time, or inject failures.

* **Lockstep streams** (:func:`lockstep_stream_one_way_pair`,
  :func:`lockstep_stream_pair`) buffer nothing: ``send_all`` returns only
  once a ``receive_some`` has taken every byte it was given. They model a
  peer that never reads ahead, and make the "clogged" streams that
  :func:`~shardio.testing.check_one_way_stream` uses to test flow control.

Every blocking method is a checkpoint; ``max_bytes`` is validated as the
stream interfaces require; two tasks using the same direction at once get
:class:`~shardio.BusyResourceError`.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar, final

from .. import (
    BrokenResourceError,
    ClosedResourceError,
    StapledStream,
    WouldBlock,
)
from ..abc import ReceiveStream, SendStream
from ..lowlevel import (
    ConflictDetector,
    ParkingLot,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
)

__all__ = [
    "MemoryReceiveStream",
    "MemorySendStream",
    "lockstep_stream_one_way_pair",
    "lockstep_stream_pair",
    "memory_stream_one_way_pair",
    "memory_stream_pair",
    "memory_stream_pump",
]

#: A hook run from inside an async operation: an async function of no arguments.
AsyncHook: TypeAlias = Callable[[], Awaitable[object]]
#: A hook run from ``close()``: a plain function of no arguments.
SyncHook: TypeAlias = Callable[[], object]

SendStreamT = TypeVar("SendStreamT", bound=SendStream)
ReceiveStreamT = TypeVar("ReceiveStreamT", bound=ReceiveStream)


def _checked_max_bytes(max_bytes: int | None) -> int | None:
    """``max_bytes`` as the stream interfaces want it: ``None`` or an int >= 1."""
    if max_bytes is None:
        return None
    max_bytes = operator.index(max_bytes)
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
    return max_bytes


class _ByteQueue:
    """An unbounded byte buffer with one reader, which can wait for data.

    ``close()`` is the writer's end-of-file: the reader drains what is left,
    then gets ``b""``. Writing after it raises ClosedResourceError.
    """

    __slots__ = ("_closed", "_data", "_lot", "_reader")

    def __init__(self) -> None:
        self._data = bytearray()
        self._closed = False
        self._lot = ParkingLot()
        self._reader = ConflictDetector("another task is already taking data from this buffer")

    def put(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ClosedResourceError("this in-memory stream is closed")
        if data:
            self._data += data
            self._lot.unpark_all()

    def close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def close_and_discard(self) -> None:
        self._data.clear()
        self.close()

    def _take(self, max_bytes: int | None) -> bytearray:
        if max_bytes is None or max_bytes >= len(self._data):
            taken = self._data
            self._data = bytearray()
            return taken
        taken = self._data[:max_bytes]
        del self._data[:max_bytes]
        return taken

    def get_nowait(self, max_bytes: int | None) -> bytearray:
        with self._reader:
            max_bytes = _checked_max_bytes(max_bytes)
            if not self._data and not self._closed:
                raise WouldBlock
            return self._take(max_bytes)

    async def get(self, max_bytes: int | None) -> bytearray:
        with self._reader:
            max_bytes = _checked_max_bytes(max_bytes)
            if self._data or self._closed:
                await checkpoint()
            while not self._data and not self._closed:
                await self._lot.park()
            return self._take(max_bytes)


@final
class MemorySendStream(SendStream):
    """A :class:`~shardio.abc.SendStream` that writes into its own buffer.

    ``send_all`` appends to the buffer, then awaits :attr:`send_all_hook`;
    the test (or a pump) takes the bytes out with :meth:`get_data` or
    :meth:`get_data_nowait`. ``wait_send_all_might_not_block`` never blocks
    on its own; it awaits :attr:`wait_send_all_might_not_block_hook`.
    ``close`` (and ``aclose``) marks the stream closed, so the buffer's
    reader gets ``b""`` after the data, then calls :attr:`close_hook`.

    The hooks are plain attributes, and may be replaced at any time.
    """

    __slots__ = (
        "_buffer",
        "_sender",
        "close_hook",
        "send_all_hook",
        "wait_send_all_might_not_block_hook",
    )

    def __init__(
        self,
        send_all_hook: AsyncHook | None = None,
        wait_send_all_might_not_block_hook: AsyncHook | None = None,
        close_hook: SyncHook | None = None,
    ) -> None:
        self._buffer = _ByteQueue()
        self._sender = ConflictDetector("another task is already sending on this stream")
        #: Awaited by ``send_all`` after the data went into the buffer.
        self.send_all_hook = send_all_hook
        #: Awaited by ``wait_send_all_might_not_block``.
        self.wait_send_all_might_not_block_hook = wait_send_all_might_not_block_hook
        #: Called by ``close`` and ``aclose``, after the stream is closed.
        self.close_hook = close_hook

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the buffer, then await :attr:`send_all_hook`.

        Raises :class:`~shardio.ClosedResourceError` once the stream is closed.
        """
        with self._sender:
            await checkpoint()
            self._buffer.put(data)
            if self.send_all_hook is not None:
                await self.send_all_hook()

    async def wait_send_all_might_not_block(self) -> None:
        """Await :attr:`wait_send_all_might_not_block_hook`, if any, and return.

        Raises :class:`~shardio.ClosedResourceError` once the stream is closed.
        """
        with self._sender:
            await checkpoint()
            self._buffer.put(b"")
            if self.wait_send_all_might_not_block_hook is not None:
                await self.wait_send_all_might_not_block_hook()

    def close(self) -> None:
        """Close the stream (its reader gets the data, then ``b""``), then
        call :attr:`close_hook`."""
        self._buffer.close()
        if self.close_hook is not None:
            self.close_hook()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint."""
        self.close()
        await checkpoint()

    async def get_data(self, max_bytes: int | None = None) -> bytearray:
        """Take up to ``max_bytes`` bytes (default: all) out of the buffer.

        Waits until there is at least one byte, or the stream is closed; an
        empty result means the stream was closed and the buffer is drained.
        """
        return await self._buffer.get(max_bytes)

    def get_data_nowait(self, max_bytes: int | None = None) -> bytearray:
        """Like :meth:`get_data`, but raise :class:`~shardio.WouldBlock`
        instead of waiting."""
        return self._buffer.get_nowait(max_bytes)


@final
class MemoryReceiveStream(ReceiveStream):
    """A :class:`~shardio.abc.ReceiveStream` that reads from its own buffer.

    The test (or a pump) fills the buffer with :meth:`put_data` and ends it
    with :meth:`put_eof`. ``receive_some`` awaits :attr:`receive_some_hook`,
    then waits for data. ``close`` (and ``aclose``) discards anything still
    buffered, wakes a blocked ``receive_some`` with
    :class:`~shardio.ClosedResourceError`, makes later ``put_data`` calls
    raise :class:`~shardio.ClosedResourceError`, then calls
    :attr:`close_hook`.

    The hooks are plain attributes, and may be replaced at any time.
    """

    __slots__ = ("_buffer", "_closed", "_receiver", "close_hook", "receive_some_hook")

    def __init__(
        self,
        receive_some_hook: AsyncHook | None = None,
        close_hook: SyncHook | None = None,
    ) -> None:
        self._buffer = _ByteQueue()
        self._closed = False
        self._receiver = ConflictDetector("another task is already receiving on this stream")
        #: Awaited by ``receive_some`` before it looks at the buffer.
        self.receive_some_hook = receive_some_hook
        #: Called by ``close`` and ``aclose``, after the stream is closed.
        self.close_hook = close_hook

    async def receive_some(self, max_bytes: int | None = None) -> bytearray:
        """Await :attr:`receive_some_hook`, then return up to ``max_bytes``
        buffered bytes, waiting for some if there are none.

        Returns ``b""`` after :meth:`put_eof` once the buffer is drained.
        """
        with self._receiver:
            max_bytes = _checked_max_bytes(max_bytes)
            await checkpoint()
            if self._closed:
                raise ClosedResourceError("this stream was closed")
            if self.receive_some_hook is not None:
                await self.receive_some_hook()
            data = await self._buffer.get(max_bytes)
            if self._closed:
                raise ClosedResourceError("this stream was closed while receiving")
            return data

    def close(self) -> None:
        """Discard the buffered data and close the stream, then call
        :attr:`close_hook`."""
        self._closed = True
        self._buffer.close_and_discard()
        if self.close_hook is not None:
            self.close_hook()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint."""
        self.close()
        await checkpoint()

    def put_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the buffer, for ``receive_some`` to return.

        Raises :class:`~shardio.ClosedResourceError` if the stream is closed
        or :meth:`put_eof` was called.
        """
        self._buffer.put(data)

    def put_eof(self) -> None:
        """Mark the end of the data: once the buffer is drained,
        ``receive_some`` returns ``b""``."""
        self._buffer.close()


def memory_stream_pump(
    memory_send_stream: MemorySendStream,
    memory_receive_stream: MemoryReceiveStream,
    *,
    max_bytes: int | None = None,
) -> bool:
    """Move up to ``max_bytes`` bytes (default: all) from a send stream's
    buffer to a receive stream's buffer, without blocking.

    If the send stream is closed and drained, the receive stream gets its
    end-of-file. Returns whether anything (data or end-of-file) moved.
    Raises :class:`~shardio.BrokenResourceError` if the receive stream is
    closed: to the sender, a reader that went away is a broken pipe.
    """
    try:
        data = memory_send_stream.get_data_nowait(max_bytes)
    except WouldBlock:
        return False
    try:
        if data:
            memory_receive_stream.put_data(data)
        else:
            memory_receive_stream.put_eof()
    except ClosedResourceError:
        raise BrokenResourceError("the receiving MemoryReceiveStream is closed") from None
    return True


def memory_stream_one_way_pair() -> tuple[MemorySendStream, MemoryReceiveStream]:
    """A connected ``(MemorySendStream, MemoryReceiveStream)``, like a pipe
    with unlimited buffering (data flows left to right).

    The send stream's :attr:`~MemorySendStream.send_all_hook` and
    :attr:`~MemorySendStream.close_hook` call :func:`memory_stream_pump`, so
    whatever is sent is at once ready to receive, and closing the sender
    gives the receiver ``b""``. Replace the hooks to change that: with
    ``send_all_hook = None``, sent data waits in the send stream until the
    test pumps it.
    """
    send_stream = MemorySendStream()
    receive_stream = MemoryReceiveStream()

    def pump() -> None:
        memory_stream_pump(send_stream, receive_stream)

    async def pump_after_send() -> None:
        pump()

    send_stream.send_all_hook = pump_after_send
    send_stream.close_hook = pump
    return send_stream, receive_stream


def _stapled_pair(
    one_way_pair: Callable[[], tuple[SendStreamT, ReceiveStreamT]],
) -> tuple[
    StapledStream[SendStreamT, ReceiveStreamT],
    StapledStream[SendStreamT, ReceiveStreamT],
]:
    send_right, receive_right = one_way_pair()
    send_left, receive_left = one_way_pair()
    return (
        StapledStream(send_right, receive_left),
        StapledStream(send_left, receive_right),
    )


def memory_stream_pair() -> tuple[
    StapledStream[MemorySendStream, MemoryReceiveStream],
    StapledStream[MemorySendStream, MemoryReceiveStream],
]:
    """Two connected bidirectional in-memory streams, like
    :func:`socket.socketpair` without the kernel.

    Each is a :class:`~shardio.StapledStream` of one end of each of two
    :func:`memory_stream_one_way_pair` pipes, crosswise::

        left, right = memory_stream_pair()
        await left.send_all(b"ping")
        assert await right.receive_some() == b"ping"

    ``send_eof`` closes the sending pipe (the peer receives ``b""``) and
    leaves the other direction open. The pieces stay reachable, to rewire:
    ``left.send_stream`` is the :class:`MemorySendStream` whose data
    ``right.receive_stream`` receives. For example, to let bytes from left to
    right through one at a time, one per second::

        async def trickle():
            while memory_stream_pump(left.send_stream, right.receive_stream, max_bytes=1):
                await shardio.sleep(1)

        left.send_stream.send_all_hook = trickle

    (With :class:`~shardio.testing.MockClock` and an ``autojump_threshold``
    such sleeps cost no real time.)
    """
    return _stapled_pair(memory_stream_one_way_pair)


class _LockstepPipe:
    """The shared state of a lockstep pipe: at most one ``send_all``'s bytes,
    held until a receiver takes them.

    Every state change wakes every waiter, and each re-checks the condition
    it waits for: with one sender and one receiver at most, that is cheap and
    leaves no wake-up to get wrong.
    """

    __slots__ = (
        "_changed",
        "_data",
        "_receiver",
        "_receiver_closed",
        "_receiver_waiting",
        "_sender",
        "_sender_closed",
    )

    def __init__(self) -> None:
        self._data = bytearray()
        self._sender_closed = False
        self._receiver_closed = False
        self._receiver_waiting = False
        self._changed = ParkingLot()
        self._sender = ConflictDetector("another task is already sending on this stream")
        self._receiver = ConflictDetector("another task is already receiving on this stream")

    def _notify(self) -> None:
        self._changed.unpark_all()

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds or either end is closed.

        The caller has already passed a cancel point; if no wait is needed,
        this is still a schedule point.
        """
        if condition() or self._sender_closed or self._receiver_closed:
            await cancel_shielded_checkpoint()
            return
        while not (condition() or self._sender_closed or self._receiver_closed):
            await self._changed.park()

    def close_sender(self) -> None:
        self._sender_closed = True
        self._notify()

    def close_receiver(self) -> None:
        self._receiver_closed = True
        self._notify()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._sender:
            await checkpoint_if_cancelled()
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed")
            if self._receiver_closed:
                raise BrokenResourceError("the receiving end was closed")
            self._data += data
            self._notify()
            try:
                await self._wait_until(lambda: not self._data)
                undelivered = bool(self._data)
            finally:
                # A send_all that did not finish (cancelled, or cut off by a
                # close) withdraws what the receiver has not taken yet: it
                # sent a prefix of its data, which the stream contract allows,
                # and the next send_all starts from an empty pipe.
                self._data.clear()
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed while sending")
            if undelivered:
                raise BrokenResourceError("the receiving end was closed while sending")

    async def wait_send_all_might_not_block(self) -> None:
        with self._sender:
            await checkpoint_if_cancelled()
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed")
            await self._wait_until(lambda: self._receiver_waiting)
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed while waiting")

    async def receive_some(self, max_bytes: int | None) -> bytes | bytearray:
        with self._receiver:
            max_bytes = _checked_max_bytes(max_bytes)
            await checkpoint_if_cancelled()
            if self._receiver_closed:
                raise ClosedResourceError("this stream was closed")
            self._receiver_waiting = True
            self._notify()
            try:
                await self._wait_until(lambda: bool(self._data))
            finally:
                self._receiver_waiting = False
            if self._receiver_closed:
                raise ClosedResourceError("this stream was closed while receiving")
            if not self._data:
                return b""
            if max_bytes is None or max_bytes >= len(self._data):
                taken = bytes(self._data)
                self._data.clear()
            else:
                taken = bytes(self._data[:max_bytes])
                del self._data[:max_bytes]
            self._notify()
            return taken


@final
class _LockstepSendStream(SendStream):
    """The sending end of a lockstep pipe (see :func:`lockstep_stream_one_way_pair`)."""

    __slots__ = ("_pipe",)

    def __init__(self, pipe: _LockstepPipe) -> None:
        self._pipe = pipe

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; return once the receiver has taken all of it."""
        await self._pipe.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until a receiver is waiting in ``receive_some``."""
        await self._pipe.wait_send_all_might_not_block()

    def close(self) -> None:
        """Close this end; the receiver gets ``b""``."""
        self._pipe.close_sender()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint."""
        self.close()
        await checkpoint()


@final
class _LockstepReceiveStream(ReceiveStream):
    """The receiving end of a lockstep pipe (see :func:`lockstep_stream_one_way_pair`)."""

    __slots__ = ("_pipe",)

    def __init__(self, pipe: _LockstepPipe) -> None:
        self._pipe = pipe

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Wait for a sender, and take up to ``max_bytes`` of its bytes."""
        return await self._pipe.receive_some(max_bytes)

    def close(self) -> None:
        """Close this end; a sender gets :class:`~shardio.BrokenResourceError`."""
        self._pipe.close_receiver()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint."""
        self.close()
        await checkpoint()


def lockstep_stream_one_way_pair() -> tuple[SendStream, ReceiveStream]:
    """A connected ``(SendStream, ReceiveStream)`` with no buffering at all.

    ``send_all`` returns only once ``receive_some`` calls have taken every
    byte it was given, and ``wait_send_all_might_not_block`` returns only
    while a receiver is waiting. Useful to test flow control at its most
    extreme, and as the "clogged" stream of the conformance checks. Both
    ends also have a synchronous ``close()``.
    """
    pipe = _LockstepPipe()
    return _LockstepSendStream(pipe), _LockstepReceiveStream(pipe)


def lockstep_stream_pair() -> tuple[
    StapledStream[SendStream, ReceiveStream],
    StapledStream[SendStream, ReceiveStream],
]:
    """Two connected bidirectional lockstep streams: two
    :func:`lockstep_stream_one_way_pair` pipes, stapled crosswise with
    :class:`~shardio.StapledStream`."""
    return _stapled_pair(lockstep_stream_one_way_pair)
