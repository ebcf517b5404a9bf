"""The abstract interfaces of shardio's resources: streams, listeners, channels.

They are Trio's ``trio.abc`` interfaces, method for method, so code written
against Trio's streams and channels ports by changing the import. A concrete
class (a socket stream, a memory channel, a file stream) derives from the
interface it provides; generic code (TLS, stapled streams, protocol helpers,
the conformance checks in :mod:`shardio.testing`) is written against these.

Closing is the one operation every resource shares: :class:`AsyncResource`
gives each of them ``aclose()`` and ``async with``.

:class:`Clock` and :class:`Instrument`, the two interfaces of the run loop,
are re-exported here too, as Trio does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Generic, Self, TypeVar

from . import _core
from ._core import Clock, EndOfChannel, Instrument

__all__ = [
    "AsyncResource",
    "Channel",
    "Clock",
    "HalfCloseableStream",
    "Instrument",
    "Listener",
    "ReceiveChannel",
    "ReceiveStream",
    "SendChannel",
    "SendStream",
    "Stream",
]

T = TypeVar("T")
SendType = TypeVar("SendType", contravariant=True)
ReceiveType = TypeVar("ReceiveType", covariant=True)
ResourceType = TypeVar("ResourceType", bound="AsyncResource", covariant=True)


class AsyncResource(ABC):
    """A resource that must be closed, and whose closing may need to block.

    ``aclose()`` closes it; ``async with resource:`` closes it on leaving the
    block (entering does nothing, and is not a checkpoint).

    Closing is *always* done, even when it cannot be done gracefully: if a
    graceful close (a TLS goodbye, say) fails or is cancelled, ``aclose``
    still releases the underlying resource before it raises. The exception
    reports the lost grace, not a resource left open.
    """

    __slots__ = ()

    @abstractmethod
    async def aclose(self) -> None:
        """Close the resource, gracefully if possible, and always for good.

        Closing an already closed resource does nothing. After ``aclose``,
        other operations on the resource generally raise
        :class:`~shardio.ClosedResourceError`.
        """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class SendStream(AsyncResource):
    """The sending half of a byte stream.

    To send Python objects rather than bytes, use a :class:`SendChannel`.
    """

    __slots__ = ()

    @abstractmethod
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, blocking until the stream has taken it.

        Raises :class:`~shardio.BusyResourceError` if another task is
        already in ``send_all``, ``wait_send_all_might_not_block`` or
        ``send_eof`` on this stream; :class:`~shardio.BrokenResourceError` if
        the stream broke; :class:`~shardio.ClosedResourceError` if this stream
        was closed, before or during the call.

        Unlike most operations, a ``send_all`` that raises (even
        :class:`~shardio.Cancelled`) may have sent some, all or none of the
        data, and the stream is then in an unknown state.
        """

    @abstractmethod
    async def wait_send_all_might_not_block(self) -> None:
        """Block until a ``send_all`` might not block.

        It may return early (``send_all`` may still block), never late.
        Useful to choose *what* to send at the last moment, once the stream
        can take it. Raises as :meth:`send_all` does.
        """


class ReceiveStream(AsyncResource):
    """The receiving half of a byte stream.

    ``async for chunk in stream`` receives chunks of at least one byte
    (``receive_some()`` with no size) until end-of-file.

    To receive Python objects rather than bytes, use a :class:`ReceiveChannel`.
    """

    __slots__ = ()

    @abstractmethod
    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Wait for data, then return between 1 and ``max_bytes`` bytes of it.

        ``b""`` means end-of-file, and only that. ``max_bytes`` must be
        positive; ``None`` lets the stream choose. Raises
        :class:`~shardio.BusyResourceError` if two tasks receive at once,
        :class:`~shardio.BrokenResourceError` if the stream broke, and
        :class:`~shardio.ClosedResourceError` if this stream was closed,
        before or during the call.
        """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes | bytearray:
        data = await self.receive_some()
        if not data:
            raise StopAsyncIteration
        return data


class Stream(SendStream, ReceiveStream):
    """A bidirectional byte stream: both a :class:`SendStream` and a
    :class:`ReceiveStream`."""

    __slots__ = ()


class HalfCloseableStream(Stream):
    """A :class:`Stream` whose sending half can be closed on its own."""

    __slots__ = ()

    @abstractmethod
    async def send_eof(self) -> None:
        """Tell the peer no more data is coming, and keep receiving.

        Like ``shutdown(SHUT_WR)`` on a socket. Sending after it is an error;
        sending EOF twice does nothing. Raises as :meth:`SendStream.send_all`.
        """


class Listener(AsyncResource, Generic[ResourceType]):
    """Accepts incoming connections, as resources (usually :class:`Stream` s)."""

    __slots__ = ()

    @abstractmethod
    async def accept(self) -> ResourceType:
        """Wait for the next incoming connection and return it.

        Raises :class:`~shardio.BusyResourceError` if two tasks accept at
        once, and :class:`~shardio.ClosedResourceError` if this listener was
        closed, before or during the call. Errors of the system (``EMFILE``,
        say) arrive as :class:`OSError`; a listener has no "peer" to break,
        so it does not raise :class:`~shardio.BrokenResourceError`.
        """


class SendChannel(AsyncResource, Generic[SendType]):
    """Sends Python objects to a receiver.

    To send bytes, use a :class:`SendStream`.
    """

    __slots__ = ()

    @abstractmethod
    async def send(self, value: SendType) -> None:
        """Send ``value``, blocking until the channel takes it.

        Raises :class:`~shardio.BrokenResourceError` if the channel broke
        (for example, every receiver is closed),
        :class:`~shardio.ClosedResourceError` if this end was closed, before
        or during the call, and :class:`~shardio.BusyResourceError` if the
        channel does not allow concurrent sends and another task is sending.
        """


class ReceiveChannel(AsyncResource, Generic[ReceiveType]):
    """Receives Python objects from a sender.

    ``async for value in channel`` calls :meth:`receive` until it raises
    :class:`~shardio.EndOfChannel`, which ends the loop quietly.

    To receive bytes, use a :class:`ReceiveStream`.
    """

    __slots__ = ()

    @abstractmethod
    async def receive(self) -> ReceiveType:
        """Wait for the next object and return it.

        Raises :class:`~shardio.EndOfChannel` once the senders are done and
        nothing more is coming (not an error),
        :class:`~shardio.ClosedResourceError` if this end was closed,
        :class:`~shardio.BrokenResourceError` if the channel broke, and
        :class:`~shardio.BusyResourceError` if the channel does not allow
        concurrent receives and another task is receiving.
        """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReceiveType:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None


class Channel(SendChannel[T], ReceiveChannel[T]):
    """A bidirectional channel: both a :class:`SendChannel` and a
    :class:`ReceiveChannel` of the same type."""

    __slots__ = ()


# The cross-shard channel ends live in the core (they are part of the shard
# machinery); they implement these interfaces in full.
SendChannel.register(_core.ShardSendChannel)
ReceiveChannel.register(_core.ShardReceiveChannel)
