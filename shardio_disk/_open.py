""":func:`open_file`: Python's :func:`open`, with the file's I/O on io_uring."""

from __future__ import annotations

import io
import locale
import os
import warnings
from typing import Any, Literal, overload

import shardio

from ._buffered import BufferedFile
from ._iobase import AsyncFile, UnsupportedOperation, _Guard
from ._raw import RawFile
from ._text import TextFile

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]

OpenTextMode = Literal[
    "r", "w", "a", "x", "r+", "w+", "a+", "x+",
    "rt", "wt", "at", "xt", "r+t", "w+t", "a+t", "x+t", "rt+", "wt+", "at+", "xt+",
]  # fmt: skip
OpenBinaryMode = Literal[
    "rb", "wb", "ab", "xb", "r+b", "w+b", "a+b", "x+b", "rb+", "wb+", "ab+", "xb+",
    "br", "bw", "ba", "bx",
]  # fmt: skip


@overload
async def open_file(
    file: PathLike,
    mode: OpenTextMode = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> TextFile: ...


@overload
async def open_file(  # type: ignore[overload-overlap]
    file: PathLike,
    mode: OpenBinaryMode,
    buffering: Literal[0],
    encoding: None = None,
    errors: None = None,
    newline: None = None,
) -> RawFile: ...


@overload
async def open_file(
    file: PathLike,
    mode: OpenBinaryMode,
    buffering: int = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
) -> BufferedFile: ...


@overload
async def open_file(
    file: PathLike,
    mode: str,
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> AsyncFile[Any]: ...


async def open_file(
    file: PathLike,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> AsyncFile[Any]:
    """Open ``file`` and return an async file object: :func:`open` for
    shardio, as ``trio.open_file`` is for Trio.

    The arguments mean what they mean for :func:`open`, and the file
    behaves as the one :func:`open` returns -- the same results, contents,
    positions, ``tell()`` cookies and exceptions for the same calls -- with
    the methods that may do I/O as coroutines: a :class:`TextFile`
    (:class:`io.TextIOWrapper`) in text mode, a :class:`BufferedFile`
    (:class:`io.BufferedReader` / ``Writer`` / ``Random``) in binary mode,
    a :class:`RawFile` (:class:`io.FileIO`) in binary mode with
    ``buffering=0``.

    The file uses the page cache (no O_DIRECT; see :func:`open_dma` for
    that). Its reads and writes are io_uring operations on the shard's ring,
    not calls on a thread -- except where io_uring is unavailable, where the
    thread-pool backend serves them. Operations on one file run one at a
    time, in the order they were called. On a regular file an operation,
    once started, completes (cancellation comes at the next checkpoint); on
    a pipe or terminal it can be cancelled, and a cancelled read consumes
    nothing. Opening is cancellable and leaks no file descriptor.
    """
    if not isinstance(file, (str, bytes)):
        file = os.fspath(file)
    if not isinstance(file, (str, bytes)):
        raise TypeError(f"invalid file: {file!r}")
    if not isinstance(mode, str):
        raise TypeError(f"invalid mode: {mode!r}")
    if not isinstance(buffering, int):
        raise TypeError(f"invalid buffering: {buffering!r}")
    if encoding is not None and not isinstance(encoding, str):
        raise TypeError(f"invalid encoding: {encoding!r}")
    if errors is not None and not isinstance(errors, str):
        raise TypeError(f"invalid errors: {errors!r}")
    modes = set(mode)
    if modes - set("axrwb+t") or len(mode) > len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    creating = "x" in modes
    reading = "r" in modes
    writing = "w" in modes
    appending = "a" in modes
    updating = "+" in modes
    text = "t" in modes
    binary = "b" in modes
    if text and binary:
        raise ValueError("can't have text and binary mode at once")
    if creating + reading + writing + appending > 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if not (creating or reading or writing or appending):
        raise ValueError(
            "Must have exactly one of create/read/write/append mode and at most one plus"
        )
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    if newline is not None and not isinstance(newline, str):
        raise TypeError(
            f"open() argument 'newline' must be str or None, not {type(newline).__name__}"
        )
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"illegal newline value: {newline}")
    if binary and buffering == 1:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, "
            "the default buffer size will be used",
            RuntimeWarning,
            stacklevel=2,
        )
    if not binary:
        encoding = io.text_encoding(encoding, 2)
    raw_mode = (
        ("x" if creating else "")
        + ("r" if reading else "")
        + ("w" if writing else "")
        + ("a" if appending else "")
        + ("+" if updating else "")
    )
    guard = _Guard()
    raw = await RawFile._open(file, raw_mode, guard)
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = raw._blksize
        if buffering == 0:
            if binary:
                return raw
            raise ValueError("can't have unbuffered text I/O")
        if updating and not raw.seekable():
            raise UnsupportedOperation("File or stream is not seekable.")
        buffer = BufferedFile(
            raw, guard, buffering, reading or updating, creating or writing or appending or updating
        )
        if binary:
            return buffer
        if encoding is None or encoding == "locale":
            encoding = (os.device_encoding(raw.fileno()) if raw.isatty() else None) or (
                locale.getpreferredencoding(False)
            )
        result = TextFile(
            buffer, guard, encoding, errors or "strict", newline, line_buffering, mode
        )
        await result._start()
        return result
    except BaseException:
        with shardio.CancelScope(shield=True):
            await raw._close()
        raise
