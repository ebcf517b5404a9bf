"""The buffered layer of :func:`~shardio_disk.open_file`: CPython's
``BufferedReader`` / ``BufferedWriter`` / ``BufferedRandom``
(``Modules/_io/bufferedio.c``), ported to coroutines over a
:class:`~shardio_disk.RawFile`.

The port keeps the C object's state machine field for field -- one buffer
shared by reading and writing, ``pos`` / ``raw_pos`` / ``read_end`` /
``write_pos`` / ``write_end`` inside it, the cached absolute position
``abs_pos`` -- and its decisions: when a read goes straight to the caller's
buffer, how much a refill asks for, when a write is merged into the buffer,
when the raw position is rewound. So a sequence of calls makes the same
system calls with the same sizes as with a file from :func:`open`, and
returns the same results (including what ``read1`` and ``peek`` return,
which depend on the buffer's state). The C helpers keep their names
(``_raw_read``, ``_fill_buffer``, ``_flush_and_rewind``...) so the two can be
read side by side. What is left out: the paths for non-blocking raw files
(which ``open_file`` never makes); in their place, an interrupted read on a
pipe pushes back what it took (see ``_iobase``).
"""

from __future__ import annotations

import operator
import os
from typing import TYPE_CHECKING, Any

import attrs

from ._iobase import AsyncFile, UnsupportedOperation, _Guard, _Interrupted
from ._raw import RawFile

if TYPE_CHECKING:
    from typing_extensions import Buffer

_SEEK_DATA = getattr(os, "SEEK_DATA", 3)
_SEEK_HOLE = getattr(os, "SEEK_HOLE", 4)


@attrs.define(eq=False, slots=True, repr=False)
class BufferedFile(AsyncFile[bytes]):
    """A buffered binary file: what ``open_file(path, "rb")``, ``"wb"``,
    ``"r+b"``... return, the counterpart of :class:`io.BufferedReader`,
    :class:`io.BufferedWriter` and :class:`io.BufferedRandom` (which one
    depends on the mode, and decides which methods work, as in :mod:`io`).
    """

    #: The unbuffered file underneath.
    raw: RawFile
    _guard: _Guard
    _buffer_size: int
    _readable: bool
    _writable: bool
    _buffer_mask: int = attrs.field(init=False)
    _buffer: bytearray = attrs.field(init=False)
    # Absolute position of the raw file (-1: unknown).
    _abs_pos: int = attrs.field(default=-1, init=False)
    # Current logical position in the buffer.
    _pos: int = attrs.field(default=0, init=False)
    # Position of the raw file in the buffer.
    _raw_pos: int = attrs.field(default=0, init=False)
    # Just after the last buffered byte, or -1 if the buffer is not ready for reading.
    _read_end: int = attrs.field(default=-1, init=False)
    # Just after the last byte actually written.
    _write_pos: int = attrs.field(default=0, init=False)
    # Just after the last byte waiting to be written, or -1.
    _write_end: int = attrs.field(default=-1, init=False)

    def __attrs_post_init__(self) -> None:
        if self._buffer_size <= 0:
            raise ValueError("buffer size must be strictly positive")
        size = self._buffer_size
        self._buffer_mask = size - 1 if size & (size - 1) == 0 else 0
        self._buffer = bytearray(size)
        try:
            self._raw_tell()
        except OSError:
            pass

    def __repr__(self) -> str:
        kind = {
            (True, False): "reader",
            (False, True): "writer",
            (True, True): "random",
        }[self._readable, self._writable]
        return f"<shardio_disk.BufferedFile ({kind}) name={self.raw.name!r}>"

    # -- the C macros ------------------------------------------------------------------

    def _valid_read_buffer(self) -> bool:
        return self._readable and self._read_end != -1

    def _valid_write_buffer(self) -> bool:
        return self._writable and self._write_end != -1

    def _adjust_position(self, new_pos: int) -> None:
        self._pos = new_pos
        if self._valid_read_buffer() and self._read_end < new_pos:
            self._read_end = new_pos

    def _readahead(self) -> int:
        return self._read_end - self._pos if self._valid_read_buffer() else 0

    def _raw_offset(self) -> int:
        if (self._valid_read_buffer() or self._valid_write_buffer()) and self._raw_pos >= 0:
            return self._raw_pos - self._pos
        return 0

    def _raw_tell_cached(self) -> int:
        return self._abs_pos if self._abs_pos != -1 else self._raw_tell()

    def _minus_last_block(self, size: int) -> int:
        if self._buffer_mask:
            return size & ~self._buffer_mask
        return self._buffer_size * (size // self._buffer_size)

    def _check_closed_for(self, message: str) -> None:
        # CHECK_CLOSED: a closed file may still hand out what it buffered.
        if self.raw.closed and self._readahead() == 0:
            raise ValueError(message)

    def _check_closed(self) -> None:
        if self.raw.closed:
            raise ValueError("I/O operation on closed file.")

    # -- the raw file ------------------------------------------------------------------

    def _raw_tell(self) -> int:
        n = self.raw._tell()
        if n < 0:
            raise OSError(f"Raw stream returned invalid position {n}")
        self._abs_pos = n
        return n

    def _raw_seek(self, target: int, whence: int) -> int:
        n = self.raw._seek(target, whence)
        if n < 0:
            raise OSError(f"Raw stream returned invalid position {n}")
        self._abs_pos = n
        return n

    async def _raw_read(self, view: memoryview) -> int:
        n = await self.raw._readinto(view)
        if n > 0 and self._abs_pos != -1:
            self._abs_pos += n
        return n

    async def _raw_write(self, view: memoryview) -> int:
        n = await self.raw._write_view(view)
        if n > 0 and self._abs_pos != -1:
            self._abs_pos += n
        return n

    # -- state --------------------------------------------------------------------

    @property
    def name(self) -> str | bytes:
        """The path the file was opened with."""
        return self.raw.name

    @property
    def mode(self) -> str:
        """The raw file's mode (``"rb"``, ``"rb+"``, ``"wb"``...)."""
        return self.raw.mode

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return self.raw.closed

    def fileno(self) -> int:
        """The file descriptor."""
        return self.raw.fileno()

    def isatty(self) -> bool:
        """True if the file is a terminal."""
        return self.raw.isatty()

    def readable(self) -> bool:
        """True if the file can be read."""
        return self.raw.readable() if self._readable else False

    def writable(self) -> bool:
        """True if the file can be written."""
        return self.raw.writable() if self._writable else False

    def seekable(self) -> bool:
        """True if the file supports ``seek`` and ``tell``."""
        return self.raw.seekable()

    # -- the buffer --------------------------------------------------------------------

    def _reader_reset_buf(self) -> None:
        self._read_end = -1

    def _writer_reset_buf(self) -> None:
        self._write_pos = 0
        self._write_end = -1

    async def _writer_flush(self) -> None:
        if self._valid_write_buffer() and self._write_pos != self._write_end:
            rewind = self._raw_offset() + (self._pos - self._write_pos)
            if rewind != 0:
                self._raw_seek(-rewind, os.SEEK_CUR)
                self._raw_pos -= rewind
            buffer = memoryview(self._buffer)
            while self._write_pos < self._write_end:
                n = await self._raw_write(buffer[self._write_pos : self._write_end])
                self._write_pos += n
                self._raw_pos = self._write_pos
        # After a flush the write buffer is never valid, so that RAW_OFFSET
        # is 0 when the read buffer is not valid either (bpo-32228).
        self._writer_reset_buf()

    async def _flush_and_rewind(self) -> None:
        await self._writer_flush()
        if self._readable:
            # Rewind the raw file so that its position is the logical one.
            try:
                self._raw_seek(-self._raw_offset(), os.SEEK_CUR)
            finally:
                self._reader_reset_buf()

    async def _fill_buffer(self) -> int:
        start = self._read_end if self._valid_read_buffer() else 0
        n = await self._raw_read(memoryview(self._buffer)[start:])
        if n <= 0:
            return n
        self._read_end = start + n
        self._raw_pos = start + n
        return n

    def _read_fast(self, n: int) -> bytes | None:
        if n <= self._readahead():
            pos = self._pos
            self._pos = pos + n
            return bytes(self._buffer[pos : pos + n])
        return None

    async def _read_generic(self, n: int) -> bytes:
        current_size = self._readahead()
        if n <= current_size:
            data = self._read_fast(n)
            assert data is not None
            return data
        out = bytearray(n)
        view = memoryview(out)
        remaining = n
        written = 0
        if current_size > 0:
            view[:current_size] = self._buffer[self._pos : self._pos + current_size]
            remaining -= current_size
            written += current_size
            self._pos += current_size
        try:
            if self._writable:
                await self._flush_and_rewind()
            self._reader_reset_buf()
            while remaining > 0:
                # Read whole blocks straight into the result; the last,
                # partial block goes through the buffer.
                r = self._minus_last_block(remaining)
                if r == 0:
                    break
                r = await self._raw_read(view[written : written + r])
                if r == 0:
                    return bytes(view[:written])
                remaining -= r
                written += r
            self._pos = 0
            self._raw_pos = 0
            self._read_end = 0
            # Once the read is satisfied, no further raw read (it could block).
            while remaining > 0 and self._read_end < self._buffer_size:
                r = await self._fill_buffer()
                if r == 0:
                    return bytes(view[:written])
                take = min(r, remaining)
                view[written : written + take] = self._buffer[self._pos : self._pos + take]
                written += take
                self._pos += take
                remaining -= take
        except _Interrupted:
            self.raw._unread(view[:written])
            raise
        return bytes(out)

    async def _read_all(self) -> bytes:
        current_size = self._readahead()
        data = b""
        if current_size:
            data = bytes(self._buffer[self._pos : self._pos + current_size])
            self._pos += current_size
        try:
            if self._writable:
                await self._flush_and_rewind()
            self._reader_reset_buf()
            rest = await self.raw._readall()
        except _Interrupted:
            self.raw._unread(data)
            raise
        return data + rest if current_size else rest

    async def _peek_unlocked(self) -> bytes:
        have = self._readahead()
        if have > 0:
            return bytes(self._buffer[self._pos : self._pos + have])
        self._reader_reset_buf()
        r = await self._fill_buffer()
        self._pos = 0
        return bytes(self._buffer[:r])

    # -- the operations, with the lock held -------------------------------------------

    async def _read(self, n: int | None = -1) -> bytes:
        if not self._readable:
            raise UnsupportedOperation("read")
        n = -1 if n is None else _index(n)
        if n < -1:
            raise ValueError("read length must be non-negative or -1")
        self._check_closed_for("read of closed file")
        if n == -1:
            return await self._read_all()
        data = self._read_fast(n)
        if data is not None:
            return data
        return await self._read_generic(n)

    async def _read1(self, n: int = -1) -> bytes:
        if not self._readable:
            raise UnsupportedOperation("read1")
        n = operator.index(n)
        if n < 0:
            n = self._buffer_size
        self._check_closed_for("read of closed file")
        if n == 0:
            return b""
        have = self._readahead()
        if have > 0:
            data = self._read_fast(min(have, n))
            assert data is not None
            return data
        # Nothing buffered: one raw read, straight into the result.
        self._reader_reset_buf()
        out = bytearray(n)
        r = await self._raw_read(memoryview(out))
        return bytes(out[:r])

    async def _readinto_generic(self, buffer: Buffer, readinto1: bool) -> int:
        if not self._readable:
            raise UnsupportedOperation("read1" if readinto1 else "read")
        self._check_closed_for("readinto of closed file")
        with memoryview(buffer) as target, target.cast("B") as view:
            return await self._readinto_view(view, readinto1)

    async def _readinto_view(self, view: memoryview, readinto1: bool) -> int:
        length = len(view)
        written = 0
        n = self._readahead()
        if n > 0:
            if n >= length:
                view[:] = self._buffer[self._pos : self._pos + length]
                self._pos += length
                return length
            view[:n] = self._buffer[self._pos : self._pos + n]
            self._pos += n
            written = n
        try:
            if self._writable:
                await self._flush_and_rewind()
            self._reader_reset_buf()
            self._pos = 0
            remaining = length - written
            while remaining > 0:
                if remaining > self._buffer_size:
                    # More than a buffer's worth: straight into the caller's memory.
                    n = await self._raw_read(view[written:])
                elif not (readinto1 and written):
                    n = await self._fill_buffer()
                    if n > 0:
                        n = min(n, remaining)
                        view[written : written + n] = self._buffer[self._pos : self._pos + n]
                        self._pos += n
                        written += n
                        remaining -= n
                        continue
                else:
                    n = 0
                if n == 0:
                    break
                written += n
                remaining -= n
                if readinto1:
                    break
        except _Interrupted:
            self.raw._unread(view[:written])
            raise
        return written

    async def _readline(self, limit: int = -1) -> bytes:
        limit = -1 if limit is None else _index(limit)
        if not self._readable:
            # IOBase.readline, which reads nothing for a limit of 0.
            if limit == 0:
                return b""
            raise UnsupportedOperation("read")
        self._check_closed_for("readline of closed file")
        # First, try to find a line in the buffer.
        n = self._readahead()
        if 0 <= limit < n:
            n = limit
        start = self._pos
        end = self._buffer.find(b"\n", start, start + n)
        if end >= 0:
            self._pos = end + 1
            return bytes(self._buffer[start : end + 1])
        if n == limit:
            self._pos += n
            return bytes(self._buffer[start : start + n])
        # Now get more from the raw file.
        chunks: list[bytes] = []
        if n > 0:
            chunks.append(bytes(self._buffer[start : start + n]))
            self._pos += n
            if limit >= 0:
                limit -= n
        try:
            if self._writable:
                await self._flush_and_rewind()
            while True:
                self._reader_reset_buf()
                n = await self._fill_buffer()
                if n <= 0:
                    break
                if 0 <= limit < n:
                    n = limit
                end = self._buffer.find(b"\n", 0, n)
                if end >= 0:
                    self._pos = end + 1
                    chunks.append(bytes(self._buffer[: end + 1]))
                    break
                chunk = bytes(self._buffer[:n])
                if n == limit:
                    self._pos = n
                    chunks.append(chunk)
                    break
                chunks.append(chunk)
                if limit >= 0:
                    limit -= n
        except _Interrupted:
            self.raw._unread(b"".join(chunks))
            raise
        return b"".join(chunks)

    async def _peek(self, size: int = 0) -> bytes:
        if not self._readable:
            raise UnsupportedOperation("peek")
        self._check_closed_for("peek of closed file")
        if self._writable:
            await self._flush_and_rewind()
        return await self._peek_unlocked()

    async def _write(self, data: Any) -> int:
        if not self._writable:
            raise UnsupportedOperation("write")
        with memoryview(data) as source, source.cast("B") as view:
            return await self._write_view(view)

    async def _write_view(self, view: memoryview) -> int:
        if self.raw.closed:
            raise ValueError("write to closed file")
        length = len(view)
        # Fast path: the data fits in the buffer.
        if not self._valid_read_buffer() and not self._valid_write_buffer():
            self._pos = 0
            self._raw_pos = 0
        avail = self._buffer_size - self._pos
        if length <= avail:
            pos = self._pos
            self._buffer[pos : pos + length] = view
            if not self._valid_write_buffer() or self._write_pos > pos:
                self._write_pos = pos
            self._adjust_position(pos + length)
            if self._pos > self._write_end:
                self._write_end = self._pos
            return length
        # First write the current buffer.
        await self._writer_flush()
        # Bring the raw position back to the logical one if a read buffer
        # moved it ahead (bpo-6629).
        offset = self._raw_offset()
        if offset != 0:
            self._raw_seek(-offset, os.SEEK_CUR)
            self._raw_pos -= offset
        # Then write the data itself, the buffer now empty.
        remaining = length
        written = 0
        while remaining > self._buffer_size:
            n = await self._raw_write(view[written:])
            written += n
            remaining -= n
        if self._readable:
            self._reader_reset_buf()
        if remaining > 0:
            self._buffer[:remaining] = view[written:]
            written += remaining
        self._write_pos = 0
        self._write_end = remaining
        self._adjust_position(remaining)
        self._raw_pos = 0
        return written

    async def _flush(self) -> None:
        if not self._writable:
            # BufferedReader.flush: the raw file's.
            await self.raw._flush()
            return
        self._check_closed_for("flush of closed file")
        await self._flush_and_rewind()

    async def _tell(self) -> int:
        return self._raw_tell() - self._raw_offset()

    async def _seek(self, target: int, whence: int = os.SEEK_SET) -> int:
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, _SEEK_DATA, _SEEK_HOLE):
            raise ValueError(f"whence value {whence} unsupported")
        self._check_closed_for("seek of closed file")
        if not self.raw.seekable():
            raise UnsupportedOperation("File or stream is not seekable.")
        target = operator.index(target)
        # SEEK_SET and SEEK_CUR may land inside the buffer: no system call.
        if whence in (os.SEEK_SET, os.SEEK_CUR) and self._readable:
            current = self._raw_tell_cached()
            avail = self._readahead()
            if avail > 0:
                if whence == os.SEEK_SET:
                    offset = target - (current - self._raw_offset())
                else:
                    offset = target
                if -self._pos <= offset <= avail:
                    self._pos += offset
                    return current - avail + offset
        if self._writable:
            await self._writer_flush()
        if whence == os.SEEK_CUR:
            target -= self._raw_offset()
        n = self._raw_seek(target, whence)
        self._raw_pos = -1
        if self._readable:
            self._reader_reset_buf()
        return n

    async def _truncate(self, pos: int | None = None) -> int:
        self._check_closed_for("truncate of closed file")
        if not self._writable:
            raise UnsupportedOperation("truncate")
        await self._flush_and_rewind()
        result = await self.raw._truncate(pos)
        try:
            self._raw_tell()
        except OSError:
            pass
        return result

    async def _close(self) -> None:
        if self.raw.closed:
            return
        try:
            await self._flush()
        finally:
            await self.raw._close()
            self._read_end = 0
            self._pos = 0

    # -- the public methods -----------------------------------------------------------

    async def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes, fewer only at the end of the file; everything
        to the end if ``size`` is negative or None."""
        return await self._guard.run(self._read, size)

    async def read1(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes with at most one system call: what is
        buffered, if anything, else one read (of ``size`` bytes; of the
        buffer size if ``size`` is negative)."""
        return await self._guard.run(self._read1, size)

    async def readinto(self, buffer: Buffer) -> int:
        """Read into ``buffer`` until it is full or the file ends; return the
        number of bytes read."""
        return await self._guard.run(self._readinto_generic, buffer, False)

    async def readinto1(self, buffer: Buffer) -> int:
        """Read into ``buffer`` with at most one system call; return the
        number of bytes read."""
        return await self._guard.run(self._readinto_generic, buffer, True)

    async def peek(self, size: int = 0) -> bytes:
        """Return buffered bytes without moving the position, reading once if
        nothing is buffered (``size`` is ignored, as in :mod:`io`)."""
        return await self._guard.run(self._peek, size)

    async def seek(self, target: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``target`` (relative to ``whence``); return the new position."""
        return await self._guard.run(self._seek, target, whence)

    async def tell(self) -> int:
        """The current position."""
        return await self._guard.run(self._tell)

    async def truncate(self, pos: int | None = None) -> int:
        """Resize the file to ``pos`` bytes (default: the current position),
        after writing out the buffer; return the new size."""
        return await self._guard.run(self._truncate, pos)

    async def flush(self) -> None:
        """Write out what the buffer holds."""
        await self._guard.run(self._flush)


def _index(value: Any) -> int:
    """``value`` as an int, with the error :mod:`io` gives for anything else."""
    try:
        return int(value.__index__())
    except AttributeError:
        raise TypeError(
            f"argument should be integer or None, not '{type(value).__name__}'"
        ) from None
