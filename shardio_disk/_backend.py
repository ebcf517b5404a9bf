"""What a disk backend does: the operations shardio_disk's files and
:class:`~shardio_disk.Path` need, with one implementation on io_uring
(``_uring.py``) and one on a thread pool (``_threads.py``).

Every operation is a checkpoint and cancellable, and a cancelled operation
returns only once the kernel (or the thread) is done with its buffer. Errors
are :class:`OSError` with the errno and without a filename: the file object
adds its name.
"""

from __future__ import annotations

import abc
import os
import struct
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

import shardio

from ._uring_c import ffi, lib

#: ``statx`` mask bits (``<linux/stat.h>``).
STATX_TYPE = 0x1
STATX_MODE = 0x2
STATX_SIZE = 0x200
STATX_DIOALIGN = 0x2000
STATX_DIO_READ_ALIGN = 0x20000
#: Everything ``stat(2)`` returns.
STATX_BASIC_STATS = 0x7FF
#: ``statx`` flags (``<fcntl.h>``): ``lstat``, and ``stat``'s rule of not
#: triggering an automount.
AT_SYMLINK_NOFOLLOW = 0x100
AT_NO_AUTOMOUNT = 0x800

#: What an operation is, for the clean-up of a cancelled one. A cancelled
#: KIND_IO operation raises Cancelled whatever its outcome; a cancelled
#: KIND_OPEN that opened a file closes it first; a cancelled KIND_KEEP read
#: or write that moved data anyway returns its count (the cancellation then
#: comes at the task's next checkpoint), so a caller that tracks a position
#: never loses track of what reached the file.
KIND_IO = 0
KIND_OPEN = 1
KIND_KEEP = 2

#: The most one read or write moves (Linux's MAX_RW_COUNT); more is a short count.
MAX_RW_BYTES = 0x7FFFF000


@attrs.frozen
class FileInfo:
    """The parts of ``statx`` that shardio_disk uses."""

    mask: int
    size: int
    dev_major: int
    dev_minor: int
    dio_mem_align: int
    dio_offset_align: int
    dio_read_offset_align: int
    #: ``st_mode``: the file's type and permissions (0 unless STATX_TYPE was asked).
    mode: int = 0
    #: The preferred I/O size (``st_blksize``).
    blksize: int = 0


def statx_buffer() -> Any:
    """A buffer for the kernel to fill with a ``struct statx``."""
    return ffi.new("char[]", lib.statx_buffer_size())


def decode_statx(buf: Any) -> FileInfo:
    """Read a filled ``struct statx``."""
    info = ffi.new("struct uring_file_info *")
    lib.statx_decode(buf, info)
    return FileInfo(
        mask=int(info.mask),
        size=int(info.size),
        dev_major=int(info.dev_major),
        dev_minor=int(info.dev_minor),
        dio_mem_align=int(info.dio_mem_align),
        dio_offset_align=int(info.dio_offset_align),
        dio_read_offset_align=int(info.dio_read_offset_align),
        mode=int(info.mode),
        blksize=int(info.blksize),
    )


#: ``struct statx`` up to ``stx_dev_minor``, as ``<linux/stat.h>`` lays it
#: out (a stable ABI): mask, blksize, attributes, nlink, uid, gid, mode,
#: ino, size, blocks, attributes_mask, then four timestamps (atime, btime,
#: ctime, mtime: seconds, nanoseconds, padding), then rdev and dev as
#: major/minor pairs.
_STATX_LAYOUT = struct.Struct("=IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIII")


def decode_stat(buf: Any) -> os.stat_result:
    """A filled ``struct statx`` (asked with STATX_BASIC_STATS) as the
    :class:`os.stat_result` that :func:`os.stat` gives for the same file:
    the same fields, and the float times computed as CPython does."""
    (
        _mask, blksize, _attributes, nlink, uid, gid, mode, ino, size, blocks, _attributes_mask,
        a_sec, a_nsec, _b_sec, _b_nsec, c_sec, c_nsec, m_sec, m_nsec,
        rdev_major, rdev_minor, dev_major, dev_minor,
    ) = _STATX_LAYOUT.unpack_from(ffi.buffer(buf))  # fmt: skip
    billion = 1_000_000_000
    return os.stat_result(
        (
            mode, ino, os.makedev(dev_major, dev_minor), nlink, uid, gid, size,
            a_sec, m_sec, c_sec,
            a_sec + a_nsec * 1e-9, m_sec + m_nsec * 1e-9, c_sec + c_nsec * 1e-9,
            a_sec * billion + a_nsec, m_sec * billion + m_nsec, c_sec * billion + c_nsec,
            blksize, blocks, os.makedev(rdev_major, rdev_minor),
        )
    )  # fmt: skip


@attrs.frozen
class DiskStatistics:
    """What :func:`shardio_disk.statistics` reports about this shard's disk I/O.

    ``in_flight``: operations started and not yet completed (cancelled ones
    included until the kernel or thread is done with them). ``submitted`` /
    ``completed``: totals since the backend started in this run.
    ``syscalls``: ``io_uring_enter`` calls (0 on the thread backend); many
    operations per call means submissions were batched.
    ``fixed_buffer_ops``: reads and writes that used the registered buffer
    arena. ``registered_buffers``: whether the arena is registered.
    """

    backend: str
    in_flight: int
    submitted: int
    completed: int
    syscalls: int
    fixed_buffer_ops: int
    registered_buffers: bool


def backend_closed(name: str) -> shardio.RunFinishedError:
    """The error for I/O asked of a backend its run has closed."""
    return shardio.RunFinishedError(
        f"shardio_disk: the {name} backend of the run this file was opened in is closed "
        "(that run has ended); a disk file works only inside the run that opened it: "
        "open it again in this run"
    )


class Backend(abc.ABC):
    """The disk operations of one shard, for one run."""

    name: ClassVar[str]

    @abc.abstractmethod
    async def read(self, fd: int, buf: memoryview, cbuf: Any, pos: int, kind: int = KIND_IO) -> int:
        """Read into ``buf`` (a byte memoryview; ``cbuf`` is its address, from
        ``ffi.from_buffer``) at ``pos`` (-1: the current position); the byte
        count. ``kind`` is KIND_IO or KIND_KEEP (see there)."""

    @abc.abstractmethod
    async def write(
        self, fd: int, buf: memoryview, cbuf: Any, pos: int, kind: int = KIND_IO
    ) -> int:
        """Write ``buf`` at ``pos`` (-1: the current position); the byte count."""

    @abc.abstractmethod
    def start_io(
        self,
        write: bool,
        fd: int,
        buf: memoryview,
        cbuf: Any,
        pos: int,
        done: Callable[[int], None],
    ) -> object:
        """Start a read or write that no task waits for, and return a handle
        for :meth:`cancel_io`.

        ``done(result)`` is called exactly once, in the shard's own thread,
        once the kernel (or thread) is done with ``buf``: ``result`` is the
        byte count, or ``-errno`` (``-ECANCELED`` if cancelled in time). It
        must not raise. The backend keeps ``buf`` alive until then. This is
        how file streams keep reads and writes in flight ahead of the tasks
        that use them.
        """

    @abc.abstractmethod
    def cancel_io(self, handle: object) -> None:
        """Ask the kernel (or the pool) to cancel an I/O from :meth:`start_io`.

        Its ``done`` still comes, with ``-ECANCELED`` or with its result if
        it was too far along. Cancelling a finished I/O does nothing.
        """

    @abc.abstractmethod
    async def fsync(self, fd: int, *, datasync: bool) -> None:
        """``fsync`` or ``fdatasync``."""

    @abc.abstractmethod
    async def fallocate(self, fd: int, mode: int, pos: int, length: int) -> None:
        """``fallocate(fd, mode, pos, length)``."""

    @abc.abstractmethod
    async def ftruncate(self, fd: int, length: int) -> None:
        """``ftruncate(fd, length)``."""

    @abc.abstractmethod
    async def openat(self, path: bytes, flags: int, mode: int) -> int:
        """``open(path, flags, mode)``; the new fd. If cancelled, no fd leaks."""

    @abc.abstractmethod
    async def close_fd(self, fd: int) -> None:
        """``close(fd)``."""

    @abc.abstractmethod
    async def statx(self, fd: int, mask: int) -> FileInfo:
        """``statx`` of an open file."""

    @abc.abstractmethod
    async def stat(self, path: bytes, *, follow_symlinks: bool) -> os.stat_result:
        """``stat(path)`` (``lstat`` if not ``follow_symlinks``), as
        :func:`os.stat` returns it. ``path`` has no NUL byte."""

    @abc.abstractmethod
    def statistics(self) -> DiskStatistics:
        """Counters; see :class:`DiskStatistics`."""

    @abc.abstractmethod
    def close(self) -> None:
        """The run is ending: release the ring or the threads."""
