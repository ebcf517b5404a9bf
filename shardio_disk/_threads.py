"""The thread backend: the same operations as blocking system calls on a
pool of worker threads, for where io_uring is unavailable.

A task hands its call to the pool and parks; the worker, when the call
returns, queues the result to the shard's scheduler with
``Token.run_sync_soon``, which reschedules the task. The pool belongs to the
run (one per shard), and is shut down, after its calls return, when the run
ends.

Cancellation follows the io_uring backend's rule: a task never returns while
something may still write into its buffer. A call the pool has not started
yet is withdrawn (``Future.cancel``) and the task raises ``Cancelled`` at
once. A call already running in a thread cannot be interrupted, so the task
stays parked until it returns, then raises ``Cancelled``; if that call was
an ``open`` that succeeded, its fd is closed first.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import outcome

import shardio
from shardio import lowlevel

from ._backend import (
    KIND_IO,
    KIND_KEEP,
    KIND_OPEN,
    MAX_RW_BYTES,
    Backend,
    DiskStatistics,
    FileInfo,
    backend_closed,
    decode_statx,
    statx_buffer,
)
from ._uring_c import lib

#: Worker threads per shard: the queue depth the pool can keep busy.
MAX_WORKERS = 32


def _read(fd: int, buf: memoryview, pos: int) -> int:
    if len(buf) > MAX_RW_BYTES:
        buf = buf[:MAX_RW_BYTES]
    return os.preadv(fd, [buf], pos) if pos >= 0 else os.readv(fd, [buf])


def _write(fd: int, buf: memoryview, pos: int) -> int:
    if len(buf) > MAX_RW_BYTES:
        buf = buf[:MAX_RW_BYTES]
    return os.pwrite(fd, buf, pos) if pos >= 0 else os.write(fd, buf)


def _fallocate(fd: int, mode: int, pos: int, length: int) -> None:
    rc = lib.fallocate_fd(fd, mode, pos, length)
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))


def _statx(fd: int, mask: int) -> FileInfo:
    buf = statx_buffer()
    rc = lib.statx_fd(fd, mask, buf)
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))
    return decode_statx(buf)


def _stat(path: bytes, follow_symlinks: bool) -> os.stat_result:
    try:
        return os.stat(path, follow_symlinks=follow_symlinks)
    except OSError as exc:
        # As every backend error: the errno, and no file name (the caller's is a str).
        raise OSError(exc.errno, exc.strerror) from None


class _Job:
    """One call on the pool, and the task waiting for it."""

    __slots__ = ("backend", "future", "kind", "raise_cancel", "settled", "task", "token")

    def __init__(self, backend: ThreadBackend, task: lowlevel.Task, kind: int) -> None:
        self.backend = backend
        self.task = task
        self.kind = kind
        self.token = backend.token
        self.future: Future[Any] | None = None
        self.raise_cancel: lowlevel.RaiseCancelT | None = None
        self.settled = False

    def abort(self, raise_cancel: lowlevel.RaiseCancelT) -> lowlevel.Abort:
        assert self.future is not None
        if self.future.cancel():
            # Never started: no thread touched the buffer.
            self.settled = True
            self.backend.finished()
            return lowlevel.Abort.SUCCEEDED
        # Running: wait for the thread (see the module docstring).
        self.raise_cancel = raise_cancel
        return lowlevel.Abort.FAILED

    def done_in_thread(self, future: Future[Any]) -> None:
        # In the worker thread (or in the loop, for a withdrawn call).
        self.token.run_sync_soon(self.finish, future)

    def finish(self, future: Future[Any]) -> None:
        if self.settled:
            return
        self.settled = True
        self.backend.finished()
        if self.raise_cancel is None or (self.kind == KIND_KEEP and future.exception() is None):
            lowlevel.reschedule(self.task, outcome.capture(future.result))
            return
        if self.kind == KIND_OPEN and future.exception() is None:
            os.close(future.result())
        lowlevel.reschedule(self.task, outcome.capture(self.raise_cancel))


class ThreadBackend(Backend):
    """The disk operations as blocking calls on this shard's thread pool."""

    name = "threads"

    def __init__(self, max_workers: int = MAX_WORKERS) -> None:
        self.token = lowlevel.current_token()
        self._pool = ThreadPoolExecutor(
            max_workers, thread_name_prefix=f"shardio_disk-{shardio.current_shard()}"
        )
        self.in_flight = 0
        self.submitted = 0
        self.completed = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise backend_closed("thread")

    @lowlevel.enable_ki_protection
    async def run(self, kind: int, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a worker thread; its result, or its exception."""
        await lowlevel.checkpoint_if_cancelled()
        self._check_open()
        job = _Job(self, lowlevel.current_task(), kind)
        job.future = self._pool.submit(fn, *args)
        self.in_flight += 1
        self.submitted += 1
        job.future.add_done_callback(job.done_in_thread)
        return await lowlevel.wait_task_rescheduled(job.abort)

    def finished(self) -> None:
        """A call returned (or was withdrawn)."""
        self.in_flight -= 1
        self.completed += 1

    async def read(self, fd: int, buf: memoryview, cbuf: Any, pos: int, kind: int = KIND_IO) -> int:
        result: int = await self.run(kind, _read, fd, buf, pos)
        return result

    async def write(
        self, fd: int, buf: memoryview, cbuf: Any, pos: int, kind: int = KIND_IO
    ) -> int:
        result: int = await self.run(kind, _write, fd, buf, pos)
        return result

    @lowlevel.enable_ki_protection
    def start_io(
        self,
        write: bool,
        fd: int,
        buf: memoryview,
        cbuf: Any,
        pos: int,
        done: Callable[[int], None],
    ) -> Future[int]:
        self._check_open()
        future = self._pool.submit(_write if write else _read, fd, buf, pos)
        self.in_flight += 1
        self.submitted += 1
        token = self.token

        def finished(future: Future[int]) -> None:
            # In the worker thread, or in this one for a withdrawn call.
            token.run_sync_soon(self._deliver, future, done)

        future.add_done_callback(finished)
        return future

    def _deliver(self, future: Future[int], done: Callable[[int], None]) -> None:
        self.finished()
        if future.cancelled():
            done(-errno.ECANCELED)
            return
        error = future.exception()
        if error is None:
            done(future.result())
        elif isinstance(error, OSError) and error.errno:
            done(-error.errno)
        else:
            done(-errno.EIO)

    def cancel_io(self, handle: object) -> None:
        # A call already running in a thread cannot be taken back: it finishes.
        assert isinstance(handle, Future)
        handle.cancel()

    async def fsync(self, fd: int, *, datasync: bool) -> None:
        await self.run(KIND_IO, os.fdatasync if datasync else os.fsync, fd)

    async def fallocate(self, fd: int, mode: int, pos: int, length: int) -> None:
        await self.run(KIND_IO, _fallocate, fd, mode, pos, length)

    async def ftruncate(self, fd: int, length: int) -> None:
        await self.run(KIND_IO, os.ftruncate, fd, length)

    async def openat(self, path: bytes, flags: int, mode: int) -> int:
        fd: int = await self.run(KIND_OPEN, os.open, path, flags, mode)
        return fd

    async def close_fd(self, fd: int) -> None:
        await self.run(KIND_IO, os.close, fd)

    async def statx(self, fd: int, mask: int) -> FileInfo:
        info: FileInfo = await self.run(KIND_IO, _statx, fd, mask)
        return info

    async def stat(self, path: bytes, *, follow_symlinks: bool) -> os.stat_result:
        result: os.stat_result = await self.run(KIND_IO, _stat, path, follow_symlinks)
        return result

    def statistics(self) -> DiskStatistics:
        return DiskStatistics(
            backend=self.name,
            in_flight=self.in_flight,
            submitted=self.submitted,
            completed=self.completed,
            syscalls=0,
            fixed_buffer_ops=0,
            registered_buffers=False,
        )

    def close(self) -> None:
        # Every task waited for its call, so this returns at once; after an
        # abnormal end it waits for calls still running in threads.
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
