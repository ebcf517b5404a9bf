"""File streams over DMA files, as Seastar's: :class:`FileInputStream`
with reads in flight ahead of the consumer, :class:`FileOutputStream` with
writes in flight behind the producer.

I/O that no task waits for
--------------------------
A read-ahead is a read nobody has asked for yet; a write-behind is a write
whose producer has moved on. Neither has a task to park on it, so the
streams start them with ``DmaFile._start_io`` (``Backend.start_io``): the
ring's record of the operation holds the buffer, and a callback, run by
the scheduler when the completion is reaped, stores the result in a
:class:`_Request` and wakes whoever waits for it. The stream, not a task,
owns each request, which gives the rules:

- **A buffer is never reused while the kernel may touch it.** A buffer
  goes back to the stream's free list only from a request's callback, that
  is, after its completion; the ring's record keeps the memory alive until
  then whatever happens to the stream object.
- **Cancelling a call loses nothing.** ``receive_some`` cancelled while it
  waits for the next read leaves that read in flight and queued: the next
  call gets its data. ``send_all`` cancelled while it waits for a free
  buffer has copied part of the data into buffers that will be written (as
  with any :class:`~shardio.abc.SendStream`, a cancelled ``send_all`` may
  have sent part of its data).
- **Errors are never lost.** A failed write is recorded by its callback;
  the next ``send_all``, ``flush`` or ``aclose`` raises it (an
  :class:`OSError` with the errno and the file name); the stream is then
  broken, and later calls raise :class:`~shardio.BrokenResourceError`.
- **Closing waits for the kernel.** ``aclose`` waits, shielded from
  cancellation, until no request is in flight, then closes the file; the
  input stream first cancels its read-ahead in the kernel, the output
  stream first writes its tail.

Alignment
---------
O_DIRECT reads and writes whole blocks at aligned positions. The input
stream reads whole buffers from the aligned block at or before its start
and trims what the caller did not ask for; a read that comes back short is
the end of the file (the last read is short unless the size is a multiple
of the buffer). The output stream writes whole buffers; its last buffer,
padded with zeros to the write alignment, goes out on ``flush`` or
``aclose``, and ``aclose`` then truncates the file to the number of bytes
sent and ``fdatasync``\\ s it, as Seastar's file output stream does.
A flushed tail is written again, completed, when more data follows: the
stream waits for the first write of that block to finish before touching
the buffer again, so the two can never race.
"""

from __future__ import annotations

import collections
import errno
import os
from typing import TYPE_CHECKING

import attrs

import shardio
from shardio import lowlevel
from shardio.abc import ReceiveStream, SendStream

from ._buffers import allocate
from ._dma import DmaFile

if TYPE_CHECKING:
    pass

#: The default size of each stream buffer (and so of each read or write).
DEFAULT_BUFFER_SIZE = 128 << 10
#: The default number of reads (writes) in flight ahead of (behind) the user.
DEFAULT_DEPTH = 4


@attrs.frozen
class FileStreamStatistics:
    """What ``statistics()`` of a file stream reports.

    ``in_flight``: reads (writes) started and not yet completed.
    ``peak_in_flight``: the most there have been at once -- the read-ahead
    (write-behind) depth the stream reached. ``operations``: reads
    (writes) started in all. ``bytes``: bytes handed to the consumer (taken
    from the producer).
    """

    in_flight: int
    peak_in_flight: int
    operations: int
    bytes: int


class _Request:
    """One read or write in flight: its buffer, and its result once done."""

    __slots__ = ("_waiter", "buf", "done", "handle", "length", "pos", "result")

    def __init__(self, buf: memoryview, pos: int, length: int) -> None:
        self.buf = buf
        self.pos = pos
        self.length = length
        # The backend's handle, to cancel it.
        self.handle: object = None
        # Bytes moved (>= 0) or -errno, once complete.
        self.result: int | None = None
        self.done = False
        self._waiter: shardio.Event | None = None

    def finish(self, result: int) -> None:
        self.result = result
        self.done = True
        if self._waiter is not None:
            self._waiter.set()

    async def wait(self) -> None:
        """Until the request is complete. A checkpoint; cancelling the wait
        does not cancel the request."""
        if self.done:
            await lowlevel.checkpoint()
            return
        if self._waiter is None:
            self._waiter = shardio.Event()
        await self._waiter.wait()


def _round_up(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def _check_sizes(buffer_size: int, depth: int, what: str) -> None:
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, not {buffer_size}")
    if depth < 0:
        raise ValueError(f"{what} must be >= 0, not {depth}")


@attrs.define(eq=False, slots=True, repr=False, init=False)
class FileInputStream(ReceiveStream):
    """A byte stream reading a :class:`DmaFile` from ``offset`` (for
    ``length`` bytes, or to its end), with ``read_ahead`` reads of
    ``buffer_size`` bytes in flight ahead of the consumer.

    ``buffer_size`` is rounded up to the file's read alignment. The stream
    owns the file: closing the stream closes it. ``receive_some`` returns
    at most one buffer's worth; :meth:`read_exactly` collects a given
    number of bytes; ``async for chunk in stream`` iterates to the end.
    With ``read_ahead=0`` it reads on demand, one buffer at a time.
    """

    file: DmaFile
    _buffer_size: int
    _read_ahead: int
    _end: int | None
    _next_pos: int
    _skip: int
    _queue: collections.deque[_Request]
    _free: list[memoryview]
    _current: memoryview | None
    _current_start: int
    _current_end: int
    _pushback: bytes
    _eof: bool
    _closed: bool
    _receiving: bool
    _error: OSError | None
    _in_flight: int
    _peak: int
    _operations: int
    _bytes: int

    def __init__(
        self,
        file: DmaFile,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        read_ahead: int = DEFAULT_DEPTH,
        *,
        offset: int = 0,
        length: int | None = None,
    ) -> None:
        _check_sizes(buffer_size, read_ahead, "read_ahead")
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range (offset={offset}, length={length})")
        align = file.alignment.read
        self.file = file
        self._buffer_size = _round_up(buffer_size, align)
        self._read_ahead = read_ahead
        self._end = None if length is None else offset + length
        self._next_pos = offset - offset % align
        self._skip = offset - self._next_pos
        self._queue = collections.deque()
        self._free = []
        self._current = None
        self._current_start = self._current_end = 0
        self._pushback = b""
        self._eof = length == 0
        self._closed = self._receiving = False
        self._error = None
        self._in_flight = self._peak = self._operations = self._bytes = 0

    def __repr__(self) -> str:
        return f"<shardio_disk.FileInputStream of {self.file!r}>"

    def statistics(self) -> FileStreamStatistics:
        """Reads in flight, now and at most, and totals (see
        :class:`FileStreamStatistics`)."""
        return FileStreamStatistics(self._in_flight, self._peak, self._operations, self._bytes)

    # -- reads in flight ---------------------------------------------------------------

    def _fill(self, minimum: int = 0) -> None:
        """Start reads until ``read_ahead`` are queued (``minimum`` if more:
        1 when the consumer waits), unless the file or the range has ended."""
        depth = max(self._read_ahead, minimum)
        while len(self._queue) < depth and not self._eof and not self._closed:
            end = self._end
            if end is not None and self._next_pos >= end:
                return
            size = self._buffer_size
            if end is not None and end - self._next_pos < size:
                size = _round_up(end - self._next_pos, self.file.alignment.read)
            if self._free:
                buf = self._free.pop()
            else:
                buf = allocate(self._buffer_size, self.file.alignment.memory, zero=False)
            request = _Request(buf, self._next_pos, size)
            self._start(request)
            self._queue.append(request)
            self._next_pos += size

    def _start(self, request: _Request) -> None:
        def done(result: int) -> None:
            self._in_flight -= 1
            request.finish(result)

        request.handle = self.file._start_io(
            False, request.pos, request.buf[: request.length], done
        )
        self._in_flight += 1
        self._operations += 1
        self._peak = max(self._peak, self._in_flight)

    # -- receiving ----------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise shardio.ClosedResourceError("this file stream was closed")
        if self._error is not None:
            raise shardio.BrokenResourceError(
                f"an earlier read of {self.file.name!r} failed"
            ) from self._error

    def _take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what is already here ("" if nothing)."""
        if self._pushback:
            data, self._pushback = self._pushback[:max_bytes], self._pushback[max_bytes:]
        elif self._current is not None:
            start = self._current_start
            stop = min(self._current_end, start + max_bytes)
            data = bytes(self._current[start:stop])
            self._current_start = stop
            if stop == self._current_end:
                self._free.append(self._current)
                self._current = None
        else:
            return b""
        self._bytes += len(data)
        return data

    async def _next_buffer(self) -> None:
        """Make the next completed read the current buffer (waiting for it);
        at the end of the file, leave no current buffer."""
        self._fill(1)
        if not self._queue:
            self._eof = True
            return
        head = self._queue[0]
        await head.wait()
        self._check_usable()
        self._queue.popleft()
        result = head.result
        assert result is not None
        if result < 0:
            self._error = OSError(-result, os.strerror(-result), self.file.name)
            raise self._error
        if result < head.length or (self._end is not None and head.pos + head.length >= self._end):
            # A short read is the end of the file: the reads after it (which
            # read nothing) are cancelled, and left for aclose to wait for.
            self._eof = True
            for request in self._queue:
                self.file._cancel_io(request.handle)
        start = self._skip
        self._skip = 0
        end = result
        if self._end is not None:
            end = min(end, self._end - head.pos)
        if start < end:
            self._current = head.buf
            self._current_start = start
            self._current_end = end
        else:
            self._free.append(head.buf)
        self._fill()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next bytes of the file: between 1 and ``max_bytes`` (at most a
        buffer's worth if None); ``b""`` at the end.

        Raises :class:`OSError` if the read failed (then
        :class:`~shardio.BrokenResourceError` on later calls),
        :class:`~shardio.BusyResourceError` if another task is receiving,
        :class:`~shardio.ClosedResourceError` once closed. Cancelled, it
        consumes nothing.
        """
        if max_bytes is None:
            max_bytes = self._buffer_size
        elif max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        if self._receiving:
            raise shardio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            self._check_usable()
            data = self._take(max_bytes)
            if data or self._eof:
                await lowlevel.cancel_shielded_checkpoint()
                return data
            while not self._eof:
                await self._next_buffer()
                data = self._take(max_bytes)
                if data:
                    return data
            return b""
        finally:
            self._receiving = False

    async def read_exactly(self, size: int) -> bytes:
        """``size`` bytes, fewer only if the file (or the range) ends first.

        Cancelled, it consumes nothing: the bytes it had gathered are
        returned by the next call.
        """
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        pieces: list[bytes] = []
        got = 0
        try:
            while got < size:
                piece = await self.receive_some(size - got)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
        except shardio.Cancelled:
            self._pushback = b"".join(pieces) + self._pushback
            self._bytes -= got
            raise
        if not pieces:
            await lowlevel.checkpoint()
        return b"".join(pieces)

    async def aclose(self) -> None:
        """Close the stream and its file: cancel the reads in flight in the
        kernel, wait for them, close the file. Closing twice does nothing."""
        if self._closed:
            await lowlevel.checkpoint()
            return
        self._closed = True
        with shardio.CancelScope(shield=True):
            for request in self._queue:
                if not request.done:
                    self.file._cancel_io(request.handle)
            for request in self._queue:
                await request.wait()
            self._queue.clear()
            self._current = None
            self._free.clear()
            await self.file.aclose()
        await lowlevel.checkpoint_if_cancelled()


@attrs.define(eq=False, slots=True, repr=False, init=False)
class FileOutputStream(SendStream):
    """A byte stream writing a :class:`DmaFile` from its start, in aligned
    buffers of ``buffer_size`` bytes, with up to ``write_behind`` writes in
    flight behind the producer.

    ``buffer_size`` is rounded up to the file's write alignment. The stream
    owns the file. :meth:`flush` writes what is buffered (the last block
    padded) and waits for every write; :meth:`aclose` flushes, truncates
    the file to the number of bytes sent, ``fdatasync``\\ s it and closes
    it. With ``write_behind=0`` each buffer is written before ``send_all``
    goes on.
    """

    file: DmaFile
    _buffer_size: int
    _write_behind: int
    _pos: int
    _current: memoryview | None
    _used: int
    _tail: _Request | None
    _in_flight_requests: collections.deque[_Request]
    _free: list[memoryview]
    _closed: bool
    _sending: bool
    _error: OSError | None
    _surfaced: bool
    _in_flight: int
    _peak: int
    _operations: int
    _bytes: int

    def __init__(
        self,
        file: DmaFile,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        write_behind: int = DEFAULT_DEPTH,
    ) -> None:
        _check_sizes(buffer_size, write_behind, "write_behind")
        self.file = file
        self._buffer_size = _round_up(buffer_size, file.alignment.write)
        self._write_behind = write_behind
        self._pos = 0
        self._current = None
        self._used = 0
        self._tail = None
        self._in_flight_requests = collections.deque()
        self._free = []
        self._closed = self._sending = False
        self._error = None
        self._surfaced = False
        self._in_flight = self._peak = self._operations = self._bytes = 0

    def __repr__(self) -> str:
        return f"<shardio_disk.FileOutputStream of {self.file!r}>"

    def statistics(self) -> FileStreamStatistics:
        """Writes in flight, now and at most, and totals (see
        :class:`FileStreamStatistics`)."""
        return FileStreamStatistics(self._in_flight, self._peak, self._operations, self._bytes)

    # -- writes in flight -------------------------------------------------------------

    def _start(self, request: _Request, offset: int = 0) -> None:
        """Write ``request.buf[offset:length]`` at ``request.pos + offset``;
        a short write is continued from where it stopped."""

        def done(result: int) -> None:
            if result > 0 and offset + result < request.length:
                if (offset + result) % self.file.alignment.write == 0:
                    try:
                        self._start(request, offset + result)
                    except OSError as exc:
                        result = -(exc.errno or errno.EIO)
                    except ValueError:
                        result = -errno.EIO
                    else:
                        self._in_flight -= 1
                        return
                else:
                    result = -errno.EIO
            elif result == 0:
                result = -errno.EIO
            self._in_flight -= 1
            if result < 0 and self._error is None:
                self._error = OSError(-result, os.strerror(-result), self.file.name)
            request.finish(result)

        request.handle = self.file._start_io(
            True, request.pos + offset, request.buf[offset : request.length], done
        )
        self._in_flight += 1
        self._operations += 1
        self._peak = max(self._peak, self._in_flight)

    async def _retire_oldest(self) -> None:
        """Wait for the oldest write in flight; its buffer becomes free."""
        request = self._in_flight_requests[0]
        await request.wait()
        if self._in_flight_requests and self._in_flight_requests[0] is request:
            self._in_flight_requests.popleft()
            if request is not self._tail:
                self._free.append(request.buf)

    async def _wait_for_tail(self) -> None:
        """The flushed tail block is written again only once its first write
        is complete: never two writes of one block in flight."""
        tail = self._tail
        if tail is not None:
            await tail.wait()
            if tail in self._in_flight_requests:
                self._in_flight_requests.remove(tail)
            self._tail = None

    async def _write_current(self, length: int, *, tail: bool) -> None:
        """Start the write of the current buffer's first ``length`` bytes,
        after waiting for a slot (``write_behind`` in flight at most)."""
        while self._in_flight_requests and len(self._in_flight_requests) >= max(
            self._write_behind, 1
        ):
            await self._retire_oldest()
        assert self._current is not None
        request = _Request(self._current, self._pos, length)
        self._start(request)
        self._in_flight_requests.append(request)
        if tail:
            self._tail = request
        else:
            self._current = None
            self._pos += length
            self._used = 0
        if self._write_behind == 0:
            await self._retire_oldest()

    def _check_usable(self) -> None:
        if self._closed:
            raise shardio.ClosedResourceError("this file stream was closed")
        if self._error is not None:
            if not self._surfaced:
                self._surfaced = True
                raise self._error
            raise shardio.BrokenResourceError(
                f"an earlier write to {self.file.name!r} failed"
            ) from self._error

    # -- sending -------------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` into the stream's buffers, starting the write of
        each buffer that fills up; wait only while ``write_behind`` writes
        are in flight.

        Raises the :class:`OSError` of a write that failed since the last
        call (then :class:`~shardio.BrokenResourceError` on later calls),
        :class:`~shardio.BusyResourceError` if another task is sending,
        :class:`~shardio.ClosedResourceError` once closed.
        """
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            self._check_usable()
            with memoryview(data) as source, source.cast("B") as view:
                await self._copy_in(view)
            await lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def _copy_in(self, view: memoryview) -> None:
        size = self._buffer_size
        while view:
            await self._wait_for_tail()
            if self._current is None:
                # At most write_behind buffers are in flight (_write_current
                # waits for that), so there are never more than one more.
                self._current = (
                    self._free.pop()
                    if self._free
                    else allocate(size, self.file.alignment.memory, zero=False)
                )
                self._used = 0
            take = min(len(view), size - self._used)
            self._current[self._used : self._used + take] = view[:take]
            self._used += take
            self._bytes += take
            view = view[take:]
            if self._used == size:
                await self._write_current(size, tail=False)
            self._check_usable()

    async def wait_send_all_might_not_block(self) -> None:
        """Until a write slot is free (``send_all`` may still wait if it
        fills more than one buffer)."""
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            self._check_usable()
            if len(self._in_flight_requests) >= max(self._write_behind, 1):
                await self._retire_oldest()
            else:
                await lowlevel.checkpoint()
        finally:
            self._sending = False

    async def _flush(self) -> None:
        await self._wait_for_tail()
        if self._current is not None and self._used:
            align = self.file.alignment.write
            padded = _round_up(self._used, align)
            self._current[self._used : padded] = bytes(padded - self._used)
            await self._write_current(padded, tail=True)
        while self._in_flight_requests:
            await self._retire_oldest()
        await self._wait_for_tail()

    async def flush(self) -> None:
        """Write everything sent so far (the last, partial block padded with
        zeros) and wait until every write is complete. The file is then at
        least as long as the data, rounded up to the write alignment; it
        is cut to the exact length at :meth:`aclose`."""
        if self._sending:
            raise shardio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await lowlevel.checkpoint_if_cancelled()
            self._check_usable()
            await self._flush()
            self._check_usable()
        finally:
            self._sending = False

    async def aclose(self) -> None:
        """Flush, truncate the file to the bytes sent, ``fdatasync`` it and
        close it -- shielded from cancellation. A write error not raised yet
        is raised here, after the file is closed. Closing twice does nothing.
        """
        if self._closed:
            await lowlevel.checkpoint()
            return
        self._closed = True
        with shardio.CancelScope(shield=True):
            try:
                if self._error is None:
                    await self._flush()
                while self._in_flight_requests:
                    await self._retire_oldest()
                await self._wait_for_tail()
                if self._error is None:
                    try:
                        await self.file.truncate(self._pos + self._used)
                        await self.file.fdatasync()
                    except OSError as exc:
                        self._error = exc
            finally:
                self._current = None
                self._free.clear()
                await self.file.aclose()
        if self._error is not None and not self._surfaced:
            self._surfaced = True
            raise self._error
        await lowlevel.checkpoint_if_cancelled()
