"""Serving connections: accept loops and handler tasks.

:func:`serve_listeners` runs one accept loop per listener and one task per
connection, running the handler; :func:`run_handler` is that task. Serving
TCP on several shards is built on them in :mod:`shardio_net._serve_tcp`.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, TypeAlias, TypeVar

import shardio
from shardio import TASK_STATUS_IGNORED, TaskStatus
from shardio.abc import AsyncResource, Listener

__all__ = ["Handler", "accept_loop", "run_handler", "serve_listeners"]

T = TypeVar("T")
StreamT = TypeVar("StreamT", bound=AsyncResource)
#: A connection handler: an async function called with each new stream.
Handler: TypeAlias = Callable[[StreamT], Awaitable[object]]

#: Handler errors, and accept errors that serving rides out, are logged here.
LOGGER = logging.getLogger("shardio_net.serve")

# accept() errors that mean "out of a resource for now": log, pause, go on.
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_CAPACITY_PAUSE = 0.1


async def run_handler(handler: Handler[StreamT], stream: StreamT) -> None:
    """Run ``handler(stream)``, then close the stream, whatever happened.

    An exception from the handler is logged (``shardio_net.serve``, level
    ERROR, with its traceback) and ends only this connection; cancellation
    passes through.
    """
    try:
        await handler(stream)
    except Exception:
        LOGGER.exception("connection handler %r failed on %r", handler, stream)
    finally:
        await shardio.aclose_forcefully(stream)


async def accept_loop(
    accept: Callable[[], Awaitable[T]], dispatch: Callable[[T], Awaitable[object]]
) -> NoReturn:
    """Call ``accept()`` forever, passing each connection to ``dispatch``.

    Errors that mean the system is out of a resource (``EMFILE``,
    ``ENFILE``, ``ENOMEM``, ``ENOBUFS``) are logged and retried after a
    pause; any other error ends the loop.
    """
    while True:
        try:
            connection = await accept()
        except OSError as exc:
            if exc.errno not in _CAPACITY_ERRNOS:
                raise
            LOGGER.error(
                "accept failed with %s (%s); retrying in %s s",
                errno.errorcode[exc.errno],
                os.strerror(exc.errno),
                _CAPACITY_PAUSE,
                exc_info=True,
            )
            await shardio.sleep(_CAPACITY_PAUSE)
        else:
            await dispatch(connection)


async def _serve_one(
    listener: Listener[StreamT], dispatch: Callable[[StreamT], Awaitable[object]]
) -> NoReturn:
    async with listener:
        await accept_loop(listener.accept, dispatch)


async def serve_listeners(
    handler: Handler[StreamT],
    listeners: Sequence[Listener[StreamT]],
    *,
    handler_nursery: shardio.Nursery | None = None,
    task_status: TaskStatus[Sequence[Listener[StreamT]]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Accept connections on every listener, running ``handler(stream)`` in a
    new task for each; return only by being cancelled (or by an error of a
    listener).

    The function owns ``listeners`` and closes them when it ends; each
    stream is closed when its handler returns (forcefully: the handler had
    its chance to say goodbye). **shardio differs** from Trio: an exception
    from a handler is logged on the ``shardio_net.serve`` logger and closes
    only that connection, instead of stopping the server. ``accept`` errors
    that mean the system is short of a resource (out of file descriptors or
    memory) are logged and retried after 100 ms.

    ``handler_nursery`` is where the handler tasks run (default: a nursery of
    this call). With ``nursery.start``, returns ``listeners`` once they are
    being served.
    """
    if not listeners:
        raise ValueError("serve_listeners needs at least one listener")
    async with shardio.open_nursery() as nursery:
        handlers = nursery if handler_nursery is None else handler_nursery

        async def start(stream: StreamT) -> None:
            handlers.start_soon(run_handler, handler, stream)

        for listener in listeners:
            nursery.start_soon(_serve_one, listener, start)
        task_status.started(listeners)
    raise AssertionError("accept loops end only by raising")
