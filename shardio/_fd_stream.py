"""FdStream: a stream over a file descriptor (a pipe, a terminal, a socket).

Trio's ``trio.lowlevel.FdStream``, with its semantics. The stream owns the fd:
it closes it, and after that the object must not touch the number again.

Facts this code relies on
-------------------------
* Non-blocking mode (``O_NONBLOCK``) belongs to the *open file description*,
  not to the fd: every fd that shares it -- a ``dup``, a copy inherited across
  ``fork`` (by another shard, or a child process), the same terminal opened as
  stdin and stdout -- turns non-blocking too. So the stream sets the mode when
  it takes the fd and puts the original mode back when it closes it, and the
  reference warns about wrapping stdio.
* An fd number is reused as soon as it is closed. Closing sets the stored
  number to -1 *before* ``os.close``: a later use raises ``EBADF``
  (:class:`~shardio.ClosedResourceError`) instead of reaching whatever file
  the number was given to next. Tasks waiting on it are woken with
  :func:`~shardio.lowlevel.notify_closing` first, while the number is still ours.
* A write to a pipe whose reader is gone fails with ``EPIPE`` (Python ignores
  ``SIGPIPE``): that, and any other error but ``EBADF``, is the peer's doing,
  :class:`~shardio.BrokenResourceError`. A read at end of file returns ``b""``.
* A write of at most ``PIPE_BUF`` bytes to a pipe is all or nothing; a larger
  one may be partial. ``send_all`` loops over partial writes, waiting for the
  fd to become writable when the kernel takes nothing.
* epoll cannot watch regular files (``EPERM``): they are always "ready" and
  reads never block in the sense non-blocking I/O means. Use
  :mod:`shardio_disk` for files.
"""

from __future__ import annotations

import errno
import os
from typing import NoReturn, final

from ._conflict_detector import ConflictDetector
from ._core import (
    BrokenResourceError,
    ClosedResourceError,
    ShardLocal,
    checkpoint,
    notify_closing,
    wait_readable,
    wait_writable,
)
from .abc import Stream

__all__ = ["DEFAULT_RECEIVE_SIZE", "FdStream"]

#: ``receive_some()`` without ``max_bytes`` reads up to this many bytes (the
#: default capacity of a Linux pipe).
DEFAULT_RECEIVE_SIZE = 65536


class _FdHolder:
    """Owns one fd in non-blocking mode; ``fd`` is -1 once it is closed."""

    __slots__ = ("_was_blocking", "fd")

    def __init__(self, fd: int) -> None:
        # Set first: __del__ runs even if the checks below raise.
        self.fd = -1
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise TypeError(f"FdStream takes a file descriptor (an int), not {fd!r}")
        self._was_blocking = os.get_blocking(fd)
        os.set_blocking(fd, False)
        self.fd = fd

    @property
    def closed(self) -> bool:
        return self.fd == -1

    def close_without_notifying(self) -> None:
        # Also from __del__, outside any run: no task can be waiting on the
        # fd then, since a waiting task holds the stream.
        fd = self.fd
        if fd == -1:
            return
        self.fd = -1
        try:
            os.set_blocking(fd, self._was_blocking)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.fd != -1:
            notify_closing(self.fd)
            self.close_without_notifying()

    def __del__(self) -> None:
        self.close_without_notifying()


def _raise_closed_or_broken(exc: OSError) -> NoReturn:
    if exc.errno == errno.EBADF:
        raise ClosedResourceError("this stream was closed") from None
    raise BrokenResourceError(f"the fd failed: {exc}") from exc


@final
class FdStream(ShardLocal, Stream):
    """A :class:`~shardio.abc.Stream` over ``fd``: a pipe, a terminal, a socket.

    The stream takes ownership of ``fd``: it puts it in non-blocking mode,
    and :meth:`aclose` (or :meth:`close`) closes it and restores the mode.
    Do not use the fd directly afterwards. Non-blocking mode applies to every
    fd sharing the open file description (duplicates, copies in child
    processes): wrapping stdin or stdout affects whoever else uses them.
    Regular files cannot be waited on: use :mod:`shardio_disk`.

    One task at a time may send and one may receive
    (:class:`~shardio.BusyResourceError` otherwise). On a closed stream every
    operation raises :class:`~shardio.ClosedResourceError`; an error from the
    other end (``EPIPE`` when the reader of a pipe is gone) raises
    :class:`~shardio.BrokenResourceError`. At end of file, ``receive_some``
    returns ``b""``.
    """

    __slots__ = ("_fd_holder", "_receive_conflict", "_send_conflict")

    def __init__(self, fd: int) -> None:
        self._fd_holder = _FdHolder(fd)
        self._send_conflict = ConflictDetector("another task is using this stream for send")
        self._receive_conflict = ConflictDetector("another task is using this stream for receive")

    def __repr__(self) -> str:
        fd = self._fd_holder.fd
        return f"<shardio.lowlevel.FdStream {'closed' if fd == -1 else f'fd={fd}'}>"

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``, waiting while the fd is full. A checkpoint."""
        with self._send_conflict:
            # Checked first: send_all(b"") on a closed stream raises too.
            if self._fd_holder.closed:
                raise ClosedResourceError("this stream was closed")
            await checkpoint()
            with memoryview(data) as view, view.cast("B") as remaining:
                sent = 0
                total = len(remaining)
                while sent < total:
                    try:
                        sent += os.write(self._fd_holder.fd, remaining[sent:])
                    except BlockingIOError:
                        await wait_writable(self._fd_holder.fd)
                    except OSError as exc:
                        _raise_closed_or_broken(exc)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the fd is writable. A checkpoint."""
        with self._send_conflict:
            if self._fd_holder.closed:
                raise ClosedResourceError("this stream was closed")
            await wait_writable(self._fd_holder.fd)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Read up to ``max_bytes`` (default :data:`DEFAULT_RECEIVE_SIZE`),
        waiting until there is something to read; ``b""`` at end of file.
        A checkpoint."""
        with self._receive_conflict:
            if max_bytes is None:
                max_bytes = DEFAULT_RECEIVE_SIZE
            elif not isinstance(max_bytes, int) or isinstance(max_bytes, bool):
                raise TypeError(f"max_bytes must be an int >= 1 or None, not {max_bytes!r}")
            elif max_bytes < 1:
                raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
            await checkpoint()
            while True:
                try:
                    return os.read(self._fd_holder.fd, max_bytes)
                except BlockingIOError:
                    await wait_readable(self._fd_holder.fd)
                except OSError as exc:
                    _raise_closed_or_broken(exc)

    def close(self) -> None:
        """Close the fd now (waking tasks blocked on it); not a checkpoint."""
        self._fd_holder.close()

    async def aclose(self) -> None:
        """Close the fd; a checkpoint. Repeating it does nothing more."""
        self.close()
        await checkpoint()

    def fileno(self) -> int:
        """The fd, or -1 once the stream is closed."""
        return self._fd_holder.fd
