"""The io_uring backend: one ring per shard, driven by the shard's scheduler.

The C side (``_uring.c``) sets up the ring and writes and reaps queue
entries; this module ties it to the scheduler through a
:class:`shardio.lowlevel.Poller` and parks tasks on their operations.

Batching
--------
A task that starts an operation writes its SQE into the submission queue and
parks. When to enter the kernel with it is a trade-off. One
``io_uring_enter`` per SQE wastes system calls; holding every SQE until the
end of the scheduler pass starves the device, because completions come in
bursts (a virtio or NVMe queue posts many at once) and the tasks they wake
queue their next operations one by one, a few microseconds of Python apart:
with 32 reads completing together, the device would sit idle while all 32
tasks run. The rule here: an SQE is submitted at once when the SQEs waiting
outnumber the operations the kernel already holds; otherwise it waits for
:meth:`Uring.flush`, which the scheduler calls once after each batch of task
steps. A busy device gets batches as large as a pass makes; an idle one gets
its first request immediately, then 2, 4, 8 more -- a burst of 32 costs
about log2(32) system calls, and the device restarts within one task step.
(Random 4 KiB reads at depth 32 went from about 0.6x to about 0.9x fio's
rate with this rule, against one submit per pass.)

:meth:`Uring.poll`, called at the start of each pass, copies all available
CQEs out in one C call and reschedules their tasks: completions cost no
system call (the CQ is shared memory). When the shard has nothing to run,
it sleeps in ``epoll_wait`` on an eventfd registered with the ring
(IORING_REGISTER_EVENTFD), which the kernel signals on every completion;
:meth:`Uring.prepare_to_sleep` refuses to sleep while completions are
already waiting.

Buffer lifetime under cancellation
----------------------------------
Once an SQE is submitted, the kernel owns the memory it names -- the buffer
of a read or write, the path of an open, the ``struct statx`` of a stat --
until it posts the operation's CQE. A device may DMA into a read buffer at
any moment before then. Python, on the other hand, frees or reuses memory as
soon as nothing references it: if a cancelled read let its task return at
once, the caller could drop the buffer, the arena could hand the same pages
to another buffer, and the device would then write stale file data into
someone else's memory. Silent corruption, far from its cause.

So two rules hold here:

1. **The operation record keeps the memory alive.** Every object the SQE
   points into (the buffer itself, besides the ``ffi.from_buffer`` handle
   that gave its address; the path bytes; the statx buffer) is referenced
   by the :class:`_Op` in the ring's table from the moment the SQE is
   written until its CQE is reaped -- whatever happens to the task, even
   if its coroutine is closed while parked.
2. **A cancelled task waits for the kernel.** The abort function never
   answers ``Abort.SUCCEEDED``. It queues an IORING_OP_ASYNC_CANCEL aimed at
   the operation's ``user_data`` (submitted as any other SQE) and
   answers ``Abort.FAILED``: the task stays parked. Exactly one CQE for the
   operation then arrives: ``-ECANCELED`` if the kernel could still take it
   back (not yet issued, or waiting on something interruptible, such as a
   pipe), or its ordinary result if it was too far along (a disk read
   already sent to the device cannot be recalled; the cancel request gets
   ``-EALREADY`` and the wait is one device latency). Only when that CQE is
   reaped is the task resumed, raising :class:`~shardio.Cancelled`. When a
   cancelled operation returns, the kernel is done with its buffer.

A cancelled operation raises ``Cancelled`` even when it completed, as any
shardio operation whose abort failed: a cancelled read's buffer may have
been filled, a cancelled write may have reached the file. One result cannot
be dropped: a file descriptor. An OPENAT whose CQE carries an fd after its
task was cancelled has that fd closed right there, before the task resumes,
so a cancelled open leaks nothing.

Two kinds of operation bend rule 2 without breaking rule 1. A
``KIND_KEEP`` read or write (the buffered files of ``open_file``, which
track a file position) that completed anyway resumes its cancelled task
with its byte count rather than ``Cancelled``: the task then raises
``Cancelled`` at its next checkpoint, and no byte that reached the file or
the buffer goes unaccounted for. And an operation started with
:meth:`Uring.start` (the read-ahead and write-behind of file streams) has
no task at all: its record holds the memory, a callback gets the result
when the CQE is reaped, and its owner reuses the buffer only from that
callback on; :meth:`Uring.cancel` queues its ASYNC_CANCEL.

The completions of ASYNC_CANCEL requests themselves (``user_data`` 0) carry
nothing anyone waits for and are counted and dropped. At the end of the run
(:meth:`Uring.close`) nothing should be in flight, since every task waited
for its operations; if the run was torn down abnormally, whatever remains is
cancelled and waited for, blocking, before the ring is unmapped.

One ring per shard
------------------
The ring is created lazily, by the first disk operation of a run, in the
shard that runs it, and closed when that run ends: after the last user task
(system tasks outlive them), so cleanup code still has it. An operation asked
of a closed ring raises RunFinishedError before touching its freed memory. Shards are forked before
their schedulers start, so no ring crosses a fork; where the kernel supports
it the ring is IORING_SETUP_SINGLE_ISSUER, and the kernel itself refuses a
submission from any other process. The buffer arena is private to each
process (copy-on-write across the fork) and each shard's ring registers its
own copy.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any

import outcome

from shardio import lowlevel

from ._backend import (
    AT_NO_AUTOMOUNT,
    AT_SYMLINK_NOFOLLOW,
    KIND_IO,
    KIND_KEEP,
    KIND_OPEN,
    MAX_RW_BYTES,
    STATX_BASIC_STATS,
    Backend,
    DiskStatistics,
    FileInfo,
    backend_closed,
    decode_stat,
    decode_statx,
    statx_buffer,
)
from ._buffers import arena_span
from ._threads import ThreadBackend
from ._uring_c import ffi, lib

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

logger = logging.getLogger("shardio_disk")

SQ_ENTRIES = 256
CQ_ENTRIES = 4096
_MIN_ENTRIES = 8
# CQEs copied out per C call; a full batch means "look again".
_REAP_BATCH = 256
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
# user_data of requests nobody waits for (ASYNC_CANCEL).
_NOBODY = 0


def uring_unavailable_reason() -> str | None:
    """Why io_uring cannot serve shardio_disk in this process, or None if it can."""
    error = ffi.new("int *")
    ring = lib.uring_create(4, 8, error)
    if ring == ffi.NULL:
        code = error[0]
        name = errno.errorcode.get(code, str(code))
        hint = ""
        if code in (errno.EPERM, errno.EACCES):
            hint = " (kernel.io_uring_disabled, or a seccomp filter)"
        elif code == errno.ENOSYS:
            hint = " (the kernel has no io_uring, or a seccomp filter hides it)"
        return f"io_uring_setup failed with {name}{hint}"
    missing = int(lib.uring_missing_opcode(ring))
    lib.uring_destroy(ring)
    if missing >= 0:
        opname = ffi.string(lib.uring_opcode_name(missing)).decode()
        return f"the kernel lacks {opname} (Linux 5.6 or later is needed)"
    return None


class _Op:
    """One operation in the kernel: what it needs kept alive, and who waits
    (a task, or for :meth:`Uring.start`, a ``done`` callback)."""

    __slots__ = ("args", "cancelling", "done", "id", "kind", "raise_cancel", "ring", "task")

    def __init__(
        self,
        ring: Uring,
        op_id: int,
        task: lowlevel.Task | None,
        kind: int,
        args: object,
        done: Callable[[int], None] | None = None,
    ) -> None:
        self.ring = ring
        self.id = op_id
        self.task = task
        self.kind = kind
        # Every object the SQE points into: alive until the CQE is reaped.
        self.args = args
        self.done = done
        self.raise_cancel: lowlevel.RaiseCancelT | None = None
        # An ASYNC_CANCEL for it is queued (operations from Uring.start).
        self.cancelling = False

    def abort(self, raise_cancel: lowlevel.RaiseCancelT) -> lowlevel.Abort:
        # Never SUCCEEDED: the task waits for the CQE (see the module docstring).
        if self.raise_cancel is None:
            self.raise_cancel = raise_cancel
            self.ring.queue(lib.uring_prep_cancel, (self.id,), _NOBODY)
        return lowlevel.Abort.FAILED

    def complete(self, result: int) -> None:
        task = self.task
        if task is None:
            assert self.done is not None
            self.done(result)
            return
        raise_cancel = self.raise_cancel
        if raise_cancel is None or (self.kind == KIND_KEEP and result >= 0):
            lowlevel.reschedule(task, outcome.Value(result))
            return
        if self.kind == KIND_OPEN and result >= 0:
            os.close(result)
        lowlevel.reschedule(task, outcome.capture(raise_cancel))


class Uring(lowlevel.Poller):
    """This shard's ring, registered with its scheduler as a poller."""

    def __init__(self, entries: int = SQ_ENTRIES, cq_entries: int = CQ_ENTRIES) -> None:
        error = ffi.new("int *")
        while True:
            ring = lib.uring_create(entries, cq_entries, error)
            if ring != ffi.NULL or error[0] != errno.ENOMEM or entries <= _MIN_ENTRIES:
                break
            # Without CAP_IPC_LOCK, recent kernels charge the rings' own
            # memory to RLIMIT_MEMLOCK: try smaller rings.
            if cq_entries > entries:
                cq_entries //= 2
            else:
                entries //= 2
                cq_entries //= 2
        if ring == ffi.NULL:
            raise OSError(error[0], f"io_uring_setup: {os.strerror(error[0])}")
        missing = int(lib.uring_missing_opcode(ring))
        if missing >= 0:
            lib.uring_destroy(ring)
            opname = ffi.string(lib.uring_opcode_name(missing)).decode()
            raise OSError(errno.ENOSYS, f"io_uring: the kernel lacks {opname}")
        self._ring = ring
        try:
            self._eventfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except OSError:
            lib.uring_destroy(ring)
            raise
        rc = lib.uring_register_eventfd(ring, self._eventfd)
        if rc < 0:
            self._destroy()
            raise OSError(-rc, f"IORING_REGISTER_EVENTFD: {os.strerror(-rc)}")
        base, size = arena_span()
        if size:
            rc = lib.uring_register_buffer(ring, ffi.cast("void *", base), size)
            if rc < 0:
                # Over RLIMIT_MEMLOCK, typically: plain buffers work, a bit slower.
                logger.debug("buffer arena not registered: %s", os.strerror(-rc))
        self.can_ftruncate = bool(lib.uring_can_ftruncate(ring))
        self._ops: dict[int, _Op] = {}
        self._next_id = 1
        # SQEs written whose CQEs are not reaped yet, ASYNC_CANCELs included.
        self._pending = 0
        # SQEs written and not yet submitted.
        self._unsubmitted = 0
        self._out = ffi.new("int64_t[]", 2 * _REAP_BATCH)
        self.submitted = 0
        self.completed = 0
        lowlevel.add_poller(self, wakeup_fd=self._eventfd, drain=self._drain)

    # -- operations ---------------------------------------------------------

    @lowlevel.enable_ki_protection
    def queue(self, prep: Callable[..., int], args: tuple[Any, ...], user_data: int) -> None:
        """Write one SQE: ``prep(ring, *args, user_data)``. It is submitted
        now if the kernel holds fewer operations than wait here, else by the
        next :meth:`flush` (see "Batching" above). Once the ring is closed,
        raises :class:`shardio.RunFinishedError`: a closed ring's memory is
        gone, and nothing may write to it."""
        if self._ring is None:
            raise backend_closed("io_uring")
        if prep(self._ring, *args, user_data):
            # The SQ is full: submit what it holds to make room.
            self._submit()
            if prep(self._ring, *args, user_data):
                raise OSError(errno.EBUSY, "the io_uring submission queue is full")
        self._pending += 1
        self._unsubmitted += 1
        if 2 * self._unsubmitted > self._pending:
            self._submit()

    @lowlevel.enable_ki_protection
    async def perform(self, kind: int, keep: object, prep: Callable[..., int], *args: Any) -> int:
        """Run one operation and return its result (>= 0), or raise OSError.

        ``prep(ring, *args, user_data)`` writes the SQE. ``args`` and
        ``keep`` hold every object the kernel will read or write (``keep``:
        the buffer itself, whose address handle in ``args`` its owner may
        release early), and stay referenced until the CQE. Cancellation
        waits for the kernel (see the module docstring).
        """
        # Hot path: one SQE write, one dict insert, one park.
        await lowlevel.checkpoint_if_cancelled()
        op_id = self._next_id
        self._next_id = op_id + 1
        self.queue(prep, args, op_id)
        op = _Op(self, op_id, lowlevel.current_task(), kind, (keep, args))
        self._ops[op_id] = op
        self.submitted += 1
        result: int = await lowlevel.wait_task_rescheduled(op.abort)
        if result < 0:
            raise OSError(-result, os.strerror(-result))
        return result

    @lowlevel.enable_ki_protection
    def start(
        self,
        keep: object,
        prep: Callable[..., int],
        args: tuple[Any, ...],
        done: Callable[[int], None],
    ) -> int:
        """Start one operation that no task waits for; ``done(result)`` is
        called when its CQE is reaped (``result``: >= 0, or -errno). Returns
        its id, for :meth:`cancel`. ``keep`` and ``args`` stay referenced
        until the CQE, as in :meth:`perform`."""
        op_id = self._next_id
        self._next_id = op_id + 1
        self.queue(prep, args, op_id)
        self._ops[op_id] = _Op(self, op_id, None, KIND_IO, (keep, args), done)
        self.submitted += 1
        return op_id

    @lowlevel.enable_ki_protection
    def cancel(self, op_id: int) -> None:
        """Ask the kernel to cancel operation ``op_id`` from :meth:`start`, if
        it is still in flight (its ``done`` still comes, exactly once)."""
        op = self._ops.get(op_id)
        if op is not None and not op.cancelling:
            op.cancelling = True
            self.queue(lib.uring_prep_cancel, (op_id,), _NOBODY)

    # -- the Poller protocol ------------------------------------------------

    def poll(self) -> bool:
        """Reap every available CQE and reschedule its task."""
        # Hot path: one C call per _REAP_BATCH completions, one list unpack.
        if not self._pending:
            return False
        ring = self._ring
        out = self._out
        ops = self._ops
        reaped = completed = 0
        while True:
            n = lib.uring_reap(ring, out, _REAP_BATCH)
            if n <= 0:
                if n < 0:
                    raise OSError(-n, f"io_uring_enter: {os.strerror(-n)}")
                break
            reaped += n
            values = ffi.unpack(out, 2 * n)
            for i in range(0, 2 * n, 2):
                op = ops.pop(values[i], None)
                if op is not None:
                    op.complete(values[i + 1])
                    completed += 1
            if n < _REAP_BATCH:
                break
        self._pending -= reaped
        self.completed += completed
        return reaped > 0

    def flush(self) -> None:
        """Submit what this pass queued, with one ``io_uring_enter``."""
        if self._unsubmitted:
            self._submit()

    def prepare_to_sleep(self) -> bool:
        """Sleep only if no CQE is waiting: the next one signals the eventfd."""
        return not (self._pending and lib.uring_has_work(self._ring))

    def _submit(self) -> None:
        result = lib.uring_submit(self._ring)
        self._unsubmitted = int(lib.uring_unsubmitted(self._ring))
        if result < 0 and -result not in (errno.EAGAIN, errno.EBUSY):
            raise OSError(-result, f"io_uring_enter: {os.strerror(-result)}")
        # EAGAIN / EBUSY: the kernel wants completions reaped first; the
        # next pass reaps, then flushes again.

    def _drain(self) -> None:
        try:
            os.eventfd_read(self._eventfd)
        except BlockingIOError:
            pass

    # -- the end of the run --------------------------------------------------

    def statistics(self) -> tuple[int, int, bool]:
        """``(io_uring_enter calls, fixed-buffer reads and writes, registered?)``."""
        ring = self._ring
        return (
            int(lib.uring_enter_calls(ring)),
            int(lib.uring_fixed_ops(ring)),
            bool(lib.uring_has_fixed_buffer(ring)),
        )

    @property
    def in_flight(self) -> int:
        """Operations started whose completion has not been reaped."""
        return len(self._ops)

    def close(self) -> None:
        """Unregister from the scheduler, wait out anything still in flight
        (only after an abnormal end of the run), and release the ring."""
        lowlevel.remove_poller(self, self._eventfd)
        if self._pending:
            for op_id in list(self._ops):
                self.queue(lib.uring_prep_cancel, (op_id,), _NOBODY)
            self._submit()
            self._reap_abandoned()
        self._destroy()

    def _reap_abandoned(self) -> None:
        # Nobody will resume these tasks: only wait for the kernel, and close
        # the fds of opens that completed anyway.
        out = self._out
        while self._pending:
            rc = lib.uring_wait(self._ring, 1)
            if rc < 0:
                raise OSError(-rc, f"io_uring_enter: {os.strerror(-rc)}")
            n = lib.uring_reap(self._ring, out, _REAP_BATCH)
            values = ffi.unpack(out, 2 * max(n, 0))
            for i in range(0, len(values), 2):
                op = self._ops.pop(values[i], None)
                if op is not None and op.kind == KIND_OPEN and values[i + 1] >= 0:
                    os.close(values[i + 1])
            self._pending -= max(n, 0)

    def _destroy(self) -> None:
        ring, self._ring = self._ring, None
        lib.uring_destroy(ring)
        os.close(self._eventfd)


class UringBackend(Backend):
    """The disk operations on this shard's io_uring."""

    name = "io_uring"

    def __init__(self) -> None:
        self._uring = Uring()
        # FTRUNCATE is Linux 6.9; before that, truncation runs on a thread.
        self._threads: ThreadBackend | None = None

    # read and write hand back perform()'s coroutine rather than awaiting
    # it: one coroutine frame fewer on the hot path.
    def read(
        self, fd: int, buf: memoryview, cbuf: Any, pos: int, kind: int = KIND_IO
    ) -> Coroutine[Any, Any, int]:
        return self._uring.perform(
            kind, buf, lib.uring_prep_read, fd, cbuf, min(len(buf), MAX_RW_BYTES), pos
        )

    def write(
        self, fd: int, buf: memoryview, cbuf: Any, pos: int, kind: int = KIND_IO
    ) -> Coroutine[Any, Any, int]:
        return self._uring.perform(
            kind, buf, lib.uring_prep_write, fd, cbuf, min(len(buf), MAX_RW_BYTES), pos
        )

    def start_io(
        self,
        write: bool,
        fd: int,
        buf: memoryview,
        cbuf: Any,
        pos: int,
        done: Callable[[int], None],
    ) -> int:
        prep = lib.uring_prep_write if write else lib.uring_prep_read
        return self._uring.start(buf, prep, (fd, cbuf, min(len(buf), MAX_RW_BYTES), pos), done)

    def cancel_io(self, handle: object) -> None:
        assert isinstance(handle, int)
        self._uring.cancel(handle)

    async def fsync(self, fd: int, *, datasync: bool) -> None:
        await self._uring.perform(KIND_IO, None, lib.uring_prep_fsync, fd, int(datasync))

    async def fallocate(self, fd: int, mode: int, pos: int, length: int) -> None:
        await self._uring.perform(KIND_IO, None, lib.uring_prep_fallocate, fd, mode, pos, length)

    async def ftruncate(self, fd: int, length: int) -> None:
        if self._uring.can_ftruncate:
            await self._uring.perform(KIND_IO, None, lib.uring_prep_ftruncate, fd, length)
            return
        if self._threads is None:
            self._threads = ThreadBackend()
        await self._threads.ftruncate(fd, length)

    async def openat(self, path: bytes, flags: int, mode: int) -> int:
        return await self._uring.perform(
            KIND_OPEN, None, lib.uring_prep_openat, _AT_FDCWD, path, flags, mode
        )

    async def close_fd(self, fd: int) -> None:
        await self._uring.perform(KIND_IO, None, lib.uring_prep_close, fd)

    async def statx(self, fd: int, mask: int) -> FileInfo:
        buf = statx_buffer()
        await self._uring.perform(
            KIND_IO, None, lib.uring_prep_statx, fd, b"", _AT_EMPTY_PATH, mask, buf
        )
        return decode_statx(buf)

    async def stat(self, path: bytes, *, follow_symlinks: bool) -> os.stat_result:
        flags = AT_NO_AUTOMOUNT if follow_symlinks else AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW
        buf = statx_buffer()
        await self._uring.perform(
            KIND_IO, None, lib.uring_prep_statx, _AT_FDCWD, path, flags, STATX_BASIC_STATS, buf
        )
        return decode_stat(buf)

    def statistics(self) -> DiskStatistics:
        uring = self._uring
        syscalls, fixed_ops, registered = uring.statistics()
        return DiskStatistics(
            backend=self.name,
            in_flight=uring.in_flight,
            submitted=uring.submitted,
            completed=uring.completed,
            syscalls=syscalls,
            fixed_buffer_ops=fixed_ops,
            registered_buffers=registered,
        )

    def close(self) -> None:
        self._uring.close()
        if self._threads is not None:
            self._threads.close()
