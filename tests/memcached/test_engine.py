"""Replies, byte for byte, from the in-process engine: what a client of the
server sees, without sockets. Also: a sharded engine answers exactly as a
single cache does."""

from __future__ import annotations

import re

import pytest

from examples.memcached.engine import LocalEngine
from examples.memcached.journal import STATISTICS as LOG_STATISTICS
from examples.memcached.meta import slab_class
from examples.memcached.settings import Settings
from examples.memcached.sharding import shard_for_key
from examples.memcached.store import COUNTERS


def talk(*chunks: bytes, shards: int = 1, **settings: int) -> bytes:
    engine = LocalEngine(Settings(shards=shards, **settings))  # type: ignore[arg-type]
    return engine.converse(*chunks)


def test_set_then_get_and_gets() -> None:
    reply = talk(b"set a 5 0 3\r\nabc\r\nget a\r\ngets a\r\n")
    assert reply == (b"STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\nVALUE a 5 3 1\r\nabc\r\nEND\r\n")


def test_a_multiget_answers_hits_in_key_order_and_skips_misses() -> None:
    reply = talk(b"set a 0 0 1\r\n1\r\nset c 0 0 1\r\n3\r\nget c b a c\r\n")
    assert reply == (
        b"STORED\r\nSTORED\r\nVALUE c 0 1\r\n3\r\nVALUE a 0 1\r\n1\r\nVALUE c 0 1\r\n3\r\nEND\r\n"
    )


def test_noreply_silences_every_reply() -> None:
    script = (
        b"set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\nx\r\n"
        b"incr a 1 noreply\r\ndelete a noreply\r\ndelete a noreply\r\n"
        b"touch a 1 noreply\r\nflush_all noreply\r\nverbosity 1 noreply\r\n"
        b"set a 0 0 x noreply\r\nversion\r\n"
    )
    assert talk(script) == b"VERSION 1.6.18\r\n"


def test_storage_replies() -> None:
    script = (
        b"add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nreplace b 0 0 1\r\n1\r\n"
        b"append b 0 0 1\r\n1\r\ncas b 0 0 1 1\r\n1\r\ncas a 0 0 1 99\r\n1\r\n"
        b"cas a 0 0 1 1\r\n9\r\nget a\r\n"
    )
    assert talk(script) == (
        b"STORED\r\nNOT_STORED\r\nNOT_STORED\r\nNOT_STORED\r\nNOT_FOUND\r\nEXISTS\r\n"
        b"STORED\r\nVALUE a 0 1\r\n9\r\nEND\r\n"
    )


def test_incr_decr_replies() -> None:
    script = (
        b"incr n 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\n"
        b"set s 0 0 1\r\nx\r\nincr s 1\r\nincr n x\r\n"
    )
    assert talk(script) == (
        b"NOT_FOUND\r\nSTORED\r\n15\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n"
        b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        b"CLIENT_ERROR invalid numeric delta argument\r\n"
    )


def test_delete_touch_gat_replies() -> None:
    script = (
        b"delete a\r\nset a 0 0 1\r\nx\r\ntouch a 100\r\ntouch b 1\r\n"
        b"gat 100 a b\r\ngats 100 a\r\ndelete a\r\n"
    )
    assert talk(script) == (
        b"NOT_FOUND\r\nSTORED\r\nTOUCHED\r\nNOT_FOUND\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
        b"VALUE a 0 1 1\r\nx\r\nEND\r\nDELETED\r\n"
    )


def test_a_too_long_key_in_a_get_replaces_the_whole_reply() -> None:
    assert talk(b"set a 0 0 1\r\nx\r\nget a " + b"k" * 251 + b"\r\n") == (
        b"STORED\r\nCLIENT_ERROR bad command line format\r\n"
    )


def test_a_too_large_item_is_refused_and_its_data_ignored() -> None:
    script = b"set a 0 0 1\r\nx\r\nset a 0 0 2000\r\n" + b"x" * 2000 + b"\r\nget a\r\n"
    assert talk(script, item_size_max=1000) == (
        b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"
    )


def test_flush_all_version_verbosity_and_quit() -> None:
    script = (
        b"set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\nverbosity 1\r\nversion\r\nquit\r\nget a\r\n"
    )
    assert talk(script) == b"STORED\r\nOK\r\nEND\r\nOK\r\nVERSION 1.6.18\r\n"


def test_stats_lists_memcacheds_fields_in_its_order() -> None:
    reply = talk(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\nstats\r\n").decode()
    stats = dict(re.findall(r"STAT (\S+) (\S+)\r\n", reply))
    names = re.findall(r"STAT (\S+) ", reply)
    assert names[:4] == ["pid", "uptime", "time", "version"]
    assert names[-2:] == ["direct_reclaims", "lru_bumps_dropped"]
    assert len(names) == 92
    assert stats["cmd_get"] == "2" and stats["get_hits"] == "1" and stats["get_misses"] == "1"
    assert stats["curr_items"] == "1" and stats["bytes"] == "61" and stats["cmd_set"] == "1"
    assert stats["version"] == "1.6.18" and stats["limit_maxbytes"] == str(64 * 1024 * 1024)
    assert reply.endswith("END\r\n")


def test_stats_subcommands() -> None:
    assert talk(b"stats nonsense\r\n") == b"ERROR\r\n"
    assert talk(b"stats reset\r\n") == b"RESET\r\n"
    assert talk(b"stats sizes\r\n") == b"STAT sizes_status disabled\r\nEND\r\n"
    assert talk(b"stats items\r\n") == b"END\r\n"
    items = talk(b"set a 0 0 1\r\nx\r\nstats items\r\n")
    assert b"STAT items:1:number 1\r\n" in items
    settings = talk(b"stats settings\r\n", item_size_max=2048)
    assert b"STAT item_size_max 2048\r\n" in settings
    slabs = talk(b"set a 0 0 1\r\nx\r\nstats slabs\r\n")
    assert b"STAT active_slabs 1\r\n" in slabs


def test_stats_reset_zeroes_every_shard() -> None:
    reply = talk(b"get a b c d\r\nstats reset\r\nstats\r\n", shards=3)
    assert b"STAT cmd_get 0\r\n" in reply


def test_stats_shards_gives_per_shard_figures_that_add_up() -> None:
    keys = [b"key%d" % i for i in range(30)]
    script = b"".join(b"set %s 0 0 1\r\nx\r\n" % key for key in keys) + b"stats shards\r\nstats\r\n"
    reply = talk(script, shards=3).decode()
    per_shard = {
        int(shard): int(count)
        for shard, count in re.findall(r"STAT shard:(\d+):curr_items (\d+)\r\n", reply)
    }
    expected = {shard: 0 for shard in range(3)}
    for key in keys:
        expected[shard_for_key(key, 3)] += 1
    assert per_shard == expected
    assert "STAT curr_items 30\r\n" in reply
    assert "STAT threads 3\r\n" in reply


def test_stats_reports_every_counter_the_store_keeps_added_up_over_shards() -> None:
    engine = LocalEngine(Settings(shards=3))
    engine.converse(SCRIPT)
    reply = engine.converse(b"stats\r\n").decode()
    reported = dict(re.findall(r"STAT (\S+) (\S+)\r\n", reply))
    counted = {
        name: str(sum(partition.cache.counters[name] for partition in engine.partitions))
        for name in COUNTERS
    }
    assert {name: reported[name] for name in COUNTERS} == counted
    assert counted["cmd_get"] != "0" and counted["total_items"] != "0"


def test_stats_shards_adds_each_shards_log_figures_when_it_persists() -> None:
    engine = LocalEngine(Settings(shards=2), persistent=True)
    reply = engine.converse(b"set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\nstats shards\r\n")
    names = re.findall(rb"STAT shard:1:(\S+) ", reply)
    assert names[-len(LOG_STATISTICS) :] == [name.encode() for name in LOG_STATISTICS]
    records = sum(int(n) for n in re.findall(rb"STAT shard:\d:log_records (\d+)\r\n", reply))
    assert records == 2
    assert b"log_records" not in talk(b"stats shards\r\n", shards=2)


def test_memory_limit_is_shared_out_over_shards() -> None:
    reply = talk(b"stats shards\r\n", shards=4, memory_limit=4 << 20)
    assert reply.count(b":limit_maxbytes 1048576\r\n") == 4


def test_meta_commands_round_trip() -> None:
    script = (
        b"ms k 2 T0 F7 c\r\nhi\r\nmg k v f s c k Oxy\r\nmg nope v Oq\r\n"
        b"ma n N0 J10 v\r\nma n MD D3 v\r\nmd k q\r\nmd k\r\nmn\r\n"
    )
    assert talk(script) == (
        b"HD c1\r\nVA 2 f7 s2 c1 kk Oxy\r\nhi\r\nEN Oq\r\nVA 2\r\n10\r\nVA 1\r\n7\r\nNF\r\nMN\r\n"
    )


def test_meta_debug_describes_an_item() -> None:
    assert talk(b"set a 0 0 1\r\nx\r\nme a\r\nme b\r\n") == (
        b"STORED\r\nME a exp=-1 la=0 cas=1 fetch=no cls=1 size=61\r\nEN\r\n"
    )


@pytest.mark.parametrize(("size", "klass"), [(61, 1), (96, 1), (97, 2), (120, 2), (121, 3)])
def test_slab_class_follows_memcacheds_chunk_sizes(size: int, klass: int) -> None:
    assert slab_class(size) == klass


SCRIPT = b"".join(
    [
        b"set a 0 0 1\r\n1\r\nset b 1 0 1\r\n2\r\nset c 2 0 1\r\n3\r\nset d 3 0 2\r\n44\r\n",
        b"gets a b c d e f\r\nincr a 10\r\nappend b 0 0 1\r\n!\r\nprepend c 0 0 1\r\n^\r\n",
        b"gat 0 a b c d\r\ndelete d\r\ncas a 0 0 1 1\r\nx\r\nmg a v c\r\nma a\r\n",
        b"flush_all\r\nget a b c d\r\nset e 0 0 1\r\ne\r\ngets a b c d e\r\n",
        b"stats shards\r\n",
    ]
)


def test_a_sharded_engine_answers_as_one_cache_does() -> None:
    single = talk(SCRIPT, shards=1)
    sharded = talk(SCRIPT, shards=4)
    # Per-shard CAS counters: uniques may differ; everything else is equal.
    strip = re.compile(rb"(VALUE \S+ \d+ \d+) \d+|c\d+|STAT shard:.*\r\n")
    assert strip.sub(rb"\1", single) == strip.sub(rb"\1", sharded)
    assert sharded.count(b"STAT shard:") == 4 * 13
