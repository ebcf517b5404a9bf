import pytest

import shardio
from shardio.testing import MockClock, wait_all_tasks_blocked


@pytest.mark.shardio
async def test_move_on_after_gives_up_after_an_hour(autojump_clock):
    with shardio.move_on_after(3600) as scope:
        await shardio.sleep(2 * 3600)
    assert scope.cancelled_caught
    assert shardio.current_time() == 3600


@pytest.mark.shardio
async def test_sleeper_wakes_only_when_the_clock_reaches_its_deadline(mock_clock: MockClock):
    woke_at = []

    async def sleeper():
        await shardio.sleep(10)
        woke_at.append(shardio.current_time())

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await wait_all_tasks_blocked()
        mock_clock.jump(9)
        await wait_all_tasks_blocked()
        assert woke_at == []
        mock_clock.jump(1)
    assert woke_at == [10]
