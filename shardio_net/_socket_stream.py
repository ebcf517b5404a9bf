"""SocketStream: a connected stream socket (TCP or Unix-domain) as a stream.

The receive and send paths are hot (a server spends its life in them), so
they are written for speed: one system call in the common case, plain flags
instead of context managers for the one-task-at-a-time checks, and the
checkpoint pattern of non-blocking I/O -- ``checkpoint_if_cancelled`` before
the call, ``cancel_shielded_checkpoint`` after a call that did not have to
wait -- so that cancellation can strike before data moves, never after.
The zero-copy machinery is in :mod:`shardio_net._zerocopy`.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, NoReturn, TypeAlias, final, overload

import attrs

import shardio
from shardio import lowlevel
from shardio.abc import HalfCloseableStream

from ._zerocopy import MSG_ZEROCOPY, ZeroCopySends

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_RECEIVE_SIZE",
    "DEFAULT_ZEROCOPY_THRESHOLD",
    "SocketStream",
    "SocketStreamStatistics",
    "raise_stream_error",
]

#: How many bytes ``receive_some()`` asks for when given no size.
DEFAULT_RECEIVE_SIZE = 65536
#: ``send_all`` calls of at least this many bytes use MSG_ZEROCOPY.
DEFAULT_ZEROCOPY_THRESHOLD = 65536

#: What ``send_all`` takes: one bytes-like object, or an iterable of them
#: (sent together, in order, without being joined).
SendData: TypeAlias = "Buffer | Iterable[Buffer]"

# sendmsg() takes at most this many buffers per call.
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})
_SEND_FLAGS = socket.MSG_NOSIGNAL  # EPIPE as an error, never SIGPIPE
_LINGER_RESET = struct.pack("ii", 1, 0)
_NO_THRESHOLD = 1 << 62  # zerocopy_threshold=None: no send is large
_Socket = socket.socket  # in the class body, "socket" is the attribute


def raise_stream_error(exc: OSError) -> NoReturn:
    """Raise what a stream reports for the socket error ``exc``: a closed
    socket is :class:`~shardio.ClosedResourceError`, anything else means the
    connection broke (:class:`~shardio.BrokenResourceError`, caused by ``exc``)."""
    if exc.errno in _CLOSED_ERRNOS:
        raise shardio.ClosedResourceError("this stream was closed") from None
    raise shardio.BrokenResourceError(f"socket connection broken: {exc}") from exc


def _byte_views(data: SendData) -> list[memoryview]:
    """``data`` as a list of non-empty, flat byte views, in order."""
    try:
        items: Iterable[Buffer] = (memoryview(data),)  # type: ignore[arg-type]
    except TypeError:
        if isinstance(data, str):
            raise TypeError(
                "send_all takes bytes-like data or an iterable of bytes-like objects, not str"
            ) from None
        items = data  # type: ignore[assignment]
    views = []
    for item in items:
        view = memoryview(item)  # our own view: released after the send
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if view.nbytes:
            views.append(view)
    return views


def _consume(views: list[memoryview], index: int, sent: int) -> int:
    """Account for ``sent`` bytes sent from ``views[index:]``; return the
    index of the first view with bytes left (a partly sent view is sliced)."""
    while sent:
        view = views[index]
        if sent < len(view):
            views[index] = view[sent:]
            break
        sent -= len(view)
        index += 1
    return index


@attrs.frozen
class SocketStreamStatistics:
    """What :meth:`SocketStream.statistics` reports about zero-copy sends.

    ``zerocopy_sends``: send calls made with MSG_ZEROCOPY;
    ``zerocopy_completed``: of those, how many the kernel has reported
    complete (their buffers released); ``zerocopy_copied``: completions in
    which the kernel said it copied the data after all (always so over
    loopback); ``zerocopy_active``: whether large sends still use
    MSG_ZEROCOPY on this stream (false if the socket refused it, the kernel
    copied, or ``zerocopy_threshold`` is ``None``).
    """

    zerocopy_sends: int
    zerocopy_completed: int
    zerocopy_copied: int
    zerocopy_active: bool


@final
@attrs.define(eq=False, slots=True, repr=False)
class SocketStream(lowlevel.ShardLocal, HalfCloseableStream):
    """A connected ``SOCK_STREAM`` socket (TCP or Unix-domain) as a
    :class:`shardio.abc.HalfCloseableStream`.

    The stream owns ``socket`` (a :class:`socket.socket`, made non-blocking
    here) and closes it in :meth:`aclose`. For TCP it turns on
    ``TCP_NODELAY`` (no Nagle delay on small writes) and sets
    ``TCP_NOTSENT_LOWAT`` to 16 KiB (so :meth:`wait_send_all_might_not_block`
    means something); :meth:`setsockopt` changes either.

    Beyond the stream contract it offers the copy-free forms:
    :meth:`receive_into` fills a buffer of the caller's, and :meth:`send_all`
    takes a sequence of buffers, sent with one ``sendmsg`` and never joined.
    A ``send_all`` of at least ``zerocopy_threshold`` bytes (64 KiB by
    default; ``None`` turns it off) is sent with ``MSG_ZEROCOPY`` where the
    socket allows it, and returns only once the kernel no longer needs the
    caller's buffer (see :meth:`send_all`).

    One task at a time may send (``send_all``, ``send_eof``,
    ``wait_send_all_might_not_block``) and one may receive; a second gets
    :class:`~shardio.BusyResourceError`. A stream belongs to the shard that
    made it: it cannot be sent to another shard (hand over the fd with
    :func:`shardio.lowlevel.send_fd` instead).
    """

    #: The socket this stream wraps.
    socket: socket.socket
    #: Sends of at least this many bytes use MSG_ZEROCOPY; ``None``: never.
    zerocopy_threshold: int | None = attrs.field(default=DEFAULT_ZEROCOPY_THRESHOLD, kw_only=True)
    _sending: bool = attrs.field(default=False, init=False)
    _receiving: bool = attrs.field(default=False, init=False)
    _eof_sent: bool = attrs.field(default=False, init=False)
    _zerocopy: ZeroCopySends | None = attrs.field(default=None, init=False)
    _zerocopy_refused: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        sock = self.socket
        if not isinstance(sock, socket.socket):
            raise TypeError(f"SocketStream needs a socket.socket, not {sock!r}")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"SocketStream needs a SOCK_STREAM socket, not {sock.type!r}")
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 2**14)

    def __repr__(self) -> str:
        return f"<shardio_net.SocketStream {self.socket!r}>"

    # -- receiving ---------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait for data and return between 1 and ``max_bytes`` bytes of it
        (:data:`DEFAULT_RECEIVE_SIZE` if ``None``); ``b""`` at end-of-file.

        Raises :class:`~shardio.BusyResourceError` if another task is
        receiving, :class:`~shardio.ClosedResourceError` if the stream was
        closed, :class:`~shardio.BrokenResourceError` if the connection broke
        (a reset from the peer, say).
        """
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        if self._receiving:
            raise shardio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            sock = self.socket
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                pass
            else:
                await lowlevel.cancel_shielded_checkpoint()
                return data
            while True:
                self._drain_completions_if_idle()
                await lowlevel.wait_readable(sock)
                try:
                    return sock.recv(max_bytes)
                except BlockingIOError:
                    pass
        except OSError as exc:
            raise_stream_error(exc)
        finally:
            self._receiving = False

    async def receive_into(self, buffer: Buffer) -> int:
        """Wait for data and write it into ``buffer`` (any writable bytes-like
        object), without an intermediate copy. Returns how many bytes were
        written, between 1 and the buffer's size; 0 means end-of-file.

        An empty buffer is a :class:`ValueError` (0 would read as
        end-of-file). Raises as :meth:`receive_some` otherwise.
        """
        kind = type(buffer)  # hot path: the common types' sizes, without a call
        if kind is memoryview:
            size = buffer.nbytes  # type: ignore[attr-defined]
        elif kind is bytearray:
            size = len(buffer)  # type: ignore[arg-type]
        else:
            with memoryview(buffer) as view:
                size = view.nbytes
        if not size:
            raise ValueError("receive_into needs a non-empty buffer")
        if self._receiving:
            raise shardio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            sock = self.socket
            try:
                count = sock.recv_into(buffer)
            except BlockingIOError:
                pass
            else:
                await lowlevel.cancel_shielded_checkpoint()
                return count
            while True:
                self._drain_completions_if_idle()
                await lowlevel.wait_readable(sock)
                try:
                    return sock.recv_into(buffer)
                except BlockingIOError:
                    pass
        except OSError as exc:
            raise_stream_error(exc)
        finally:
            self._receiving = False

    def _drain_completions_if_idle(self) -> None:
        # Pending zero-copy completions make the socket report EPOLLERR, which
        # wakes the reader; with no send in progress, nobody else will read
        # them (see _zerocopy). A send in progress drains them itself.
        zerocopy = self._zerocopy
        if zerocopy is not None and zerocopy.outstanding and not self._sending:
            zerocopy.drain()

    # -- sending -------------------------------------------------------------------

    async def send_all(self, data: SendData) -> None:
        """Send all of ``data``: one bytes-like object, or an iterable of them.

        An iterable of buffers is sent as their concatenation, with
        ``sendmsg`` (up to ``IOV_MAX`` buffers per call), never joined into
        one; a partial write resumes inside the buffer where it stopped.

        If the data is at least ``zerocopy_threshold`` bytes and the socket
        supports it (TCP on Linux), it is sent with ``MSG_ZEROCOPY``: the
        kernel transmits straight from the caller's memory, and ``send_all``
        returns only once the kernel reports it no longer needs it (for TCP,
        when the peer has acknowledged the data). Where the kernel would copy
        anyway (loopback peers), the stream notices and copies from then on.

        Raises :class:`~shardio.BusyResourceError` if another task is sending,
        :class:`~shardio.ClosedResourceError` if the stream was closed or
        ``send_eof`` was called, and :class:`~shardio.BrokenResourceError` if
        the connection broke (the peer reset it or went away). As for every
        stream, a ``send_all`` that raises may have sent part of the data; a
        cancelled zero-copy ``send_all`` may also leave the kernel reading
        the buffer: do not reuse it, close the stream (which then resets the
        connection rather than send what the buffer holds later).
        """
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        views: list[memoryview] = []
        try:
            if self._eof_sent:
                raise shardio.ClosedResourceError("cannot send data after send_eof()")
            sock = self.socket
            small = self.zerocopy_threshold or _NO_THRESHOLD
            if type(data) is bytes and 0 < len(data) < small:
                # The hot path: one small bytes object, usually sent in one
                # call. Bytes cannot change under us: no view is needed.
                await lowlevel.checkpoint_if_cancelled()
                try:
                    sent = sock.send(data, _SEND_FLAGS)
                except BlockingIOError:
                    sent = 0
                if sent == len(data):
                    await lowlevel.cancel_shielded_checkpoint()
                    return
                views = [memoryview(data)[sent:]]
            else:
                views = _byte_views(data)
                if not views:
                    if sock.fileno() == -1:
                        raise shardio.ClosedResourceError("this stream was closed")
                    await lowlevel.checkpoint()
                    return
                await lowlevel.checkpoint_if_cancelled()
                if len(views) == 1 and len(views[0]) < small:
                    # One small buffer of another type: the same, with a view.
                    try:
                        sent = sock.send(views[0], _SEND_FLAGS)
                    except BlockingIOError:
                        sent = 0
                    if sent == len(views[0]):
                        await lowlevel.cancel_shielded_checkpoint()
                        return
                    views[0] = views[0][sent:]
            await self._send_views(sock, views)
        except OSError as exc:
            raise_stream_error(exc)
        finally:
            self._sending = False
            for view in views:
                view.release()

    async def _send_views(self, sock: _Socket, views: list[memoryview]) -> None:
        """Send ``views`` in order; a checkpoint (the caller did the first half)."""
        zerocopy = self._zerocopy_for(sum(map(len, views)))
        flags = _SEND_FLAGS
        # Views of the whole data, of our own, to hand to the zero-copy state
        # with the first zero-copy send: from then on the kernel reads them.
        pinned: list[memoryview] = []
        if zerocopy is not None:
            flags |= MSG_ZEROCOPY
            pinned = [memoryview(view) for view in views]
        waited = False
        index, count = 0, len(views)
        try:
            while index < count:
                try:
                    if index == count - 1:
                        sent = sock.send(views[index], flags)
                    else:
                        sent = sock.sendmsg(views[index : index + _IOV_MAX], (), flags)
                except BlockingIOError:
                    # Completions (of this send, or of an earlier, cancelled
                    # one) wake this wait through EPOLLERR: take them, or the
                    # next wait would wake at once for them again.
                    if self._zerocopy is not None and self._zerocopy.outstanding:
                        self._zerocopy.drain()
                    await lowlevel.wait_writable(sock)
                    waited = True
                    continue
                except OSError as exc:
                    if zerocopy is None or exc.errno != errno.ENOBUFS or not flags & MSG_ZEROCOPY:
                        raise
                    # The socket's allowance for pending notifications is used
                    # up: let some complete, or copy the rest.
                    if zerocopy.outstanding:
                        waited |= await zerocopy.wait()
                    else:
                        flags &= ~MSG_ZEROCOPY
                    continue
                if flags & MSG_ZEROCOPY:
                    zerocopy.record_send(pinned)  # type: ignore[union-attr]
                    pinned = []
                index = _consume(views, index, sent)
            if zerocopy is not None:
                waited |= await zerocopy.wait()
        finally:
            for view in pinned:
                view.release()
        if not waited:
            await lowlevel.cancel_shielded_checkpoint()

    def _zerocopy_for(self, size: int) -> ZeroCopySends | None:
        """The zero-copy state to send ``size`` bytes with, if it should be used."""
        threshold = self.zerocopy_threshold
        if threshold is None or size < threshold or self._zerocopy_refused:
            return None
        zerocopy = self._zerocopy
        if zerocopy is None:
            zerocopy = self._zerocopy = ZeroCopySends.enable(self.socket)
            if zerocopy is None:
                self._zerocopy_refused = True
                return None
        return zerocopy if zerocopy.useful else None

    async def wait_send_all_might_not_block(self) -> None:
        """Block until the socket can take more data (it may return early).

        Raises as :meth:`send_all` does.
        """
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            sock = self.socket
            if sock.fileno() == -1:
                raise shardio.ClosedResourceError("this stream was closed")
            zerocopy = self._zerocopy
            if zerocopy is not None and zerocopy.outstanding:
                zerocopy.drain()
            await lowlevel.wait_writable(sock)
        except OSError as exc:
            raise_stream_error(exc)
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        """Shut down the sending half (``shutdown(SHUT_WR)``): the peer reads
        end-of-file once it has everything sent before. Receiving goes on.

        Calling it again does nothing; ``send_all`` afterwards raises
        :class:`~shardio.ClosedResourceError`. A checkpoint.
        """
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await lowlevel.checkpoint()
            sock = self.socket
            if sock.fileno() == -1:
                raise shardio.ClosedResourceError("this stream was closed")
            if not self._eof_sent:
                sock.shutdown(socket.SHUT_WR)
                self._eof_sent = True
        except OSError as exc:
            raise_stream_error(exc)
        finally:
            self._sending = False

    # -- closing and the rest ----------------------------------------------------

    async def aclose(self) -> None:
        """Close the socket; a checkpoint, and always done, even if cancelled.

        Tasks blocked on this stream wake with
        :class:`~shardio.ClosedResourceError`. If zero-copy sends are still
        outstanding (a ``send_all`` was cancelled), the connection is reset
        rather than closed gracefully, so the kernel drops the caller's
        buffer instead of sending it later.
        """
        sock = self.socket
        if sock.fileno() != -1:
            zerocopy = self._zerocopy
            if zerocopy is not None:
                with suppress(OSError):
                    zerocopy.drain()
                if zerocopy.outstanding:
                    with suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                zerocopy.close()
            lowlevel.notify_closing(sock)
            sock.close()
        await lowlevel.checkpoint()

    def statistics(self) -> SocketStreamStatistics:
        """Figures about this stream's zero-copy sends."""
        zerocopy = self._zerocopy
        return SocketStreamStatistics(
            zerocopy_sends=zerocopy.issued if zerocopy else 0,
            zerocopy_completed=zerocopy.completed if zerocopy else 0,
            zerocopy_copied=zerocopy.copied if zerocopy else 0,
            zerocopy_active=(
                self.zerocopy_threshold is not None
                and not self._zerocopy_refused
                and (zerocopy is None or zerocopy.useful)
            ),
        )

    @overload
    def setsockopt(self, level: int, option: int, value: int | Buffer) -> None: ...

    @overload
    def setsockopt(self, level: int, option: int, value: None, length: int) -> None: ...

    def setsockopt(
        self, level: int, option: int, value: int | Buffer | None, length: int | None = None
    ) -> None:
        """Set a socket option, as :meth:`socket.socket.setsockopt` does
        (``value=None`` with a ``length`` sets a zero-filled option)."""
        if length is None:
            if value is None:
                raise TypeError("setsockopt needs a value, or value=None with a length")
            self.socket.setsockopt(level, option, value)
        else:
            if value is not None:
                raise TypeError("setsockopt takes a length only with value=None")
            self.socket.setsockopt(level, option, None, length)

    @overload
    def getsockopt(self, level: int, option: int) -> int: ...

    @overload
    def getsockopt(self, level: int, option: int, buffersize: int) -> bytes: ...

    def getsockopt(self, level: int, option: int, buffersize: int = 0) -> int | bytes:
        """Read a socket option, as :meth:`socket.socket.getsockopt` does: an
        int, or (with ``buffersize``) the raw bytes."""
        if buffersize:
            return self.socket.getsockopt(level, option, buffersize)
        return self.socket.getsockopt(level, option)
