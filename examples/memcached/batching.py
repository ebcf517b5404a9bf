"""Per-owner batching: the jobs a shard's connections send to one owner
shard during one scheduling pass travel together, in one cross-shard call.

A cross-shard call has a fixed cost -- pickling, a message each way, the
bookkeeping of a call on both sides -- that dwarfs the work of a ``get``.
Under load many connections of a shard are served in each scheduling pass
(the poller hands them over together), and about ``(N - 1) / N`` of their
requests belong to other shards. So rather than one call per request, a
:class:`Forwarder` gathers them: the first connection that has jobs for
shard ``k`` in a pass opens a :class:`Batch` for ``k`` and starts a task to
send it; that task runs in the next pass, after every connection of this
pass has had its turn and added its jobs; it closes the batch, makes one
call with all of them, and hands each connection its results. Jobs that
come while a batch is on its way open the next one, so several batches to
one owner can be in flight, and no connection waits for another's reply.

Each connection's jobs stay in order, and its reply waits for all of them,
so what a client sees does not change; the owner runs a batch's lists one
after another, as it would have run the separate calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

import shardio

from .jobs import Job, JobResult

__all__ = ["Batch", "Forwarder"]

Send = Callable[[int, list[list[Job]]], Awaitable[list[list[JobResult]]]]
"""Runs lists of jobs on an owner shard: ``send(shard, lists) -> results``."""


@attrs.define(eq=False, slots=True)
class Batch:
    """The job lists bound for one owner, one per connection, and then
    their results (or the error that stopped them)."""

    lists: list[list[Job]] = attrs.field(factory=list)
    done: shardio.Event = attrs.field(factory=shardio.Event)
    results: list[list[JobResult]] = attrs.field(factory=list)
    error: BaseException | None = None

    async def result(self, index: int) -> list[JobResult]:
        """The results of the ``index``-th list, once the owner has run it."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.results[index]


@attrs.define(eq=False, slots=True)
class Forwarder:
    """One shard's outgoing batches, one open batch per owner at most.

    ``send`` makes the cross-shard call; the tasks that make it run in
    ``nursery`` (the shard's own nursery, set once it is running).
    ``counters`` counts the calls made and the lists they carried (the
    server shows them in ``stats shards``).
    """

    send: Send
    nursery: shardio.Nursery | None = None
    _open: dict[int, Batch] = attrs.field(factory=dict)
    counters: dict[str, int] = attrs.field(factory=lambda: {"forward_calls": 0, "forward_lists": 0})

    def submit(self, shard: int, jobs: list[Job]) -> tuple[Batch, int]:
        """Add a connection's ``jobs`` for ``shard`` to the open batch (or a
        new one); the batch and the index to ask it for the results."""
        batch = self._open.get(shard)
        if batch is None:
            assert self.nursery is not None, "the shard's nursery is not running"
            batch = self._open[shard] = Batch()
            self.nursery.start_soon(self._flush, shard, batch)
        batch.lists.append(jobs)
        return batch, len(batch.lists) - 1

    async def _flush(self, shard: int, batch: Batch) -> None:
        # This task starts in the pass after the one that opened the batch:
        # the connections served in that pass have all added their jobs.
        del self._open[shard]
        self.counters["forward_calls"] += 1
        self.counters["forward_lists"] += len(batch.lists)
        try:
            batch.results = await self.send(shard, batch.lists)
        except Exception as exc:
            batch.error = exc
        except BaseException:
            batch.error = shardio.BrokenResourceError("the server is stopping")
            raise
        finally:
            batch.done.set()
