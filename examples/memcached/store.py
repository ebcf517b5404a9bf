"""One shard's cache: items, expiry, CAS, LRU eviction and statistics.

The rules are memcached 1.6's (``items.c``, ``memcached.c``), kept exactly
where a client can observe them:

* **Time** is counted, as memcached counts it, in whole seconds since a
  process start that is set 62 seconds in the past (``process_started``), so
  ``current_time`` is never 0. The clock is injectable (a function returning
  Unix time), so tests drive expiry with a fake clock.
* **Expiry**: an exptime of 0 never expires; up to 30 days (2592000 s) it is
  relative to now; beyond that it is an absolute Unix time (one at or before
  the process start means "already expired"); a negative one is expired at
  once. An item with deadline ``d`` is gone when ``current_time >= d``.
* **flush_all [delay]** does not delete anything: it sets ``oldest_live`` to the
  flush time minus one second, and from that moment every item last stored at
  or before it is invalid -- including items stored between the command and a
  delayed flush. An immediate flush also remembers the next CAS value, so
  items stored in the same second survive only if newer.
* **CAS** values come from one 64-bit counter per cache, bumped by every store,
  every in-place incr/decr and every immediate flush.
* **incr/decr** read the value as memcached's ``strtoull`` does; incr wraps
  modulo 2**64, decr stops at 0. When the result is not longer than the old
  value it is written in place, padded with spaces to the old length ("100"
  decremented is "99 "), as memcached does; otherwise the item is replaced.
* **append/prepend** keep the old item's flags and exptime.
* **Memory**: an item is accounted as memcached accounts it
  (:func:`protocol.item_total_size`). Every allocation first reclaims dead
  (expired or flushed) items from the cold end of the LRU, as memcached's
  flat LRU does; when the total would still pass ``memory_limit`` the least
  recently used items are evicted, each counted in the statistics.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable

import attrs

from .protocol import StoreVerb, item_total_size, strtoull

__all__ = [
    "COMMAND_COUNTERS",
    "COUNTERS",
    "ITEM_COUNTERS",
    "LRU_COUNTERS",
    "ArithmeticResult",
    "Cache",
    "Item",
    "StoreResult",
    "realtime_delta_max",
]

realtime_delta_max = 60 * 60 * 24 * 30
"""memcached's ``REALTIME_MAXDELTA``: exptimes up to this are relative."""

_PROCESS_START_OFFSET = 62  # ITEM_UPDATE_INTERVAL (60) + 2, as in stats_init()
_U64 = (1 << 64) - 1

COMMAND_COUNTERS = (
    "cmd_get",
    "cmd_set",
    "cmd_flush",
    "cmd_touch",
    "cmd_meta",
    "get_hits",
    "get_misses",
    "get_expired",
    "get_flushed",
    "delete_misses",
    "delete_hits",
    "incr_misses",
    "incr_hits",
    "decr_misses",
    "decr_hits",
    "cas_misses",
    "cas_hits",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "store_too_large",
    "store_no_memory",
)
"""What commands count: memcached's per-thread counters (``thread_stats``),
in the order its ``stats`` lists them."""

ITEM_COUNTERS = ("total_items",)
"""Items ever linked: memcached's global ``stats.total_items``."""

LRU_COUNTERS = (
    "expired_unfetched",
    "evicted_unfetched",
    "evicted_active",
    "evictions",
    "reclaimed",
)
"""What making room counts: memcached's per-LRU counters (``itemstats``),
in the order its ``stats`` lists them."""

COUNTERS = COMMAND_COUNTERS + ITEM_COUNTERS + LRU_COUNTERS
"""Every statistic a cache counts, named as in memcached's ``stats``. The
three groups are kept apart because memcached keeps them apart, and so
lists them in three places (:mod:`.stats` puts each group in its place)."""


class StoreResult(enum.Enum):
    """Outcome of a storage command, named as the reply line."""

    STORED = "STORED"
    NOT_STORED = "NOT_STORED"
    EXISTS = "EXISTS"
    NOT_FOUND = "NOT_FOUND"
    NO_MEMORY = "SERVER_ERROR out of memory storing object"


class ArithmeticResult(enum.Enum):
    """incr/decr outcomes other than a new value."""

    NOT_FOUND = "NOT_FOUND"
    NON_NUMERIC = "CLIENT_ERROR cannot increment or decrement non-numeric value"
    CAS_MISMATCH = "EXISTS"
    NO_MEMORY = "SERVER_ERROR out of memory"


@attrs.define(eq=False, slots=True)
class Item:
    """A cached value. ``exptime`` and ``time`` are in the cache's relative
    seconds (see :attr:`Cache.current_time`); ``exptime`` 0 means never."""

    key: bytes
    value: bytes
    flags: int
    exptime: int
    cas: int = 0
    time: int = 0
    fetched: bool = False
    stale: bool = False
    token_sent: bool = False
    key_binary: bool = False

    @property
    def size(self) -> int:
        """Bytes accounted against the memory limit, as memcached counts them."""
        return item_total_size(len(self.key), self.flags, len(self.value) + 2)


@attrs.define(eq=False, slots=True)
class Cache:
    """The items one shard owns.

    ``memory_limit`` is in bytes (memcached's ``-m`` shared out over the
    shards); ``evictions=False`` is memcached's ``-M``: refuse to store rather
    than evict. ``clock`` returns Unix time in seconds.

    A cache can be rebuilt from a log (see :mod:`.recovery`): :meth:`restore`
    links an item as it was, CAS value and store time included, and
    :meth:`restore_counters` sets the CAS counter and the flush state.
    """

    memory_limit: int = 64 * 1024 * 1024
    evictions: bool = True
    clock: Callable[[], float] = time.time
    on_evict: Callable[[Item], None] | None = attrs.field(default=None, kw_only=True)
    """Called with each item evicted to make room (the persistent log
    records evictions, so that an evicted value does not come back)."""
    process_started: int = attrs.field(init=False)
    counters: dict[str, int] = attrs.field(init=False)
    bytes_used: int = attrs.field(default=0, init=False)
    oldest_live: int = attrs.field(default=0, init=False)
    oldest_cas: int = attrs.field(default=0, init=False)
    _items: OrderedDict[bytes, Item] = attrs.field(factory=OrderedDict, init=False)
    _cas_id: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self.process_started = int(self.clock()) - _PROCESS_START_OFFSET
        self.counters = dict.fromkeys(COUNTERS, 0)

    # -- time --------------------------------------------------------------

    @property
    def current_time(self) -> int:
        """Seconds since ``process_started`` (memcached's ``current_time``)."""
        return int(self.clock()) - self.process_started

    def realtime(self, exptime: int) -> int:
        """A client's exptime as a deadline in relative seconds (memcached's
        ``realtime(EXPTIME_TO_POSITIVE_TIME(exptime))``); 0 is "never"."""
        if exptime < 0:
            exptime = realtime_delta_max + 1
        if exptime == 0:
            return 0
        if exptime > realtime_delta_max:
            if exptime <= self.process_started:
                return 1
            return (exptime - self.process_started) & 0xFFFFFFFF
        return (exptime + self.current_time) & 0xFFFFFFFF

    def next_cas(self) -> int:
        """Take the next CAS value."""
        self._cas_id = (self._cas_id + 1) & _U64
        return self._cas_id

    # -- lookup and linking --------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[bytes]:
        """Keys in LRU order, least recently used first (expired ones too)."""
        return list(self._items)

    def items(self) -> list[Item]:
        """Items in LRU order, least recently used first (expired ones too)."""
        return list(self._items.values())

    def peek(self, key: bytes) -> Item | None:
        """The item stored under ``key``, live or not, without side effects:
        nothing is counted, unlinked or bumped."""
        return self._items.get(key)

    def is_live(self, item: Item) -> bool:
        """Neither expired nor flushed (what a ``get`` would return)."""
        return not (self.is_expired(item) or self.is_flushed(item))

    @property
    def cas_counter(self) -> int:
        """The last CAS value handed out."""
        return self._cas_id

    def is_flushed(self, item: Item) -> bool:
        """Invalidated by ``flush_all`` (memcached's ``item_is_flushed``)."""
        oldest_live = self.oldest_live
        if oldest_live == 0 or oldest_live > self.current_time:
            return False
        return item.time <= oldest_live or (
            self.oldest_cas != 0 and item.cas != 0 and item.cas < self.oldest_cas
        )

    def is_expired(self, item: Item) -> bool:
        """Past its exptime."""
        return item.exptime != 0 and item.exptime <= self.current_time

    def find(self, key: bytes, *, bump: bool = False) -> Item | None:
        """The live item for ``key``, or None. An expired or flushed item
        found on the way is unlinked and counted (``get_expired``,
        ``get_flushed``), as memcached's ``do_item_get`` does on every lookup.
        ``bump`` marks a fetch: the item becomes most recently used."""
        item = self._items.get(key)
        if item is None:
            return None
        if self.is_flushed(item):
            self.unlink(item)
            self.counters["get_flushed"] += 1
            return None
        if self.is_expired(item):
            self.unlink(item)
            self.counters["get_expired"] += 1
            return None
        if bump:
            self.bump(item)
        return item

    def bump(self, item: Item) -> None:
        """Mark ``item`` fetched and most recently used."""
        item.fetched = True
        self._items.move_to_end(item.key)

    def unlink(self, item: Item) -> None:
        """Remove ``item`` from the cache."""
        del self._items[item.key]
        self.bytes_used -= item.size

    def reserve(self, size: int) -> bool:
        """Make room for a new item of ``size`` bytes; False if it cannot fit.

        As memcached does before every allocation (in its flat-LRU mode),
        up to five expired or flushed items at the cold end of the LRU are
        reclaimed first, stopping at the first live one; then, while the
        item does not fit, the least recently used items are evicted (or
        reclaimed, if dead)."""
        for _ in range(5):
            if not self._items or not self._reclaim_if_dead(next(iter(self._items.values()))):
                break
        if size > self.memory_limit:
            return False
        while self.bytes_used + size > self.memory_limit and self._items:
            victim = next(iter(self._items.values()))
            if self._reclaim_if_dead(victim):
                continue
            if not self.evictions:
                return False
            self.counters["evictions"] += 1
            if not victim.fetched:
                self.counters["evicted_unfetched"] += 1
            self.unlink(victim)
            if self.on_evict is not None:
                self.on_evict(victim)
        return self.bytes_used + size <= self.memory_limit

    def _reclaim_if_dead(self, item: Item) -> bool:
        """Unlink ``item`` if expired or flushed (counted as ``reclaimed``)."""
        if not (0 != item.exptime < self.current_time or self.is_flushed(item)):
            return False
        self.counters["reclaimed"] += 1
        if not item.fetched:
            self.counters["expired_unfetched"] += 1
        self.unlink(item)
        return True

    def link(self, item: Item) -> None:
        """Store ``item`` (replacing any item of its key) with a new CAS value,
        as most recently used."""
        old = self._items.get(item.key)
        if old is not None:
            self.unlink(old)
        item.cas = self.next_cas()
        item.time = self.current_time
        self._items[item.key] = item
        self.bytes_used += item.size
        self.counters["total_items"] += 1

    def restore(self, item: Item) -> bool:
        """Link ``item`` as most recently used, keeping its CAS value and
        store time (recovery from a log); False if it does not fit. The CAS
        counter moves up to the item's CAS value if it was below."""
        old = self._items.get(item.key)
        if old is not None:
            self.unlink(old)
        if not self.reserve(item.size):
            return False
        self._items[item.key] = item
        self.bytes_used += item.size
        self._cas_id = max(self._cas_id, item.cas)
        return True

    def restore_counters(self, cas_counter: int, oldest_live: int, oldest_cas: int) -> None:
        """Set the CAS counter (never lower) and the flush state, in this
        cache's relative seconds (recovery from a log)."""
        self._cas_id = max(self._cas_id, cas_counter)
        self.oldest_live = oldest_live
        self.oldest_cas = oldest_cas

    def new_item(self, key: bytes, value: bytes, flags: int, exptime: int) -> Item | None:
        """Allocate (reserve room for) an item; None when out of memory.
        ``exptime`` is already a deadline (see :meth:`realtime`)."""
        item = Item(key, value, flags, exptime)
        if not self.reserve(item.size):
            return None
        return item

    # -- commands ------------------------------------------------------------

    def retrieve(self, key: bytes, touch_exptime: int | None = None) -> Item | None:
        """One key of ``get``/``gets`` (or, with ``touch_exptime``, of
        ``gat``/``gats``, which sets the exptime), counted as memcached counts
        it."""
        if touch_exptime is None:
            self.counters["cmd_get"] += 1
            item = self.find(key, bump=True)
            self.counters["get_hits" if item else "get_misses"] += 1
            return item
        deadline = self.realtime(touch_exptime)
        self.counters["cmd_touch"] += 1
        item = self.find(key, bump=True)
        if item is None:
            self.counters["touch_misses"] += 1
            return None
        item.exptime = deadline
        self.counters["touch_hits"] += 1
        return item

    def store(
        self,
        verb: StoreVerb,
        key: bytes,
        flags: int,
        exptime: int,
        value: bytes,
        cas_unique: int = 0,
        *,
        set_stale: bool = False,
    ) -> tuple[StoreResult, Item | None]:
        """A storage command (memcached's ``do_store_item``); the result and
        the item now stored, if any. ``set_stale`` is the meta protocol's
        ``I`` flag: a CAS older than the item's still stores, marked stale."""
        new = self.new_item(key, value, flags, self.realtime(exptime))
        if new is None:
            self.counters["store_no_memory"] += 1
            if verb == "set":
                self.delete_silently(key)
            return StoreResult.NO_MEMORY, None
        self.counters["cmd_set"] += 1
        old = self.find(key)
        if old is None:
            if verb == "cas":
                self.counters["cas_misses"] += 1
                return StoreResult.NOT_FOUND, None
            if verb in ("add", "set"):
                self.link(new)
                return StoreResult.STORED, new
            return StoreResult.NOT_STORED, None
        if cas_unique == 0:
            cas_state = "none"
        elif cas_unique == old.cas:
            cas_state = "match"
        elif set_stale and cas_unique < old.cas:
            cas_state = "stale"
        else:
            cas_state = "badval"
        if verb == "add":
            self._items.move_to_end(key)
            return StoreResult.NOT_STORED, None
        if verb == "cas":
            if cas_state == "match":
                self.counters["cas_hits"] += 1
            elif cas_state == "stale":
                new.exptime = old.exptime
                new.stale = True
                new.token_sent = old.token_sent
                self.counters["cas_hits"] += 1
            else:
                self.counters["cas_badval"] += 1
                return StoreResult.EXISTS, None
        elif verb in ("append", "prepend"):
            if cas_state not in ("none", "match"):
                return StoreResult.EXISTS, None
            joined = old.value + value if verb == "append" else value + old.value
            combined = self.new_item(key, joined, old.flags, old.exptime)
            if combined is None:
                return StoreResult.NOT_STORED, None
            new = combined
        self.link(new)
        return StoreResult.STORED, new

    def delete(self, key: bytes) -> bool:
        """``delete``: True if an item was removed."""
        item = self.find(key)
        if item is None:
            self.counters["delete_misses"] += 1
            return False
        self.counters["delete_hits"] += 1
        self.unlink(item)
        return True

    def arithmetic(
        self, key: bytes, incr: bool, delta: int, cas_unique: int = 0
    ) -> tuple[int | ArithmeticResult, Item | None]:
        """``incr``/``decr`` (memcached's ``do_add_delta``): the new value (and
        the item) or what went wrong. Misses are counted by the caller, which
        knows whether the miss will be auto-created (meta ``N``)."""
        item = self.find(key)
        if item is None:
            return ArithmeticResult.NOT_FOUND, None
        if not item.value:
            return ArithmeticResult.NON_NUMERIC, None
        if cas_unique != 0 and item.cas != cas_unique:
            return ArithmeticResult.CAS_MISMATCH, None
        current = strtoull((item.value + b"\r\n").split(b"\0", 1)[0])
        if current is None:
            return ArithmeticResult.NON_NUMERIC, None
        number = (current + delta) & _U64 if incr else max(current - delta, 0)
        self.counters["incr_hits" if incr else "decr_hits"] += 1
        text = str(number).encode()
        if len(text) <= len(item.value):
            self.bytes_used -= item.size
            item.value = text.ljust(len(item.value))
            self.bytes_used += item.size
            item.cas = self.next_cas()
            self._items.move_to_end(key)
            return number, item
        replacement = self.new_item(key, text, item.flags, item.exptime)
        if replacement is None:
            return ArithmeticResult.NO_MEMORY, None
        self.link(replacement)
        return number, replacement

    def touch(self, key: bytes, exptime: int) -> Item | None:
        """``touch``: set a new exptime; the item, or None if missing."""
        deadline = self.realtime(exptime)
        self.counters["cmd_touch"] += 1
        item = self.find(key, bump=True)
        if item is None:
            self.counters["touch_misses"] += 1
            return None
        item.exptime = deadline
        self.counters["touch_hits"] += 1
        return item

    def flush_all(self, exptime: int = 0) -> None:
        """``flush_all [delay]``: invalidate every item stored up to the flush
        time (now, or ``exptime`` as a client exptime when positive)."""
        self.counters["cmd_flush"] += 1
        new_oldest = self.realtime(exptime) if exptime > 0 else self.current_time
        self.oldest_live = (new_oldest - 1) & 0xFFFFFFFF
        if self.oldest_live <= self.current_time:
            self.oldest_cas = self.next_cas()

    def too_large(self, verb: StoreVerb, key: bytes) -> None:
        """Account a storage command refused for its size; a refused ``set``
        removes the old value, as memcached does."""
        self.counters["store_too_large"] += 1
        if verb == "set":
            self.delete_silently(key)

    def delete_silently(self, key: bytes) -> None:
        """Drop ``key`` if present, counting no delete (a failed store)."""
        item = self.find(key)
        if item is not None:
            self.unlink(item)

    def oldest_item_age(self) -> int:
        """Seconds since the least recently used item was stored."""
        for item in self._items.values():
            return self.current_time - item.time
        return 0

    def set_memory_limit(self, limit: int) -> None:
        """Change the memory limit; items beyond it are evicted as room is
        needed."""
        self.memory_limit = limit

    def statistics(self) -> dict[str, int]:
        """The counters plus ``curr_items``, ``bytes`` and ``limit_maxbytes``."""
        figures = dict(self.counters)
        figures["curr_items"] = len(self._items)
        figures["bytes"] = self.bytes_used
        figures["limit_maxbytes"] = self.memory_limit
        return figures

    def reset_statistics(self) -> None:
        """``stats reset``: zero the counters (not the item figures)."""
        self.counters = dict.fromkeys(COUNTERS, 0)
