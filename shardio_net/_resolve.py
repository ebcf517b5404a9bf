"""Name resolution that never blocks the shard.

``getaddrinfo(3)`` is a blocking C call: it may read files, ask a DNS server
and wait for the answer for seconds. A shard that called it directly would
stop running every other task for that long. So :func:`getaddrinfo` first
asks the C library for a *numeric* answer only (``AI_NUMERICHOST |
AI_NUMERICSERV``), which never touches the network and returns at once; only
a real name goes to a worker thread, whose result comes back to the shard
through :meth:`shardio.lowlevel.Token.run_sync_soon`. The task waiting for it
is parked meanwhile, and the shard keeps running everything else.

A cancelled lookup returns at once; its thread cannot be interrupted, so it
is abandoned: it finishes on its own and its answer is dropped. Each shard
runs at most :data:`MAX_RESOLVER_THREADS` lookup threads at a time (counting
abandoned ones), so a burst of connections to names cannot start a thousand
threads.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar, cast

import outcome

import shardio
from shardio import lowlevel

__all__ = ["MAX_RESOLVER_THREADS", "AddressInfo", "getaddrinfo"]

T = TypeVar("T")

#: One entry of :func:`getaddrinfo`'s answer, as :func:`socket.getaddrinfo`
#: gives it: ``(family, type, proto, canonname, sockaddr)``.
AddressInfo: TypeAlias = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]

#: How many lookup threads one shard runs at once.
MAX_RESOLVER_THREADS = 16

_NUMERIC_ONLY = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV

_resolver_threads: lowlevel.RunVar[shardio.CapacityLimiter] = lowlevel.RunVar(
    "shardio_net resolver threads"
)


async def getaddrinfo(
    host: str | bytes | None,
    port: str | bytes | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[AddressInfo]:
    """Resolve ``host`` and ``port`` as :func:`socket.getaddrinfo` does,
    without blocking the shard. A checkpoint.

    Numeric hosts and ports (``"127.0.0.1"``, ``"::1"``, ``8080``) are
    converted in place; names are looked up in a worker thread while the
    shard runs its other tasks. Errors are those of :func:`socket.getaddrinfo`
    (:class:`socket.gaierror` for an unknown name). If the caller is
    cancelled during a lookup, it raises :class:`~shardio.Cancelled` at once
    and the thread's eventual answer is discarded.
    """
    await lowlevel.checkpoint_if_cancelled()
    try:
        numeric = socket.getaddrinfo(host, port, family, type, proto, flags | _NUMERIC_ONLY)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            raise
    else:
        await lowlevel.cancel_shielded_checkpoint()
        return cast(list[AddressInfo], numeric)
    answer = await _run_in_thread(socket.getaddrinfo, host, port, family, type, proto, flags)
    return cast(list[AddressInfo], answer)


def _limiter() -> shardio.CapacityLimiter:
    try:
        return _resolver_threads.get()
    except LookupError:
        limiter = shardio.CapacityLimiter(MAX_RESOLVER_THREADS)
        _resolver_threads.set(limiter)
        return limiter


async def _run_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` in a new daemon thread and wait for its result.

    Cancellable: the waiting task leaves at once, the thread runs to its end,
    and its result is dropped. The thread's token of the per-shard limiter
    is returned when the thread ends, not when the task leaves.
    """
    limiter = _limiter()
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)
    token = lowlevel.current_token()
    task = lowlevel.current_task()
    waiting = True

    def deliver(result: outcome.Outcome[T]) -> None:
        # Runs in the shard's scheduler thread.
        nonlocal waiting
        limiter.release_on_behalf_of(borrower)
        if waiting:
            waiting = False
            lowlevel.reschedule(task, result)

    def work() -> None:
        result = outcome.capture(fn, *args)
        try:
            token.run_sync_soon(deliver, result)
        except shardio.RunFinishedError:
            pass  # nobody is left to tell

    try:
        threading.Thread(target=work, name=f"shardio_net {fn.__name__}", daemon=True).start()
    except BaseException:
        limiter.release_on_behalf_of(borrower)
        raise

    def abort(_: lowlevel.RaiseCancelT) -> lowlevel.Abort:
        nonlocal waiting
        waiting = False
        return lowlevel.Abort.SUCCEEDED

    return cast(T, await lowlevel.wait_task_rescheduled(abort))
