"""``stats`` and its subcommands: every shard's figures, as memcached lists them.

``stats`` concerns every shard: the routing (:mod:`.engine`) puts a job in
every shard's list, at the request's place in the pipeline, and each shard
answers with its figures (:meth:`.jobs.Partition.figures`: its cache's
counters, its connections', its forwarder's, its log's). This module turns
those figures into the reply. memcached's own reports (``stats``, ``stats
settings``, ``stats items``, ``stats slabs``) add the shards up and list
exactly the lines memcached 1.6.18 lists, in its order, so that tools
reading them work unchanged; what this server does not have (slab classes,
an LRU crawler, threads' buffers) reads as memcached's figures would with
the feature idle. ``stats shards`` is this server's own: a few figures of
each shard apart, and its log's, with a data directory.

The counters the cache keeps are not listed again here: the general report
places the store's groups of counters (:data:`.store.COMMAND_COUNTERS`,
:data:`.store.ITEM_COUNTERS`, :data:`.store.LRU_COUNTERS`) where memcached
lists them, so a counter the store gains appears in ``stats`` by itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import attrs

from .journal import STATISTICS as LOG_STATISTICS
from .settings import ENGINE_VERSION, Settings
from .store import COMMAND_COUNTERS, ITEM_COUNTERS, LRU_COUNTERS

__all__ = ["StatsContext", "report", "without_figures"]

Figures = dict[str, int]
"""One shard's figures, by ``stats`` name."""

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
    *COMMAND_COUNTERS,
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
    *ITEM_COUNTERS,
    "slab_global_page_pool",
    *LRU_COUNTERS,
    "crawler_reclaimed",
    "crawler_items_checked",
    "lrutail_reflocked",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
    "direct_reclaims",
    "lru_bumps_dropped",
)
"""memcached 1.6.18's ``stats`` lines, in its order (a name no shard
reports reads 0)."""

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
"""The figures ``stats shards`` lists for each shard (and then its log's)."""


@attrs.frozen
class StatsContext:
    """What a report needs besides the shards' figures: the settings, when
    the server started (Unix time), and the verbosity at the request's place
    in its pipeline."""

    settings: Settings
    started: float
    verbosity: int


def without_figures(kind: bytes) -> bytes | None:
    """The reply to ``stats <kind>`` when no shard's figures go into it -- a
    subcommand answered as memcached answers it with the feature off, or
    one it does not know -- or None when they do (see :func:`report`).
    ``stats reset`` is neither: it is a job on every shard."""
    if kind == b"detail":
        return b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"
    if kind == b"cachedump":
        return b"CLIENT_ERROR stats cachedump not allowed\r\n"
    if kind == b"sizes":
        return b"STAT sizes_status disabled\r\nEND\r\n"
    if kind not in _REPORTS:
        return b"ERROR\r\n"
    return None


def report(kind: bytes, context: StatsContext, per_shard: list[Figures]) -> bytes:
    """The reply to ``stats <kind>`` from every shard's figures, in shard order."""
    return _REPORTS[kind](context, per_shard)


def _stat_lines(pairs: Sequence[tuple[str, object]]) -> bytes:
    return b"".join(
        b"STAT %s %s\r\n" % (name.encode(), str(value).encode()) for name, value in pairs
    )


def _sum(per_shard: list[Figures]) -> Figures:
    total: Figures = {}
    for figures in per_shard:
        for name, value in figures.items():
            total[name] = total.get(name, 0) + value
    return total


def _general(context: StatsContext, per_shard: list[Figures]) -> bytes:
    total = _sum(per_shard)
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


def _settings(context: StatsContext, per_shard: list[Figures]) -> bytes:
    total = _sum(per_shard)
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


def _items(context: StatsContext, per_shard: list[Figures]) -> bytes:
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


def _slabs(context: StatsContext, per_shard: list[Figures]) -> bytes:
    total = _sum(per_shard)
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


def _shards(context: StatsContext, per_shard: list[Figures]) -> bytes:
    with_log = _SHARD_STATS + LOG_STATISTICS
    pairs = [
        (f"shard:{index}:{name}", figures.get(name, 0))
        for index, figures in enumerate(per_shard)
        for name in (with_log if LOG_STATISTICS[0] in figures else _SHARD_STATS)
    ]
    return _stat_lines(pairs) + b"END\r\n"


_REPORTS: dict[bytes, Callable[[StatsContext, list[Figures]], bytes]] = {
    b"": _general,
    b"settings": _settings,
    b"items": _items,
    b"slabs": _slabs,
    b"shards": _shards,
}
"""The reports made of the shards' figures, by subcommand."""
