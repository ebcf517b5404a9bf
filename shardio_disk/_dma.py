"""DMA files: ``open_dma`` and :class:`DmaFile`.

A DMA file is opened with O_DIRECT: reads and writes go between the device
and the caller's buffer, bypassing the page cache, as Seastar's files do.
The price is alignment. The kernel rejects (EINVAL) a direct I/O whose file
position, length or buffer address is not a multiple of what the file's
filesystem and device require; :attr:`DmaFile.alignment` says what that is,
and every method checks it first, raising :class:`ValueError` before any
system call, so a mistake shows up where it is made and says what is needed.

Where the alignment comes from: ``statx`` with STATX_DIOALIGN (Linux 6.1,
and STATX_DIO_READ_ALIGN, Linux 6.14, for a finer read alignment); on
filesystems that do not report it, the logical block size of the device
holding the file (``/sys/dev/block/MAJ:MIN/queue/logical_block_size``);
failing that, 4096, which any device accepts.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

import shardio
from shardio import lowlevel

from ._backend import (
    STATX_DIO_READ_ALIGN,
    STATX_DIOALIGN,
    STATX_SIZE,
    Backend,
    FileInfo,
)
from ._buffers import allocate
from ._choice import current_backend
from ._uring_c import ffi

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from typing_extensions import Buffer

_MODES = {
    "r": os.O_RDONLY,
    "r+": os.O_RDWR,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "w+": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "x+": os.O_RDWR | os.O_CREAT | os.O_EXCL,
}
_FALLBACK_ALIGNMENT = 4096

#: read_many: reads at most this far apart are merged into one.
DEFAULT_MAX_GAP = 16 << 10
#: read_many: no merged read grows beyond this (the block layer would split it).
DEFAULT_MAX_MERGED = 128 << 10

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]
T = TypeVar("T")


@attrs.frozen
class DmaFileStatistics:
    """What :meth:`DmaFile.statistics` reports.

    ``in_flight``: operations on this file started and not yet completed
    (those of its file streams included). ``peak_in_flight``: the most there
    have been at once since the file was opened -- the queue depth the file
    actually reached.
    """

    in_flight: int
    peak_in_flight: int


@attrs.frozen
class Alignment:
    """What direct I/O on a file requires, in bytes (all powers of two).

    ``memory``: the buffer's address must be a multiple of it.
    ``read``: the position and length of a read must be multiples of it.
    ``write``: the same, for a write.
    """

    memory: int
    read: int
    write: int


_block_sizes: dict[tuple[int, int], int | None] = {}


def logical_block_size(major: int, minor: int) -> int | None:
    """The logical block size of block device ``major:minor`` (of the whole
    disk, for a partition), from sysfs; None if there is no such device."""
    key = (major, minor)
    if key not in _block_sizes:
        size = None
        device = Path(f"/sys/dev/block/{major}:{minor}")
        for queue in (device / "queue", device.resolve().parent / "queue"):
            try:
                size = int((queue / "logical_block_size").read_text())
                break
            except (OSError, ValueError):
                continue
        _block_sizes[key] = size
    return _block_sizes[key]


def alignment_for(
    info: FileInfo, block_size: Callable[[int, int], int | None] = logical_block_size
) -> Alignment | None:
    """The alignment direct I/O needs on a file, from its ``statx``; None if
    the filesystem says the file cannot do direct I/O."""
    if info.mask & STATX_DIOALIGN:
        if not info.dio_offset_align or not info.dio_mem_align:
            return None
        read = info.dio_offset_align
        if info.mask & STATX_DIO_READ_ALIGN and info.dio_read_offset_align:
            read = info.dio_read_offset_align
        return Alignment(memory=info.dio_mem_align, read=read, write=info.dio_offset_align)
    size = block_size(info.dev_major, info.dev_minor) or _FALLBACK_ALIGNMENT
    return Alignment(memory=size, read=size, write=size)


def _no_direct_io(name: str | bytes) -> OSError:
    return OSError(
        errno.EINVAL,
        "the filesystem does not support direct I/O (O_DIRECT), which open_dma needs; "
        "use buffered file I/O for this file",
        name,
    )


def _check_offset(what: str, name: str, value: object) -> None:
    """A file position or size given to method ``what``: an int, not
    negative. Errors name the method and the argument."""
    if not isinstance(value, int):
        raise TypeError(f"{what}: {name} must be an int, not {value!r}")
    if value < 0:
        raise ValueError(f"{what}: {name} {value} is negative; it must be >= 0")


async def open_dma(path: PathLike, mode: str = "r") -> DmaFile:
    """Open ``path`` for direct I/O (O_DIRECT) and return a :class:`DmaFile`.

    ``mode`` is ``"r"`` (read), ``"r+"`` (read and write), ``"w"`` / ``"w+"``
    (create or truncate; write, or read and write), ``"x"`` / ``"x+"``
    (create, failing with :class:`FileExistsError` if the file exists).
    A filesystem without direct I/O support gives an :class:`OSError`
    (EINVAL) that says so. Cancelling an open leaks no file descriptor.
    """
    try:
        flags = _MODES[mode]
    except KeyError:
        raise ValueError(
            f"invalid mode {mode!r} for open_dma: expected one of {', '.join(_MODES)}"
        ) from None
    name = os.fspath(path)
    encoded = os.fsencode(name)
    if b"\0" in encoded:
        raise ValueError(f"embedded null byte in path {name!r}")
    backend = current_backend()
    try:
        fd = await backend.openat(encoded, flags | os.O_DIRECT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise _no_direct_io(name) from None
        raise OSError(exc.errno, exc.strerror, name) from None
    try:
        info = await backend.statx(fd, STATX_DIOALIGN | STATX_DIO_READ_ALIGN)
        alignment = alignment_for(info)
        if alignment is None:
            raise _no_direct_io(name)
    except BaseException:
        # Cancelled or failed between the open and the DmaFile: the fd is
        # ours to close (a plain close of a fresh fd does not block).
        os.close(fd)
        raise
    return DmaFile(fd, name, mode, alignment, backend)


@attrs.define(eq=False, slots=True, repr=False)
class DmaFile(shardio.abc.AsyncResource, lowlevel.ShardLocal):
    """A file open for direct I/O; get one from :func:`open_dma`.

    Positions, lengths and buffer addresses must follow :attr:`alignment`;
    get buffers from :func:`~shardio_disk.aligned_buffer`. Any number of
    operations may run at once from different tasks; each is a checkpoint,
    and a cancelled one returns only once the kernel is done with its
    buffer. Errors are :class:`OSError` with the errno and the file's name.
    Use as ``async with``, or call :meth:`aclose`. It belongs to the shard
    that opened it (its I/O runs on that shard's ring): to use the file on
    another shard, open it there.
    """

    _fd: int
    #: The path it was opened with.
    name: str | bytes
    #: The mode it was opened with.
    mode: str
    #: What direct I/O on this file requires (see :class:`Alignment`).
    alignment: Alignment
    _backend: Backend
    _closing: bool = attrs.field(default=False, init=False)
    _in_flight: int = attrs.field(default=0, init=False)
    _peak_in_flight: int = attrs.field(default=0, init=False)
    _idle: shardio.Event | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        state = "closed" if self._closing else f"fd={self._fd}"
        return f"<shardio_disk.DmaFile name={self.name!r} mode={self.mode!r} {state}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has begun."""
        return self._closing

    def statistics(self) -> DmaFileStatistics:
        """Operations in flight on this file, now and at most (see
        :class:`DmaFileStatistics`)."""
        return DmaFileStatistics(in_flight=self._in_flight, peak_in_flight=self._peak_in_flight)

    def fileno(self) -> int:
        """The file descriptor (for ``os.fstat`` and the like; do not close it)."""
        if self._closing:
            raise ValueError("I/O operation on closed file")
        return self._fd

    # -- bookkeeping shared by every operation --------------------------------

    def _begin(self) -> int:
        # Never hand a closed fd number to the kernel: it may be another file's now.
        if self._closing:
            raise OSError(errno.EBADF, "the DmaFile is closed", self.name)
        in_flight = self._in_flight = self._in_flight + 1
        if in_flight > self._peak_in_flight:
            self._peak_in_flight = in_flight
        return self._fd

    def _end(self) -> None:
        self._in_flight -= 1
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    def _named(self, exc: OSError) -> OSError:
        return OSError(exc.errno, exc.strerror, self.name)

    def _check_aligned(self, what: str, name: str, value: int, align: int) -> None:
        if value % align:
            raise ValueError(
                f"{what}: {name} {value} is not a multiple of {align}, the alignment "
                f"direct I/O on {self.name!r} needs (see DmaFile.alignment)"
            )

    def _buffer(self, what: str, buf: Buffer, pos: int, align: int, *, writable: bool) -> Any:
        """Check ``buf`` and ``pos`` against the alignment; return the buffer
        as a byte memoryview and its address handle. Errors are labelled
        ``what``: the method the user called.

        The handle holds an export of the buffer until ``ffi.release``: the
        caller releases it as soon as the kernel is done with the memory.
        Left to the garbage collector, a handle and the memoryview it exports
        from can end up in one reference cycle (through a traceback), and
        CPython 3.11 crashes when it clears the view before the handle.
        """
        view = memoryview(buf)
        if not view.c_contiguous:
            raise TypeError(f"{what} needs a contiguous buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if writable and view.readonly:
            raise TypeError(f"{what} needs a writable buffer, not a read-only {type(buf).__name__}")
        _check_offset(what, "position", pos)
        self._check_aligned(what, "position", pos, align)
        size = len(view)
        self._check_aligned(what, "length", size, align)
        cbuf = ffi.from_buffer(view)
        memory = self.alignment.memory
        if size and int(ffi.cast("uintptr_t", cbuf)) % memory:
            ffi.release(cbuf)
            raise ValueError(
                f"{what}: the buffer's address is not a multiple of {memory}, the memory "
                f"alignment direct I/O on {self.name!r} needs; get buffers from "
                "shardio_disk.aligned_buffer()"
            )
        return view, cbuf

    # -- reading and writing ---------------------------------------------------

    async def read_into(self, pos: int, buf: Buffer) -> int:
        """Read into ``buf`` from file position ``pos``; return the number of
        bytes read, fewer than ``len(buf)`` only at the end of the file.

        ``pos`` and ``len(buf)`` must be multiples of ``alignment.read`` and
        the buffer's address of ``alignment.memory`` (else ValueError).
        """
        return await self._read_into("read_into", pos, buf)

    async def _read_into(self, what: str, pos: int, buf: Buffer) -> int:
        view, cbuf = self._buffer(what, buf, pos, self.alignment.read, writable=True)
        try:
            fd = self._begin()
            try:
                return await self._backend.read(fd, view, cbuf, pos)
            except OSError as exc:
                raise self._named(exc) from None
            finally:
                self._end()
        finally:
            ffi.release(cbuf)

    async def read_at(self, pos: int, size: int) -> bytes:
        """Read ``size`` bytes at file position ``pos``; fewer only at the end
        of the file. Both must be multiples of ``alignment.read``."""
        _check_offset("read_at", "size", size)
        self._check_aligned("read_at", "size", size, self.alignment.read)
        buf = allocate(size, self.alignment.memory, zero=False)
        n = await self._read_into("read_at", pos, buf)
        return bytes(buf[:n])

    async def write_at(self, pos: int, buf: Buffer) -> int:
        """Write ``buf`` at file position ``pos``; return the number of bytes
        written (all of them, unless the device or a limit stops it short).

        ``pos`` and ``len(buf)`` must be multiples of ``alignment.write`` and
        the buffer's address of ``alignment.memory`` (else ValueError). To
        end a file at an unaligned size, write whole blocks and
        :meth:`truncate`.
        """
        view, cbuf = self._buffer("write_at", buf, pos, self.alignment.write, writable=False)
        try:
            fd = self._begin()
            try:
                return await self._backend.write(fd, view, cbuf, pos)
            except OSError as exc:
                raise self._named(exc) from None
            finally:
                self._end()
        finally:
            ffi.release(cbuf)

    def _start_io(self, write: bool, pos: int, buf: Buffer, done: Callable[[int], None]) -> object:
        """Start a read (into ``buf``) or a write (from it) at ``pos`` that no
        task waits for; ``done(result)`` gets the byte count or ``-errno``.

        For the file streams, which keep I/O in flight ahead of their users.
        The checks are those of :meth:`read_into` / :meth:`write_at`; the
        operation counts as in flight on the file until ``done`` (so
        :meth:`aclose` waits for it), and the backend keeps ``buf`` alive
        until then. Returns a handle for :meth:`_cancel_io`.
        """
        what = "write_at" if write else "read_into"
        align = self.alignment.write if write else self.alignment.read
        view, cbuf = self._buffer(what, buf, pos, align, writable=not write)
        try:
            fd = self._begin()
        except BaseException:
            ffi.release(cbuf)
            raise

        def finished(result: int) -> None:
            ffi.release(cbuf)
            self._end()
            done(result)

        try:
            return self._backend.start_io(write, fd, view, cbuf, pos, finished)
        except BaseException:
            ffi.release(cbuf)
            self._end()
            raise

    def _cancel_io(self, handle: object) -> None:
        """Ask for an I/O from :meth:`_start_io` to be cancelled; its ``done``
        still comes."""
        self._backend.cancel_io(handle)

    async def read_many(
        self,
        requests: Iterable[tuple[int, int]],
        *,
        max_gap: int = DEFAULT_MAX_GAP,
        max_merged: int = DEFAULT_MAX_MERGED,
    ) -> list[bytes]:
        """Read many ``(pos, size)`` ranges; return their bytes, in order.

        Unlike the other methods this one takes any ranges, aligned or not:
        it widens each to the read alignment, merges ranges that overlap or
        lie at most ``max_gap`` bytes apart into one read (of up to
        ``max_merged`` bytes; a single larger range is read whole), runs the
        reads concurrently, and slices each answer out. A range past the end
        of the file comes back short (or empty).
        """
        wanted = [(int(pos), int(size)) for pos, size in requests]
        for pos, size in wanted:
            if pos < 0 or size < 0:
                raise ValueError(
                    f"read_many: range (pos={pos}, size={size}) has a negative "
                    f"{'position' if pos < 0 else 'size'}; both must be >= 0"
                )
        align = self.alignment.read
        results: list[bytes] = [b""] * len(wanted)
        groups: list[list[Any]] = []  # [start, end, [request indexes]]
        for i in sorted(range(len(wanted)), key=lambda i: wanted[i][0]):
            pos, size = wanted[i]
            if not size:
                continue
            start = pos - pos % align
            end = -(-(pos + size) // align) * align
            if groups:
                last = groups[-1]
                if start <= last[1] + max_gap and max(end, last[1]) - last[0] <= max_merged:
                    last[1] = max(end, last[1])
                    last[2].append(i)
                    continue
            groups.append([start, end, [i]])
        if len(groups) == 1:
            await self._read_group(groups[0], wanted, results, None)
            return results
        errors: list[OSError] = []
        async with shardio.open_nursery() as nursery:
            for group in groups:
                nursery.start_soon(self._read_group, group, wanted, results, errors)
        if errors:
            raise errors[0]
        return results

    async def _read_group(
        self,
        group: list[Any],
        wanted: list[tuple[int, int]],
        results: list[bytes],
        errors: list[OSError] | None,
    ) -> None:
        start, end, members = group
        buf = allocate(end - start, self.alignment.memory, zero=False)
        try:
            n = await self.read_into(start, buf)
        except OSError as exc:
            if errors is None:
                raise
            errors.append(exc)
            return
        data = buf[:n]
        for i in members:
            pos, size = wanted[i]
            results[i] = bytes(data[pos - start : pos - start + size])

    # -- the rest of the file API ----------------------------------------------

    async def _call(self, method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        fd = self._begin()
        try:
            return await method(fd, *args, **kwargs)
        except OSError as exc:
            raise self._named(exc) from None
        finally:
            self._end()

    async def fdatasync(self) -> None:
        """Flush the file's data (and the metadata needed to read it back)
        to stable storage. O_DIRECT alone does not: the device may cache."""
        await self._call(self._backend.fsync, datasync=True)

    async def fsync(self) -> None:
        """Flush the file's data and all its metadata to stable storage."""
        await self._call(self._backend.fsync, datasync=False)

    async def truncate(self, size: int) -> None:
        """Set the file's size to ``size`` bytes (any size: it need not be aligned)."""
        _check_offset("truncate", "size", size)
        await self._call(self._backend.ftruncate, size)

    async def allocate(self, pos: int, length: int) -> None:
        """Reserve disk space for ``length`` bytes from ``pos`` (``fallocate``),
        so later writes there cannot fail for lack of space; the file grows to
        ``pos + length`` if it was shorter. ``length`` must be > 0."""
        _check_offset("allocate", "position", pos)
        _check_offset("allocate", "length", length)
        if not length:
            # What fallocate says (EINVAL), with the reason.
            raise OSError(errno.EINVAL, "allocate: length must be > 0, not 0", self.name)
        await self._call(self._backend.fallocate, 0, pos, length)

    async def size(self) -> int:
        """The file's size in bytes."""
        info = await self._call(self._backend.statx, STATX_SIZE)
        return info.size

    async def aclose(self) -> None:
        """Close the file, after waiting for every operation in flight on it.

        New operations fail with EBADF from the moment it is called. Closing
        a closed file does nothing. Like any ``aclose``, it closes the file
        even when cancelled (then raises :class:`~shardio.Cancelled`).
        """
        if self._closing:
            await lowlevel.checkpoint()
            return
        self._closing = True
        with shardio.CancelScope(shield=True):
            if self._in_flight:
                self._idle = shardio.Event()
                await self._idle.wait()
            fd, self._fd = self._fd, -1
            try:
                await self._backend.close_fd(fd)
            except OSError as exc:
                raise self._named(exc) from None
        await lowlevel.checkpoint_if_cancelled()
