"""AnyIO's backend for shardio: each AnyIO primitive mapped onto shardio's.

AnyIO (``anyio.abc.AsyncBackend``) asks a backend for a few dozen things --
cancel scopes, task groups, synchronization primitives, threads, processes,
sockets, signals, a test runner -- and builds everything else (memory object
streams, TLS, ``Condition``, blocking portals, ``to_process``) on them. shardio
has Trio's semantics under Trio's names, so the mapping follows AnyIO's own
Trio backend: each AnyIO object wraps the shardio object of the same name, and
every shardio exception an AnyIO caller could see is turned into AnyIO's
(shardio's ``ClosedResourceError`` is not AnyIO's, and AnyIO's users catch
AnyIO's). The choices that differ from the Trio backend, and why:

* **Sockets go through shardio_net**: TCP and Unix-domain streams are
  ``shardio_net.SocketStream`` (zero-copy sends included), listeners are
  ``shardio_net.SocketListener``, UDP sockets are ``shardio_net.UDPSocket``.
  shardio_net has no Unix-domain datagram socket and no file-descriptor
  passing, so those two work here on the raw socket with
  ``lowlevel.wait_readable`` / ``wait_writable``, as shardio_net itself does.
* **A task group whose only exceptions are cancellations raises one
  ``Cancelled``** (AnyIO's rule, which its Trio backend keeps by building a
  new ``trio.Cancelled``): shardio's ``Cancelled`` has no public constructor, so
  the first one in the group is re-raised, on its own (chained to the group,
  which holds it, it would make a reference cycle).
* **``TaskInfo.has_pending_cancellation``** is known for the calling task
  (``current_effective_deadline() == -inf``, shardio's public way to ask) and
  for a task whose wait in an AnyIO ``Event`` a cancellation has ended: AnyIO's
  memory object streams ask it of the receivers they would hand an item to.
  So ``Event`` is built here on the scheduler's parking, whose abort callback
  tells when that happens, rather than on ``shardio.Event``. For any other
  task shardio has no public question to ask, and the answer is ``False``.
* **The test runner** is a guest run (``lowlevel.start_guest_run``) driven by
  the pytest thread through a queue, as AnyIO's Trio runner is; it is therefore
  a single-shard run. A test that needs shards calls ``shardio.run(...,
  shards=N)`` itself.

Everything here runs on the shard that calls it: AnyIO objects are shard-local
as shardio's are, and a task started on another shard (``start_soon(...,
shard=1)``, ``run_on``) finds this backend there too, with its own run
variables (the default thread limiter, say) per shard.
"""

from __future__ import annotations

import array
import math
import os
import socket
import types
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Generator,
    Iterable,
    Sequence,
)
from contextlib import AbstractContextManager, contextmanager
from contextvars import Context, copy_context
from functools import partial, wraps
from io import IOBase
from os import PathLike
from signal import Signals
from socket import AddressFamily, SocketKind
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar, cast

import anyio
import outcome
from anyio import (
    CapacityLimiterStatistics,
    EventStatistics,
    LockStatistics,
    TaskInfo,
    abc,
)
from anyio._core._eventloop import claim_worker_thread
from anyio._core._sockets import convert_ipv6_sockaddr
from anyio._core._streams import create_memory_object_stream
from anyio._core._synchronization import CapacityLimiter as BaseCapacityLimiter
from anyio._core._synchronization import Event as BaseEvent
from anyio._core._synchronization import Lock as BaseLock
from anyio._core._synchronization import ResourceGuard, SemaphoreStatistics
from anyio._core._synchronization import Semaphore as BaseSemaphore
from anyio._core._tasks import CancelScope as BaseCancelScope
from anyio._core._tasks import TaskHandle
from anyio.abc import IPSockAddrType, UDPPacketType, UNIXDatagramPacketType
from anyio.abc._eventloop import AsyncBackend, StrOrBytesPath
from anyio.abc._tasks import call_for_coroutine, get_callable_name, get_coro_name

import shardio
import shardio.from_thread
import shardio.lowlevel
import shardio.to_thread
import shardio_net

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike
    from anyio.streams.memory import MemoryObjectSendStream

__all__ = ["ShardioBackend"]

T = TypeVar("T")
T_Retval = TypeVar("T_Retval")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


# ---------------------------------------------------------------------------
# Exceptions: shardio's, as AnyIO's callers expect them
# ---------------------------------------------------------------------------


@contextmanager
def _anyio_errors(action: str = "using") -> Generator[None, None, None]:
    """Re-raise shardio's resource errors as AnyIO's, keeping the cause."""
    try:
        yield
    except shardio.ClosedResourceError as exc:
        raise anyio.ClosedResourceError from exc.__cause__
    except shardio.BrokenResourceError as exc:
        raise anyio.BrokenResourceError from (exc.__cause__ or exc)
    except shardio.BusyResourceError:
        raise anyio.BusyResourceError(action) from None
    except shardio.WouldBlock:
        raise anyio.WouldBlock from None


def _returns_coroutine(
    func: Callable[..., Awaitable[T_Retval]],
) -> Callable[..., Coroutine[Any, Any, T_Retval]]:
    """``func`` as a function that returns a coroutine (shardio runs only
    those), for functions that return another kind of awaitable."""

    @wraps(func)
    def wrapper(*args: Any) -> Coroutine[Any, Any, T_Retval]:
        awaitable = func(*args)
        if isinstance(awaitable, Coroutine) or not isinstance(awaitable, Awaitable):
            return awaitable  # shardio explains a value that is not awaitable

        async def await_it() -> T_Retval:
            return await awaitable

        return await_it()

    return wrapper


# ---------------------------------------------------------------------------
# Cancel scopes and task groups
# ---------------------------------------------------------------------------


class CancelScope(BaseCancelScope):
    """AnyIO's cancel scope over a :class:`shardio.CancelScope`."""

    __slots__ = ("__original",)

    def __new__(cls, original: shardio.CancelScope | None = None, **kwargs: object) -> CancelScope:
        return object.__new__(cls)

    def __init__(self, original: shardio.CancelScope | None = None, **kwargs: Any) -> None:
        self.__original = original or shardio.CancelScope(**kwargs)

    def __enter__(self) -> CancelScope:
        self.__original.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> bool:
        return bool(self.__original.__exit__(exc_type, exc_val, exc_tb))

    def cancel(self, reason: str | None = None) -> None:
        self.__original.cancel(reason)

    @property
    def deadline(self) -> float:
        return self.__original.deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self.__original.deadline = value

    @property
    def cancel_called(self) -> bool:
        return self.__original.cancel_called

    @property
    def cancelled_caught(self) -> bool:
        return self.__original.cancelled_caught

    @property
    def shield(self) -> bool:
        return self.__original.shield

    @shield.setter
    def shield(self, value: bool) -> None:
        self.__original.shield = value


class _NoValue:
    """``started()`` has not been called yet."""


_NO_VALUE = _NoValue()


class _TaskStatus(abc.TaskStatus[T_contra], Generic[T_contra]):
    """AnyIO's task status, handed on to shardio's once the task runs in it.

    AnyIO calls the task function before the task starts (to get its
    coroutine), so a function may call ``started()`` before shardio's
    ``task_status`` exists; that value is kept and passed on.
    """

    def __init__(self) -> None:
        self.called = False
        self.early_value: object = _NO_VALUE
        self.real: shardio.TaskStatus[Any] | None = None

    def started(self, value: T_contra | None = None) -> None:
        if self.called:
            raise RuntimeError("called 'started' twice on the same task status")
        self.called = True
        if self.real is not None:
            self.real.started(value)
        else:
            self.early_value = value


def _first_cancelled(group: BaseExceptionGroup[BaseException]) -> shardio.Cancelled:
    for exc in group.exceptions:
        if isinstance(exc, shardio.Cancelled):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            return _first_cancelled(exc)
    raise AssertionError("a group split as all-Cancelled holds a Cancelled")


class TaskGroup(abc.TaskGroup):
    """AnyIO's task group over a shardio nursery."""

    def __init__(self) -> None:
        self._entered = False
        self._active = False
        self._nursery_manager = shardio.open_nursery()
        self.cancel_scope = None  # type: ignore[assignment]

    async def __aenter__(self) -> TaskGroup:
        if self._entered:
            raise RuntimeError("TaskGroup cannot be entered more than once")
        self._entered = True
        self._active = True
        self._nursery = await self._nursery_manager.__aenter__()
        self.cancel_scope = CancelScope(self._nursery.cancel_scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> bool:
        cancelled: shardio.Cancelled | None = None
        try:
            return bool(await self._nursery_manager.__aexit__(exc_type, exc_val, exc_tb))
        except BaseExceptionGroup as exc:
            if exc.split(shardio.Cancelled)[1] is not None:
                raise
            cancelled = _first_cancelled(exc)
        finally:
            del exc_val, exc_tb
            self._active = False
        # Raised out here, not chained to the group: the group holds it, so a
        # link back would make a reference cycle (AnyIO tests for that).
        try:
            raise cancelled
        finally:
            del cancelled

    def _check_active(self, coro: Coroutine[Any, Any, Any] | None = None) -> None:
        if not self._active:
            if coro is not None:
                coro.close()
            raise RuntimeError("This task group is not active; no new tasks can be started.")

    def create_task(
        self,
        coro: Coroutine[Any, Any, T_co],
        *,
        name: object = None,
        context: Context | None = None,
    ) -> TaskHandle[T_co]:
        if not isinstance(coro, Coroutine):
            raise TypeError(f"expected a coroutine, got {coro.__class__.__qualname__}")
        self._check_active(coro)
        handle: TaskHandle[T_co] = TaskHandle(coro, get_coro_name(coro, name))
        start = partial(self._nursery.start_soon, handle._run_coro, name=handle.name)
        if context is not None:
            context.run(start)
        else:
            start()
        return handle

    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, Any]],
        *args: object,
        name: object = None,
        return_handle: bool = False,
    ) -> Any:
        handle: TaskHandle[Any]

        async def run_with_task_status(*, task_status: shardio.TaskStatus[Any]) -> None:
            nonlocal handle
            status: _TaskStatus[Any] = _TaskStatus()
            coro = call_for_coroutine(func, args, task_status=status)
            if status.early_value is not _NO_VALUE:
                task_status.started(status.early_value)
            else:
                status.real = task_status
            handle = TaskHandle(coro, final_name)
            await handle._run_coro()
            if not status.called:
                raise RuntimeError("child exited without calling task_status.started()")

        self._check_active()
        final_name = get_callable_name(func, name)
        value = await self._nursery.start(run_with_task_status, name=final_name)
        if return_handle:
            handle._start_value = value
            return handle
        return value


# ---------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------


class _ReceiveStream(abc.ByteReceiveStream):
    def __init__(self, stream: shardio.abc.ReceiveStream) -> None:
        self._stream = stream

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with _anyio_errors("reading from"):
            data = await self._stream.receive_some(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return bytes(data)

    async def aclose(self) -> None:
        await self._stream.aclose()


class _SendStream(abc.ByteSendStream):
    def __init__(self, stream: shardio.abc.SendStream) -> None:
        self._stream = stream

    async def send(self, item: bytes) -> None:
        with _anyio_errors("writing to"):
            await self._stream.send_all(item)

    async def aclose(self) -> None:
        await self._stream.aclose()


class Process(abc.Process):
    """AnyIO's process over a :class:`shardio.Process`."""

    def __init__(
        self,
        process: shardio.Process,
        stdin: abc.ByteSendStream | None,
        stdout: abc.ByteReceiveStream | None,
        stderr: abc.ByteReceiveStream | None,
    ) -> None:
        self._process = process
        self._stdin = stdin
        self._stdout = stdout
        self._stderr = stderr

    async def aclose(self) -> None:
        with CancelScope(shield=True):
            for stream in (self._stdin, self._stdout, self._stderr):
                if stream is not None:
                    await stream.aclose()
        try:
            await self.wait()
        except BaseException:
            self.kill()
            with CancelScope(shield=True):
                await self.wait()
            raise

    async def wait(self) -> int:
        return await self._process.wait()

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    def send_signal(self, signal: Signals) -> None:
        self._process.send_signal(signal)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    @property
    def stdin(self) -> abc.ByteSendStream | None:
        return self._stdin

    @property
    def stdout(self) -> abc.ByteReceiveStream | None:
        return self._stdout

    @property
    def stderr(self) -> abc.ByteReceiveStream | None:
        return self._stderr


async def _shutdown_process_pool(workers: set[abc.Process]) -> None:
    """A system task: when the run ends, kill and reap ``to_process`` workers."""
    try:
        await shardio.sleep_forever()
    except shardio.Cancelled:
        for process in workers:
            if process.returncode is None:
                process.kill()
        with CancelScope(shield=True):
            for process in workers:
                await process.aclose()


# ---------------------------------------------------------------------------
# Sockets
# ---------------------------------------------------------------------------


class _FdPassing:
    """``send_fds`` / ``receive_fds`` of a Unix-domain stream, on its raw
    socket (shardio_net streams carry bytes only)."""

    _receive_guard: ResourceGuard
    _send_guard: ResourceGuard

    if TYPE_CHECKING:

        @property
        def _raw_socket(self) -> socket.socket: ...

    async def receive_fds(self, msglen: int, maxfds: int) -> tuple[bytes, list[int]]:
        if not isinstance(msglen, int) or msglen < 0:
            raise ValueError("msglen must be a non-negative integer")
        if not isinstance(maxfds, int) or maxfds < 1:
            raise ValueError("maxfds must be a positive integer")
        fds = array.array("i")
        sock = self._raw_socket
        await shardio.lowlevel.checkpoint()
        with self._receive_guard:
            while True:
                try:
                    message, ancdata, _flags, _addr = sock.recvmsg(
                        msglen, socket.CMSG_LEN(maxfds * fds.itemsize)
                    )
                except BlockingIOError:
                    with _anyio_errors("reading from"):
                        await shardio.lowlevel.wait_readable(sock)
                except OSError as exc:
                    _raise_socket_error(sock, exc)
                else:
                    if not message and not ancdata:
                        raise anyio.EndOfStream
                    break
        for cmsg_level, cmsg_type, cmsg_data in ancdata:
            if cmsg_level != socket.SOL_SOCKET or cmsg_type != socket.SCM_RIGHTS:
                raise RuntimeError(
                    f"receive_fds got ancillary data that is not file descriptors "
                    f"(level {cmsg_level}, type {cmsg_type}) with message {message!r}"
                )
            fds.frombytes(cmsg_data[: len(cmsg_data) - (len(cmsg_data) % fds.itemsize)])
        return message, list(fds)

    async def send_fds(self, message: bytes, fds: Collection[int | IOBase]) -> None:
        if not message:
            raise ValueError("message must not be empty")
        if not fds:
            raise ValueError("fds must not be empty")
        filenos = [fd if isinstance(fd, int) else fd.fileno() for fd in fds]
        ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", filenos))]
        view = memoryview(message)
        sock = self._raw_socket
        await shardio.lowlevel.checkpoint()
        with self._send_guard:
            while view:
                try:
                    sent = sock.sendmsg([view], ancdata)
                except BlockingIOError:
                    with _anyio_errors("writing to"):
                        await shardio.lowlevel.wait_writable(sock)
                except OSError as exc:
                    _raise_socket_error(sock, exc)
                else:
                    view = view[sent:]
                    ancdata = []  # the descriptors went with the first write


def _raise_socket_error(sock: socket.socket, exc: OSError) -> NoReturn:
    if sock.fileno() < 0:
        raise anyio.ClosedResourceError from None
    raise anyio.BrokenResourceError from exc


class SocketStream(abc.SocketStream):
    """AnyIO's socket stream over a ``shardio_net.SocketStream``."""

    def __init__(self, stream: shardio_net.SocketStream) -> None:
        self._stream = stream
        self._receive_guard = ResourceGuard("reading from")
        self._send_guard = ResourceGuard("writing to")

    @property
    def _raw_socket(self) -> socket.socket:
        return self._stream.socket

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard, _anyio_errors("reading from"):
            data = await self._stream.receive_some(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        with self._send_guard, _anyio_errors("writing to"):
            await self._stream.send_all(item)

    async def send_eof(self) -> None:
        with _anyio_errors("writing to"):
            await self._stream.send_eof()


class UNIXSocketStream(_FdPassing, SocketStream, abc.UNIXSocketStream):
    """A Unix-domain socket stream (``SOCK_STREAM``), with descriptor passing."""


class _RawSocket:
    """A socket driven directly with the scheduler's readiness waits, for
    the kinds shardio_net has no class for: Unix-domain datagram and
    ``SOCK_SEQPACKET`` sockets, and a non-IP socket handed to AnyIO's UDP
    classes."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False
        self._receive_guard = ResourceGuard("reading from")
        self._send_guard = ResourceGuard("writing to")

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            shardio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await shardio.lowlevel.checkpoint()

    def _check(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._sock.fileno() < 0:
            raise anyio.BrokenResourceError

    async def _io(
        self,
        guard: ResourceGuard,
        wait: Callable[[socket.socket], Awaitable[None]],
        op: Callable[[], T],
    ) -> T:
        """``op()`` once it does not block: a checkpoint, cancellable only
        before anything was done."""
        with guard:
            self._check()
            await shardio.lowlevel.checkpoint_if_cancelled()
            while True:
                try:
                    result = op()
                except BlockingIOError:
                    with _anyio_errors():
                        await wait(self._sock)
                    self._check()
                except OSError as exc:
                    if self._closed:
                        raise anyio.ClosedResourceError from None
                    raise anyio.BrokenResourceError from exc
                else:
                    await shardio.lowlevel.cancel_shielded_checkpoint()
                    return result

    async def _recvfrom(self) -> tuple[bytes, Any]:
        return await self._io(
            self._receive_guard,
            shardio.lowlevel.wait_readable,
            partial(self._sock.recvfrom, 65536),
        )

    async def _recv(self, max_bytes: int = 65536) -> bytes:
        return await self._io(
            self._receive_guard, shardio.lowlevel.wait_readable, partial(self._sock.recv, max_bytes)
        )

    async def _sendto(self, data: bytes, address: Any) -> None:
        await self._io(
            self._send_guard,
            shardio.lowlevel.wait_writable,
            partial(self._sock.sendto, data, address),
        )

    async def _send(self, data: bytes) -> None:
        await self._io(
            self._send_guard, shardio.lowlevel.wait_writable, partial(self._sock.send, data)
        )


class _SeqpacketStream(_FdPassing, _RawSocket, abc.UNIXSocketStream):
    """A Unix-domain ``SOCK_SEQPACKET`` socket as an AnyIO socket stream."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        data = await self._recv(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            sent = await self._io(
                self._send_guard, shardio.lowlevel.wait_writable, partial(self._sock.send, view)
            )
            view = view[sent:]

    async def send_eof(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)


def _unix_stream(sock: socket.socket) -> abc.UNIXSocketStream:
    if sock.type == socket.SOCK_SEQPACKET:
        return _SeqpacketStream(sock)
    return UNIXSocketStream(shardio_net.SocketStream(sock))


class _Listener(abc.SocketListener):
    """AnyIO's listener over a ``shardio_net.SocketListener``."""

    def __init__(self, raw_socket: socket.socket) -> None:
        self._listener = shardio_net.SocketListener(raw_socket)
        self._accept_guard = ResourceGuard("accepting connections from")

    @property
    def _raw_socket(self) -> socket.socket:
        return self._listener.socket

    async def _accept_stream(self) -> shardio_net.SocketStream:
        with self._accept_guard, _anyio_errors("accepting connections from"):
            return await self._listener.accept()

    async def aclose(self) -> None:
        await self._listener.aclose()


class TCPSocketListener(_Listener):
    async def accept(self) -> SocketStream:
        return SocketStream(await self._accept_stream())


class UNIXSocketListener(_Listener):
    async def accept(self) -> UNIXSocketStream:
        return UNIXSocketStream(await self._accept_stream())


class _SeqpacketListener(_RawSocket, abc.SocketListener):
    """A listening Unix-domain ``SOCK_SEQPACKET`` socket."""

    async def accept(self) -> abc.UNIXSocketStream:
        sock, _address = await self._io(
            self._receive_guard, shardio.lowlevel.wait_readable, self._sock.accept
        )
        return _SeqpacketStream(sock)


def _unix_listener(sock: socket.socket) -> abc.SocketListener:
    if sock.type == socket.SOCK_SEQPACKET:
        return _SeqpacketListener(sock)
    return UNIXSocketListener(sock)


def _is_ip(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6)


class _OverUDPSocket:
    """What AnyIO's two UDP classes share over a ``shardio_net.UDPSocket``:
    the socket, the guards, closing."""

    def __init__(self, sock: shardio_net.UDPSocket) -> None:
        self._socket = sock
        self._receive_guard = ResourceGuard("reading from")
        self._send_guard = ResourceGuard("writing to")

    @property
    def _raw_socket(self) -> socket.socket:
        return self._socket.socket

    async def aclose(self) -> None:
        await self._socket.aclose()


class UDPSocket(_OverUDPSocket, abc.UDPSocket):
    """AnyIO's UDP socket over a ``shardio_net.UDPSocket``."""

    async def receive(self) -> tuple[bytes, IPSockAddrType]:
        with self._receive_guard, _anyio_errors("reading from"):
            data, addr = await self._socket.recvfrom(65536)
        return data, convert_ipv6_sockaddr(addr)

    async def send(self, item: UDPPacketType) -> None:
        with self._send_guard, _anyio_errors("writing to"):
            await self._socket.sendto(*item)


class ConnectedUDPSocket(_OverUDPSocket, abc.ConnectedUDPSocket):
    """AnyIO's connected UDP socket over a ``shardio_net.UDPSocket``."""

    async def receive(self) -> bytes:
        with self._receive_guard, _anyio_errors("reading from"):
            data, _addr = await self._socket.recvfrom(65536)
        return data

    async def send(self, item: bytes) -> None:
        with self._send_guard, _anyio_errors("writing to"):
            await self._socket.send(item)


class _RawUDPSocket(_RawSocket, abc.UDPSocket):
    """AnyIO's UDP class over a socket of another family (AnyIO lets a
    Unix-domain datagram socket in through ``UDPSocket.from_socket``)."""

    async def receive(self) -> tuple[bytes, IPSockAddrType]:
        data, addr = await self._recvfrom()
        return data, convert_ipv6_sockaddr(addr)

    async def send(self, item: UDPPacketType) -> None:
        await self._sendto(*item)


class _RawConnectedUDPSocket(_RawSocket, abc.ConnectedUDPSocket):
    async def receive(self) -> bytes:
        return await self._recv()

    async def send(self, item: bytes) -> None:
        await self._send(item)


class UNIXDatagramSocket(_RawSocket, abc.UNIXDatagramSocket):
    async def receive(self) -> UNIXDatagramPacketType:
        return await self._recvfrom()

    async def send(self, item: UNIXDatagramPacketType) -> None:
        await self._sendto(*item)


class ConnectedUNIXDatagramSocket(_RawSocket, abc.ConnectedUNIXDatagramSocket):
    async def receive(self) -> bytes:
        return await self._recv()

    async def send(self, item: bytes) -> None:
        await self._send(item)


async def _connect(sock: socket.socket, address: Any) -> None:
    """Connect a non-blocking socket, waiting for the kernel's answer."""
    try:
        sock.connect(address)
    except (BlockingIOError, InterruptedError):
        await shardio.lowlevel.wait_writable(sock)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error), address) from None
    else:
        await shardio.lowlevel.checkpoint()


# ---------------------------------------------------------------------------
# Synchronization
# ---------------------------------------------------------------------------


# Tasks whose wait in an Event was ended by a cancellation they have not yet
# woken up to raise: what TaskInfo.has_pending_cancellation answers for a
# task other than the caller. AnyIO's memory object streams ask it, to avoid
# handing an item to a receiver that will never take it.
_cancel_pending: weakref.WeakSet[shardio.lowlevel.Task] = weakref.WeakSet()


class Event(BaseEvent):
    """AnyIO's event: shardio's ``Event`` semantics, on the scheduler's
    parking primitives, so that a waiter whose wait a cancellation has
    ended is known (see ``_cancel_pending``)."""

    __slots__ = ("_flag", "_waiters")

    def __new__(cls) -> Event:
        return object.__new__(cls)

    def __init__(self) -> None:
        self._flag = False
        self._waiters: dict[shardio.lowlevel.Task, None] = {}

    def is_set(self) -> bool:
        return self._flag

    @shardio.lowlevel.enable_ki_protection
    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        for task in self._waiters:
            shardio.lowlevel.reschedule(task)
        self._waiters.clear()

    @shardio.lowlevel.enable_ki_protection
    async def wait(self) -> None:
        if self._flag:
            await shardio.lowlevel.checkpoint()
            return
        task = shardio.lowlevel.current_task()
        self._waiters[task] = None

        def abort(raise_cancel: shardio.lowlevel.RaiseCancelT) -> shardio.lowlevel.Abort:
            del self._waiters[task]
            _cancel_pending.add(task)
            return shardio.lowlevel.Abort.SUCCEEDED

        try:
            await shardio.lowlevel.wait_task_rescheduled(abort)
        finally:
            _cancel_pending.discard(task)

    def statistics(self) -> EventStatistics:
        return EventStatistics(tasks_waiting=len(self._waiters))


class Lock(BaseLock):
    __slots__ = ("__original", "_fast_acquire")

    def __new__(cls, *, fast_acquire: bool = False) -> Lock:
        return object.__new__(cls)

    def __init__(self, *, fast_acquire: bool = False) -> None:
        self._fast_acquire = fast_acquire
        self.__original = shardio.Lock()

    def _refuse_reentry(self) -> None:
        if self.__original.statistics().owner is shardio.lowlevel.current_task():
            raise RuntimeError("Attempted to acquire an already held Lock")

    async def acquire(self) -> None:
        self._refuse_reentry()
        with _anyio_errors():
            if not self._fast_acquire:
                await self.__original.acquire()
                return
            # The fast path: no schedule point when the lock is free.
            await shardio.lowlevel.checkpoint_if_cancelled()
            try:
                self.__original.acquire_nowait()
            except shardio.WouldBlock:
                await self.__original.acquire()

    def acquire_nowait(self) -> None:
        self._refuse_reentry()
        with _anyio_errors():
            self.__original.acquire_nowait()

    def locked(self) -> bool:
        return self.__original.locked()

    def release(self) -> None:
        self.__original.release()

    def statistics(self) -> LockStatistics:
        stats = self.__original.statistics()
        owner = ShardioTaskInfo(stats.owner) if stats.owner is not None else None
        return LockStatistics(stats.locked, owner, stats.tasks_waiting)


class Semaphore(BaseSemaphore):
    __slots__ = ("__original",)

    def __new__(
        cls, initial_value: int, *, max_value: int | None = None, fast_acquire: bool = False
    ) -> Semaphore:
        return object.__new__(cls)

    def __init__(
        self, initial_value: int, *, max_value: int | None = None, fast_acquire: bool = False
    ) -> None:
        super().__init__(initial_value, max_value=max_value, fast_acquire=fast_acquire)
        self.__original = shardio.Semaphore(initial_value, max_value=max_value)

    async def acquire(self) -> None:
        if not self._fast_acquire:
            await self.__original.acquire()
            return
        await shardio.lowlevel.checkpoint_if_cancelled()
        try:
            self.__original.acquire_nowait()
        except shardio.WouldBlock:
            await self.__original.acquire()

    def acquire_nowait(self) -> None:
        with _anyio_errors():
            self.__original.acquire_nowait()

    @property
    def max_value(self) -> int | None:
        return self.__original.max_value

    @property
    def value(self) -> int:
        return self.__original.value

    def release(self) -> None:
        self.__original.release()

    def statistics(self) -> SemaphoreStatistics:
        return SemaphoreStatistics(self.__original.statistics().tasks_waiting)


class CapacityLimiter(BaseCapacityLimiter):
    __slots__ = ("__original",)

    def __new__(
        cls,
        total_tokens: float | None = None,
        *,
        original: shardio.CapacityLimiter | None = None,
    ) -> CapacityLimiter:
        return object.__new__(cls)

    def __init__(
        self,
        total_tokens: float | None = None,
        *,
        original: shardio.CapacityLimiter | None = None,
    ) -> None:
        if original is None:
            if not isinstance(total_tokens, int) and total_tokens != math.inf:
                raise TypeError("total_tokens must be an int or math.inf")
            if total_tokens is not None and total_tokens < 0:
                raise ValueError("total_tokens must be >= 0")
            original = shardio.CapacityLimiter(total_tokens)
        self.__original = original

    @property
    def original(self) -> shardio.CapacityLimiter:
        """The shardio limiter this one is (``to_thread`` takes it)."""
        return self.__original

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> None:
        self.release()

    @property
    def total_tokens(self) -> float:
        return self.__original.total_tokens

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        if not isinstance(value, int) and value != math.inf:
            raise TypeError("total_tokens must be an int or math.inf")
        if value < 0:
            raise ValueError("total_tokens must be >= 0")
        self.__original.total_tokens = value

    @property
    def borrowed_tokens(self) -> int:
        return self.__original.borrowed_tokens

    @property
    def available_tokens(self) -> float:
        return self.__original.available_tokens

    def acquire_nowait(self) -> None:
        self.acquire_on_behalf_of_nowait(shardio.lowlevel.current_task())

    def _refuse_second_borrow(self, borrower: object) -> None:
        if borrower in self.__original.statistics().borrowers:
            raise RuntimeError(
                "this borrower is already holding one of this CapacityLimiter's tokens"
            )

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        self._refuse_second_borrow(borrower)
        with _anyio_errors():
            self.__original.acquire_on_behalf_of_nowait(borrower)

    async def acquire(self) -> None:
        await self.acquire_on_behalf_of(shardio.lowlevel.current_task())

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        self._refuse_second_borrow(borrower)
        await self.__original.acquire_on_behalf_of(borrower)

    def release(self) -> None:
        self.release_on_behalf_of(shardio.lowlevel.current_task())

    def release_on_behalf_of(self, borrower: object) -> None:
        if borrower not in self.__original.statistics().borrowers:
            raise RuntimeError("this borrower isn't holding any of this CapacityLimiter's tokens")
        self.__original.release_on_behalf_of(borrower)

    def statistics(self) -> CapacityLimiterStatistics:
        stats = self.__original.statistics()
        return CapacityLimiterStatistics(
            borrowed_tokens=stats.borrowed_tokens,
            total_tokens=stats.total_tokens,
            borrowers=tuple(stats.borrowers),
            tasks_waiting=stats.tasks_waiting,
        )


_default_thread_limiter: shardio.lowlevel.RunVar[CapacityLimiter] = shardio.lowlevel.RunVar(
    "anyio default thread limiter"
)


# ---------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------


class _SignalReceiver:
    """``shardio.open_signal_receiver``, yielding :class:`signal.Signals`."""

    def __init__(self, signals: tuple[Signals, ...]) -> None:
        self._signals = signals

    def __enter__(self) -> _SignalReceiver:
        self._cm = shardio.open_signal_receiver(*self._signals)
        self._iterator = self._cm.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> bool | None:
        return self._cm.__exit__(exc_type, exc_val, exc_tb)

    def __aiter__(self) -> _SignalReceiver:
        return self

    async def __anext__(self) -> Signals:
        return Signals(await self._iterator.__anext__())


# ---------------------------------------------------------------------------
# Testing and debugging
# ---------------------------------------------------------------------------


class TestRunner(abc.TestRunner):
    """Runs a test and its async fixtures in one shardio guest run.

    The pytest thread is the host loop: it runs the callbacks the guest run
    queues, until the outcome it waits for arrives. The run lives from the
    first async fixture or test of a scope to the end of the scope.
    """

    def __init__(self, **options: Any) -> None:
        from queue import Queue

        self._call_queue: Queue[Callable[[], object]] = Queue()
        self._send_stream: (
            MemoryObjectSendStream[tuple[Awaitable[Any], list[outcome.Outcome[Any]]]] | None
        ) = None
        self._options = options
        self._run_outcome: outcome.Outcome[Any] | None = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> None:
        if self._send_stream:
            self._send_stream.close()
            while self._run_outcome is None:
                self._call_queue.get()()
            self._run_outcome.unwrap()

    def is_running(self) -> bool:
        try:
            shardio.lowlevel.current_task()
        except RuntimeError:
            return False
        return True

    async def _run_tests_and_fixtures(self) -> None:
        self._send_stream, receive_stream = create_memory_object_stream[
            tuple[Awaitable[Any], list[outcome.Outcome[Any]]]
        ](1)
        with receive_stream:
            async for awaitable, holder in receive_stream:
                holder.append(await outcome.acapture(_await, awaitable))

    def _main_task_finished(self, result: outcome.Outcome[Any]) -> None:
        self._send_stream = None
        self._run_outcome = result

    def _host_until(self, done: Callable[[], bool]) -> None:
        """Run the guest run's callbacks in this thread until ``done()``."""
        while not done():
            if self._run_outcome is not None:
                self._run_outcome.unwrap()
                raise RuntimeError("the shardio test run ended before the test was done")
            self._call_queue.get()()

    def _call_in_runner_task(
        self, func: Callable[..., Awaitable[T_Retval]], *args: Any, **kwargs: Any
    ) -> T_Retval:
        if self._send_stream is None:
            self._run_outcome = None
            shardio.lowlevel.start_guest_run(
                self._run_tests_and_fixtures,
                run_sync_soon_threadsafe=self._call_queue.put,
                done_callback=self._main_task_finished,
                **self._options,
            )
            self._host_until(lambda: self._send_stream is not None)
        assert self._send_stream is not None
        holder: list[outcome.Outcome[Any]] = []
        self._send_stream.send_nowait((func(*args, **kwargs), holder))
        self._host_until(lambda: bool(holder))
        return cast(T_Retval, holder[0].unwrap())

    def run_asyncgen_fixture(
        self,
        fixture_func: Callable[..., AsyncGenerator[T_Retval, Any]],
        kwargs: dict[str, Any],
    ) -> Iterable[T_Retval]:
        asyncgen = fixture_func(**kwargs)
        value: T_Retval = self._call_in_runner_task(asyncgen.asend, None)
        yield value
        try:
            self._call_in_runner_task(asyncgen.asend, None)
        except StopAsyncIteration:
            pass
        else:
            self._call_in_runner_task(asyncgen.aclose)
            raise RuntimeError("Async generator fixture did not stop")

    def run_fixture(
        self,
        fixture_func: Callable[..., Coroutine[Any, Any, T_Retval]],
        kwargs: dict[str, Any],
    ) -> T_Retval:
        return self._call_in_runner_task(fixture_func, **kwargs)

    def run_test(
        self, test_func: Callable[..., Coroutine[Any, Any, Any]], kwargs: dict[str, Any]
    ) -> None:
        self._call_in_runner_task(test_func, **kwargs)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class ShardioTaskInfo(TaskInfo):
    """AnyIO's view of a :class:`shardio.lowlevel.Task`."""

    def __init__(self, task: shardio.lowlevel.Task) -> None:
        parent_id = None
        if task.parent_nursery is not None:
            parent_id = id(task.parent_nursery.parent_task)
        super().__init__(id(task), parent_id, task.name, task.coro)
        self._task = weakref.ref(task)

    def has_pending_cancellation(self) -> bool:
        task = self._task()
        if task is None:
            return False
        if task in _cancel_pending:
            return True
        try:
            current = shardio.lowlevel.current_task()
        except RuntimeError:
            return False
        return task is current and shardio.current_effective_deadline() == -math.inf


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


class ShardioBackend(AsyncBackend):
    """AnyIO's ``AsyncBackend`` for shardio: what ``anyio._backends._shardio``
    gives AnyIO as ``backend_class``."""

    @classmethod
    def run(
        cls,
        func: Callable[..., Awaitable[T_Retval]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> T_Retval:
        assert not kwargs, "AnyIO passes no keyword arguments to run()"
        return shardio.run(_returns_coroutine(func), *args, **options)

    @classmethod
    def current_token(cls) -> object:
        return shardio.lowlevel.current_token()

    @classmethod
    def current_time(cls) -> float:
        return shardio.current_time()

    @classmethod
    def cancelled_exception_class(cls) -> type[BaseException]:
        return shardio.Cancelled

    @classmethod
    async def checkpoint(cls) -> None:
        await shardio.lowlevel.checkpoint()

    @classmethod
    async def checkpoint_if_cancelled(cls) -> None:
        await shardio.lowlevel.checkpoint_if_cancelled()

    @classmethod
    async def cancel_shielded_checkpoint(cls) -> None:
        await shardio.lowlevel.cancel_shielded_checkpoint()

    @classmethod
    async def sleep(cls, delay: float) -> None:
        await shardio.sleep(delay)

    @classmethod
    def create_cancel_scope(
        cls, *, deadline: float = math.inf, shield: bool = False
    ) -> BaseCancelScope:
        return CancelScope(deadline=deadline, shield=shield)

    @classmethod
    def current_effective_deadline(cls) -> float:
        return shardio.current_effective_deadline()

    @classmethod
    def create_task_group(cls) -> abc.TaskGroup:
        return TaskGroup()

    @classmethod
    def create_event(cls) -> BaseEvent:
        return Event()

    @classmethod
    def create_lock(cls, *, fast_acquire: bool) -> Lock:
        return Lock(fast_acquire=fast_acquire)

    @classmethod
    def create_semaphore(
        cls, initial_value: int, *, max_value: int | None = None, fast_acquire: bool = False
    ) -> BaseSemaphore:
        return Semaphore(initial_value, max_value=max_value, fast_acquire=fast_acquire)

    @classmethod
    def create_capacity_limiter(cls, total_tokens: float) -> CapacityLimiter:
        return CapacityLimiter(total_tokens)

    @classmethod
    async def run_sync_in_worker_thread(
        cls,
        func: Callable[..., T_Retval],
        args: tuple[Any, ...],
        abandon_on_cancel: bool = False,
        limiter: BaseCapacityLimiter | None = None,
    ) -> T_Retval:
        token = cls.current_token()

        def in_thread() -> T_Retval:
            with claim_worker_thread(ShardioBackend, token):
                return func(*args)

        # shardio's to_thread borrows and returns tokens on behalf of an
        # object (acquire_on_behalf_of / release_on_behalf_of), which every
        # AnyIO limiter has too; ours hands over the shardio limiter inside.
        shardio_limiter = limiter.original if isinstance(limiter, CapacityLimiter) else limiter
        return await shardio.to_thread.run_sync(
            in_thread,
            abandon_on_cancel=abandon_on_cancel,
            limiter=cast(shardio.CapacityLimiter | None, shardio_limiter),
        )

    @classmethod
    def check_cancelled(cls) -> None:
        shardio.from_thread.check_cancelled()

    @classmethod
    def run_async_from_thread(
        cls,
        func: Callable[..., Coroutine[Any, Any, T_co]],
        args: tuple[Any, ...],
        token: object,
    ) -> T_co:
        try:
            return shardio.from_thread.run(
                func, *args, token=cast(shardio.lowlevel.Token | None, token)
            )
        except shardio.RunFinishedError:
            raise anyio.RunFinishedError from None

    @classmethod
    def run_sync_from_thread(
        cls,
        func: Callable[..., T_Retval],
        args: tuple[Any, ...],
        token: object,
    ) -> T_Retval:
        try:
            return shardio.from_thread.run_sync(
                func, *args, token=cast(shardio.lowlevel.Token | None, token)
            )
        except shardio.RunFinishedError:
            raise anyio.RunFinishedError from None

    @classmethod
    def run_sync_soon(
        cls, func: Callable[..., object], args: tuple[Any, ...], token: object
    ) -> None:
        try:
            cast(shardio.lowlevel.Token, token).run_sync_soon(copy_context().run, func, *args)
        except shardio.RunFinishedError:
            raise anyio.RunFinishedError from None

    @classmethod
    async def open_process(
        cls,
        command: StrOrBytesPath | Sequence[StrOrBytesPath],
        *,
        stdin: int | IO[Any] | None,
        stdout: int | IO[Any] | None,
        stderr: int | IO[Any] | None,
        **kwargs: Any,
    ) -> Process:
        def convert_item(item: StrOrBytesPath) -> str:
            str_or_bytes = os.fspath(item)
            if isinstance(str_or_bytes, str):
                return str_or_bytes
            return os.fsdecode(str_or_bytes)

        if isinstance(command, (str, bytes, PathLike)):
            args: str | list[str] = convert_item(command)
            shell = True
        else:
            args = [convert_item(item) for item in command]
            shell = False
        process = await shardio.lowlevel.open_process(
            args, stdin=stdin, stdout=stdout, stderr=stderr, shell=shell, **kwargs
        )
        return Process(
            process,
            _SendStream(process.stdin) if process.stdin else None,
            _ReceiveStream(process.stdout) if process.stdout else None,
            _ReceiveStream(process.stderr) if process.stderr else None,
        )

    @classmethod
    def setup_process_pool_exit_at_shutdown(cls, workers: set[abc.Process]) -> None:
        shardio.lowlevel.spawn_system_task(_shutdown_process_pool, workers)

    @classmethod
    async def connect_tcp(
        cls, host: str, port: int, local_address: IPSockAddrType | None = None
    ) -> SocketStream:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if local_address:
                sock.bind(local_address)
            await _connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return SocketStream(shardio_net.SocketStream(sock))

    @classmethod
    async def connect_unix(
        cls,
        path: str | bytes,
        kind: Literal[SocketKind.SOCK_STREAM, SocketKind.SOCK_SEQPACKET],
    ) -> abc.UNIXSocketStream:
        sock = socket.socket(socket.AF_UNIX, kind)
        try:
            sock.setblocking(False)
            await _connect(sock, path)
        except BaseException:
            sock.close()
            raise
        return _unix_stream(sock)

    @classmethod
    def create_tcp_listener(cls, sock: socket.socket) -> abc.SocketListener:
        return TCPSocketListener(sock)

    @classmethod
    def create_unix_listener(cls, sock: socket.socket) -> abc.SocketListener:
        return _unix_listener(sock)

    @classmethod
    async def create_udp_socket(
        cls,
        family: socket.AddressFamily,
        local_address: IPSockAddrType | None,
        remote_address: IPSockAddrType | None,
        reuse_port: bool,
    ) -> UDPSocket | ConnectedUDPSocket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if local_address:
                sock.bind(local_address)
            udp = shardio_net.UDPSocket(sock)
            if remote_address:
                await udp.connect(remote_address)
                return ConnectedUDPSocket(udp)
            await shardio.lowlevel.checkpoint()
            return UDPSocket(udp)
        except BaseException:
            sock.close()
            raise

    @classmethod
    async def create_unix_datagram_socket(  # type: ignore[override]
        cls, raw_socket: socket.socket, remote_path: str | bytes | None
    ) -> abc.UNIXDatagramSocket | abc.ConnectedUNIXDatagramSocket:
        if remote_path:
            raw_socket.setblocking(False)
            try:
                await _connect(raw_socket, remote_path)
            except BaseException:
                raw_socket.close()
                raise
            return ConnectedUNIXDatagramSocket(raw_socket)
        await shardio.lowlevel.checkpoint()
        return UNIXDatagramSocket(raw_socket)

    @classmethod
    async def getaddrinfo(
        cls,
        host: bytes | str | None,
        port: str | int | None,
        *,
        family: int | AddressFamily = 0,
        type: int | SocketKind = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Sequence[
        tuple[
            AddressFamily,
            SocketKind,
            int,
            str,
            tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
        ]
    ]:
        infos = await shardio_net.getaddrinfo(host, port, family, type, proto, flags)
        return cast("list[Any]", infos)  # shardio_net's AddressInfo is the same tuple

    @classmethod
    async def getnameinfo(cls, sockaddr: IPSockAddrType, flags: int = 0) -> tuple[str, str]:
        return await shardio.to_thread.run_sync(
            socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True
        )

    @classmethod
    async def wait_readable(cls, obj: FileDescriptorLike) -> None:
        with _anyio_errors("reading from"):
            await shardio.lowlevel.wait_readable(obj)

    @classmethod
    async def wait_writable(cls, obj: FileDescriptorLike) -> None:
        with _anyio_errors("writing to"):
            await shardio.lowlevel.wait_writable(obj)

    @classmethod
    def notify_closing(cls, obj: FileDescriptorLike) -> None:
        shardio.lowlevel.notify_closing(obj)

    @classmethod
    async def wrap_listener_socket(cls, sock: socket.socket) -> abc.SocketListener:
        if sock.family == socket.AF_UNIX:
            return _unix_listener(sock)
        return TCPSocketListener(sock)

    @classmethod
    async def wrap_stream_socket(cls, sock: socket.socket) -> SocketStream:
        return SocketStream(shardio_net.SocketStream(sock))

    @classmethod
    async def wrap_unix_stream_socket(cls, sock: socket.socket) -> abc.UNIXSocketStream:
        return _unix_stream(sock)

    @classmethod
    async def wrap_udp_socket(cls, sock: socket.socket) -> abc.UDPSocket:
        if not _is_ip(sock):
            return _RawUDPSocket(sock)
        return UDPSocket(shardio_net.UDPSocket(sock))

    @classmethod
    async def wrap_connected_udp_socket(cls, sock: socket.socket) -> abc.ConnectedUDPSocket:
        if not _is_ip(sock):
            return _RawConnectedUDPSocket(sock)
        return ConnectedUDPSocket(shardio_net.UDPSocket(sock))

    @classmethod
    async def wrap_unix_datagram_socket(cls, sock: socket.socket) -> UNIXDatagramSocket:
        return UNIXDatagramSocket(sock)

    @classmethod
    async def wrap_connected_unix_datagram_socket(
        cls, sock: socket.socket
    ) -> ConnectedUNIXDatagramSocket:
        return ConnectedUNIXDatagramSocket(sock)

    @classmethod
    def current_default_thread_limiter(cls) -> CapacityLimiter:
        try:
            return _default_thread_limiter.get()
        except LookupError:
            limiter = CapacityLimiter(original=shardio.to_thread.current_default_thread_limiter())
            _default_thread_limiter.set(limiter)
            return limiter

    @classmethod
    def open_signal_receiver(
        cls, *signals: Signals
    ) -> AbstractContextManager[AsyncIterator[Signals]]:
        return _SignalReceiver(signals)

    @classmethod
    def get_current_task(cls) -> TaskInfo:
        return ShardioTaskInfo(shardio.lowlevel.current_task())

    @classmethod
    def get_running_tasks(cls) -> Sequence[TaskInfo]:
        root = shardio.lowlevel.current_root_task()
        assert root is not None
        infos: list[TaskInfo] = [ShardioTaskInfo(root)]
        nurseries = list(root.child_nurseries)
        while nurseries:
            deeper: list[shardio.Nursery] = []
            for nursery in nurseries:
                for task in nursery.child_tasks:
                    infos.append(ShardioTaskInfo(task))
                    deeper.extend(task.child_nurseries)
            nurseries = deeper
        return infos

    @classmethod
    async def wait_all_tasks_blocked(cls) -> None:
        from shardio.testing import wait_all_tasks_blocked

        await wait_all_tasks_blocked()

    @classmethod
    def create_test_runner(cls, options: dict[str, Any]) -> TestRunner:
        return TestRunner(**options)
