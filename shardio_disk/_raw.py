"""The unbuffered layer of :func:`~shardio_disk.open_file`: ``io.FileIO``
with its reads and writes on io_uring.

Reads and writes go to the file's own position (``-1`` as the offset, as
``read(2)`` and ``write(2)`` do), so that ``O_APPEND``, pipes and a
position shared with ``fileno()`` behave exactly as with ``io.FileIO``.
Moving the position is ``lseek(2)``, done directly: it changes a number in
the kernel's open file description and never waits for a device. A
cancelled read or write that moved data anyway (io_uring's ``KIND_KEEP``)
reports its count, so the position and the layers above always agree with
the file.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, Any

import attrs

import shardio

from ._backend import KIND_KEEP, STATX_MODE, STATX_SIZE, STATX_TYPE, Backend
from ._iobase import AsyncFile, UnsupportedOperation, _Guard, _Interrupted
from ._uring_c import ffi

if TYPE_CHECKING:
    from typing_extensions import Buffer

#: What ``io`` uses when the filesystem gives no block size.
DEFAULT_BUFFER_SIZE = 8192


def _named(exc: OSError, name: str | bytes) -> OSError:
    return OSError(exc.errno, exc.strerror, name)


@attrs.define(eq=False, slots=True, repr=False)
class RawFile(AsyncFile[bytes]):
    """An unbuffered binary file: what ``open_file(path, "rb", buffering=0)``
    returns, the counterpart of :class:`io.FileIO`.

    Each read or write is one system call (one io_uring operation): a
    ``read(n)`` may return fewer than ``n`` bytes, a ``write`` may write
    fewer than it was given (it returns how many).
    """

    _fd: int
    #: The path the file was opened with.
    name: str | bytes
    _backend: Backend
    _guard: _Guard
    _readable: bool
    _writable: bool
    _appending: bool
    _created: bool
    _seekable: bool
    _blksize: int
    # Bytes an interrupted read had taken from the kernel: read first.
    _pushback: bytearray = attrs.field(factory=bytearray, init=False)

    @classmethod
    async def _open(cls, name: str | bytes, mode: str, guard: _Guard) -> RawFile:
        """Open ``name`` as ``FileIO(name, mode)`` would (mode: ``rwxa`` and
        at most one ``+``)."""
        from ._choice import current_backend

        created = "x" in mode
        readable = "r" in mode or "+" in mode
        writable = "r" not in mode or "+" in mode
        appending = "a" in mode
        if created:
            flags = os.O_EXCL | os.O_CREAT
        elif "r" in mode:
            flags = 0
        elif "w" in mode:
            flags = os.O_CREAT | os.O_TRUNC
        else:
            flags = os.O_APPEND | os.O_CREAT
        if readable and writable:
            flags |= os.O_RDWR
        elif readable:
            flags |= os.O_RDONLY
        else:
            flags |= os.O_WRONLY
        flags |= os.O_CLOEXEC
        encoded = os.fsencode(name)
        if b"\0" in encoded:
            raise ValueError("embedded null byte")
        backend = current_backend()
        try:
            fd = await backend.openat(encoded, flags, 0o666)
        except OSError as exc:
            raise _named(exc, name) from None
        try:
            info = await backend.statx(fd, STATX_TYPE | STATX_MODE)
            if stat.S_ISDIR(info.mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
            try:
                os.lseek(fd, 0, os.SEEK_CUR)
                seekable = True
            except OSError:
                seekable = False
            if appending and seekable:
                # As FileIO: at the end from the start, not only after a write.
                os.lseek(fd, 0, os.SEEK_END)
        except BaseException:
            # Cancelled or failed between the open and the file object: the
            # fd is ours to close (a plain close of a fresh fd does not block).
            os.close(fd)
            raise
        guard.interruptible = not seekable
        blksize = info.blksize if info.blksize > 1 else DEFAULT_BUFFER_SIZE
        return cls(
            fd, name, backend, guard, readable, writable, appending, created, seekable, blksize
        )

    def __repr__(self) -> str:
        if self._fd < 0:
            return "<shardio_disk.RawFile [closed]>"
        return f"<shardio_disk.RawFile name={self.name!r} mode={self.mode!r}>"

    # -- state --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return self._fd < 0

    @property
    def mode(self) -> str:
        """The mode as ``io.FileIO`` reports it (``"rb"``, ``"rb+"``, ``"wb"``,
        ``"xb"``, ``"ab+"``...)."""
        if self._created:
            return "xb+" if self._readable else "xb"
        if self._appending:
            return "ab+" if self._readable else "ab"
        if self._readable:
            return "rb+" if self._writable else "rb"
        return "wb"

    def _check_closed(self) -> None:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self) -> None:
        if not self._readable:
            raise UnsupportedOperation("File not open for reading")

    def _check_writable(self) -> None:
        if not self._writable:
            raise UnsupportedOperation("File not open for writing")

    def fileno(self) -> int:
        """The file descriptor."""
        self._check_closed()
        return self._fd

    def isatty(self) -> bool:
        """True if the file is a terminal."""
        self._check_closed()
        return os.isatty(self._fd)

    def readable(self) -> bool:
        """True if the file was opened for reading."""
        self._check_closed()
        return self._readable

    def writable(self) -> bool:
        """True if the file was opened for writing."""
        self._check_closed()
        return self._writable

    def seekable(self) -> bool:
        """True if the file supports ``seek`` and ``tell`` (not a pipe)."""
        self._check_closed()
        return self._seekable

    # -- the system calls (the layers above call these with the lock held) --------

    async def _readinto(self, view: memoryview) -> int:
        """One read at the file position into ``view`` (bytes pushed back by
        an interrupted read come first)."""
        pushback = self._pushback
        if pushback:
            n = min(len(view), len(pushback))
            view[:n] = pushback[:n]
            del pushback[:n]
            return n
        if not len(view):
            return 0
        cbuf = ffi.from_buffer(view)
        try:
            return await self._backend.read(self._fd, view, cbuf, -1, KIND_KEEP)
        except shardio.Cancelled as cancelled:
            raise _Interrupted(cancelled) from None
        finally:
            ffi.release(cbuf)

    async def _write_view(self, view: memoryview) -> int:
        """One write at the file position (the end, in append mode)."""
        if not len(view):
            return 0
        cbuf = ffi.from_buffer(view)
        try:
            return await self._backend.write(self._fd, view, cbuf, -1, KIND_KEEP)
        except shardio.Cancelled as cancelled:
            raise _Interrupted(cancelled) from None
        finally:
            ffi.release(cbuf)

    def _unread(self, data: Buffer) -> None:
        """Give back bytes an interrupted read took: the next read gets them."""
        self._pushback[:0] = bytes(data)

    def _seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if isinstance(pos, float):
            raise TypeError("an integer is required")
        self._check_closed()
        return os.lseek(self._fd, pos, whence)

    def _tell(self) -> int:
        self._check_closed()
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    async def _seek_locked(self, pos: int, whence: int) -> int:
        return self._seek(pos, whence)

    async def _tell_locked(self) -> int:
        return self._tell()

    async def _read(self, size: int | None = -1) -> bytes:
        self._check_closed()
        self._check_readable()
        if size is None or size < 0:
            return await self._readall()
        buf = bytearray(size)
        # Never resized: until the completion is reaped, the ring's record
        # of the read may still hold a view of it.
        n = await self._readinto(memoryview(buf))
        return bytes(buf[:n])

    async def _readall(self) -> bytes:
        self._check_closed()
        self._check_readable()
        bufsize = DEFAULT_BUFFER_SIZE
        if self._seekable:
            pos = os.lseek(self._fd, 0, os.SEEK_CUR)
            end = (await self._backend.statx(self._fd, STATX_SIZE)).size
            if end >= pos:
                bufsize = end - pos + 1
        chunks: list[memoryview] = []
        got = 0
        while True:
            if got >= bufsize:
                bufsize = got + max(got, DEFAULT_BUFFER_SIZE)
            chunk = memoryview(bytearray(bufsize - got))
            try:
                n = await self._readinto(chunk)
            except _Interrupted:
                self._unread(b"".join(chunks))
                raise
            if not n:
                break
            chunks.append(chunk[:n])
            got += n
        return b"".join(chunks)

    async def _readinto_buffer(self, buffer: Buffer) -> int:
        self._check_closed()
        self._check_readable()
        with memoryview(buffer) as view, view.cast("B") as target:
            return await self._readinto(target)

    async def _write(self, data: Any) -> int:
        self._check_closed()
        self._check_writable()
        with memoryview(data) as view, view.cast("B") as source:
            return await self._write_view(source)

    async def _truncate(self, size: int | None = None) -> int:
        self._check_closed()
        self._check_writable()
        if size is None:
            size = self._tell()
        await self._backend.ftruncate(self._fd, size)
        return size

    async def _readline(self, size: int = -1) -> bytes:
        # IOBase.readline over read(1): FileIO has no peek.
        line = bytearray()
        try:
            while size < 0 or len(line) < size:
                byte = await self._read(1)
                if not byte:
                    break
                line += byte
                if byte == b"\n":
                    break
        except _Interrupted:
            self._unread(line)
            raise
        return bytes(line)

    async def _flush(self) -> None:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file.")

    async def _close(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with shardio.CancelScope(shield=True):
            await self._backend.close_fd(fd)

    # -- the public methods -----------------------------------------------------------

    async def read(self, size: int | None = -1) -> bytes:
        """Read at most ``size`` bytes with one system call; everything to
        the end of the file if ``size`` is negative or None. ``b""`` at the end."""
        return await self._guard.run(self._read, size)

    async def readall(self) -> bytes:
        """Read everything up to the end of the file."""
        return await self._guard.run(self._readall)

    async def readinto(self, buffer: Buffer) -> int:
        """Read into ``buffer`` (any writable bytes-like object) with one
        system call; return the number of bytes read."""
        return await self._guard.run(self._readinto_buffer, buffer)

    async def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        """Move the file position (``lseek``); return the new position."""
        return await self._guard.run(self._seek_locked, pos, whence)

    async def tell(self) -> int:
        """The file position."""
        return await self._guard.run(self._tell_locked)

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the current position);
        the position does not move. Returns the new size."""
        return await self._guard.run(self._truncate, size)

    async def flush(self) -> None:
        """Nothing to flush in an unbuffered file (a checkpoint all the same)."""
        await self._guard.run(self._flush)
