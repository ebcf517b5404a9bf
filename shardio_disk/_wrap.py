""":func:`wrap_file`: any synchronous file object as an async one, its
blocking methods run in worker threads -- ``trio.wrap_file`` for shardio.

Why not the :class:`~shardio_disk.AsyncFile` classes: those are ports of
:mod:`io`'s classes onto the disk backend, and own a file descriptor they
opened themselves. ``wrap_file`` takes a file object someone else made --
an :class:`io.BytesIO`, a socket's ``makefile()``, a
:class:`gzip.GzipFile`, a file from :func:`open` -- whose methods only that
object can run, and which may not be a file on disk at all. So this is
Trio's design: a thin wrapper that runs the wrapped object's methods that
may block in :func:`shardio.to_thread.run_sync`, and hands out its other
attributes as they are.

Which names are which is :mod:`io`'s API, as Trio lists it:

- plain (the wrapped object's own attribute): ``closed``, ``encoding``,
  ``errors``, ``fileno``, ``isatty``, ``newlines``, ``readable``,
  ``seekable``, ``writable``, ``buffer``, ``raw``, ``line_buffering``,
  ``closefd``, ``name``, ``mode``, ``getvalue``, ``getbuffer``;
- coroutines (the method, in a worker thread): ``flush``, ``read``,
  ``read1``, ``readall``, ``readinto``, ``readinto1``, ``readline``,
  ``readlines``, ``peek``, ``seek``, ``tell``, ``truncate``, ``write``,
  ``writelines``;
- ``detach`` (in a thread, its result wrapped in turn), ``aclose`` (``close``
  in a thread, shielded), and ``async for`` (``readline`` until it returns
  empty).

Any other name is an :class:`AttributeError`, and so is a name of those
lists that the wrapped object lacks: ``hasattr(f, "peek")`` says whether
the file has ``peek``. A coroutine method is made on first use and kept on
the wrapper.

Cancellation is ``to_thread.run_sync``'s without ``abandon_on_cancel``: a
call that has started finishes and returns its result, and the cancellation
comes at the task's next checkpoint; so a read that blocks for ever (a
socket's ``makefile()`` with nothing coming) cannot be cancelled -- close the
socket. Calls from several tasks run in several threads at once, as with
Trio; the wrapped object decides what that means (:mod:`io`'s buffered
objects take a lock).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, AnyStr, Generic, TypeVar

import shardio
from shardio import lowlevel, to_thread

if TYPE_CHECKING:
    from typing import Protocol

    from typing_extensions import Buffer

FileT = TypeVar("FileT")
FileT_co = TypeVar("FileT_co", covariant=True)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)
AnyStr_co = TypeVar("AnyStr_co", str, bytes, covariant=True)

#: Attributes handed out as the wrapped object has them.
SYNC_ATTRIBUTES = frozenset(
    {
        "closed", "encoding", "errors", "fileno", "isatty", "newlines", "readable",
        "seekable", "writable", "buffer", "raw", "line_buffering", "closefd", "name",
        "mode", "getvalue", "getbuffer",
    }
)  # fmt: skip

#: Methods that may block: coroutines running the method in a worker thread.
ASYNC_METHODS = frozenset(
    {
        "flush", "read", "read1", "readall", "readinto", "readinto1", "readline",
        "readlines", "peek", "seek", "tell", "truncate", "write", "writelines",
    }
)  # fmt: skip


if TYPE_CHECKING:
    # For type checkers, the wrapper's methods follow the wrapped object's:
    # each one is declared (at the end of the class) with a ``self`` type
    # saying what the wrapped object must have for it to exist, one of these
    # one-member protocols. So ``read()`` on a wrapped ``BytesIO`` is typed
    # ``bytes``, on a ``StringIO`` ``str``, and ``peek()`` on a ``StringIO``
    # is refused.

    class _Closed(Protocol):
        @property
        def closed(self) -> bool: ...

    class _Encoding(Protocol):
        @property
        def encoding(self) -> str: ...

    class _Errors(Protocol):
        @property
        def errors(self) -> str | None: ...

    class _Newlines(Protocol[T_co]):
        @property
        def newlines(self) -> T_co: ...

    class _Buffer(Protocol):
        @property
        def buffer(self) -> Any: ...

    class _Raw(Protocol):
        @property
        def raw(self) -> Any: ...

    class _LineBuffering(Protocol):
        @property
        def line_buffering(self) -> bool: ...

    class _Closefd(Protocol):
        @property
        def closefd(self) -> bool: ...

    class _Name(Protocol):
        @property
        def name(self) -> Any: ...

    class _Mode(Protocol):
        @property
        def mode(self) -> str: ...

    class _Fileno(Protocol):
        def fileno(self) -> int: ...

    class _Isatty(Protocol):
        def isatty(self) -> bool: ...

    class _Readable(Protocol):
        def readable(self) -> bool: ...

    class _Seekable(Protocol):
        def seekable(self) -> bool: ...

    class _Writable(Protocol):
        def writable(self) -> bool: ...

    class _Getvalue(Protocol[AnyStr_co]):
        def getvalue(self) -> AnyStr_co: ...

    class _Getbuffer(Protocol):
        def getbuffer(self) -> memoryview: ...

    class _Flush(Protocol):
        def flush(self) -> None: ...

    class _Read(Protocol[AnyStr_co]):
        def read(self, size: int | None = ..., /) -> AnyStr_co: ...

    class _Read1(Protocol):
        def read1(self, size: int = ..., /) -> bytes: ...

    class _Readall(Protocol[AnyStr_co]):
        def readall(self) -> AnyStr_co: ...

    class _Readinto(Protocol):
        def readinto(self, buffer: Buffer, /) -> int | None: ...

    class _Readinto1(Protocol):
        def readinto1(self, buffer: Buffer, /) -> int: ...

    class _Readline(Protocol[AnyStr_co]):
        def readline(self, size: int = ..., /) -> AnyStr_co: ...

    class _Readlines(Protocol[AnyStr]):
        def readlines(self, hint: int = ..., /) -> list[AnyStr]: ...

    class _Peek(Protocol[AnyStr_co]):
        def peek(self, size: int = ..., /) -> AnyStr_co: ...

    class _Seek(Protocol):
        def seek(self, offset: int, whence: int = ..., /) -> int: ...

    class _Tell(Protocol):
        def tell(self) -> int: ...

    class _Truncate(Protocol):
        def truncate(self, size: int | None = ..., /) -> int: ...

    class _Write(Protocol[T_contra]):
        def write(self, data: T_contra, /) -> int: ...

    class _Writelines(Protocol[T_contra]):
        def writelines(self, lines: Iterable[T_contra], /) -> None: ...

    class _Detach(Protocol[T_co]):
        def detach(self) -> T_co: ...

    class _Close(Protocol):
        def close(self) -> None: ...


def _in_thread(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A coroutine function running the wrapped object's bound ``method``
    in a worker thread."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        call = functools.partial(method, *args, **kwargs)
        return await to_thread.run_sync(call, thread_name=f"AsyncIOWrapper.{name}")

    run.__name__ = name
    run.__qualname__ = f"AsyncIOWrapper.{name}"
    run.__doc__ = f"The wrapped file's ``{name}``, but async: it runs in a worker thread."
    return run


class AsyncIOWrapper(lowlevel.ShardLocal, shardio.abc.AsyncResource, Generic[FileT_co]):
    """A synchronous file object made async (:func:`wrap_file` makes one):
    its methods that may block are coroutines that run them in worker
    threads; its other attributes are the wrapped object's. See the module
    docstring for which is which. It belongs to the shard that made it."""

    def __init__(self, file: FileT_co) -> None:
        self._wrapped = file

    @property
    def wrapped(self) -> FileT_co:
        """The file object this wraps."""
        return self._wrapped

    def __repr__(self) -> str:
        return f"<shardio_disk.AsyncIOWrapper of {self._wrapped!r}>"

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name in SYNC_ATTRIBUTES:
                return getattr(self._wrapped, name)
            if name in ASYNC_METHODS:
                run = _in_thread(getattr(self._wrapped, name), name)
                setattr(self, name, run)
                return run
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
            )

    def __dir__(self) -> Iterable[str]:
        names = set(super().__dir__())
        names.update(n for n in SYNC_ATTRIBUTES | ASYNC_METHODS if hasattr(self._wrapped, n))
        return names

    def __aiter__(self) -> AsyncIOWrapper[FileT_co]:
        return self

    async def __anext__(self: AsyncIOWrapper[_Readline[AnyStr]]) -> AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def detach(self: AsyncIOWrapper[_Detach[T]]) -> AsyncIOWrapper[T]:
        """``detach()`` in a worker thread (:meth:`io.BufferedIOBase.detach`),
        and the object it returns, wrapped."""
        return wrap_file(await to_thread.run_sync(self._wrapped.detach))

    async def aclose(self: AsyncIOWrapper[_Close]) -> None:
        """``close()`` in a worker thread. Shielded: a cancelled ``aclose``
        still closes the file, then raises :class:`~shardio.Cancelled`."""
        with shardio.CancelScope(shield=True):
            await to_thread.run_sync(self._wrapped.close)
        await lowlevel.checkpoint_if_cancelled()

    if TYPE_CHECKING:

        @property
        def closed(self: AsyncIOWrapper[_Closed]) -> bool: ...
        @property
        def encoding(self: AsyncIOWrapper[_Encoding]) -> str: ...
        @property
        def errors(self: AsyncIOWrapper[_Errors]) -> str | None: ...
        @property
        def newlines(self: AsyncIOWrapper[_Newlines[T]]) -> T: ...
        @property
        def buffer(self: AsyncIOWrapper[_Buffer]) -> Any: ...
        @property
        def raw(self: AsyncIOWrapper[_Raw]) -> Any: ...
        @property
        def line_buffering(self: AsyncIOWrapper[_LineBuffering]) -> bool: ...
        @property
        def closefd(self: AsyncIOWrapper[_Closefd]) -> bool: ...
        @property
        def name(self: AsyncIOWrapper[_Name]) -> Any: ...
        @property
        def mode(self: AsyncIOWrapper[_Mode]) -> str: ...
        def fileno(self: AsyncIOWrapper[_Fileno]) -> int: ...
        def isatty(self: AsyncIOWrapper[_Isatty]) -> bool: ...
        def readable(self: AsyncIOWrapper[_Readable]) -> bool: ...
        def seekable(self: AsyncIOWrapper[_Seekable]) -> bool: ...
        def writable(self: AsyncIOWrapper[_Writable]) -> bool: ...
        def getvalue(self: AsyncIOWrapper[_Getvalue[AnyStr]]) -> AnyStr: ...
        def getbuffer(self: AsyncIOWrapper[_Getbuffer]) -> memoryview: ...
        async def flush(self: AsyncIOWrapper[_Flush]) -> None: ...
        async def read(self: AsyncIOWrapper[_Read[AnyStr]], size: int | None = -1, /) -> AnyStr: ...
        async def read1(self: AsyncIOWrapper[_Read1], size: int = -1, /) -> bytes: ...
        async def readall(self: AsyncIOWrapper[_Readall[AnyStr]]) -> AnyStr: ...
        async def readinto(self: AsyncIOWrapper[_Readinto], buffer: Buffer, /) -> int | None: ...
        async def readinto1(self: AsyncIOWrapper[_Readinto1], buffer: Buffer, /) -> int: ...
        async def readline(
            self: AsyncIOWrapper[_Readline[AnyStr]], size: int = -1, /
        ) -> AnyStr: ...
        async def readlines(
            self: AsyncIOWrapper[_Readlines[AnyStr]], hint: int = -1, /
        ) -> list[AnyStr]: ...
        async def peek(self: AsyncIOWrapper[_Peek[AnyStr]], size: int = 0, /) -> AnyStr: ...
        async def seek(self: AsyncIOWrapper[_Seek], offset: int, whence: int = 0, /) -> int: ...
        async def tell(self: AsyncIOWrapper[_Tell]) -> int: ...
        async def truncate(self: AsyncIOWrapper[_Truncate], size: int | None = None, /) -> int: ...
        async def write(self: AsyncIOWrapper[_Write[T]], data: T, /) -> int: ...
        async def writelines(
            self: AsyncIOWrapper[_Writelines[T]], lines: Iterable[T], /
        ) -> None: ...


def wrap_file(file: FileT) -> AsyncIOWrapper[FileT]:
    """Wrap a synchronous file object (anything with a ``close()`` method
    and a ``read()`` or ``write()`` method: :class:`io.BytesIO`, a socket's
    ``makefile()``, a file from :func:`open`...) into an async one, whose
    methods that may block run in worker threads: ``trio.wrap_file``.

    ``async with wrap_file(f) as af:`` closes ``f`` on exit."""

    def has(name: str) -> bool:
        return callable(getattr(file, name, None))

    if not (has("close") and (has("read") or has("write"))):
        raise TypeError(
            f"wrap_file() needs a file object, with a close() method and a read() or "
            f"write() method; {file!r} lacks them (to open a path, use "
            "shardio_disk.open_file or shardio_disk.Path.open)"
        )
    return AsyncIOWrapper(file)
