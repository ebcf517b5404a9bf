"""Routing parsed requests to the shards that own their keys, and putting
the replies back in request order.

A batch of pipelined requests from one connection becomes a :class:`Plan`:
for each shard, the list of jobs (:mod:`.jobs`) it must run, in request
order; and for each request, how its reply is assembled from job results.
Each shard runs its list with :func:`.jobs.run_jobs` -- one call per shard,
so a pipeline costs one cross-shard message per owner shard, not one per
request. Because every shard runs its jobs in request order, and requests
that concern every shard (``flush_all``, ``stats``) appear as a job in
every shard's list at their place in the pipeline, the replies are those
of the same requests run one by one against one memcached.

What a job does is elsewhere: the classic commands in :mod:`.commands`,
the meta commands in :mod:`.meta`, the ``stats`` reports in :mod:`.stats`.
Requests that need no shard (``version``, ``verbosity``, errors the parser
found) are answered here.

:class:`LocalEngine` runs plans in-process over any number of caches: the
sans-io adapter used by the tests, the fuzzers and the differential test
against real memcached. The network server (:mod:`.server`) runs the same
plans with cross-shard calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

import attrs

from . import protocol as p
from . import stats
from .commands import line
from .jobs import (
    CountJob,
    FetchJob,
    FlushJob,
    Job,
    JobResult,
    KeyJob,
    KeyRequest,
    LimitJob,
    Partition,
    ResetJob,
    StatsJob,
    run_jobs,
)
from .journal import Journal
from .records import LogReader
from .recovery import Replay, RestoreSummary, restore
from .settings import ENGINE_VERSION, Settings
from .sharding import shard_for_key
from .store import Cache

__all__ = ["Frontend", "LocalEngine", "Plan"]

_ReplyBuilder: TypeAlias = Callable[[Callable[[int, int], JobResult]], bytes]


@attrs.define(eq=False, slots=True)
class Plan:
    """Jobs per shard for a batch of requests, and how to build each reply.

    ``close`` is true when the batch ends the connection (``quit``, or a
    request the parser refused by closing); replies before it are still sent.
    """

    jobs: dict[int, list[Job]] = attrs.field(factory=dict)
    replies: list[_ReplyBuilder] = attrs.field(factory=list)
    close: bool = False

    def add(self, shard: int, job: Job) -> tuple[int, int]:
        """Queue ``job`` on ``shard``; its (shard, index) for the builders."""
        queue = self.jobs.setdefault(shard, [])
        queue.append(job)
        return shard, len(queue) - 1

    def assemble(self, results: dict[int, list[JobResult]]) -> list[bytes]:
        """The replies, in request order, from every shard's job results."""

        def result(shard: int, index: int) -> JobResult:
            return results[shard][index]

        return [build(result) for build in self.replies]


def _single_block(result: JobResult) -> bytes:
    """The reply to a one-key retrieval: its block (if found) and END."""
    assert isinstance(result, list)
    return result[0] + b"END\r\n"


def _constant(reply: bytes) -> _ReplyBuilder:
    return lambda _result: reply


def _bytes_of(result: JobResult) -> bytes:
    assert isinstance(result, bytes)
    return result


def _figures_of(result: JobResult) -> dict[str, int]:
    assert isinstance(result, dict)
    return result


@attrs.define(eq=False, slots=True)
class Frontend:
    """The connection-facing half: turns requests into a :class:`Plan`, and
    answers what needs no shard (``version``, ``verbosity``, errors). One per
    shard in the server, shared by that shard's connections."""

    settings: Settings
    here: int = 0
    started: float = attrs.field(factory=time.time)
    verbosity: int = 0

    def owner(self, key: bytes) -> int:
        """The shard that owns ``key``."""
        return shard_for_key(key, self.settings.shards)

    def plan(self, requests: Sequence[p.Request]) -> Plan:
        """Route ``requests`` (one connection's batch, in order)."""
        plan = Plan()
        for request in requests:
            if plan.close:
                break
            plan.replies.append(self._route(plan, request))
        return plan

    def _route(self, plan: Plan, request: p.Request) -> _ReplyBuilder:
        shards = range(self.settings.shards)
        if isinstance(request, p.Retrieve):
            return self._route_retrieve(plan, request)
        if isinstance(request, KeyRequest):
            ref = plan.add(self.owner(request.key), KeyJob(request))
            return lambda result: _bytes_of(result(*ref))
        if isinstance(request, p.FlushAll):
            for shard in shards:
                plan.add(shard, FlushJob(request.exptime))
            return _constant(line(b"OK", request.noreply))
        if isinstance(request, p.Stats):
            return self._route_stats(plan, request)
        if isinstance(request, p.Version):
            return _constant(line(b"VERSION " + ENGINE_VERSION))
        if isinstance(request, p.Verbosity):
            self.verbosity = min(request.level, 2)
            return _constant(line(b"OK", request.noreply))
        if isinstance(request, p.CacheMemlimit):
            share = request.megabytes * 1024 * 1024 // self.settings.shards
            for shard in shards:
                plan.add(shard, LimitJob(share))
            return _constant(line(b"OK", request.noreply))
        if isinstance(request, p.MetaNoop):
            return _constant(b"MN\r\n")
        if isinstance(request, (p.Quit, p.Close)):
            plan.close = True
            return _constant(b"")
        if request.counts is not None:
            plan.add(self.here, CountJob(request.counts))
        return _constant(line(request.line, request.noreply))

    def _route_retrieve(self, plan: Plan, request: p.Retrieve) -> _ReplyBuilder:
        if len(request.keys) == 1 and not request.key_error:
            # The common case, kept short: one key, one job, one block.
            shard, index = plan.add(
                self.owner(request.keys[0]),
                FetchJob(request.keys, request.with_cas, request.exptime),
            )
            return lambda result: _single_block(result(shard, index))
        by_shard: dict[int, list[bytes]] = {}
        for key in request.keys:
            by_shard.setdefault(self.owner(key), []).append(key)
        refs = {
            shard: plan.add(shard, FetchJob(tuple(keys), request.with_cas, request.exptime))
            for shard, keys in by_shard.items()
        }
        owners = [self.owner(key) for key in request.keys]
        key_error = request.key_error

        def build(result: Callable[[int, int], JobResult]) -> bytes:
            if key_error:
                return line(p.BAD_FORMAT)
            blocks = {shard: iter(result(*ref)) for shard, ref in refs.items()}
            out: list[bytes] = []
            for shard in owners:
                block = next(blocks[shard])
                assert isinstance(block, bytes)
                out.append(block)
            out.append(b"END\r\n")
            return b"".join(out)

        return build

    def _route_stats(self, plan: Plan, request: p.Stats) -> _ReplyBuilder:
        shards = range(self.settings.shards)
        kind = request.args[0] if request.args else b""
        if kind == b"reset":
            for shard in shards:
                plan.add(shard, ResetJob())
            return _constant(b"RESET\r\n")
        reply = stats.without_figures(kind)
        if reply is not None:
            return _constant(reply)
        context = stats.StatsContext(self.settings, self.started, self.verbosity)
        refs = [plan.add(shard, StatsJob(kind)) for shard in shards]
        return lambda result: stats.report(
            kind, context, [_figures_of(result(*ref)) for ref in refs]
        )


@attrs.define(eq=False, slots=True)
class LocalEngine:
    """A whole server in one process, without I/O: feed a connection's bytes,
    get its reply bytes. ``shards`` caches are partitioned as in the server.

    With ``persistent=True`` every shard journals its changes into
    :attr:`logs` (the bytes its log file would hold, as if every write
    had been made durable), and :meth:`restart` rebuilds the caches from
    them, as the server does at start with ``--data-dir``.
    """

    settings: Settings = attrs.field(factory=Settings)
    clock: Callable[[], float] = time.time
    persistent: bool = attrs.field(default=False, kw_only=True)
    partitions: list[Partition] = attrs.field(init=False)
    frontend: Frontend = attrs.field(init=False)
    logs: list[bytearray] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.logs = [bytearray() for _ in range(self.settings.shards)]
        self.partitions = [self._partition() for _ in range(self.settings.shards)]
        for partition in self.partitions:
            self._attach_journal(partition)
        self.frontend = Frontend(self.settings)

    def _partition(self) -> Partition:
        share = self.settings.memory_limit // self.settings.shards
        return Partition(Cache(share, self.settings.evictions, self.clock))

    def _attach_journal(self, partition: Partition) -> None:
        if self.persistent:
            partition.journal = Journal(partition.cache)

    def restart(self) -> list[RestoreSummary]:
        """Replace every shard's cache by one rebuilt from its log (the
        connections' statistics start over too); what each shard restored."""
        assert self.persistent, "restart() needs persistent=True"
        summaries = []
        for shard in range(self.settings.shards):
            self._sync(shard)
            reader = LogReader(max_record=1 << 31)
            replay = Replay()
            for record in reader.feed(self.logs[shard]):
                replay.apply(record)
            partition = self._partition()
            summary = restore(partition.cache, [replay])
            # After restoring, as the server does, and with the items that
            # did not fit deleted (see "Items that do not fit" in .log).
            journal = partition.journal = Journal(partition.cache)
            for key in summary.dropped:
                journal.delete(key)
            summaries.append(summary)
            self.partitions[shard] = partition
        return summaries

    def _sync(self, shard: int) -> None:
        journal = self.partitions[shard].journal
        if journal is not None:
            self.logs[shard] += journal.take()
            journal.durable = journal.appended

    def parser(self) -> p.Parser:
        """A parser for a new connection, with this server's limits."""
        return p.Parser(item_size_max=self.settings.item_size_max)

    def execute(self, requests: Sequence[p.Request]) -> tuple[bytes, bool]:
        """Run a batch; the reply bytes and whether the connection closes."""
        plan = self.frontend.plan(requests)
        results = {
            shard: run_jobs(self.partitions[shard], jobs) for shard, jobs in plan.jobs.items()
        }
        for shard in plan.jobs:
            self._sync(shard)
        return b"".join(plan.assemble(results)), plan.close

    def converse(self, *chunks: bytes) -> bytes:
        """One connection sending ``chunks``; everything the server replies."""
        parser = self.parser()
        out: list[bytes] = []
        for chunk in chunks:
            reply, close = self.execute(parser.feed(chunk))
            out.append(reply)
            if close:
                break
        return b"".join(out)
