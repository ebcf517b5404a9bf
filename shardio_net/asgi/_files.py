"""Files as response bodies: the ``pathsend`` and ``zerocopysend`` extensions.

``http.response.pathsend`` (``{"path": ...}``) and
``http.response.zerocopysend`` (``{"file": ..., "offset": ..., "count":
...}``) ask the server to send a file's bytes itself. shardio_net has no
``sendfile``; what it has is a ``send_all`` that takes buffers as they are
and, for large ones, ``MSG_ZEROCOPY``. So a large file region is *mapped*
(``mmap``, read-only) and the mapping's memoryview is sent beside the
response's head in one vectored ``send_all``: the kernel reads the page
cache through the mapping, and with ``MSG_ZEROCOPY`` (64 KiB and up, where
the socket allows it) pins those pages instead of copying them -- what
``sendfile`` does, with no copy in user space either way. ``send_all``
returns only once the kernel is done with the pages, and the mapping is
closed then. A small region (under :data:`VECTORED_THRESHOLD`) is read
with ``pread`` instead: a mapping costs more than copying it.

The catch of a mapping: a file truncated while it is sent leaves pages with
nothing behind them, and the send fails (the connection is closed); the file
is never read through the mapping in user space, where that would be a
``SIGBUS``. Opening and reading small files block the shard for as long as
the page cache takes, as the standard library's file calls do.
"""

from __future__ import annotations

import mmap
import os
from types import TracebackType
from typing import Any

__all__ = ["VECTORED_THRESHOLD", "FileBody", "file_body"]

#: Regions at least this large are mapped and sent without a copy.
VECTORED_THRESHOLD = 16384


class FileBody:
    """A file region to send: ``view`` (bytes or a view of a mapping) and its
    ``size``; leaving the ``with`` block releases the mapping."""

    __slots__ = ("_mapping", "size", "view")

    def __init__(self, view: Any, size: int, mapping: mmap.mmap | None) -> None:
        self.view = view
        self.size = size
        self._mapping = mapping

    def __enter__(self) -> FileBody:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._mapping is not None:
            self.view.release()
            try:
                self._mapping.close()
            except BufferError:
                pass  # a stack still holds a view of it; it goes with the last one


def region(fd: int, offset: int, count: int | None) -> FileBody:
    """``count`` bytes (default: to the end) of ``fd`` from ``offset``."""
    size = os.fstat(fd).st_size
    if offset < 0 or offset > size:
        raise ValueError(f"offset {offset} is outside the file ({size} bytes)")
    available = size - offset
    if count is None:
        count = available
    elif count < 0 or count > available:
        raise ValueError(f"count {count} runs past the end of the file ({available} bytes left)")
    if count < VECTORED_THRESHOLD:
        data = os.pread(fd, count, offset) if count else b""
        return FileBody(data, len(data), None)
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(fd, count + offset - start, prot=mmap.PROT_READ, offset=start)
    view = memoryview(mapping)[offset - start :]
    return FileBody(view, count, mapping)


async def file_body(message: Any, key: str) -> FileBody:
    """The region a ``pathsend`` (``key="path"``) or ``zerocopysend``
    (``key="file"``) message asks for."""
    if key == "path":
        path = message.get("path")
        if not isinstance(path, (str, os.PathLike)) or not os.path.isabs(path):
            raise ValueError(f"http.response.pathsend needs an absolute path, not {path!r}")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return region(fd, 0, None)
        finally:
            os.close(fd)
    file = message.get("file")
    try:
        fd = file if isinstance(file, int) else file.fileno()
    except (AttributeError, OSError):
        raise TypeError(
            f"http.response.zerocopysend needs a file with a fileno(), not {file!r}"
        ) from None
    offset = message.get("offset")
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    body = region(fd, offset, message.get("count"))
    if message.get("offset") is None:
        os.lseek(fd, offset + body.size, os.SEEK_SET)  # as sendfile() moves it
    return body
