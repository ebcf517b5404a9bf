"""Under load: ten thousand connections open at once on one shard."""

from __future__ import annotations

import functools
import resource

import pytest

import shardio
import shardio_net
from shardio import lowlevel
from shardio.testing import wait_all_tasks_blocked
from shardio_net import SocketStream

from ._pairs import open_fds

CONNECTIONS = 10_000
BATCH = 1000  # connect in batches, so the listen backlog never overflows


def raise_fd_limit(needed: int) -> bool:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit if below
    ``needed``; whether ``needed`` descriptors are now allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft == resource.RLIM_INFINITY or soft >= needed


async def hold_connections(port: int, count: int) -> int:
    """On the client shard: open ``count`` connections, all open at once,
    each checked with one echoed byte; then close them all."""
    streams: list[SocketStream] = []

    async def connect_one() -> None:
        stream = await shardio_net.open_tcp_stream("127.0.0.1", port)
        streams.append(stream)
        await stream.send_all(b"!")
        assert await stream.receive_some() == b"!"

    for _ in range(0, count, BATCH):
        async with shardio.open_nursery() as nursery:
            for _ in range(BATCH):
                nursery.start_soon(connect_one)
    opened = len(streams)
    for stream in streams:
        await stream.aclose()
    return opened


@pytest.mark.shardio(shards=2)
async def test_ten_thousand_concurrent_connections_on_one_shard() -> None:
    needed = CONNECTIONS + 500
    if not (raise_fd_limit(needed) and await shardio.run_on(1, raise_fd_limit, needed)):
        pytest.skip(f"the hard limit on open files is below {needed}")
    open_now = 0
    peak = 0

    async def echo_then_wait(stream: SocketStream) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            await stream.send_all(await stream.receive_some())
            assert await stream.receive_some() == b""
        finally:
            open_now -= 1

    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(shardio_net.serve_tcp, echo_then_wait, 0, host="127.0.0.1")
        )
        fds, tasks = open_fds(), lowlevel.current_statistics().tasks_living
        opened = await shardio.run_on(1, hold_connections, address[1], CONNECTIONS)
        while open_now:
            await shardio.sleep(0.01)
        await wait_all_tasks_blocked(0.01)
        assert (opened, peak) == (CONNECTIONS, CONNECTIONS)
        assert open_fds() == fds
        assert lowlevel.current_statistics().tasks_living == tasks
        nursery.cancel_scope.cancel()
