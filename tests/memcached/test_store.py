"""The per-shard cache: expiry rules on a fake clock, flush_all with delay,
CAS, incr/decr wraparound and padding, append/prepend, LRU eviction under the
memory limit, and the statistics memcached would show."""

from __future__ import annotations

import attrs
import pytest

from examples.memcached.store import ArithmeticResult, Cache, StoreResult

START = 1_700_000_000.0


@attrs.define
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    return Cache(clock=clock)


def value(cache: Cache, key: bytes) -> bytes | None:
    item = cache.retrieve(key)
    return None if item is None else item.value


def put(cache: Cache, key: bytes, data: bytes, exptime: int = 0, flags: int = 0) -> None:
    assert cache.store("set", key, flags, exptime, data)[0] is StoreResult.STORED


# -- expiry ----------------------------------------------------------------------


def test_exptime_zero_never_expires(cache: Cache, clock: FakeClock) -> None:
    put(cache, b"k", b"v")
    clock.advance(10 * 365 * 86400)
    assert value(cache, b"k") == b"v"


def test_a_relative_exptime_expires_after_that_many_seconds(cache: Cache, clock: FakeClock) -> None:
    put(cache, b"k", b"v", exptime=10)
    clock.advance(9)
    assert value(cache, b"k") == b"v"
    clock.advance(1)
    assert value(cache, b"k") is None
    assert cache.counters["get_expired"] == 1


def test_thirty_days_is_still_relative(cache: Cache, clock: FakeClock) -> None:
    put(cache, b"k", b"v", exptime=2592000)
    clock.advance(2592000 - 1)
    assert value(cache, b"k") == b"v"
    clock.advance(1)
    assert value(cache, b"k") is None


def test_beyond_thirty_days_the_exptime_is_absolute_unix_time(
    cache: Cache, clock: FakeClock
) -> None:
    put(cache, b"k", b"v", exptime=int(START) + 100)
    clock.advance(99)
    assert value(cache, b"k") == b"v"
    clock.advance(1)
    assert value(cache, b"k") is None


def test_an_absolute_exptime_in_the_past_is_already_expired(cache: Cache) -> None:
    put(cache, b"k", b"v", exptime=2592001)
    assert value(cache, b"k") is None


def test_a_negative_exptime_is_immediately_expired(cache: Cache) -> None:
    put(cache, b"k", b"v", exptime=-1)
    assert value(cache, b"k") is None
    assert cache.counters["get_expired"] == 1


def test_touch_sets_a_new_exptime(cache: Cache, clock: FakeClock) -> None:
    put(cache, b"k", b"v", exptime=5)
    assert cache.touch(b"k", 100) is not None
    clock.advance(50)
    assert value(cache, b"k") == b"v"
    assert cache.touch(b"k", -1) is not None
    assert value(cache, b"k") is None
    assert cache.touch(b"missing", 10) is None
    assert (cache.counters["touch_hits"], cache.counters["touch_misses"]) == (2, 1)
    assert cache.counters["cmd_touch"] == 3


def test_gat_returns_the_item_and_updates_its_exptime(cache: Cache, clock: FakeClock) -> None:
    put(cache, b"k", b"v")
    item = cache.retrieve(b"k", touch_exptime=3)
    assert item is not None and item.value == b"v"
    clock.advance(3)
    assert value(cache, b"k") is None


# -- flush_all -------------------------------------------------------------------


def test_flush_all_invalidates_everything_stored_before_it(cache: Cache) -> None:
    put(cache, b"a", b"1")
    put(cache, b"b", b"2")
    cache.flush_all()
    assert value(cache, b"a") is None and value(cache, b"b") is None
    put(cache, b"c", b"3")
    assert value(cache, b"c") == b"3"
    assert cache.counters["get_flushed"] == 2


def test_flush_all_with_delay_invalidates_items_set_before_the_deadline(
    cache: Cache, clock: FakeClock
) -> None:
    put(cache, b"old", b"1")
    cache.flush_all(10)
    clock.advance(5)
    put(cache, b"meanwhile", b"2")
    assert value(cache, b"old") == b"1"
    # memcached's deadline is the flush time minus one second.
    clock.advance(4)
    assert value(cache, b"old") is None
    assert value(cache, b"meanwhile") is None
    clock.advance(1)
    put(cache, b"after", b"3")
    assert value(cache, b"after") == b"3"


def test_an_immediate_flush_consumes_a_cas_value(cache: Cache) -> None:
    put(cache, b"a", b"1")
    cache.flush_all()
    put(cache, b"b", b"2")
    item = cache.retrieve(b"b")
    assert item is not None and item.cas == 3


# -- storage commands and CAS ----------------------------------------------------------


def test_add_only_stores_a_missing_key(cache: Cache) -> None:
    assert cache.store("add", b"k", 0, 0, b"1")[0] is StoreResult.STORED
    assert cache.store("add", b"k", 0, 0, b"2")[0] is StoreResult.NOT_STORED
    assert value(cache, b"k") == b"1"


def test_replace_only_stores_an_existing_key(cache: Cache) -> None:
    assert cache.store("replace", b"k", 0, 0, b"1")[0] is StoreResult.NOT_STORED
    put(cache, b"k", b"1")
    assert cache.store("replace", b"k", 0, 0, b"2")[0] is StoreResult.STORED
    assert value(cache, b"k") == b"2"


def test_append_and_prepend_keep_flags_and_exptime(cache: Cache, clock: FakeClock) -> None:
    put(cache, b"k", b"mid", exptime=10, flags=7)
    assert cache.store("append", b"k", 1, 0, b">>")[0] is StoreResult.STORED
    assert cache.store("prepend", b"k", 2, 1000, b"<<")[0] is StoreResult.STORED
    item = cache.retrieve(b"k")
    assert item is not None
    assert (item.value, item.flags) == (b"<<mid>>", 7)
    clock.advance(10)
    assert value(cache, b"k") is None
    assert cache.store("append", b"k", 0, 0, b"x")[0] is StoreResult.NOT_STORED


def test_cas_stores_only_on_a_matching_unique(cache: Cache) -> None:
    assert cache.store("cas", b"k", 0, 0, b"x", 1)[0] is StoreResult.NOT_FOUND
    put(cache, b"k", b"1")
    item = cache.retrieve(b"k")
    assert item is not None
    assert cache.store("cas", b"k", 0, 0, b"2", item.cas + 1)[0] is StoreResult.EXISTS
    assert cache.store("cas", b"k", 0, 0, b"2", 0)[0] is StoreResult.EXISTS
    assert cache.store("cas", b"k", 0, 0, b"2", item.cas)[0] is StoreResult.STORED
    assert cache.store("cas", b"k", 0, 0, b"3", item.cas)[0] is StoreResult.EXISTS
    assert value(cache, b"k") == b"2"
    counters = cache.counters
    assert (counters["cas_misses"], counters["cas_hits"], counters["cas_badval"]) == (1, 1, 3)


def test_every_store_gets_a_new_cas_value(cache: Cache) -> None:
    uniques = []
    for data in (b"a", b"b", b"c"):
        put(cache, b"k", data)
        item = cache.retrieve(b"k")
        assert item is not None
        uniques.append(item.cas)
    assert uniques == sorted(set(uniques))


# -- incr / decr ------------------------------------------------------------------------


def test_incr_wraps_at_two_to_the_64(cache: Cache) -> None:
    put(cache, b"n", b"18446744073709551615")
    assert cache.arithmetic(b"n", True, 2)[0] == 1
    assert value(cache, b"n") == b"1" + b" " * 19


def test_decr_stops_at_zero(cache: Cache) -> None:
    put(cache, b"n", b"5")
    assert cache.arithmetic(b"n", False, 10)[0] == 0


def test_a_shorter_result_is_written_in_place_padded_with_spaces(cache: Cache) -> None:
    put(cache, b"n", b"100")
    assert cache.arithmetic(b"n", False, 1)[0] == 99
    assert value(cache, b"n") == b"99 "
    assert cache.arithmetic(b"n", True, 1)[0] == 100
    assert value(cache, b"n") == b"100"


def test_a_longer_result_replaces_the_item_keeping_flags(cache: Cache) -> None:
    put(cache, b"n", b"99", flags=3)
    assert cache.arithmetic(b"n", True, 1)[0] == 100
    item = cache.retrieve(b"n")
    assert item is not None and (item.value, item.flags) == (b"100", 3)


@pytest.mark.parametrize("data", [b"", b"abc", b"12abc", b"-1", b"18446744073709551616"])
def test_incr_of_a_non_numeric_value_is_refused(cache: Cache, data: bytes) -> None:
    put(cache, b"n", data)
    assert cache.arithmetic(b"n", True, 1)[0] is ArithmeticResult.NON_NUMERIC


@pytest.mark.parametrize(("data", "result"), [(b" 42", 43), (b"7 junk", 8), (b"+7", 8)])
def test_incr_reads_the_value_as_strtoull_does(cache: Cache, data: bytes, result: int) -> None:
    put(cache, b"n", data)
    assert cache.arithmetic(b"n", True, 1)[0] == result


def test_incr_changes_the_cas_value(cache: Cache) -> None:
    put(cache, b"n", b"1")
    before = cache.retrieve(b"n")
    assert before is not None
    old_cas = before.cas
    cache.arithmetic(b"n", True, 1)
    after = cache.retrieve(b"n")
    assert after is not None and after.cas > old_cas


def test_incr_of_a_missing_key_is_not_found(cache: Cache) -> None:
    assert cache.arithmetic(b"n", True, 1)[0] is ArithmeticResult.NOT_FOUND


# -- memory and LRU -------------------------------------------------------------------------


def test_the_least_recently_used_item_is_evicted_first(clock: FakeClock) -> None:
    size = Cache().new_item(b"k0", b"x" * 100, 0, 0)
    assert size is not None
    cache = Cache(memory_limit=3 * size.size, clock=clock)
    put(cache, b"k0", b"x" * 100)
    put(cache, b"k1", b"x" * 100)
    put(cache, b"k2", b"x" * 100)
    assert value(cache, b"k0") is not None  # k0 is now the most recently used
    put(cache, b"k3", b"x" * 100)
    assert b"k1" not in cache
    assert [key for key in (b"k0", b"k2", b"k3") if key in cache] == [b"k0", b"k2", b"k3"]
    assert cache.counters["evictions"] == 1
    assert cache.counters["evicted_unfetched"] == 1
    assert cache.bytes_used <= cache.memory_limit


def test_expired_items_are_reclaimed_before_live_ones_are_evicted(clock: FakeClock) -> None:
    probe = Cache().new_item(b"k0", b"x" * 100, 0, 0)
    assert probe is not None
    cache = Cache(memory_limit=2 * probe.size, clock=clock)
    put(cache, b"k0", b"x" * 100, exptime=1)
    put(cache, b"k1", b"x" * 100)
    clock.advance(2)
    put(cache, b"k2", b"x" * 100)
    assert cache.counters["reclaimed"] == 1
    assert cache.counters["evictions"] == 0
    assert b"k1" in cache and b"k2" in cache


def test_memory_use_never_passes_the_limit_under_churn(clock: FakeClock) -> None:
    cache = Cache(memory_limit=50_000, clock=clock)
    for i in range(2000):
        put(cache, b"key%d" % i, b"v" * (i % 300))
        assert cache.bytes_used <= 50_000
    assert cache.counters["evictions"] > 0
    assert cache.statistics()["curr_items"] == len(cache)


def test_an_item_larger_than_the_whole_limit_is_out_of_memory(clock: FakeClock) -> None:
    cache = Cache(memory_limit=1000, clock=clock)
    put(cache, b"k", b"small")
    assert cache.store("set", b"k", 0, 0, b"x" * 2000)[0] is StoreResult.NO_MEMORY
    # A failed set must not leave the old value behind.
    assert value(cache, b"k") is None
    assert cache.counters["store_no_memory"] == 1


def test_without_evictions_a_full_cache_refuses_to_store(clock: FakeClock) -> None:
    probe = Cache().new_item(b"k0", b"x", 0, 0)
    assert probe is not None
    cache = Cache(memory_limit=probe.size, evictions=False, clock=clock)
    put(cache, b"k0", b"x")
    assert cache.store("set", b"k1", 0, 0, b"x")[0] is StoreResult.NO_MEMORY
    assert value(cache, b"k0") == b"x"


def test_too_large_set_deletes_the_old_value(cache: Cache) -> None:
    put(cache, b"k", b"v")
    cache.too_large("add", b"k")
    assert value(cache, b"k") == b"v"
    cache.too_large("set", b"k")
    assert value(cache, b"k") is None
    assert cache.counters["store_too_large"] == 2


# -- statistics -------------------------------------------------------------------------------


def test_statistics_count_as_memcached_does(cache: Cache) -> None:
    put(cache, b"a", b"x")
    value(cache, b"a")
    value(cache, b"b")
    cache.delete(b"a")
    cache.delete(b"a")
    figures = cache.statistics()
    assert figures["cmd_get"] == 2
    assert (figures["get_hits"], figures["get_misses"]) == (1, 1)
    assert (figures["delete_hits"], figures["delete_misses"]) == (1, 1)
    assert (figures["cmd_set"], figures["total_items"], figures["curr_items"]) == (1, 1, 0)
    assert figures["bytes"] == 0


def test_bytes_counts_memcacheds_item_size(cache: Cache) -> None:
    put(cache, b"a", b"x")
    assert cache.statistics()["bytes"] == 61


def test_reset_zeroes_counters_but_not_items(cache: Cache) -> None:
    put(cache, b"a", b"x")
    cache.reset_statistics()
    figures = cache.statistics()
    assert figures["cmd_set"] == 0 and figures["curr_items"] == 1
