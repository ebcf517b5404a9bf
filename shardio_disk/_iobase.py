"""What every file from :func:`shardio_disk.open_file` shares: one lock, the
rule for cancellation, closing, lines and async iteration.

A file from ``open_file`` is a stack of layers, as in :mod:`io`: a
:class:`~shardio_disk.RawFile` (``io.FileIO``), a
:class:`~shardio_disk.BufferedFile` on it (``io.BufferedReader`` /
``BufferedWriter`` / ``BufferedRandom``), a :class:`~shardio_disk.TextFile`
on that (``io.TextIOWrapper``). Each layer is a port of CPython's C
implementation with the system calls replaced by io_uring operations, so
that the same calls give the same results, the same file contents and the
same exceptions as a file from :func:`open` -- down to the buffer
boundaries that decide what ``read1`` returns and what a text ``tell()``
cookie looks like (``tests/disk/test_open_file.py`` checks this against
:func:`open`, operation by operation).

Concurrency
-----------
The layers of one file share one :class:`_Guard`, whose FIFO lock every
public operation holds from start to end: operations from several tasks run
one at a time, in the order they were called, as calls from several threads
on a file from :func:`open` do (its buffer's lock serialises them).

Cancellation
------------
Every operation is a checkpoint, and an operation cancelled while it waits
for the lock has done nothing. Once it holds the lock, what happens depends
on the file:

- **Seekable files** (regular files, block devices): the operation runs to
  its end, shielded from cancellation, and returns its result; the
  cancellation is delivered at the task's next checkpoint. This is Trio's
  rule for ``trio.open_file`` (an operation started in a thread finishes),
  and it is what keeps a buffered file coherent: an operation on a regular
  file never waits on anything but the device, so the shield costs at most
  a disk latency, and no half-done ``read`` can drop the bytes it took from
  the kernel.
- **Other files** (pipes, FIFOs, terminals), where a read may wait forever:
  the operation stays cancellable, and a read or write cancelled in the
  kernel (io_uring's ASYNC_CANCEL) raises :class:`~shardio.Cancelled`. A
  cancelled *read* consumes nothing: whatever it had already received is
  pushed back, and the next read returns it. A cancelled *write* may have
  written part of its data, as a cancelled ``send_all`` on a stream may.
  (On the thread backend, a blocked read or write cannot be interrupted:
  the task waits for it, as Trio's do.)

The raw layer signals a cancelled kernel operation with :class:`_Interrupted`;
a layer that had consumed data pushes it back and lets it through; the guard
turns it back into the :class:`~shardio.Cancelled` it carries.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, AnyStr, Generic, TypeVar

import attrs

import shardio
from shardio import lowlevel

if TYPE_CHECKING:
    from typing import Self

T = TypeVar("T")

UnsupportedOperation = io.UnsupportedOperation


class _Interrupted(Exception):
    """A read or write cancelled in the kernel on an interruptible file,
    carrying the :class:`~shardio.Cancelled` that cancelled it."""

    def __init__(self, cancelled: BaseException) -> None:
        super().__init__("interrupted by cancellation")
        self.cancelled = cancelled


@attrs.define(eq=False, slots=True)
class _Guard:
    """The lock and the cancellation rule shared by the layers of one file."""

    lock: shardio.StrictFIFOLock = attrs.Factory(shardio.StrictFIFOLock)
    #: Cancellation reaches operations in the kernel (non-seekable files).
    interruptible: bool = False

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` as one operation: under the lock, and either
        shielded or interruptible (see the module docstring)."""
        async with self.lock:
            if not self.interruptible:
                with shardio.CancelScope(shield=True):
                    return await fn(*args)
            try:
                return await fn(*args)
            except _Interrupted as interrupted:
                raise interrupted.cancelled from None


class AsyncFile(lowlevel.ShardLocal, shardio.abc.AsyncResource, Generic[AnyStr]):
    """What every file from :func:`~shardio_disk.open_file` offers.

    The methods are those of Python's file objects (see :mod:`io`), with
    the same arguments, results and exceptions; the ones that may do I/O
    are coroutines (``read``, ``write``, ``seek``, ``tell``, ``flush``,
    ``truncate``...), the ones that never do are plain methods
    (``fileno``, ``readable``...), as with ``trio.open_file``. ``close`` is
    :meth:`aclose`; ``async with`` closes the file on exit; ``async for
    line in f`` iterates over lines.

    A file belongs to the shard that opened it.
    """

    __slots__ = ()

    _guard: _Guard

    # -- the layer below, for the shared methods ------------------------------

    @abc.abstractmethod
    async def _readline(self, size: int = -1) -> AnyStr:
        """``readline`` with the lock held."""

    @abc.abstractmethod
    async def _write(self, data: Any) -> int:
        """``write`` with the lock held."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """``close`` with the lock held: flush (if it can), release the fd."""

    @abc.abstractmethod
    def _check_closed(self) -> None:
        """Raise ValueError if the file is closed (IOBase's check)."""

    async def _next_line(self) -> AnyStr:
        """The next line for iteration inside ``readlines`` (``__next__``)."""
        return await self._readline(-1)

    # -- shared public methods --------------------------------------------------

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the file is closed."""

    async def readline(self, size: int | None = -1) -> AnyStr:
        """Read and return one line, at most ``size`` bytes or characters if
        ``size`` >= 0; an empty result means end of file."""
        return await self._guard.run(self._readline, -1 if size is None else size)

    async def readlines(self, hint: int | None = -1) -> list[AnyStr]:
        """Read and return the remaining lines, or only enough of them to
        reach ``hint`` bytes or characters in all if ``hint`` > 0."""
        return await self._guard.run(self._readlines, -1 if hint is None else hint)

    async def _readlines(self, hint: int) -> list[AnyStr]:
        # IOBase.readlines in C: iterate (as __next__ does), and stop at the
        # line that takes the total past the hint.
        lines: list[AnyStr] = []
        length = 0
        while True:
            line = await self._next_line()
            if not line:
                break
            lines.append(line)
            if hint > 0:
                if len(line) > hint - length:
                    break
                length += len(line)
        return lines

    async def write(self, data: Any) -> int:
        """Write ``data`` (``bytes``-like for a binary file, ``str`` for a
        text file) and return how much was taken."""
        return await self._guard.run(self._write, data)

    async def writelines(self, lines: Iterable[Any]) -> None:
        """Write every item of ``lines``, one after another (no separators
        are added)."""
        await self._guard.run(self._writelines, lines)

    async def _writelines(self, lines: Iterable[Any]) -> None:
        self._check_closed()
        for line in lines:
            await self._write(line)

    async def aclose(self) -> None:
        """Flush and close the file. Closing a closed file does nothing.

        Like any ``aclose``, it closes the file even if cancelled (then
        raises :class:`~shardio.Cancelled`); on a file where cancellation
        reaches the kernel (a pipe), a cancelled flush loses the data it did
        not write.
        """
        if self.closed:
            await lowlevel.checkpoint()
            return
        guard = self._guard
        with shardio.CancelScope(shield=True):
            await guard.lock.acquire()
        try:
            if guard.interruptible:
                try:
                    await self._close()
                except _Interrupted as interrupted:
                    raise interrupted.cancelled from None
            else:
                with shardio.CancelScope(shield=True):
                    await self._close()
        finally:
            guard.lock.release()
        await lowlevel.checkpoint_if_cancelled()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line
