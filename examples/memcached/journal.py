"""What a shard's cache did, as log records: the sans-io half of persistence.

A :class:`Journal` sits next to one shard's :class:`~.store.Cache` and turns
every change a client can observe into a record (:mod:`.records`), appended
to an in-memory buffer. It does no I/O: the shard's log writer
(:mod:`.log`) takes the buffered bytes (:meth:`Journal.take`), writes them
and makes them durable, and tells the shard which position in the stream
of records is now on disk (:attr:`Journal.durable`).

Positions are *log sequence numbers*: the count of record bytes appended
since the journal was created. A request that changed data may be answered
once ``durable`` has reached the sequence number after its records.
Sequence numbers know nothing of files, so compaction may rewrite the file
underneath without disturbing them.

How changes are found: each request runs on the shard that owns its key,
and a one-key request changes only that key (and, through eviction, keys it
pushes out; the cache reports those through ``on_evict``). So the engine
takes a cheap :meth:`Journal.observe` of the key's item before running the
request, and :meth:`Journal.record_change` compares afterwards: a different
item, or the same item with a new CAS value, is a :class:`~.records.Put` of
the whole item; the same item with only a new exptime is a
:class:`~.records.Touch`; no item where there was one, a
:class:`~.records.Delete`. The engine need not know which of the many
commands (classic and meta) changed what, and a new command cannot forget
to log. Items that merely expired or were flushed, and were unlinked when
found, are not recorded: replaying the log finds them dead by the same rules.

What is not recorded, because no client can tell after a restart that it
was lost: LRU order and "fetched" bits (reads do not write), statistics,
``cache_memlimit``, and the meta protocol's "win token sent" bit.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .records import Delete, Flush, Record, Touch, encode, encode_put
from .store import Cache, Item

__all__ = ["STATISTICS", "Journal", "Observation"]

STATISTICS = (
    "log_records",
    "log_commits",
    "log_compactions",
    "log_compaction_failures",
    "log_appended_bytes",
    "log_durable_bytes",
    "log_pending_bytes",
    "log_file_bytes",
)
"""The figures :meth:`Journal.statistics` reports, in the order ``stats
shards`` lists them."""

_MEASURED = ("log_appended_bytes", "log_durable_bytes", "log_pending_bytes")
"""The figures read off the journal itself; the log counts the others."""

Observation = tuple[Item | None, int, int, bool]
"""A key's item as :meth:`Journal.observe` saw it: (item, cas, exptime, stale)."""

_NOTHING: Observation = (None, 0, 0, False)


@attrs.define(eq=False, slots=True)
class Journal:
    """The records of one cache's changes, waiting to be written.

    ``on_append`` is called (with no arguments) when records are appended to
    an empty buffer: the log writer's wake-up call.
    """

    cache: Cache
    on_append: Callable[[], None] | None = None
    _pending: bytearray = attrs.field(factory=bytearray, init=False)
    appended: int = attrs.field(default=0, init=False)
    """Sequence number after the last record appended."""
    durable: int = attrs.field(default=0, init=False)
    """Sequence number up to which records are on stable storage."""
    counters: dict[str, int] = attrs.field(
        factory=lambda: {name: 0 for name in STATISTICS if name not in _MEASURED}, init=False
    )
    """What the log counts (records, commits, compactions, the file's size)."""

    def __attrs_post_init__(self) -> None:
        self.cache.on_evict = self._evicted

    # -- absolute time ---------------------------------------------------------

    def absolute(self, relative: int) -> int:
        """A time in the cache's relative seconds as Unix seconds (0 stays 0)."""
        return relative + self.cache.process_started if relative else 0

    # -- appending -------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes appended and not yet taken by the writer."""
        return len(self._pending)

    def _appended(self, size: int) -> None:
        self.appended += size
        self.counters["log_records"] += 1
        if len(self._pending) == size and self.on_append is not None:
            self.on_append()

    def append(self, record: Record) -> None:
        """Append any record."""
        size = encode(self._pending, record)
        self._appended(size)

    def put(self, item: Item) -> None:
        """``item`` is what its key holds now."""
        self._appended(self.encode_item(self._pending, item))

    def encode_item(self, out: bytearray, item: Item) -> int:
        """Append a :class:`~.records.Put` of ``item`` to ``out`` (also for a
        snapshot of the cache); the bytes appended."""
        return encode_put(
            out,
            item.key,
            item.value,
            item.flags,
            self.absolute(item.exptime),
            item.cas,
            self.absolute(item.time),
            item.stale,
            item.key_binary,
        )

    def flush_state(self) -> Flush:
        """The cache's flush state as a record (what ``flush_all`` set last)."""
        cache = self.cache
        return Flush(self.absolute(cache.oldest_live), cache.oldest_cas, int(cache.clock()))

    def delete(self, key: bytes) -> None:
        """``key`` holds nothing now."""
        self.append(Delete(key, self.cache.cas_counter))

    def touch(self, item: Item) -> None:
        """``item`` has a new exptime."""
        self.append(Touch(item.key, self.absolute(item.exptime)))

    def flush(self) -> None:
        """The cache has just run ``flush_all``."""
        cache = self.cache
        self.append(Flush(self.absolute(cache.oldest_live), cache.oldest_cas, int(cache.clock())))

    def _evicted(self, item: Item) -> None:
        self.delete(item.key)

    # -- finding changes ---------------------------------------------------------

    def observe(self, key: bytes) -> Observation:
        """What ``key`` holds before a request runs (for :meth:`record_change`)."""
        item = self.cache.peek(key)
        if item is None:
            return _NOTHING
        return item, item.cas, item.exptime, item.stale

    def record_change(self, key: bytes, before: Observation) -> None:
        """Record what a request did to ``key`` since :meth:`observe`."""
        item = self.cache.peek(key)
        old, cas, exptime, stale = before
        if item is None:
            if old is not None:
                self.delete(key)
            return
        if item is not old or item.cas != cas or item.stale != stale:
            self.put(item)
        elif item.exptime != exptime:
            self.touch(item)

    # -- the writer's side -------------------------------------------------------

    def take(self, limit: int | None = None) -> bytes:
        """The oldest bytes appended and not yet taken, at most ``limit`` of
        them: the writer's next batch, which starts at the sequence number
        where the previous one ended. (A batch may end inside a record; the
        next one carries on from there.)"""
        pending = self._pending
        if limit is None or limit >= len(pending):
            data = bytes(pending)
            pending.clear()
        else:
            data = bytes(pending[:limit])
            del pending[:limit]
        return data

    def statistics(self) -> dict[str, int]:
        """The log's figures for ``stats shards``: :data:`STATISTICS`."""
        figures = dict(self.counters)
        figures["log_pending_bytes"] = len(self._pending)
        figures["log_appended_bytes"] = self.appended
        figures["log_durable_bytes"] = self.durable
        return {name: figures[name] for name in STATISTICS}
