"""Executing parsed requests: route them to the shards that own their keys,
run them on those shards' caches, and put the replies back in request order.

A batch of pipelined requests from one connection becomes a :class:`Plan`:
for each shard, the list of :data:`Job` objects it must run, in request
order; and for each request, how its reply is assembled from job results.
Running the jobs is :func:`run_jobs` -- one call per shard, so a pipeline
costs one cross-shard message per owner shard, not one per request. Because
every shard runs its jobs in request order, and requests that concern every
shard (``flush_all``, ``stats``) appear as a job in every shard's list at
their place in the pipeline, the replies are those of the same requests run
one by one against one memcached.

:class:`LocalEngine` runs plans in-process over any number of caches: the
sans-io adapter used by the tests, the fuzzers and the differential test
against real memcached. The network server runs the same plans with
cross-shard calls.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

import attrs

from . import protocol as p
from .journal import Journal
from .records import LogReader
from .recovery import Replay, RestoreSummary, restore
from .sharding import shard_for_key
from .store import ArithmeticResult, Cache, Item, StoreResult

__all__ = [
    "ENGINE_VERSION",
    "Frontend",
    "Job",
    "JobResult",
    "LocalEngine",
    "Plan",
    "Settings",
    "ShardState",
    "run_jobs",
    "slab_class",
]

ENGINE_VERSION = b"1.6.18"
"""The memcached version this server answers ``version`` with: the one whose
behaviour it reproduces (clients switch features on the version)."""


@attrs.frozen
class Settings:
    """Server-wide settings, as memcached's command line sets them."""

    memory_limit: int = 64 * 1024 * 1024
    item_size_max: int = 1024 * 1024
    max_connections: int = 1024
    port: int = 11211
    interface: str = ""
    evictions: bool = True
    shards: int = 1
    data_dir: str | None = None
    """Where the shards keep their logs (``--data-dir``); None: no persistence."""
    compact_ratio: float = 4.0
    """Compact a shard's log once it is this many times its live data..."""
    compact_min_bytes: int = 16 << 20
    """... and larger than this."""
    salvage_damaged_logs: bool = False
    """Start even if a log is damaged in a way no crash explains, keeping
    every valid record (``--salvage-damaged-logs``; see :mod:`.log`)."""


# --------------------------------------------------------------------------
# Jobs: the units a shard runs on its cache.


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
"""The requests about one key."""


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
class ShardState:
    """What one shard owns: its cache, its connection counters, the counters
    of the batches it forwards to other shards, and, when the server
    persists its data, the journal of the cache's changes."""

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


def run_jobs(state: ShardState, jobs: Sequence[Job]) -> list[JobResult]:
    """Run ``jobs`` in order on this shard; their results, in order.

    With a journal, every change the jobs make to the cache is appended to
    it, in the order the changes happen (see :mod:`.journal`)."""
    cache = state.cache
    journal = state.journal
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
                results.append(_fetch(cache, job))
            else:
                # gat/gats set the exptime of every key they find.
                seen = [journal.observe(key) for key in job.keys]
                results.append(_fetch(cache, job))
                for key, before in zip(job.keys, seen, strict=True):
                    journal.record_change(key, before)
        elif isinstance(job, FlushJob):
            cache.flush_all(job.exptime)
            if journal is not None:
                journal.flush()
            results.append(b"")
        elif isinstance(job, StatsJob):
            results.append(_shard_figures(state, job.kind))
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


# --------------------------------------------------------------------------
# Replies.


def _line(text: bytes | str, noreply: bool = False) -> bytes:
    if noreply:
        return b""
    if isinstance(text, str):
        text = text.encode()
    return text + b"\r\n"


def value_block(item: Item, with_cas: bool) -> bytes:
    """``VALUE <key> <flags> <bytes> [<cas>]`` and the data."""
    header = b"VALUE %s %d %d" % (item.key, item.flags, len(item.value))
    if with_cas:
        header += b" %d" % item.cas
    return b"".join((header, b"\r\n", item.value, b"\r\n"))


def _fetch(cache: Cache, job: FetchJob) -> list[bytes]:
    blocks: list[bytes] = []
    for key in job.keys:
        item = cache.retrieve(key, job.exptime)
        blocks.append(b"" if item is None else value_block(item, job.with_cas))
    return blocks


def _execute(cache: Cache, request: p.Request) -> bytes:
    """The reply to a one-key request, run on the shard owning the key."""
    if isinstance(request, p.Store):
        result, _ = cache.store(
            request.verb,
            request.key,
            request.flags,
            request.exptime,
            request.value,
            request.cas_unique,
        )
        return _line(result.value, request.noreply)
    if isinstance(request, p.StoreTooLarge):
        cache.too_large(request.verb, request.key)
        return _line(b"SERVER_ERROR object too large for cache", request.noreply)
    if isinstance(request, p.Delete):
        deleted = cache.delete(request.key)
        return _line(b"DELETED" if deleted else b"NOT_FOUND", request.noreply)
    if isinstance(request, p.Arithmetic):
        outcome, _ = cache.arithmetic(request.key, request.incr, request.delta)
        if outcome is ArithmeticResult.NOT_FOUND:
            cache.counters["incr_misses" if request.incr else "decr_misses"] += 1
        if isinstance(outcome, ArithmeticResult):
            return _line(outcome.value, request.noreply)
        return _line(b"%d" % outcome, request.noreply)
    if isinstance(request, p.Touch):
        touched = cache.touch(request.key, request.exptime)
        return _line(b"TOUCHED" if touched else b"NOT_FOUND", request.noreply)
    if isinstance(request, p.MetaGet):
        return _meta_get(cache, request)
    if isinstance(request, p.MetaSet):
        return _meta_set(cache, request)
    if isinstance(request, p.MetaDelete):
        return _meta_delete(cache, request)
    if isinstance(request, p.MetaArithmetic):
        return _meta_arithmetic(cache, request)
    if isinstance(request, p.MetaDebug):
        return _meta_debug(cache, request)
    raise TypeError(f"{type(request).__name__} is not a one-key request")


# -- meta commands ---------------------------------------------------------

_OPAQUE_TOO_LONG = b"CLIENT_ERROR opaque token too long"


class _OpaqueTooLong(Exception):
    pass


def _key_echo(key: bytes, binary: bool) -> bytes:
    if binary:
        return b" k" + base64.b64encode(key) + b" b"
    return b" k" + key


def _echoes(flags: p.MetaFlags, key: bytes, binary: bool) -> bytes:
    """The ``O`` and ``k`` flags echoed in a reply without an item."""
    out = b""
    for token in flags.tokens:
        if token[0] == ord("O"):
            if len(token) > p.MFLAG_MAX_OPAQUE_LENGTH:
                raise _OpaqueTooLong
            out += b" " + token
        elif token[0] == ord("k"):
            out += _key_echo(key, binary)
    return out


def _ttl(cache: Cache, item: Item) -> bytes:
    if item.exptime == 0:
        return b"-1"
    return b"%d" % ((item.exptime - cache.current_time) & 0xFFFFFFFF)


def _meta_get(cache: Cache, request: p.MetaGet) -> bytes:
    """memcached's ``process_mget_command``."""
    flags = request.flags
    item = cache.find(request.key)
    created = False
    if item is None and flags.vivify_exptime is not None:
        fresh = cache.new_item(request.key, b"", 0, 0)
        if fresh is not None:
            fresh.key_binary = flags.key_binary
            cache.link(fresh)
            item, created = fresh, True
    if item is None:
        cache.counters["get_misses"] += 1
        cache.counters["cmd_get"] += 1
        try:
            echoes = _echoes(flags, request.key, flags.key_binary)
        except _OpaqueTooLong:
            return _line(_OPAQUE_TOO_LONG)
        return _line(b"EN" + echoes, flags.no_reply)
    out = [b"VA %d" % len(item.value) if flags.value else b"HD"]
    ttl_set = won = False
    for token in flags.tokens:
        flag = chr(token[0])
        if flag == "T" and flags.exptime is not None:
            ttl_set = True
            item.exptime = cache.realtime(flags.exptime)
        elif flag == "N" and created and flags.vivify_exptime is not None:
            item.exptime = cache.realtime(flags.vivify_exptime)
            won = True
        elif flag == "R" and flags.recache_exptime is not None:
            recache = cache.realtime(flags.recache_exptime)
            if not item.token_sent and not created and 0 != item.exptime < recache:
                won = True
        elif flag == "s":
            out.append(b" s%d" % len(item.value))
        elif flag == "t":
            out.append(b" t" + _ttl(cache, item))
        elif flag == "c":
            out.append(b" c%d" % item.cas)
        elif flag == "f":
            out.append(b" f%d" % item.flags)
        elif flag == "l":
            out.append(b" l%d" % ((cache.current_time - item.time) & 0xFFFFFFFF))
        elif flag == "h":
            out.append(b" h1" if item.fetched else b" h0")
        elif flag == "O":
            if len(token) > p.MFLAG_MAX_OPAQUE_LENGTH:
                return _line(_OPAQUE_TOO_LONG)
            out.append(b" " + token)
        elif flag == "k":
            out.append(_key_echo(item.key, item.key_binary))
    if item.token_sent:
        out.append(b" Z")
    if item.stale:
        out.append(b" X")
        if not item.token_sent:
            won = True
    if won:
        out.append(b" W")
        item.token_sent = True
    out.append(b"\r\n")
    if flags.value:
        out += (item.value, b"\r\n")
    if not flags.no_update:
        cache.bump(item)
    if ttl_set:
        cache.counters["cmd_touch"] += 1
        cache.counters["touch_hits"] += 1
    else:
        cache.counters["get_hits"] += 1
        cache.counters["cmd_get"] += 1
    return b"".join(out)


_META_SET_CODES = {
    StoreResult.STORED: b"HD",
    StoreResult.EXISTS: b"EX",
    StoreResult.NOT_FOUND: b"NF",
    StoreResult.NOT_STORED: b"NS",
}


def _meta_set(cache: Cache, request: p.MetaSet) -> bytes:
    """memcached's ``process_mset_command`` and ``_finalize_mset``."""
    flags = request.flags
    verb: p.StoreVerb = "set"
    if flags.mode is not None:
        verb = p.META_MODES_SET[flags.mode]
    if flags.cas is not None and verb in ("set", "replace"):
        verb = "cas"
    result, item = cache.store(
        verb,
        request.key,
        flags.client_flags,
        flags.exptime or 0,
        request.value,
        flags.cas or 0,
        set_stale=flags.set_stale and verb == "cas",
    )
    if result is StoreResult.NO_MEMORY:
        # memcached refuses before reading the data, and drops the old value
        # whatever the mode.
        cache.delete_silently(request.key)
        return _line(result.value)
    if item is not None:
        item.key_binary = flags.key_binary
    out = [_META_SET_CODES[result]]
    for token in flags.tokens:
        flag = chr(token[0])
        if flag == "O":
            out.append(b" " + token)
        elif flag == "k":
            out.append(_key_echo(request.key, flags.key_binary))
        elif flag == "c":
            out.append(b" c%d" % (item.cas if item is not None else 0))
    return _line(b"".join(out), flags.no_reply and result is StoreResult.STORED)


def _meta_delete(cache: Cache, request: p.MetaDelete) -> bytes:
    """memcached's ``process_mdelete_command``."""
    flags = request.flags
    try:
        echoes = _echoes(flags, request.key, flags.key_binary)
    except _OpaqueTooLong:
        return _line(_OPAQUE_TOO_LONG)
    item = cache.find(request.key)
    if item is None:
        cache.counters["delete_misses"] += 1
        return _line(b"NF" + echoes)
    if flags.cas is not None and item.cas != flags.cas:
        cache.counters["delete_misses"] += 1
        return _line(b"EX" + echoes)
    if flags.set_stale:
        if flags.exptime is not None:
            item.exptime = cache.realtime(flags.exptime)
        item.stale = True
        item.token_sent = False
        item.cas = cache.next_cas()
    else:
        cache.counters["delete_hits"] += 1
        cache.unlink(item)
    return _line(b"HD" + echoes, flags.no_reply)


def _meta_arithmetic(cache: Cache, request: p.MetaArithmetic) -> bytes:
    """memcached's ``process_marithmetic_command``."""
    flags = request.flags
    incr = flags.mode is None or flags.mode in b"I+"
    outcome, item = cache.arithmetic(request.key, incr, flags.delta, flags.cas or 0)
    created = False
    status = b""
    number = 0
    if outcome is ArithmeticResult.NON_NUMERIC or outcome is ArithmeticResult.NO_MEMORY:
        return _line(outcome.value)
    if outcome is ArithmeticResult.NOT_FOUND:
        if flags.vivify_exptime is not None:
            number = flags.initial
            fresh = cache.new_item(request.key, b"%d" % number, 0, 0)
            if fresh is None:
                return _line(b"SERVER_ERROR Out of memory allocating new item")
            fresh.key_binary = flags.key_binary
            cache.link(fresh)
            item, created = fresh, True
        else:
            cache.counters["incr_misses" if incr else "decr_misses"] += 1
            status = b"NF"
    elif outcome is ArithmeticResult.CAS_MISMATCH:
        status = b"EX"
    else:
        assert isinstance(outcome, int)
        number = outcome
    if item is None:
        try:
            return _line(status + _echoes(flags, request.key, flags.key_binary))
        except _OpaqueTooLong:
            return _line(_OPAQUE_TOO_LONG)
    text = b"%d" % number
    out = [b"VA %d" % len(text) if flags.value else b"HD"]
    for token in flags.tokens:
        flag = chr(token[0])
        if flag == "c":
            out.append(b" c%d" % item.cas)
        elif flag == "t":
            out.append(b" t" + _ttl(cache, item))
        elif flag == "T" and flags.exptime is not None:
            item.exptime = cache.realtime(flags.exptime)
        elif flag == "N" and created and flags.vivify_exptime is not None:
            item.exptime = cache.realtime(flags.vivify_exptime)
        elif flag == "O":
            if len(token) > p.MFLAG_MAX_OPAQUE_LENGTH:
                return _line(_OPAQUE_TOO_LONG)
            out.append(b" " + token)
        elif flag == "k":
            out.append(_key_echo(request.key, flags.key_binary))
    if flags.value:
        out += (b"\r\n", text)
    return _line(b"".join(out), flags.no_reply and not created)


def slab_class(size: int, item_size_max: int = 1024 * 1024) -> int:
    """The memcached slab class an item of ``size`` bytes would use (default
    growth factor 1.25, 48-byte minimum chunk, 1 MiB pages)."""
    page = max(1024 * 1024, item_size_max)
    chunk_max = page // 2
    chunk = 96
    klass = 0
    while True:
        klass += 1
        if chunk >= chunk_max / 1.25:
            return klass
        if chunk % 8:
            chunk += 8 - chunk % 8
        if size <= chunk:
            return klass
        chunk = int(chunk * 1.25)


def _meta_debug(cache: Cache, request: p.MetaDebug) -> bytes:
    """memcached's ``me``: item internals."""
    cache.counters["cmd_meta"] += 1
    item = cache.find(request.key)
    if item is None:
        return _line(b"EN")
    key = base64.b64encode(item.key) if item.key_binary else item.key
    now = cache.current_time
    expiry = (
        -1 if item.exptime == 0 else ((now - item.exptime + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    )
    return _line(
        b"ME %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d"
        % (
            key,
            expiry,
            (now - item.time) & 0xFFFFFFFF,
            item.cas,
            b"yes" if item.fetched else b"no",
            slab_class(item.size),
            item.size,
        )
    )


# --------------------------------------------------------------------------
# Statistics.


def _shard_figures(state: ShardState, kind: bytes) -> dict[str, int]:
    figures = state.cache.statistics()
    figures.update(state.connections)
    figures.update(state.forwarding)
    if state.journal is not None:
        figures.update(state.journal.statistics())
    if kind == b"items":
        figures["oldest_item_age"] = state.cache.oldest_item_age()
    return figures


_GENERAL_STATS = (
    "pid",
    "uptime",
    "time",
    "version",
    "libevent",
    "pointer_size",
    "rusage_user",
    "rusage_system",
    "max_connections",
    "curr_connections",
    "total_connections",
    "rejected_connections",
    "connection_structures",
    "response_obj_oom",
    "response_obj_count",
    "response_obj_bytes",
    "read_buf_count",
    "read_buf_bytes",
    "read_buf_bytes_free",
    "read_buf_oom",
    "reserved_fds",
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
    "auth_cmds",
    "auth_errors",
    "bytes_read",
    "bytes_written",
    "limit_maxbytes",
    "accepting_conns",
    "listen_disabled_num",
    "time_in_listen_disabled_us",
    "threads",
    "conn_yields",
    "hash_power_level",
    "hash_bytes",
    "hash_is_expanding",
    "slab_reassign_rescues",
    "slab_reassign_chunk_rescues",
    "slab_reassign_evictions_nomem",
    "slab_reassign_inline_reclaim",
    "slab_reassign_busy_items",
    "slab_reassign_busy_deletes",
    "slab_reassign_running",
    "slabs_moved",
    "lru_crawler_running",
    "lru_crawler_starts",
    "lru_maintainer_juggles",
    "malloc_fails",
    "log_worker_dropped",
    "log_worker_written",
    "log_watcher_skipped",
    "log_watcher_sent",
    "log_watchers",
    "unexpected_napi_ids",
    "round_robin_fallback",
    "bytes",
    "curr_items",
    "total_items",
    "slab_global_page_pool",
    "expired_unfetched",
    "evicted_unfetched",
    "evicted_active",
    "evictions",
    "reclaimed",
    "crawler_reclaimed",
    "crawler_items_checked",
    "lrutail_reflocked",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
    "direct_reclaims",
    "lru_bumps_dropped",
)
"""memcached 1.6.18's ``stats`` lines, in its order."""

_SHARD_STATS = (
    "curr_items",
    "bytes",
    "limit_maxbytes",
    "total_items",
    "evictions",
    "cmd_get",
    "cmd_set",
    "get_hits",
    "get_misses",
    "curr_connections",
    "total_connections",
    "forward_calls",
    "forward_lists",
)


def _stat_lines(pairs: Sequence[tuple[str, object]]) -> bytes:
    return b"".join(
        b"STAT %s %s\r\n" % (name.encode(), str(value).encode()) for name, value in pairs
    )


@attrs.define(eq=False, slots=True)
class _StatsContext:
    settings: Settings
    started: float
    verbosity: int


def _general_stats(context: _StatsContext, total: dict[str, int]) -> bytes:
    now = time.time()
    usage = os.times()
    known: dict[str, object] = dict(total)
    known.update(
        pid=os.getpid(),
        uptime=int(now - context.started) + 2,
        time=int(now),
        version=ENGINE_VERSION.decode(),
        libevent="shardio",
        pointer_size=64,
        rusage_user=f"{usage.user:.6f}",
        rusage_system=f"{usage.system:.6f}",
        max_connections=context.settings.max_connections,
        connection_structures=total.get("curr_connections", 0) + 1,
        accepting_conns=1,
        threads=context.settings.shards,
        reserved_fds=20,
        hash_power_level=16,
        hash_bytes=524288,
        lru_crawler_starts=0,
    )
    return _stat_lines([(name, known.get(name, 0)) for name in _GENERAL_STATS]) + b"END\r\n"


def _settings_stats(context: _StatsContext, total: dict[str, int]) -> bytes:
    settings = context.settings
    pairs: list[tuple[str, object]] = [
        ("maxbytes", total.get("limit_maxbytes", settings.memory_limit)),
        ("maxconns", settings.max_connections),
        ("tcpport", settings.port),
        ("udpport", 0),
        ("inter", settings.interface or "NULL"),
        ("verbosity", context.verbosity),
        ("oldest", 0),
        ("evictions", "on" if settings.evictions else "off"),
        ("domain_socket", "NULL"),
        ("umask", 700),
        ("shutdown_command", "no"),
        ("growth_factor", "1.25"),
        ("chunk_size", 48),
        ("num_threads", settings.shards),
        ("num_threads_per_udp", settings.shards),
        ("stat_key_prefix", ":"),
        ("detail_enabled", "no"),
        ("reqs_per_event", 20),
        ("cas_enabled", "yes"),
        ("tcp_backlog", 1024),
        ("binding_protocol", "ascii"),
        ("auth_enabled_sasl", "no"),
        ("auth_enabled_ascii", "no"),
        ("item_size_max", settings.item_size_max),
        ("maxconns_fast", "yes"),
        ("hashpower_init", 0),
        ("slab_reassign", "no"),
        ("slab_automove", 0),
        ("lru_crawler", "no"),
        ("flush_enabled", "yes"),
        ("dump_enabled", "no"),
        ("hash_algorithm", "crc32"),
        ("lru_segmented", "no"),
        ("temp_lru", "no"),
        ("shards", settings.shards),
    ]
    return _stat_lines(pairs) + b"END\r\n"


def _items_stats(context: _StatsContext, per_shard: list[dict[str, int]]) -> bytes:
    total = _sum(per_shard)
    if not total.get("curr_items"):
        return b"END\r\n"
    age = max(figures.get("oldest_item_age", 0) for figures in per_shard)
    pairs: list[tuple[str, object]] = [
        ("number", total["curr_items"]),
        ("number_hot", 0),
        ("number_warm", 0),
        ("number_cold", total["curr_items"]),
        ("age_hot", 0),
        ("age_warm", 0),
        ("age", age),
        ("mem_requested", total["bytes"]),
        ("evicted", total["evictions"]),
        ("evicted_nonzero", 0),
        ("evicted_time", 0),
        ("outofmemory", total["store_no_memory"]),
        ("tailrepairs", 0),
        ("reclaimed", total["reclaimed"]),
        ("expired_unfetched", total["expired_unfetched"]),
        ("evicted_unfetched", total["evicted_unfetched"]),
        ("evicted_active", total["evicted_active"]),
    ]
    return _stat_lines([(f"items:1:{name}", value) for name, value in pairs]) + b"END\r\n"


def _slabs_stats(context: _StatsContext, total: dict[str, int]) -> bytes:
    active = 1 if total.get("curr_items") else 0
    pairs: list[tuple[str, object]] = []
    if active:
        pairs += [
            ("1:used_chunks", total["curr_items"]),
            ("1:get_hits", total["get_hits"]),
            ("1:cmd_set", total["cmd_set"]),
            ("1:delete_hits", total["delete_hits"]),
            ("1:incr_hits", total["incr_hits"]),
            ("1:decr_hits", total["decr_hits"]),
            ("1:cas_hits", total["cas_hits"]),
            ("1:cas_badval", total["cas_badval"]),
            ("1:touch_hits", total["touch_hits"]),
        ]
    pairs += [("active_slabs", active), ("total_malloced", total.get("bytes", 0))]
    return _stat_lines(pairs) + b"END\r\n"


_LOG_STATS = (
    "log_records",
    "log_commits",
    "log_compactions",
    "log_compaction_failures",
    "log_appended_bytes",
    "log_durable_bytes",
    "log_pending_bytes",
    "log_file_bytes",
)


def _shards_stats(per_shard: list[dict[str, int]]) -> bytes:
    pairs = [
        (f"shard:{index}:{name}", figures.get(name, 0))
        for index, figures in enumerate(per_shard)
        for name in (_SHARD_STATS + _LOG_STATS if "log_records" in figures else _SHARD_STATS)
    ]
    return _stat_lines(pairs) + b"END\r\n"


def _sum(per_shard: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for figures in per_shard:
        for name, value in figures.items():
            total[name] = total.get(name, 0) + value
    return total


# --------------------------------------------------------------------------
# Plans.

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
        if isinstance(
            request,
            (
                p.Store,
                p.StoreTooLarge,
                p.Delete,
                p.Arithmetic,
                p.Touch,
                p.MetaGet,
                p.MetaSet,
                p.MetaDelete,
                p.MetaArithmetic,
                p.MetaDebug,
            ),
        ):
            ref = plan.add(self.owner(request.key), KeyJob(request))
            return lambda result: _bytes_of(result(*ref))
        if isinstance(request, p.FlushAll):
            for shard in shards:
                plan.add(shard, FlushJob(request.exptime))
            return _constant(_line(b"OK", request.noreply))
        if isinstance(request, p.Stats):
            return self._route_stats(plan, request)
        if isinstance(request, p.Version):
            return _constant(_line(b"VERSION " + ENGINE_VERSION))
        if isinstance(request, p.Verbosity):
            self.verbosity = min(request.level, 2)
            return _constant(_line(b"OK", request.noreply))
        if isinstance(request, p.CacheMemlimit):
            share = request.megabytes * 1024 * 1024 // self.settings.shards
            for shard in shards:
                plan.add(shard, LimitJob(share))
            return _constant(_line(b"OK", request.noreply))
        if isinstance(request, p.MetaNoop):
            return _constant(b"MN\r\n")
        if isinstance(request, (p.Quit, p.Close)):
            plan.close = True
            return _constant(b"")
        if request.counts is not None:
            plan.add(self.here, CountJob(request.counts))
        return _constant(_line(request.line, request.noreply))

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
                return _line(p.BAD_FORMAT)
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
        context = _StatsContext(self.settings, self.started, self.verbosity)
        if kind == b"reset":
            for shard in shards:
                plan.add(shard, ResetJob())
            return _constant(b"RESET\r\n")
        if kind == b"detail":
            return _constant(_line(b"CLIENT_ERROR usage: stats detail on|off|dump"))
        if kind == b"cachedump":
            return _constant(_line(b"CLIENT_ERROR stats cachedump not allowed"))
        if kind == b"sizes":
            return _constant(b"STAT sizes_status disabled\r\nEND\r\n")
        renderers: dict[bytes, Callable[[list[dict[str, int]]], bytes]] = {
            b"": lambda figures: _general_stats(context, _sum(figures)),
            b"settings": lambda figures: _settings_stats(context, _sum(figures)),
            b"items": lambda figures: _items_stats(context, figures),
            b"slabs": lambda figures: _slabs_stats(context, _sum(figures)),
            b"shards": _shards_stats,
        }
        render = renderers.get(kind)
        if render is None:
            return _constant(b"ERROR\r\n")
        refs = [plan.add(shard, StatsJob(kind)) for shard in shards]
        return lambda result: render([_figures_of(result(*ref)) for ref in refs])


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
    states: list[ShardState] = attrs.field(init=False)
    frontend: Frontend = attrs.field(init=False)
    logs: list[bytearray] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.logs = [bytearray() for _ in range(self.settings.shards)]
        self.states = [self._shard_state() for _ in range(self.settings.shards)]
        for state in self.states:
            self._attach_journal(state)
        self.frontend = Frontend(self.settings)

    def _shard_state(self) -> ShardState:
        share = self.settings.memory_limit // self.settings.shards
        return ShardState(Cache(share, self.settings.evictions, self.clock))

    def _attach_journal(self, state: ShardState) -> None:
        if self.persistent:
            state.journal = Journal(state.cache)

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
            state = self._shard_state()
            summaries.append(restore(state.cache, [replay]))
            self._attach_journal(state)  # after restoring, as the server does
            self.states[shard] = state
        return summaries

    def _sync(self, shard: int) -> None:
        journal = self.states[shard].journal
        if journal is not None:
            self.logs[shard] += journal.take()
            journal.durable = journal.appended

    def parser(self) -> p.Parser:
        """A parser for a new connection, with this server's limits."""
        return p.Parser(item_size_max=self.settings.item_size_max)

    def execute(self, requests: Sequence[p.Request]) -> tuple[bytes, bool]:
        """Run a batch; the reply bytes and whether the connection closes."""
        plan = self.frontend.plan(requests)
        results = {shard: run_jobs(self.states[shard], jobs) for shard, jobs in plan.jobs.items()}
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
