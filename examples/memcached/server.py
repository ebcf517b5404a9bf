"""The sharded memcached server: connections on every shard, keys owned by one.

Every shard listens on the port (``shardio_net.serve_tcp(..., shards="all")``)
and serves the connections the kernel hands it. Every shard also owns a
slice of the keys (:func:`sharding.shard_for_key`) in its own
:class:`store.Cache` -- an instance of a sharded service, so nothing is
shared and nothing is locked.

A connection's task reads whatever the client sent, parses all of it
(:class:`protocol.Parser`), and turns the batch into a :class:`engine.Plan`:
one list of jobs per owner shard. It then sends each owner its whole list in
one cross-shard call (the local shard's list runs in place, without a
message), all owners at once, and writes the replies back in request order.
A client that pipelines 100 requests over 4 shards costs at most 3 messages,
not 100. Each owner runs its list in one go, in request order, so requests
that touch every shard (``flush_all``, ``stats``) keep their place in the
pipeline on every shard.
"""

from __future__ import annotations

import functools
import math

import attrs

import shardio
import shardio_net
from shardio import TASK_STATUS_IGNORED, TaskStatus

from .engine import Frontend, Job, JobResult, Settings, ShardState, run_jobs
from .protocol import Parser
from .store import Cache

__all__ = ["ShardNode", "handle_connection", "serve"]

RECEIVE_SIZE = 65536
TOO_MANY_CONNECTIONS = b"ERROR Too many open connections\r\n"


@attrs.define(eq=False, slots=True)
class ShardNode:
    """One shard's part of the server: the keys it owns, its connection
    counters, and the front end its connections use."""

    settings: Settings
    state: ShardState
    frontend: Frontend

    @classmethod
    def create(cls, settings: Settings) -> ShardNode:
        """Build this shard's node (run on the shard itself)."""
        share = settings.memory_limit // settings.shards
        cache = Cache(memory_limit=share, evictions=settings.evictions)
        here = shardio.current_shard()
        return cls(settings, ShardState(cache), Frontend(settings, here=here))

    @property
    def connection_limit(self) -> int:
        """This shard's share of ``-c`` (at least one connection)."""
        return max(1, math.ceil(self.settings.max_connections / self.settings.shards))

    def parser(self) -> Parser:
        """A parser for a new connection, with the server's item size limit."""
        return Parser(item_size_max=self.settings.item_size_max)


def _run(node: ShardNode, jobs: list[Job]) -> list[JobResult]:
    """Run on an owner shard: its jobs from one batch."""
    return run_jobs(node.state, jobs)


async def _execute(
    service: shardio.Sharded[ShardNode], node: ShardNode, jobs: dict[int, list[Job]]
) -> dict[int, list[JobResult]]:
    """Every owner's jobs, all owners at once; this shard's run in place."""
    here = node.frontend.here
    results: dict[int, list[JobResult]] = {}
    remote = [shard for shard in jobs if shard != here]
    if len(remote) == 1:
        results[remote[0]] = await service.invoke_on(remote[0], _run, jobs[remote[0]])
    elif remote:

        async def call(shard: int) -> None:
            results[shard] = await service.invoke_on(shard, _run, jobs[shard])

        async with shardio.open_nursery() as nursery:
            for shard in remote:
                nursery.start_soon(call, shard)
    if here in jobs:
        # After the remote calls, so that a batch's effects on this shard
        # follow those it waited for, as on the other shards.
        results[here] = run_jobs(node.state, jobs[here])
    return results


async def handle_connection(
    service: shardio.Sharded[ShardNode], stream: shardio_net.SocketStream
) -> None:
    """Serve one client connection until it closes, quits or misbehaves."""
    node = service.local()
    counters = node.state.connections
    if counters["curr_connections"] >= node.connection_limit:
        counters["rejected_connections"] += 1
        await stream.send_all(TOO_MANY_CONNECTIONS)
        return
    counters["curr_connections"] += 1
    counters["total_connections"] += 1
    parser = node.parser()
    try:
        while not parser.closed:
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return
            counters["bytes_read"] += len(data)
            requests = parser.feed(data)
            if not requests:
                continue
            plan = node.frontend.plan(requests)
            results = await _execute(service, node, plan.jobs)
            reply = b"".join(plan.assemble(results))
            if reply:
                counters["bytes_written"] += len(reply)
                await stream.send_all(reply)
            if plan.close:
                return
    finally:
        counters["curr_connections"] -= 1


async def serve(
    settings: Settings,
    host: str | None = None,
    *,
    task_status: TaskStatus[list[tuple[str, int]]] = TASK_STATUS_IGNORED,
) -> None:
    """Serve memcached on every shard until cancelled. With
    ``nursery.start``, returns the bound (host, port) addresses."""
    async with shardio.sharded(ShardNode.create, settings) as service:
        handler = functools.partial(handle_connection, service)
        async with shardio.open_nursery() as nursery:
            addresses = await nursery.start(
                functools.partial(
                    shardio_net.serve_tcp, handler, settings.port, host=host, shards="all"
                )
            )
            task_status.started([(address[0], address[1]) for address in addresses])
