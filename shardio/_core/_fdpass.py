"""Passing file descriptors between shards.

A file descriptor is a number private to a process, so it cannot travel in a
message like other data. The kernel can duplicate one into another process
over a Unix socket (``SCM_RIGHTS``), and only over a socket both processes
already hold. So before the shards are forked, ``shardio.run`` makes one
``SOCK_SEQPACKET`` socket pair per shard: shard *k* reads from its end, any
shard writes to the other end to reach *k*. (Several writers share that end
safely: a seqpacket message, fd included, arrives whole or not at all.)

``fd_id = await send_fd(shard, fd)`` duplicates ``fd`` into shard ``shard``
and returns an id; the sender still owns its own fd (close it if it is done
with it). The id travels to the other shard in an ordinary message -- a
``run_on`` argument, a channel value -- where ``await receive_fd(fd_id)``
returns the duplicate, waiting for it if the id outran the fd. That shard
then owns it. Seastar's posix stack uses the same move for balancing
connections between cores; ``shardio_net`` uses it to hand an accepted
connection to the least busy shard.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from typing import TYPE_CHECKING

from ._io_epoll import wait_writable
from ._parking_lot import ParkingLot
from ._run import checkpoint_if_cancelled
from ._state import current_runner
from ._traps import cancel_shielded_checkpoint

if TYPE_CHECKING:
    from ._shards import ShardState

_HEADER = struct.Struct("=iq")  # sending shard, sequence number
FdId = tuple[int, int]


class FdPassing:
    """The sockets of a run, made before the fork; one per-shard view after."""

    def __init__(self, nshards: int) -> None:
        self.receive_ends: list[socket.socket] = []
        self.send_ends: list[socket.socket] = []
        for _ in range(nshards):
            receive_end, send_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            receive_end.setblocking(False)
            send_end.setblocking(False)
            self.receive_ends.append(receive_end)
            self.send_ends.append(send_end)
        # This shard's view, set by attach().
        self.shard = -1
        self.arrived: dict[FdId, int] = {}
        self.waiting = ParkingLot()
        self._ids = itertools.count()

    def attach(self, shard: int) -> None:
        """In shard ``shard``: watch its receive end."""
        self.shard = shard
        current_runner().io_manager.add_wakeup_fd(self.receive_ends[shard].fileno(), self.drain)

    def drain(self) -> None:
        sock = self.receive_ends[self.shard]
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(sock, _HEADER.size, 1)
            except BlockingIOError:
                break
            if not fds:
                continue
            src, seq = _HEADER.unpack(data)
            self.arrived[src, seq] = fds[0]
        if self.waiting:
            self.waiting.unpark_all()

    def close(self) -> None:
        for fd in self.arrived.values():
            os.close(fd)
        self.arrived.clear()
        for sock in self.receive_ends + self.send_ends:
            sock.close()


def _passing() -> tuple[ShardState, FdPassing | None]:
    state = current_runner().shard_state
    assert state is not None  # shardio.run always gives a run its ShardState
    return state, state.fd_passing


async def send_fd(shard: int, fd: int) -> FdId:
    """Duplicate ``fd`` into shard ``shard``; return the id to claim it there
    with :func:`receive_fd`. The caller keeps (and must close) its own fd.
    A checkpoint; if cancelled, nothing was sent."""
    await checkpoint_if_cancelled()
    state, passing = _passing()
    if not 0 <= shard < state.count:
        raise ValueError(f"shard must be in range({state.count}), not {shard!r}")
    if shard in state.dead:
        raise state.crashed(shard)
    if passing is None or shard == state.index:
        fd_id = (state.index, next(state.local_fd_ids))
        state.local_fds[fd_id] = os.dup(fd)
        await cancel_shielded_checkpoint()
        return fd_id
    fd_id = (state.index, next(passing._ids))
    sock = passing.send_ends[shard]
    while True:
        try:
            socket.send_fds(sock, [_HEADER.pack(*fd_id)], [fd])
        except BlockingIOError:
            await wait_writable(sock)
        else:
            await cancel_shielded_checkpoint()
            return fd_id


async def receive_fd(fd_id: FdId) -> int:
    """The fd that :func:`send_fd` sent to this shard under ``fd_id``; this
    shard owns it from now on. Waits if it has not arrived yet. A checkpoint;
    if cancelled, the fd stays waiting for another call (and is closed when
    the run ends, if nobody takes it)."""
    await checkpoint_if_cancelled()
    state, passing = _passing()
    fd = state.local_fds.pop(fd_id, None)
    if fd is not None:
        await cancel_shielded_checkpoint()
        return fd
    if passing is None:
        raise KeyError(f"no file descriptor was sent to this shard under {fd_id!r}")
    while True:
        fd = passing.arrived.pop(fd_id, None)
        if fd is not None:
            await cancel_shielded_checkpoint()
            return fd
        if fd_id[0] in state.dead:
            raise state.crashed(fd_id[0])
        await passing.waiting.park()
