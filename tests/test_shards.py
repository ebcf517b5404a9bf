"""Shards: processes, run_on, deadlines and cancellation across shards, nurseries
with children on other shards."""

from __future__ import annotations

import functools
import math
import os
import socket
from typing import Any

import pytest

import shardio
from shardio import lowlevel

pytestmark = pytest.mark.shardio(shards=2)

COUNTER = {"value": 0}


def bump() -> int:
    COUNTER["value"] += 1
    return COUNTER["value"]


def whoami() -> tuple[int, int, frozenset[int]]:
    return shardio.current_shard(), os.getpid(), frozenset(os.sched_getaffinity(0))


async def test_each_shard_is_its_own_pinned_process() -> None:
    assert shardio.current_shard() == 0
    assert shardio.shard_count() == 2
    here = whoami()
    there = await shardio.run_on(1, whoami)
    assert there[0] == 1
    assert there[1] != here[1]
    assert len(here[2]) == len(there[2]) == 1
    assert here[2] != there[2]


async def test_module_globals_are_per_shard() -> None:
    assert await shardio.run_on(1, bump) == 1
    assert await shardio.run_on(1, bump) == 2
    assert bump() == 1  # shard 0's copy was never touched


async def test_run_on_sync_and_async_functions_lambdas_and_closures() -> None:
    async def add_later(a: int, b: int) -> int:
        await shardio.sleep(0)
        return a + b

    offset = 100
    assert await shardio.run_on(1, add_later, 2, 3) == 5
    assert await shardio.run_on(1, lambda x: x + offset, 1) == 101
    assert await shardio.run_on(1, divmod, 17, 5) == (3, 2)


async def test_run_on_own_shard_runs_here_without_pickling() -> None:
    lock = lowlevel.ParkingLot()  # not picklable
    assert await shardio.run_on(0, lambda: lock) is lock


async def test_unpicklable_argument_is_a_type_error_naming_it_and_the_shard() -> None:
    with (
        socket.socket() as sock,
        pytest.raises(TypeError, match=r"argument 1 of .*len.* cannot be sent to shard 1"),
    ):
        await shardio.run_on(1, len, [1], sock)  # type: ignore[call-arg]


async def test_bad_shard_index_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"range\(2\)"):
        await shardio.run_on(2, bump)


class CustomError(Exception):
    pass


def raise_custom() -> None:
    raise CustomError("from afar")


class Unpicklable(Exception):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__("holds a socket")
        self.sock = sock


def raise_unpicklable() -> None:
    raise Unpicklable(socket.socket())


async def test_remote_exception_keeps_its_type_and_carries_the_remote_traceback() -> None:
    with pytest.raises(CustomError, match="from afar") as info:
        await shardio.run_on(1, raise_custom)
    cause = info.value.__cause__
    assert isinstance(cause, shardio.RemoteTraceback)
    assert "shard 1" in str(cause)
    assert "raise_custom" in str(cause)


async def test_unpicklable_remote_exception_arrives_as_remote_error() -> None:
    with pytest.raises(shardio.RemoteError) as info:
        await shardio.run_on(1, raise_unpicklable)
    assert info.value.type_name.endswith("Unpicklable")
    assert info.value.message == "holds a socket"
    assert info.value.shard == 1
    assert "raise_unpicklable" in info.value.traceback_text


def make_socket() -> socket.socket:
    return socket.socket()


async def test_unpicklable_result_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot be sent back to shard 0"):
        await shardio.run_on(1, make_socket)


async def remote_deadline() -> float:
    return shardio.current_effective_deadline()


async def test_the_callers_deadline_travels_with_the_call() -> None:
    assert await shardio.run_on(1, remote_deadline) == math.inf
    deadline = shardio.current_time() + 30
    with shardio.move_on_at(deadline):
        assert await shardio.run_on(1, remote_deadline) == deadline


async def sleep_then_record(seconds: float) -> list[str]:
    record = []
    try:
        await shardio.sleep(seconds)
    except shardio.Cancelled as exc:
        record.append(f"cancelled ({exc.source})")
        with shardio.CancelScope(shield=True):
            await shardio.sleep(0.05)
        record.append("cleaned up")
        raise
    return record


async def test_cancelling_the_caller_cancels_the_remote_task_and_waits_for_it() -> None:
    log: list[str] = []

    async def call() -> None:
        try:
            await shardio.run_on(1, sleep_then_record, 30)
        finally:
            log.append(f"caller done at {shardio.current_time() - start:.2f}")

    start = shardio.current_time()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(call)
        await shardio.sleep(0.05)
        nursery.cancel_scope.cancel()
    # The caller returned only after the remote cleanup (0.05 s shielded).
    (done,) = log
    assert float(done.split()[-1]) >= 0.1


async def test_deadline_cancels_remote_work_and_the_caller_sees_its_own_cancelled() -> None:
    with shardio.move_on_after(0.05) as scope:
        await shardio.run_on(1, shardio.sleep, 30)
    assert scope.cancelled_caught


async def test_a_shielded_caller_sends_no_cancel() -> None:
    with shardio.CancelScope() as outer:
        outer.cancel()
        with shardio.CancelScope(shield=True):
            result = await shardio.run_on(1, sleep_then_record, 0.05)
    assert result == []


async def test_a_result_that_beats_the_cancel_is_returned() -> None:
    # The remote finishes (sync) before the cancel could matter.
    with shardio.CancelScope() as scope:
        value = await shardio.run_on(1, bump)
        scope.cancel()
    assert isinstance(value, int)


async def call_back_home(depth: int) -> list[int]:
    if depth == 0:
        return [shardio.current_shard()]
    other = 1 - shardio.current_shard()
    return [shardio.current_shard(), *await shardio.run_on(other, call_back_home, depth - 1)]


async def test_nested_calls_in_both_directions_do_not_deadlock() -> None:
    assert await shardio.run_on(1, call_back_home, 5) == [1, 0, 1, 0, 1, 0]
    async with shardio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(shardio.run_on, 1, call_back_home, 3)
            nursery.start_soon(call_back_home, 3)


async def fail_later(seconds: float) -> None:
    await shardio.sleep(seconds)
    raise CustomError(f"failed on shard {shardio.current_shard()}")


async def test_remote_child_failure_propagates_and_cancels_local_siblings() -> None:
    cancelled: list[str] = []

    async def local_sibling() -> None:
        try:
            await shardio.sleep_forever()
        except shardio.Cancelled:
            cancelled.append("local")
            raise

    with pytest.raises(ExceptionGroup) as info:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(local_sibling)
            nursery.start_soon(fail_later, 0.01, shard=1)
    assert cancelled == ["local"]
    (error,) = info.value.exceptions
    assert isinstance(error, CustomError)
    assert str(error) == "failed on shard 1"


async def test_local_failure_cancels_remote_children() -> None:
    async def remote_sibling(task_status: Any = shardio.TASK_STATUS_IGNORED) -> list[str]:
        return await sleep_then_record(30)

    with pytest.raises(ExceptionGroup) as info:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(remote_sibling, shard=1)
            nursery.start_soon(fail_later, 0.05)
    (error,) = info.value.exceptions
    assert str(error) == "failed on shard 0"


async def start_remote(value: str, task_status: Any = shardio.TASK_STATUS_IGNORED) -> None:
    task_status.started((value, shardio.current_shard()))
    await shardio.sleep(0.01)


async def fail_before_started(task_status: Any = shardio.TASK_STATUS_IGNORED) -> None:
    raise CustomError("not ready")


async def test_start_on_another_shard_returns_the_started_value() -> None:
    async with shardio.open_nursery() as nursery:
        assert await nursery.start(start_remote, "ready", shard=1) == ("ready", 1)


async def test_start_on_another_shard_raises_what_failed_before_started() -> None:
    async with shardio.open_nursery() as nursery:
        with pytest.raises(CustomError, match="not ready"):
            await nursery.start(fail_before_started, shard=1)


async def test_start_soon_with_unpicklable_argument_fails_at_the_call() -> None:
    async with shardio.open_nursery() as nursery:
        with (
            socket.socket() as sock,
            pytest.raises(TypeError, match="cannot be sent to shard 1"),
        ):
            nursery.start_soon(fail_later, sock, shard=1)
        assert not nursery.child_tasks


def sync_child() -> None:
    pass


async def test_a_sync_function_is_not_a_nursery_child_on_any_shard() -> None:
    async with shardio.open_nursery() as nursery:
        with pytest.raises(TypeError, match="must be an async function"):
            nursery.start_soon(sync_child, shard=1)  # type: ignore[arg-type]
    # A callable the caller cannot inspect is checked where it runs.
    with pytest.raises(ExceptionGroup) as info:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(sync_child), shard=1)  # type: ignore[arg-type]
    assert info.group_contains(TypeError, match="must be an async function")


@pytest.mark.shardio(shards=1)
async def test_single_shard_run_on_and_shard_zero_children_run_locally() -> None:
    assert shardio.shard_count() == 1
    assert await shardio.run_on(0, whoami) == whoami()
    with pytest.raises(ValueError, match=r"range\(1\)"):
        await shardio.run_on(1, whoami)
    async with shardio.open_nursery() as nursery:
        assert await nursery.start(start_remote, "x", shard=0) == ("x", 0)


async def test_a_lambda_reads_the_globals_of_the_shard_it_runs_on() -> None:
    here = COUNTER["value"]
    await shardio.run_on(1, bump)
    there = await shardio.run_on(1, bump)
    offset = 100
    # By value (a lambda), yet COUNTER is shard 1's, not a copy of shard 0's.
    assert await shardio.run_on(1, lambda: COUNTER["value"] + offset) == there + 100
    assert COUNTER["value"] == here


@pytest.mark.parametrize(
    "make",
    [
        shardio.Lock,
        shardio.Event,
        lambda: shardio.open_memory_channel(1)[0],
        shardio.CancelScope,
        lowlevel.ParkingLot,
    ],
    ids=["Lock", "Event", "MemorySendChannel", "CancelScope", "ParkingLot"],
)
async def test_shard_local_objects_refuse_to_travel(make: Any) -> None:
    thing = make()
    with pytest.raises(TypeError, match="belongs to the shard that made it"):
        await shardio.run_on(1, len, [thing])
