"""Persistence without I/O: what a client sees after a restart of a server
with a data directory, on the in-process engine (its shards' logs are kept
in memory and replayed by ``restart()``), on a fake clock.

The property at the heart of it: a session with restarts anywhere answers
byte for byte as the same session without them."""

from __future__ import annotations

import re

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.memcached.engine import LocalEngine
from examples.memcached.records import LogReader
from examples.memcached.recovery import Replay, restore
from examples.memcached.settings import Settings
from examples.memcached.sharding import shard_for_key
from examples.memcached.store import Cache

START = 1_700_000_000.0


@attrs.define
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now


def engine(clock: FakeClock, shards: int = 2, **settings: int) -> LocalEngine:
    return LocalEngine(Settings(shards=shards, **settings), clock, persistent=True)  # type: ignore[arg-type]


def test_every_kind_of_change_comes_back_after_a_restart() -> None:
    clock = FakeClock()
    server = engine(clock)
    script = (
        b"set plain 1 0 5\r\nhello\r\n"
        b"set expiring 2 1000 3\r\nabc\r\n"
        b"add added 0 0 1\r\na\r\n"
        b"set replaced 0 0 3\r\nold\r\nreplace replaced 7 0 3\r\nnew\r\n"
        b"set joined 9 0 3\r\nmid\r\nappend joined 0 0 4\r\n-end\r\n"
        b"prepend joined 0 0 6\r\nstart-\r\n"
        b"set counter 0 0 3\r\n100\r\ndecr counter 1\r\nincr counter 5\r\n"
        b"set touched 0 0 1\r\nt\r\ntouch touched 500\r\n"
        b"set gatted 0 0 1\r\ng\r\ngat 600 gatted\r\n"
        b"set deleted 0 0 1\r\nd\r\ndelete deleted\r\n"
        b"set quiet 0 0 5 noreply\r\nshhhh\r\n"
        b"ms meta 4 F3 T700\r\nmeta\r\n"
    )
    server.converse(script)
    keys = b"plain expiring added replaced joined counter touched gatted deleted quiet meta"
    probe = b"gets " + keys + b"\r\nmg touched t\r\nmg gatted t\r\nmg meta t f v\r\n"
    before = server.converse(probe)
    assert b"VALUE counter 0 3" in before and b"\r\n104\r\n" in before
    assert b"VALUE joined 9 13" in before and b"deleted" not in before
    server.restart()
    assert server.converse(probe) == before


def test_an_item_that_expired_while_down_is_gone_and_the_others_keep_their_deadline() -> None:
    clock = FakeClock()
    server = engine(clock)
    server.converse(b"set short 0 10 1\r\ns\r\nset long 0 100 1\r\nl\r\n")
    clock.now += 50
    summaries = server.restart()
    assert sum(summary.items for summary in summaries) == 1
    assert server.converse(b"get short long\r\n") == b"VALUE long 0 1\r\nl\r\nEND\r\n"
    clock.now += 49
    assert server.converse(b"get long\r\n") == b"VALUE long 0 1\r\nl\r\nEND\r\n"
    clock.now += 1
    assert server.converse(b"get long\r\n") == b"END\r\n"


def test_an_absolute_exptime_means_the_same_moment_after_a_restart() -> None:
    clock = FakeClock()
    server = engine(clock)
    deadline = int(START) + 3 * 86400 + 30
    server.converse(b"set abs 0 %d 1\r\na\r\n" % deadline)
    clock.now += 3 * 86400
    server.restart()
    assert server.converse(b"mg abs t\r\n") == b"HD t30\r\n"
    clock.now += 30
    assert server.converse(b"get abs\r\n") == b"END\r\n"


def test_flush_all_stays_done_after_a_restart() -> None:
    clock = FakeClock()
    server = engine(clock)
    server.converse(b"set old 0 0 1\r\no\r\nflush_all\r\n")
    clock.now += 1
    server.converse(b"set new 0 0 1\r\nn\r\n")
    server.restart()
    assert server.converse(b"get old new\r\n") == b"VALUE new 0 1\r\nn\r\nEND\r\n"


def test_a_delayed_flush_still_happens_on_time_after_a_restart() -> None:
    clock = FakeClock()
    server = engine(clock)
    assert server.converse(b"set early 0 0 1\r\ne\r\nflush_all 10\r\n") == b"STORED\r\nOK\r\n"
    clock.now += 5
    server.converse(b"set during 0 0 1\r\nd\r\n")
    server.restart()
    assert server.converse(b"get early during\r\n").count(b"VALUE") == 2
    clock.now += 5
    assert server.converse(b"get early during\r\n") == b"END\r\n"
    clock.now += 1
    server.converse(b"set after 0 0 1\r\na\r\n")
    server.restart()
    assert server.converse(b"get early during after\r\n") == b"VALUE after 0 1\r\na\r\nEND\r\n"


def test_cas_values_survive_and_are_never_handed_out_twice() -> None:
    clock = FakeClock()
    server = engine(clock, shards=1)
    server.converse(b"set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\nset c 0 0 1\r\nc\r\ndelete c\r\n")
    assert server.converse(b"gets a\r\n") == b"VALUE a 0 1 1\r\na\r\nEND\r\n"
    server.restart()
    # A CAS taken before the restart still works...
    assert server.converse(b"cas a 0 0 2 1\r\naa\r\n") == b"STORED\r\n"
    # ... and new ones continue above every value handed out, deleted items' too.
    assert server.converse(b"gets a\r\n") == b"VALUE a 0 2 4\r\naa\r\nEND\r\n"


def test_an_evicted_item_does_not_come_back_after_a_restart() -> None:
    clock = FakeClock()
    server = engine(clock, shards=1, memory_limit=8 * 1024)
    value = b"x" * 1000
    for i in range(12):
        server.converse(b"set k%d 0 0 1000\r\n%s\r\n" % (i, value))
    stats = server.converse(b"stats\r\n")
    evictions = int(re.search(rb"STAT evictions (\d+)", stats).group(1))  # type: ignore[union-attr]
    assert evictions > 0
    present = [i for i in range(12) if server.converse(b"get k%d\r\n" % i) != b"END\r\n"]
    server.restart()
    assert [i for i in range(12) if server.converse(b"get k%d\r\n" % i) != b"END\r\n"] == present


def test_items_dropped_at_a_restart_with_less_memory_stay_gone_at_the_next() -> None:
    clock = FakeClock()
    server = engine(clock, shards=1)
    value = b"x" * 1000
    for i in range(12):
        server.converse(b"set k%d 0 0 1000\r\n%s\r\n" % (i, value))

    def present() -> list[int]:
        return [i for i in range(12) if server.converse(b"get k%d\r\n" % i) != b"END\r\n"]

    generous = server.settings
    server.settings = attrs.evolve(generous, memory_limit=8 * 1024)
    (summary,) = server.restart()
    kept = present()
    assert 0 < len(kept) < 12
    assert summary.dropped == tuple(b"k%d" % i for i in range(12) if i not in kept)
    assert server.converse(b"delete k0\r\n") == b"NOT_FOUND\r\n"
    server.settings = generous
    server.restart()
    assert present() == kept


def test_an_in_place_decrement_keeps_its_padding() -> None:
    clock = FakeClock()
    server = engine(clock)
    server.converse(b"set n 0 0 3\r\n100\r\ndecr n 1\r\n")
    server.restart()
    assert server.converse(b"get n\r\n") == b"VALUE n 0 3\r\n99 \r\nEND\r\n"


def test_a_stale_item_is_still_stale_after_a_restart() -> None:
    clock = FakeClock()
    server = engine(clock)
    server.converse(b"set s 0 0 1\r\ns\r\n")
    assert server.converse(b"md s I T30\r\n") == b"HD\r\n"
    server.restart()
    assert server.converse(b"mg s v t\r\n") == b"VA 1 t30 X W\r\ns\r\n"


def test_reads_append_nothing_to_the_log() -> None:
    clock = FakeClock()
    server = engine(clock)
    server.converse(b"set a 0 0 1\r\na\r\n")
    sizes = [len(log) for log in server.logs]
    server.converse(b"get a\r\ngets a b\r\nmg a v\r\nstats\r\nversion\r\n")
    assert [len(log) for log in server.logs] == sizes


def test_logs_of_two_shards_restore_into_three() -> None:
    clock = FakeClock()
    server = engine(clock, shards=2)
    keys = [b"key%d" % i for i in range(60)]
    server.converse(b"".join(b"set %s 3 0 %d\r\n%s\r\n" % (k, len(k), k) for k in keys))
    server.converse(b"".join(b"delete %s\r\n" % k for k in keys[::3]))
    expected = {k for i, k in enumerate(keys) if i % 3}
    found: set[bytes] = set()
    for shard in range(3):
        replays = []
        for log in server.logs:
            replay = Replay(keep=lambda key, shard=shard: shard_for_key(key, 3) == shard)
            for record in LogReader(max_record=1 << 20).feed(log):
                replay.apply(record)
            replays.append(replay)
        cache = Cache(clock=clock)
        restore(cache, replays)
        restored = {item.key: item.value for item in cache.items()}
        assert all(shard_for_key(key, 3) == shard for key in restored)
        assert all(value == key for key, value in restored.items())
        found |= set(restored)
    assert found == expected


# -- the property: restarts change nothing a client can see -------------------------

KEYS = [b"a", b"b", b"c", b"d", b"e"]
key = st.sampled_from(KEYS)
exptime = st.sampled_from([0, 0, 0, 1, 2, 5, -1, int(START) + 4])
data = st.binary(min_size=0, max_size=6).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
number = st.sampled_from([b"0", b"7", b"18446744073709551615", b"12x"])


def _store(verb: bytes) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda k, f, e, v, noreply: (
            b"%s %s %d %d %d%s\r\n%s\r\n"
            % (verb, k, f, e, len(v), b" noreply" if noreply else b"", v)
        ),
        key,
        st.sampled_from([0, 5]),
        exptime,
        st.one_of(data, number),
        st.booleans(),
    )


command = st.one_of(
    *(_store(verb) for verb in (b"set", b"add", b"replace", b"append", b"prepend")),
    st.builds(
        lambda k, c, v: b"cas %s 0 0 %d %d\r\n%s\r\n" % (k, len(v), c, v),
        key,
        st.integers(0, 12),
        data,
    ),
    st.builds(lambda k, d: b"incr %s %d\r\n" % (k, d), key, st.integers(0, 300)),
    st.builds(lambda k, d: b"decr %s %d\r\n" % (k, d), key, st.integers(0, 300)),
    st.builds(lambda k, e: b"touch %s %d\r\n" % (k, e), key, exptime),
    st.builds(lambda k, e: b"gat %d %s\r\n" % (e, k), key, exptime),
    st.builds(lambda k: b"delete %s\r\n" % k, key),
    st.builds(lambda k: b"gets %s\r\n" % k, key),
    st.just(b"flush_all\r\n"),
)
step = st.tuples(command, st.sampled_from([0, 0, 0, 1, 3]), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=40), st.sampled_from([1, 2]))
def test_a_session_with_restarts_answers_as_one_without(
    steps: list[tuple[bytes, int, bool]], shards: int
) -> None:
    clock = FakeClock()
    restarted = engine(clock, shards=shards)
    steady = LocalEngine(Settings(shards=shards), clock)
    everything = b"gets " + b" ".join(KEYS) + b"\r\n"
    for script, seconds, restart in steps:
        clock.now += seconds
        if restart:
            restarted.restart()
        assert restarted.converse(script) == steady.converse(script), script
    restarted.restart()
    assert restarted.converse(everything) == steady.converse(everything)


@pytest.mark.parametrize("shards", [1, 3])
def test_restarting_an_empty_server_gives_an_empty_cache(shards: int) -> None:
    server = engine(FakeClock(), shards=shards)
    assert [summary.items for summary in server.restart()] == [0] * shards
    assert server.converse(b"get a\r\n") == b"END\r\n"
