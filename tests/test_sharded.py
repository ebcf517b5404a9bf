"""sharded(): one instance per shard, built on its shard, closed on exit."""

from __future__ import annotations

import os

import pytest

import shardio

pytestmark = pytest.mark.shardio(shards=2)

CLOSED: list[int] = []


class Counter:
    def __init__(self, start: int) -> None:
        self.shard = shardio.current_shard()
        self.pid = os.getpid()
        self.value = start

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value

    async def add_later(self, amount: int) -> int:
        await shardio.sleep(0)
        return self.add(amount)

    async def aclose(self) -> None:
        await shardio.sleep(0)
        CLOSED.append(self.shard)


def closed_here() -> list[int]:
    return list(CLOSED)


async def clear_closed_everywhere() -> None:
    # Each shard has its own copy of this module's globals.
    CLOSED.clear()
    await shardio.run_on(1, clear_closed)


def clear_closed() -> None:
    CLOSED.clear()


async def test_one_instance_per_shard_built_on_its_shard() -> None:
    async with shardio.sharded(Counter, 10) as svc:
        local = svc.local()
        assert local.shard == 0 and local.pid == os.getpid()
        shards = await svc.invoke_on_all(lambda c: (c.shard, c.pid))
        assert [s for s, _ in shards] == [0, 1]
        assert shards[1][1] != os.getpid()


async def test_invoke_on_runs_with_that_shards_instance_sync_or_async() -> None:
    async with shardio.sharded(Counter, 0) as svc:
        assert await svc.invoke_on(1, Counter.add, 5) == 5
        assert await svc.invoke_on(1, Counter.add_later, 2) == 7
        assert await svc.invoke_on(0, Counter.add, 1) == 1
        assert svc.local().value == 1  # shard 0's instance only saw its own call


async def test_map_reduce_folds_in_shard_order() -> None:
    async with shardio.sharded(Counter, 3) as svc:
        await svc.invoke_on(1, Counter.add, 4)
        total = await svc.map_reduce(lambda c: c.value, lambda acc, v: [*acc, v], [])
        assert total == [3, 7]


async def test_aclose_runs_on_every_shard_at_exit_even_when_cancelled() -> None:
    await clear_closed_everywhere()
    with shardio.CancelScope() as scope:
        async with shardio.sharded(Counter, 0):
            scope.cancel()
            await shardio.sleep_forever()
    assert CLOSED == [0]
    assert await shardio.run_on(1, closed_here) == [1]


async def local_value(svc: shardio.Sharded[Counter]) -> tuple[int, int]:
    return svc.local().shard, svc.local().value


async def test_the_handle_travels_and_local_means_the_shard_it_is_on() -> None:
    async with shardio.sharded(Counter, 0) as svc:
        await svc.invoke_on(1, Counter.add, 9)
        assert await shardio.run_on(1, local_value, svc) == (1, 9)
        assert await local_value(svc) == (0, 0)


async def make_async_counter(start: int) -> Counter:
    await shardio.sleep(0)
    return Counter(start * 2)


class FailsOnShardOne:
    def __init__(self) -> None:
        if shardio.current_shard() == 1:
            raise ValueError("no room on shard 1")

    def aclose(self) -> None:
        CLOSED.append(shardio.current_shard())


async def test_async_factory() -> None:
    async with shardio.sharded(make_async_counter, 21) as svc:
        assert await svc.invoke_on_all(lambda c: c.value) == [42, 42]


async def test_a_failing_factory_closes_what_was_built_and_raises() -> None:
    await clear_closed_everywhere()
    with pytest.raises(ExceptionGroup) as info:
        async with shardio.sharded(FailsOnShardOne):
            pytest.fail("the block must not run")
    assert info.group_contains(ValueError, match="no room on shard 1")
    assert CLOSED == [0]


async def test_local_after_exit_is_a_clear_error() -> None:
    async with shardio.sharded(Counter, 0) as svc:
        pass
    with pytest.raises(RuntimeError, match="is not running on shard 0"):
        svc.local()
    with pytest.raises(RuntimeError, match="is not running on shard 1"):
        await svc.invoke_on(1, Counter.add, 1)
