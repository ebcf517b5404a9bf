"""Least-connections balancing: one shard accepts, the least busy shard serves.

Why
---
With ``SO_REUSEPORT`` (``serve_tcp``'s default) the kernel picks the
listening socket, and so the shard, by a hash of each connection's
addresses. Over many short connections that is even, and it costs nothing:
no shard ever touches another's connections. But the hash knows nothing of
load. A few long-lived connections (database clients, websockets, a proxy
upstream) can land on the same shard while others sit idle, and stay
there. Seastar's posix stack therefore also offers *connection
distribution*: one core accepts, and gives each new connection to the core
with the fewest. This module is that mode, ``balance="least-connections"``.

How
---
The shard that calls ``serve_tcp`` -- the *acceptor* -- owns the listening
sockets (no ``SO_REUSEPORT``: it is the only one) and keeps the balance: one
count of open connections per target shard, in target order ("slots").
For each connection it accepts:

1. It picks the slot with the lowest count. Ties are broken round-robin,
   by a cursor that moves past each pick: short connections that close
   before the next arrives leave every count at 0, and without the cursor
   they would all go to the first shard.
2. It raises that count at once, before the hand-over, so the next pick
   already sees it. The counts are the acceptor's own bookkeeping, exact
   about what it has handed out and late only about what has closed.
3. If the slot is the acceptor's own shard, the handler starts here. If
   not, :func:`shardio.lowlevel.send_fd` duplicates the socket's file
   descriptor into the target shard's process (``SCM_RIGHTS``), the acceptor
   closes its own copy -- one of two descriptors of a socket closing does
   nothing to the connection -- and sends the fd's id over a cross-shard
   channel to that shard's *worker*.
4. The worker, a task on the target shard, takes the fd with
   :func:`shardio.lowlevel.receive_fd` (which waits if the id outran the
   fd), wraps it in a :class:`SocketStream` and starts the handler.
5. When a handler ends, its slot number goes back over one shared "done"
   channel to a *tally* task on the acceptor, which lowers the count.
   Local handlers lower it directly.

Costs and limits: a handed-over connection costs a ``sendmsg`` with the
descriptor, a ``recvmsg``, and two channel messages, and one shard accepts
for all, so its accept rate caps the whole service: this mode suits
long-lived connections, reuseport short ones. The dispatch channels are
bounded: a target that falls behind makes the acceptor wait, the listen
backlog fills, and the kernel pushes back on new clients.

Lifetime: the accept loops, the tally task and the workers are all
children of ``serve_tcp``'s nursery (the workers on their own shards), so
cancelling ``serve_tcp`` stops everything, handlers included. A "done"
that can no longer reach the acceptor is dropped: by then nobody needs the
count. A descriptor that reached a shard whose worker was already gone
stays open until the run ends, when the runtime closes it.
"""

from __future__ import annotations

import functools
import os
import socket
from contextlib import suppress
from typing import NoReturn

import attrs

import shardio
from shardio import TaskStatus, lowlevel

from ._serve import Handler, accept_loop, run_handler
from ._socket_listener import accept_socket
from ._socket_stream import SocketStream
from ._tcp_listeners import BoundAddress, open_tcp_listeners

__all__ = ["balanced_worker", "serve_least_connections"]

FdId = tuple[int, int]

# Connections handed to a shard and not yet taken by its worker.
_DISPATCH_BUFFER = 64
# End-of-connection reports not yet counted by the acceptor.
_DONE_BUFFER = 256


@attrs.define(eq=False, slots=True)
class _Balance:
    """Open connections per slot, and the round-robin cursor for ties."""

    counts: list[int]
    _cursor: int = 0

    def pick(self) -> int:
        """The slot for a new connection; counts it as open."""
        counts = self.counts
        size = len(counts)
        best = self._cursor
        for step in range(1, size):
            slot = (self._cursor + step) % size
            if counts[slot] < counts[best]:
                best = slot
        self._cursor = (best + 1) % size
        counts[best] += 1
        return best

    def closed(self, slot: int) -> None:
        """A connection of ``slot`` has ended."""
        self.counts[slot] -= 1


async def serve_least_connections(
    handler: Handler[SocketStream],
    port: int,
    host: str | bytes | None,
    backlog: int | None,
    targets: list[int],
    handler_nursery: shardio.Nursery | None,
    task_status: TaskStatus[list[BoundAddress]],
) -> NoReturn:
    """``serve_tcp(..., balance="least-connections")``: accept here, serve
    each connection on the target shard with the fewest open ones."""
    here = shardio.current_shard()
    listeners = await open_tcp_listeners(port, host=host, backlog=backlog, reuse_port=False)
    balance = _Balance([0] * len(targets))
    try:
        async with shardio.open_nursery() as nursery:
            local = nursery if handler_nursery is None else handler_nursery
            done_send, done_receive = shardio.open_channel(_DONE_BUFFER)
            workers: list[shardio.ShardSendChannel[FdId] | None] = []
            with done_send:
                for slot, shard in enumerate(targets):
                    if shard == here:
                        workers.append(None)
                        continue
                    fd_ids, worker_fd_ids = shardio.open_channel(_DISPATCH_BUFFER)
                    nursery.start_soon(
                        balanced_worker,
                        handler,
                        worker_fd_ids,
                        done_send.clone(),
                        slot,
                        shard=shard,
                    )
                    workers.append(fd_ids)
            nursery.start_soon(_tally, done_receive, balance)

            async def run_local(stream: SocketStream, slot: int) -> None:
                try:
                    await run_handler(handler, stream)
                finally:
                    balance.closed(slot)

            async def dispatch(sock: socket.socket) -> None:
                slot = balance.pick()
                worker = workers[slot]
                if worker is None:
                    local.start_soon(run_local, SocketStream(sock), slot)
                    return
                try:
                    try:
                        fd_id = await lowlevel.send_fd(targets[slot], sock.fileno())
                    finally:
                        sock.close()
                    await worker.send(fd_id)
                except BaseException:
                    balance.closed(slot)
                    raise

            for listener in listeners:
                nursery.start_soon(
                    accept_loop, functools.partial(accept_socket, listener), dispatch
                )
            task_status.started([listener.socket.getsockname() for listener in listeners])
    finally:
        for listener in listeners:
            await shardio.aclose_forcefully(listener)
    raise AssertionError("the accept loops end only by raising")


async def _tally(done: shardio.ShardReceiveChannel[int], balance: _Balance) -> None:
    async with done:
        async for slot in done:
            balance.closed(slot)


async def balanced_worker(
    handler: Handler[SocketStream],
    fd_ids: shardio.ShardReceiveChannel[FdId],
    done: shardio.ShardSendChannel[int],
    slot: int,
) -> None:
    """On a target shard: serve each connection handed over through
    ``fd_ids``, and report its end on ``done`` as ``slot``."""
    async with fd_ids, done, shardio.open_nursery() as nursery:
        async for fd_id in fd_ids:
            fd = await lowlevel.receive_fd(fd_id)
            try:
                sock = socket.socket(fileno=fd)
            except BaseException:
                os.close(fd)
                raise
            nursery.start_soon(_serve_handed_over, handler, SocketStream(sock), done, slot)


async def _serve_handed_over(
    handler: Handler[SocketStream],
    stream: SocketStream,
    done: shardio.ShardSendChannel[int],
    slot: int,
) -> None:
    try:
        await run_handler(handler, stream)
    finally:
        with suppress(shardio.BrokenResourceError, shardio.ClosedResourceError):
            await done.send(slot)
