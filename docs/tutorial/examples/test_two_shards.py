import pytest

import shardio

inventory = {"widgets": 3}  # every shard has its own copy


def take(item):
    inventory[item] -= 1
    return inventory[item]


@pytest.mark.shardio(shards=2)
async def test_each_shard_keeps_its_own_inventory():
    assert await shardio.run_on(1, take, "widgets") == 2
    assert await shardio.run_on(1, take, "widgets") == 1
    assert inventory == {"widgets": 3}


async def slow_remote_work():
    await shardio.sleep(30)


@pytest.mark.shardio(shards=2)
async def test_a_deadline_stops_the_remote_work_in_time():
    start = shardio.current_time()
    with shardio.move_on_after(0.1) as scope:
        await shardio.run_on(1, slow_remote_work)
    assert scope.cancelled_caught
    assert shardio.current_time() - start < 1
