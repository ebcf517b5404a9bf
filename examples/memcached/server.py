"""The sharded memcached server: connections on every shard, keys owned by one.

Every shard listens on the port (``shardio_net.serve_tcp(..., shards="all")``)
and serves the connections the kernel hands it. Every shard also owns a
slice of the keys (:func:`sharding.shard_for_key`) in its own
:class:`store.Cache` -- an instance of a sharded service, so nothing is
shared and nothing is locked.

A connection's task reads whatever the client sent, parses all of it
(:class:`protocol.Parser`), and turns the batch into a :class:`engine.Plan`:
one list of jobs (:mod:`.jobs`) per owner shard. It hands each other owner
its whole list (the local shard's list runs in place, without a message),
all owners at once, and writes the replies back in request order. A client that
pipelines 100 requests over 4 shards costs at most 3 lists, not 100; and
the lists of all the connections served in one scheduling pass travel to
each owner together, in one cross-shard call (:mod:`.batching`). Each
owner runs its lists in one go, in request order, so requests that touch
every shard (``flush_all``, ``stats``) keep their place in the pipeline on
every shard.

With a data directory (``Settings.data_dir``), each shard also keeps a log
of its keys' changes (:mod:`.log`): the shard's journal records what its
jobs changed, and an owner answers a list of jobs that changed anything
only once those records are durable -- so no client hears ``STORED`` for a
value a crash could lose. A writer task per shard, started here on every
shard as a child of the server's nursery, does the writing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

import shardio
import shardio_net
from shardio import TASK_STATUS_IGNORED, TaskStatus

from .batching import Forwarder
from .datadir import DataDirectory
from .engine import Frontend
from .jobs import Job, JobResult, Partition, run_jobs
from .log import LogOptions, ShardLog, report
from .protocol import Parser
from .settings import Settings
from .store import Cache

__all__ = ["ShardNode", "handle_connection", "serve"]

RECEIVE_SIZE = 65536
TOO_MANY_CONNECTIONS = b"ERROR Too many open connections\r\n"


@attrs.define(eq=False, slots=True)
class ShardNode:
    """One shard's part of the server: its partition (the keys it owns, its
    counters), its log, and the front end its connections use."""

    settings: Settings
    partition: Partition
    frontend: Frontend
    log: ShardLog | None = None
    forwarder: Forwarder = attrs.field(init=False)
    service: shardio.Sharded[ShardNode] | None = None

    def __attrs_post_init__(self) -> None:
        self.forwarder = Forwarder(self._send, counters=self.partition.forwarding)

    @classmethod
    async def create(cls, settings: Settings, previous_shards: int | None = None) -> ShardNode:
        """Build this shard's node (run on the shard itself). With a data
        directory, recover the cache from its logs, which were written by
        ``previous_shards`` shards (None: there are none yet)."""
        share = settings.memory_limit // settings.shards
        cache = Cache(memory_limit=share, evictions=settings.evictions)
        here = shardio.current_shard()
        node = cls(settings, Partition(cache), Frontend(settings, here=here))
        if settings.data_dir is not None:
            options = LogOptions(
                settings.compact_ratio, settings.compact_min_bytes, settings.salvage_damaged_logs
            )
            log, summary = await ShardLog.open(
                Path(settings.data_dir), here, settings.shards, previous_shards, cache, options
            )
            node.log = log
            node.partition.journal = log.journal
            for line in summary.describe(here):
                report(line)
        return node

    async def aclose(self) -> None:
        """Close the log file, if any (the writer has stopped by now)."""
        if self.log is not None:
            await self.log.aclose()

    @property
    def connection_limit(self) -> int:
        """This shard's share of ``-c`` (at least one connection)."""
        return max(1, math.ceil(self.settings.max_connections / self.settings.shards))

    def parser(self) -> Parser:
        """A parser for a new connection, with the server's item size limit."""
        return Parser(item_size_max=self.settings.item_size_max)

    async def run_jobs(self, jobs: list[Job]) -> list[JobResult]:
        """Run this shard's jobs of one batch (on this shard); with a log,
        return once the changes they made are durable."""
        return (await self.run_lists([jobs]))[0]

    async def run_lists(self, lists: list[list[Job]]) -> list[list[JobResult]]:
        """Run lists of jobs one after the other (on this shard); with a
        log, return once the changes they made are durable."""
        log = self.log
        if log is None:
            return _run_lists(self.partition, lists)
        before = log.journal.appended
        results = _run_lists(self.partition, lists)
        if log.journal.appended != before:
            await log.wait_durable(log.journal.appended)
        return results

    async def _send(self, shard: int, lists: list[list[Job]]) -> list[list[JobResult]]:
        """Run lists of jobs on the owner ``shard`` (the forwarder's call)."""
        assert self.service is not None, "the shard's tasks are not running"
        if self.log is None:
            return await shardio.run_on(shard, _run_owned, self.service, lists)
        return await self.service.invoke_on(shard, ShardNode.run_lists, lists)


def _run_lists(partition: Partition, lists: list[list[Job]]) -> list[list[JobResult]]:
    return [run_jobs(partition, jobs) for jobs in lists]


def _run_owned(
    service: shardio.Sharded[ShardNode], lists: list[list[Job]]
) -> list[list[JobResult]]:
    """Lists of jobs for this shard, when there is no log to wait for.

    A synchronous function: the owner shard runs it as the message arrives,
    without starting a task for it -- the cheapest cross-shard call."""
    return _run_lists(service.local().partition, lists)


async def _shard_tasks(
    service: shardio.Sharded[ShardNode], *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED
) -> None:
    """This shard's own tasks, for as long as the server runs (a child of
    the server's nursery, on this shard): the batches it forwards to other
    shards, and its log writer."""
    node = service.local()
    async with shardio.open_nursery() as nursery:
        node.service = service
        node.forwarder.nursery = nursery
        if node.log is not None:
            nursery.start_soon(node.log.run)
        task_status.started()
        await shardio.sleep_forever()


async def _execute(node: ShardNode, jobs: dict[int, list[Job]]) -> dict[int, list[JobResult]]:
    """Every owner's jobs, all owners at once; this shard's run in place."""
    here = node.frontend.here
    forwarded = [
        (shard, *node.forwarder.submit(shard, owned))
        for shard, owned in jobs.items()
        if shard != here
    ]
    results: dict[int, list[JobResult]] = {}
    for shard, batch, index in forwarded:
        results[shard] = await batch.result(index)
    if here in jobs:
        # After the remote jobs, so that a batch's effects on this shard
        # follow those it waited for, as on the other shards.
        results[here] = await node.run_jobs(jobs[here])
    return results


async def handle_connection(
    service: shardio.Sharded[ShardNode], stream: shardio_net.SocketStream
) -> None:
    """Serve one client connection until it closes, quits or misbehaves."""
    node = service.local()
    counters = node.partition.connections
    if counters["curr_connections"] >= node.connection_limit:
        counters["rejected_connections"] += 1
        await stream.send_all(TOO_MANY_CONNECTIONS)
        return
    counters["curr_connections"] += 1
    counters["total_connections"] += 1
    parser = node.parser()
    # One receive buffer per connection, reused: no allocation per read.
    buffer = bytearray(RECEIVE_SIZE)
    view = memoryview(buffer)
    try:
        while not parser.closed:
            received = await stream.receive_into(buffer)
            if not received:
                return
            counters["bytes_read"] += received
            requests = parser.feed(view[:received])
            if not requests:
                continue
            plan = node.frontend.plan(requests)
            results = await _execute(node, plan.jobs)
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
    ``nursery.start``, returns the bound (host, port) addresses -- after
    every shard has recovered its data, if there is a data directory."""
    directory = None
    if settings.data_dir is not None:
        directory = DataDirectory.open(settings.data_dir, settings.shards)
    try:
        previous = None if directory is None else directory.previous
        # (mypy cannot solve ``T | Awaitable[T]`` from an async function alone.)
        factory: Callable[..., ShardNode | Awaitable[ShardNode]] = ShardNode.create
        async with shardio.sharded(factory, settings, previous) as service:
            handler = functools.partial(handle_connection, service)
            async with shardio.open_nursery() as nursery:
                if directory is not None:
                    await directory.commit()
                for shard in range(settings.shards):
                    await nursery.start(_shard_tasks, service, shard=shard)
                addresses = await nursery.start(
                    functools.partial(
                        shardio_net.serve_tcp, handler, settings.port, host=host, shards="all"
                    )
                )
                task_status.started([(address[0], address[1]) for address in addresses])
    finally:
        if directory is not None:
            directory.close()
