import anyio
import pytest

import shardio


@pytest.fixture
def anyio_backend():
    return "shardio"


@pytest.fixture
async def limiter():
    # An async fixture, set up in the same shardio run as the test.
    return anyio.CapacityLimiter(2)


@pytest.mark.anyio
async def test_at_most_two_at_once(limiter):
    running = peak = 0

    async def job():
        nonlocal running, peak
        async with limiter:
            running += 1
            peak = max(peak, running)
            await anyio.sleep(0.01)
            running -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(job)
    assert peak == 2
    assert shardio.current_shard() == 0
