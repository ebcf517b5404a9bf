""":class:`Path`: Trio's async :class:`pathlib.Path`, with the operations
io_uring has done on the shard's ring.

``trio.Path`` is a :class:`pathlib.PurePath` whose methods that touch the
filesystem are coroutines, each running its :class:`pathlib.Path`
counterpart in a worker thread. This ``Path`` has the same methods, results
and exceptions, and takes the operations that have an io_uring form off the
threads, onto the shard's disk backend (its ring, or the backend's own pool
where io_uring is unavailable):

- ``open`` is :func:`~shardio_disk.open_file` (IORING_OP_OPENAT, then reads
  and writes on the ring), and returns its async file.
- ``read_bytes``, ``read_text``, ``write_bytes`` and ``write_text`` open,
  read or write, and close through such a file.
- ``stat`` and ``lstat`` are IORING_OP_STATX on the path (the backend's
  ``stat``), decoded into the :class:`os.stat_result` that :func:`os.stat`
  returns for the same file, field for field; so are the methods that only
  ask them: ``exists``, the ``is_*`` tests (but ``is_mount``) and
  ``samefile``.

Everything else runs pathlib's method in :func:`shardio.to_thread.run_sync`,
as Trio does. io_uring has forms for a few of those calls (UNLINKAT,
MKDIRAT, RENAMEAT, SYMLINKAT, LINKAT: Linux 5.11 to 5.15), but pathlib's
methods are more than the call (``mkdir(parents=True)`` walks up the tree,
``touch`` tries ``utime`` first, which io_uring lacks, ``resolve`` is
``realpath``), and porting them is not worth the risk of a difference for
operations that update directories, far rarer than stats and reads.

What a method does on the ring is what pathlib's does with the same calls:
``exists`` and the ``is_*`` tests answer False for the errnos pathlib
ignores (ENOENT, ENOTDIR, EBADF, ELOOP) and for a path with a NUL byte or
one that cannot be encoded, and raise any other error; ``write_bytes``
checks that its argument is a buffer and ``write_text`` that it is a
``str`` before the file is opened (and truncated); errors are the
:class:`OSError` subclasses :func:`os.stat` and :func:`open` raise, with the
path as a ``str`` ``filename``.

Cancellation
------------
Trio's thread is not abandoned on cancellation: a method is a checkpoint
where it starts, and once started it finishes and returns its result, the
cancellation coming at the task's next checkpoint. The methods served by the
disk backend keep that rule (:func:`_operation`): they check for
cancellation, then run shielded. It matters for the compound ones: a
cancelled ``write_bytes`` has either done nothing or written the whole file,
never truncated it and stopped. ``open`` alone keeps
:func:`~shardio_disk.open_file`'s rule: cancelling it closes whatever it
opened and raises :class:`~shardio.Cancelled` (its effect on the file --
creation, truncation -- is then as with Trio, where the open finishes).
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import pathlib
import stat
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, overload

import shardio
from shardio import lowlevel, to_thread

from ._choice import current_backend
from ._iobase import AsyncFile
from ._open import OpenBinaryMode, OpenTextMode, open_file

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Buffer

    from ._buffered import BufferedFile
    from ._raw import RawFile
    from ._text import TextFile

P = ParamSpec("P")
T = TypeVar("T")
PathT = TypeVar("PathT", bound="Path")

#: The errnos for which pathlib's ``exists`` and ``is_*`` answer False (the
#: path, or a directory on the way, is missing or is a broken link).
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


async def _operation(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """``await fn(*args, **kwargs)`` with the rules of ``to_thread.run_sync``
    without ``abandon_on_cancel``: a checkpoint at the start, then the whole
    operation, shielded; a cancellation meanwhile comes at the next
    checkpoint."""
    await lowlevel.checkpoint_if_cancelled()
    with shardio.CancelScope(shield=True):
        try:
            result = await fn(*args, **kwargs)
        except Exception:
            # A thread call reaches a schedule point even when it fails; a
            # failure found before any I/O (a bad argument) has not yielded.
            await lowlevel.cancel_shielded_checkpoint()
            raise
    return result


def _thread_name(method: Callable[..., Any]) -> str:
    return f"Path.{method.__name__} from {lowlevel.current_task().name}"


def _describe(run: Callable[..., Any], method: Callable[..., Any], note: str = "") -> None:
    """Name and document the async ``run`` after pathlib's ``method``."""
    functools.update_wrapper(run, method, assigned=("__name__",), updated=())
    run.__qualname__ = f"Path.{method.__name__}"
    run.__module__ = __name__
    run.__doc__ = (
        f"Like :meth:`pathlib.Path.{method.__name__}`, but async: it runs in a worker "
        f"thread (:func:`shardio.to_thread.run_sync`).{note}\n\n"
        f"{inspect.cleandoc(method.__doc__ or '')}\n"
    )


def _in_thread(
    method: Callable[Concatenate[pathlib.Path, P], T],
) -> Callable[Concatenate[Path, P], Awaitable[T]]:
    """An async method running pathlib's ``method`` in a worker thread."""

    async def run(self: Path, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(method, pathlib.PosixPath(self), *args, **kwargs)
        return await to_thread.run_sync(call, thread_name=_thread_name(method))

    _describe(run, method)
    return run


def _in_thread_to_path(
    method: Callable[Concatenate[pathlib.Path, P], pathlib.Path],
) -> Callable[Concatenate[PathT, P], Awaitable[PathT]]:
    """As :func:`_in_thread`, for a method returning a path: this class's."""

    async def run(self: PathT, /, *args: P.args, **kwargs: P.kwargs) -> PathT:
        call = functools.partial(method, pathlib.PosixPath(self), *args, **kwargs)
        return type(self)(await to_thread.run_sync(call, thread_name=_thread_name(method)))

    _describe(run, method)
    return run


def _in_thread_to_paths(
    method: Callable[Concatenate[pathlib.Path, P], Iterable[pathlib.Path]],
) -> Callable[Concatenate[PathT, P], Awaitable[Iterator[PathT]]]:
    """As :func:`_in_thread`, for a method yielding paths: the thread lists
    them all, and the coroutine returns an iterator over them."""

    async def run(self: PathT, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[PathT]:
        def listed() -> list[pathlib.Path]:
            return list(method(pathlib.PosixPath(self), *args, **kwargs))

        found = await to_thread.run_sync(listed, thread_name=_thread_name(method))
        return iter([type(self)(path) for path in found])

    _describe(
        run,
        method,
        " It lists every path before it returns, and returns an iterator over them: "
        f"``for path in await p.{method.__name__}(...)``.",
    )
    return run


class Path(pathlib.PurePosixPath):
    """A :class:`pathlib.PurePath` whose methods that touch the filesystem are
    coroutines: ``trio.Path`` for shardio.

    The pure methods and operators (``/``, ``parent``, ``with_suffix``...)
    are pathlib's and return a :class:`Path`. ``open``, the reads and writes
    of whole files, ``stat`` and the tests built on it run on the shard's
    disk backend (io_uring); the others run pathlib's method in a worker
    thread, as Trio does. Each method is a checkpoint where it starts, and
    once started runs to its end, as Trio's thread does -- except ``open``,
    which is :func:`~shardio_disk.open_file` and can be cancelled while it
    opens. A :class:`Path` is a value: it can be sent to another shard.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"shardio_disk.Path({str(self)!r})"

    # -- on the disk backend ---------------------------------------------------

    @overload
    async def open(
        self,
        mode: OpenTextMode = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> TextFile: ...

    @overload
    async def open(  # type: ignore[overload-overlap]
        self,
        mode: OpenBinaryMode,
        buffering: Literal[0],
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> RawFile: ...

    @overload
    async def open(
        self,
        mode: OpenBinaryMode,
        buffering: int = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> BufferedFile: ...

    @overload
    async def open(
        self,
        mode: str,
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> AsyncFile[Any]: ...

    async def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> AsyncFile[Any]:
        """Open the file, as :meth:`pathlib.Path.open` does: this is
        :func:`~shardio_disk.open_file` with this path, and returns its
        async file (its I/O on io_uring). Opening is cancellable and leaks
        no file descriptor."""
        return await open_file(self, mode, buffering, encoding, errors, newline)

    async def read_bytes(self) -> bytes:
        """Open the file in binary mode, read it all, close it
        (:meth:`pathlib.Path.read_bytes`), on the disk backend."""
        return await _operation(self._read_bytes)

    async def _read_bytes(self) -> bytes:
        async with await open_file(self, "rb") as f:
            return await f.read()

    async def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        """Open the file in text mode, read it all, close it
        (:meth:`pathlib.Path.read_text`), on the disk backend."""
        return await _operation(self._read_text, encoding, errors)

    async def _read_text(self, encoding: str | None, errors: str | None) -> str:
        async with await open_file(self, "r", encoding=encoding, errors=errors) as f:
            return await f.read()

    async def write_bytes(self, data: Buffer) -> int:
        """Create or truncate the file, write ``data`` (any bytes-like
        object), close it, and return the bytes written
        (:meth:`pathlib.Path.write_bytes`), on the disk backend. Data that
        is not bytes-like is a TypeError, raised before the file is
        touched."""
        return await _operation(self._write_bytes, data)

    async def _write_bytes(self, data: Buffer) -> int:
        view = memoryview(data)
        async with await open_file(self, "wb") as f:
            return await f.write(view)

    async def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> int:
        """Create or truncate the file, write ``data`` in text mode, close
        it, and return the characters written
        (:meth:`pathlib.Path.write_text`), on the disk backend. ``data``
        that is not a ``str`` is a TypeError, raised before the file is
        touched."""
        return await _operation(self._write_text, data, encoding, errors, newline)

    async def _write_text(
        self, data: str, encoding: str | None, errors: str | None, newline: str | None
    ) -> int:
        if not isinstance(data, str):
            raise TypeError(f"data must be str, not {type(data).__name__}")
        async with await open_file(
            self, "w", encoding=encoding, errors=errors, newline=newline
        ) as f:
            return await f.write(data)

    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """What :func:`os.stat` returns for this path (``lstat`` if not
        ``follow_symlinks``): one ``statx`` on the disk backend."""
        return await _operation(self._stat, follow_symlinks)

    async def lstat(self) -> os.stat_result:
        """:meth:`stat` of the path itself, not of what a symlink there
        points to."""
        return await _operation(self._stat, False)

    async def _stat(self, follow_symlinks: bool = True) -> os.stat_result:
        name = os.fspath(self)
        encoded = os.fsencode(name)
        if b"\0" in encoded:
            raise ValueError("embedded null byte")
        try:
            return await current_backend().stat(encoded, follow_symlinks=follow_symlinks)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, name) from None

    async def exists(self) -> bool:
        """Whether the path exists (a symlink: whether what it points to
        does), by :meth:`stat`. A missing file, a file where a directory
        should be, a symlink loop, a NUL byte: False; other errors
        (EACCES...) are raised, as with :meth:`pathlib.Path.exists`."""
        return await _operation(self._exists)

    async def _exists(self) -> bool:
        try:
            await self._stat()
        except OSError as exc:
            if exc.errno not in _ABSENT:
                raise
            return False
        except ValueError:
            return False
        return True

    async def _has_mode(self, test: Callable[[int], bool], follow_symlinks: bool = True) -> bool:
        try:
            result = await self._stat(follow_symlinks)
        except OSError as exc:
            if exc.errno not in _ABSENT:
                raise
            return False
        except ValueError:
            return False
        return test(result.st_mode)

    async def is_dir(self) -> bool:
        """Whether the path is a directory (or a symlink to one), by
        :meth:`stat`; False where :meth:`exists` is."""
        return await _operation(self._has_mode, stat.S_ISDIR)

    async def is_file(self) -> bool:
        """Whether the path is a regular file (or a symlink to one), by
        :meth:`stat`; False where :meth:`exists` is."""
        return await _operation(self._has_mode, stat.S_ISREG)

    async def is_symlink(self) -> bool:
        """Whether the path is a symbolic link, by :meth:`lstat`."""
        return await _operation(self._has_mode, stat.S_ISLNK, False)

    async def is_socket(self) -> bool:
        """Whether the path is a Unix socket, by :meth:`stat`."""
        return await _operation(self._has_mode, stat.S_ISSOCK)

    async def is_fifo(self) -> bool:
        """Whether the path is a FIFO, by :meth:`stat`."""
        return await _operation(self._has_mode, stat.S_ISFIFO)

    async def is_block_device(self) -> bool:
        """Whether the path is a block device, by :meth:`stat`."""
        return await _operation(self._has_mode, stat.S_ISBLK)

    async def is_char_device(self) -> bool:
        """Whether the path is a character device, by :meth:`stat`."""
        return await _operation(self._has_mode, stat.S_ISCHR)

    async def samefile(self, other_path: str | os.PathLike[str]) -> bool:
        """Whether ``other_path`` (a path of any kind) is the same file as
        this one (:func:`os.path.samestat` of their :meth:`stat`)."""
        return await _operation(self._samefile, other_path)

    async def _samefile(self, other_path: str | os.PathLike[str]) -> bool:
        mine = await self._stat()
        other = other_path if isinstance(other_path, Path) else type(self)(other_path)
        return os.path.samestat(mine, await other._stat())

    # -- in a worker thread ----------------------------------------------------

    @classmethod
    async def cwd(cls) -> Self:
        """The current working directory (:meth:`pathlib.Path.cwd`), asked
        in a worker thread."""
        return cls(await to_thread.run_sync(pathlib.Path.cwd))

    @classmethod
    async def home(cls) -> Self:
        """The user's home directory (:meth:`pathlib.Path.home`), asked in a
        worker thread."""
        return cls(await to_thread.run_sync(pathlib.Path.home))

    absolute = _in_thread_to_path(pathlib.Path.absolute)
    chmod = _in_thread(pathlib.Path.chmod)
    expanduser = _in_thread_to_path(pathlib.Path.expanduser)
    glob = _in_thread_to_paths(pathlib.Path.glob)
    group = _in_thread(pathlib.Path.group)
    hardlink_to = _in_thread(pathlib.Path.hardlink_to)
    is_mount = _in_thread(pathlib.Path.is_mount)
    iterdir = _in_thread_to_paths(pathlib.Path.iterdir)
    lchmod = _in_thread(pathlib.Path.lchmod)
    if sys.version_info < (3, 12):
        link_to = _in_thread(pathlib.Path.link_to)
    mkdir = _in_thread(pathlib.Path.mkdir)
    owner = _in_thread(pathlib.Path.owner)
    readlink = _in_thread_to_path(pathlib.Path.readlink)
    rename = _in_thread_to_path(pathlib.Path.rename)
    replace = _in_thread_to_path(pathlib.Path.replace)
    resolve = _in_thread_to_path(pathlib.Path.resolve)
    rglob = _in_thread_to_paths(pathlib.Path.rglob)
    rmdir = _in_thread(pathlib.Path.rmdir)
    symlink_to = _in_thread(pathlib.Path.symlink_to)
    touch = _in_thread(pathlib.Path.touch)
    unlink = _in_thread(pathlib.Path.unlink)
