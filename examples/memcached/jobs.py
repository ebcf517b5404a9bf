"""What a shard runs for the requests the routing sent it: jobs, on its partition.

Every shard owns a :class:`Partition` of the server: the cache of the keys
it owns (and, when the server persists its data, their journal), and its
own counters. The routing (:mod:`.engine`) turns each request into
:data:`Job` objects for the shards it concerns -- a one-key request into
one :class:`KeyJob` for the key's owner, a retrieval into a
:class:`FetchJob` per owner of some of its keys, ``flush_all``, ``stats``
and ``cache_memlimit`` into a job on every shard -- and each shard runs its
list with :func:`run_jobs`, in request order. A job's result is the bytes
of its part of the reply (or a shard's figures, for ``stats``); the
routing puts the parts together.

Jobs travel to other shards by pickle, so the ones made for nearly every
request are built and pickled the cheapest way (see :class:`KeyJob`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import attrs

from . import commands, meta
from . import protocol as p
from .journal import Journal
from .store import Cache

__all__ = [
    "CountJob",
    "FetchJob",
    "FlushJob",
    "Job",
    "JobResult",
    "KeyJob",
    "KeyRequest",
    "LimitJob",
    "Partition",
    "ResetJob",
    "StatsJob",
    "run_jobs",
]

KeyRequest: TypeAlias = (
    p.Store
    | p.StoreTooLarge
    | p.Delete
    | p.Arithmetic
    | p.Touch
    | p.MetaGet
    | p.MetaSet
    | p.MetaDelete
    | p.MetaArithmetic
    | p.MetaDebug
)
"""The requests about one key, run where the key lives."""


# KeyJob and FetchJob are made for nearly every request: plain slotted classes
# are built three times faster than frozen ones (hot path). Treat them as
# immutable all the same.
@attrs.define(slots=True)
class KeyJob:
    """A request about one key, run where the key lives; returns its reply."""

    request: KeyRequest

    def __reduce__(self) -> tuple[type[KeyJob], tuple[object, ...]]:
        # Sent to other shards on the hot path: by constructor arguments,
        # about twice as fast as attrs' default (state) pickling.
        return KeyJob, (self.request,)


@attrs.define(slots=True)  # not frozen: see KeyJob
class FetchJob:
    """Some keys of a retrieval; returns one VALUE block (or b"") per key."""

    keys: tuple[bytes, ...]
    with_cas: bool
    exptime: int | None

    def __reduce__(self) -> tuple[type[FetchJob], tuple[object, ...]]:
        return FetchJob, (self.keys, self.with_cas, self.exptime)  # hot path: see KeyJob


@attrs.frozen
class FlushJob:
    """``flush_all`` on this shard."""

    exptime: int


@attrs.frozen
class StatsJob:
    """This shard's figures for ``stats``; ``kind`` is the subcommand."""

    kind: bytes


@attrs.frozen
class ResetJob:
    """``stats reset`` on this shard."""


@attrs.frozen
class LimitJob:
    """``cache_memlimit`` on this shard: its new share in bytes."""

    limit: int


@attrs.frozen
class CountJob:
    """Bump a counter (an error memcached still counts)."""

    counter: str


Job: TypeAlias = KeyJob | FetchJob | FlushJob | StatsJob | ResetJob | LimitJob | CountJob
JobResult: TypeAlias = bytes | list[bytes] | dict[str, int]


@attrs.define(eq=False, slots=True)
class Partition:
    """One shard's part of the server, which its jobs run on: the cache of
    the keys it owns, the counters of its connections and of the batches it
    forwards to other shards, and, when the server persists its data, the
    journal of the cache's changes."""

    cache: Cache
    journal: Journal | None = attrs.field(default=None, kw_only=True)
    connections: dict[str, int] = attrs.field(
        factory=lambda: {
            "curr_connections": 0,
            "total_connections": 0,
            "rejected_connections": 0,
            "bytes_read": 0,
            "bytes_written": 0,
        }
    )
    forwarding: dict[str, int] = attrs.field(
        factory=lambda: {"forward_calls": 0, "forward_lists": 0}
    )

    def figures(self, kind: bytes) -> dict[str, int]:
        """This shard's figures for ``stats <kind>`` (see :mod:`.stats`)."""
        figures = self.cache.statistics()
        figures.update(self.connections)
        figures.update(self.forwarding)
        if self.journal is not None:
            figures.update(self.journal.statistics())
        if kind == b"items":
            figures["oldest_item_age"] = self.cache.oldest_item_age()
        return figures


def _execute(cache: Cache, request: KeyRequest) -> bytes:
    """The reply to a one-key request, run on the shard owning the key."""
    if isinstance(request, p.Store):
        return commands.store(cache, request)
    if isinstance(request, p.StoreTooLarge):
        return commands.too_large(cache, request)
    if isinstance(request, p.Delete):
        return commands.delete(cache, request)
    if isinstance(request, p.Arithmetic):
        return commands.arithmetic(cache, request)
    if isinstance(request, p.Touch):
        return commands.touch(cache, request)
    if isinstance(request, p.MetaGet):
        return meta.mg(cache, request)
    if isinstance(request, p.MetaSet):
        return meta.ms(cache, request)
    if isinstance(request, p.MetaDelete):
        return meta.md(cache, request)
    if isinstance(request, p.MetaArithmetic):
        return meta.ma(cache, request)
    return meta.me(cache, request)


def run_jobs(partition: Partition, jobs: Sequence[Job]) -> list[JobResult]:
    """Run ``jobs`` in order on this shard's partition; their results, in order.

    With a journal, every change the jobs make to the cache is appended to
    it, in the order the changes happen (see :mod:`.journal`)."""
    cache = partition.cache
    journal = partition.journal
    results: list[JobResult] = []
    for job in jobs:
        if isinstance(job, KeyJob):
            if journal is None:
                results.append(_execute(cache, job.request))
            else:
                key = job.request.key
                before = journal.observe(key)
                results.append(_execute(cache, job.request))
                journal.record_change(key, before)
        elif isinstance(job, FetchJob):
            if journal is None or job.exptime is None:
                results.append(commands.fetch(cache, job.keys, job.with_cas, job.exptime))
            else:
                # gat/gats set the exptime of every key they find.
                seen = [journal.observe(key) for key in job.keys]
                results.append(commands.fetch(cache, job.keys, job.with_cas, job.exptime))
                for key, before in zip(job.keys, seen, strict=True):
                    journal.record_change(key, before)
        elif isinstance(job, FlushJob):
            cache.flush_all(job.exptime)
            if journal is not None:
                journal.flush()
            results.append(b"")
        elif isinstance(job, StatsJob):
            results.append(partition.figures(job.kind))
        elif isinstance(job, ResetJob):
            cache.reset_statistics()
            results.append(b"")
        elif isinstance(job, LimitJob):
            cache.set_memory_limit(job.limit)
            results.append(b"")
        else:
            cache.counters[job.counter] += 1
            results.append(b"")
    return results
