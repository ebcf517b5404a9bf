"""Rebuilding a shard's cache from log records: the sans-io half of recovery.

A :class:`Replay` takes the records of one log in order and keeps, for every
key, the last state recorded -- each record states a key's resulting state,
so nothing depends on replaying a record exactly once. :func:`restore`
then loads what is still alive into a fresh :class:`~.store.Cache`:

* **Expiry** is absolute in the log, so an item that expired while the
  server was down is dropped, and the others keep their deadline, converted
  to the new process's relative seconds.
* **flush_all**: an immediate flush drops, at its place in the log, every
  item it invalidated then (stored at or before its ``oldest_live``, or
  with a lower CAS). A delayed flush still in the future when the server
  restarts is set again on the new cache, so it still happens on time and
  still catches the items stored before it; one whose time has come by
  the restart drops the items it would have caught. (memcached keeps only
  the latest flush's time, so a delayed flush issued after an immediate one
  would bring the items the first one invalidated back to life until the
  LRU reclaims them; recovery does not reproduce that.)
* **CAS**: items keep their CAS values, and the counter resumes above every
  value ever handed out -- the largest in any record, deletes and flushes
  included -- so a CAS a client still holds cannot match a different item.
* **Order**: items are linked in the order of their last record, which is
  the LRU order they get back (reads are not logged, so a much-read item
  written long ago comes back cold).

Replays of several logs can be restored into one cache: that is how a data
directory written with one shard count is opened with another (``keep``
picks the keys the new shard owns; keys never repeat across the old logs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from .records import Delete, Flush, Header, Put, Record, Touch
from .store import Cache, Item

__all__ = ["Replay", "RestoreSummary", "restore"]


def _keep_all(key: bytes) -> bool:
    return True


def _flushed(put: Put, flush: Flush) -> bool:
    """Whether ``flush`` invalidates ``put`` (once ``flush.oldest_live`` is
    past), by memcached's ``item_is_flushed`` rule."""
    return put.time <= flush.oldest_live or (
        flush.oldest_cas != 0 and put.cas != 0 and put.cas < flush.oldest_cas
    )


@attrs.define(eq=False, slots=True)
class Replay:
    """The state one log describes: the last record of every key, the latest
    flush, the highest CAS value. ``keep(key)`` filters the keys kept."""

    keep: Callable[[bytes], bool] = _keep_all
    items: dict[bytes, Put] = attrs.field(factory=dict, init=False)
    flush: Flush | None = attrs.field(default=None, init=False)
    cas_high: int = attrs.field(default=0, init=False)
    header: Header | None = attrs.field(default=None, init=False)
    records: int = attrs.field(default=0, init=False)

    def apply(self, record: Record) -> None:
        """Apply the next record of the log."""
        self.records += 1
        items = self.items
        if isinstance(record, Put):
            self.cas_high = max(self.cas_high, record.cas)
            if self.keep(record.key):
                items.pop(record.key, None)  # re-inserted last: most recently used
                items[record.key] = record
        elif isinstance(record, Delete):
            self.cas_high = max(self.cas_high, record.cas_high)
            items.pop(record.key, None)
        elif isinstance(record, Touch):
            put = items.get(record.key)
            if put is not None:
                items[record.key] = attrs.evolve(put, exptime=record.exptime)
        elif isinstance(record, Flush):
            self.cas_high = max(self.cas_high, record.oldest_cas)
            self.flush = record
            if record.oldest_live <= record.issued:
                for key in [key for key, put in items.items() if _flushed(put, record)]:
                    del items[key]
        else:
            self.cas_high = max(self.cas_high, record.cas_high)
            self.header = record

    def live(self, now: int) -> list[Put]:
        """The items still alive at Unix time ``now``, least recent first."""
        flush = self.flush
        if flush is not None and flush.oldest_live > now:
            flush = None
        return [
            put
            for put in self.items.values()
            if not (put.exptime and put.exptime <= now)
            and not (flush is not None and _flushed(put, flush))
        ]


@attrs.frozen
class RestoreSummary:
    """What :func:`restore` loaded: the items in the cache now, the keys of
    the live items that did not fit in its memory limit (evicted while
    loading, or refused when evictions are off), and the records read."""

    items: int
    dropped: tuple[bytes, ...]
    records: int


def restore(cache: Cache, replays: Sequence[Replay]) -> RestoreSummary:
    """Load the live items of ``replays`` into ``cache`` (a fresh one), with
    their CAS values, expiry and store times, and set its CAS counter and
    any flush still pending."""
    now = int(cache.clock())
    started = cache.process_started
    offered: list[bytes] = []
    for replay in replays:
        for put in replay.live(now):
            item = Item(
                put.key,
                put.value,
                put.flags,
                put.exptime - started if put.exptime else 0,
                cas=put.cas,
                time=put.time - started,
                stale=put.stale,
                key_binary=put.key_binary,
            )
            offered.append(put.key)
            cache.restore(item)
    pending = [
        replay.flush
        for replay in replays
        if replay.flush is not None and replay.flush.oldest_live > now
    ]
    cas_high = max((replay.cas_high for replay in replays), default=0)
    if pending:
        flush = max(pending, key=lambda flush: flush.oldest_live)
        cache.restore_counters(cas_high, flush.oldest_live - started, flush.oldest_cas)
    else:
        cache.restore_counters(cas_high, 0, 0)
    records = sum(replay.records for replay in replays)
    dropped = tuple(key for key in offered if key not in cache)
    return RestoreSummary(len(cache), dropped, records)
