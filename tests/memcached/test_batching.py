"""Per-owner batching: the job lists that many connections hand over in one
scheduling pass reach the owner in one call, each connection gets its own
results, and a batch on its way does not hold up the next one."""

from __future__ import annotations

import pytest

import shardio
from examples.memcached.batching import Forwarder
from examples.memcached.jobs import CountJob, Job, JobResult


def jobs(name: str) -> list[Job]:
    return [CountJob(name)]


class Owner:
    """A fake owner shard: records the calls, answers each list with its
    counter names -- the first call after ``first_delay`` seconds."""

    def __init__(self, first_delay: float = 0.0) -> None:
        self.calls: list[tuple[int, list[list[Job]]]] = []
        self.first_delay = first_delay

    async def send(self, shard: int, lists: list[list[Job]]) -> list[list[JobResult]]:
        self.calls.append((shard, lists))
        await shardio.sleep(self.first_delay if len(self.calls) == 1 else 0)
        return [
            [job.counter.encode() for job in jobs if isinstance(job, CountJob)] for jobs in lists
        ]


async def test_the_lists_of_one_pass_travel_in_one_call_per_owner() -> None:
    owner = Owner()
    forwarder = Forwarder(owner.send)
    received: dict[str, list[JobResult]] = {}

    async def connection(name: str, shard: int) -> None:
        batch, index = forwarder.submit(shard, jobs(name))
        received[name] = await batch.result(index)

    async with shardio.open_nursery() as nursery:
        forwarder.nursery = nursery
        for i in range(10):
            nursery.start_soon(connection, f"c{i}", 1 + i % 2)
    assert sorted((shard, len(lists)) for shard, lists in owner.calls) == [(1, 5), (2, 5)]
    assert received == {f"c{i}": [f"c{i}".encode()] for i in range(10)}
    assert forwarder.counters == {"forward_calls": 2, "forward_lists": 10}


async def test_jobs_that_come_while_a_batch_is_on_its_way_go_in_the_next() -> None:
    owner = Owner(first_delay=10)
    forwarder = Forwarder(owner.send)
    async with shardio.open_nursery() as nursery:
        forwarder.nursery = nursery
        first, _ = forwarder.submit(1, jobs("first"))
        await shardio.sleep(0.01)  # the first batch has left, its reply not back
        second, index = forwarder.submit(1, jobs("second"))
        assert second is not first
        with shardio.fail_after(5):  # not held up by the first batch's reply
            assert await second.result(index) == [b"second"]
        assert len(owner.calls) == 2
        assert not first.done.is_set()
        nursery.cancel_scope.cancel()


async def test_an_error_from_the_owner_reaches_every_connection_of_the_batch() -> None:
    async def failing(shard: int, lists: list[list[Job]]) -> list[list[JobResult]]:
        raise KeyError("owner failed")

    forwarder = Forwarder(failing)
    errors: list[BaseException] = []

    async def connection(name: str) -> None:
        batch, index = forwarder.submit(1, jobs(name))
        with pytest.raises(KeyError) as caught:
            await batch.result(index)
        errors.append(caught.value)

    async with shardio.open_nursery() as nursery:
        forwarder.nursery = nursery
        for i in range(3):
            nursery.start_soon(connection, f"c{i}")
    assert len(errors) == 3
