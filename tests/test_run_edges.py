"""Edges of a run: bad arguments to run(), what crosses shards and what may not,
failures while rebuilding objects, and a scheduler that fails on shard 0."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import weakref
from typing import Any

import pytest
import sniffio

import shardio
import shardio.testing
from shardio import lowlevel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWED = sorted(os.sched_getaffinity(0))


async def _noop() -> None:
    pass


# -- cpus= is checked before any fork ------------------------------------------------


def test_a_cpu_outside_the_affinity_mask_is_a_value_error_naming_it() -> None:
    bad = max(ALLOWED) + 5
    with pytest.raises(ValueError, match=rf"CPU {bad} is not one this process may run on") as info:
        shardio.run(_noop, shards=2, cpus=[ALLOWED[0], bad])
    assert str(ALLOWED) in str(info.value)


def test_a_cpu_listed_twice_is_a_value_error() -> None:
    cpu = ALLOWED[0]
    with pytest.raises(ValueError, match=rf"CPU {cpu} is listed twice"):
        shardio.run(_noop, shards=2, cpus=[cpu, cpu])


def test_a_bad_cpu_for_a_single_shard_is_a_value_error_too() -> None:
    with pytest.raises(ValueError, match="not one this process may run on"):
        shardio.run(_noop, cpus=[-1])


def test_cpus_that_are_not_numbers_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a CPU number"):
        shardio.run(_noop, shards=1, cpus=["0"])  # type: ignore[list-item]


def test_a_process_narrowed_to_one_cpu_may_still_pin_shards_to_the_others() -> None:
    if len(ALLOWED) < 2:
        pytest.skip("needs two CPUs")
    # As the benchmarks run: taskset to one CPU, then shards pinned to two.
    code = textwrap.dedent(
        f"""
        import os, shardio

        async def where():
            return sorted(os.sched_getaffinity(0))

        async def main():
            return [await shardio.run_on(k, where) for k in range(2)]

        os.sched_setaffinity(0, {{{ALLOWED[0]}}})
        print(shardio.run(main, shards=2, cpus=[{ALLOWED[0]}, {ALLOWED[1]}]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.stdout.strip() == str([[ALLOWED[0]], [ALLOWED[1]]]), proc.stderr


def test_a_bad_cpus_argument_forks_nothing() -> None:
    # The check comes before the fork: no child exists to reap afterwards.
    with pytest.raises(ValueError):
        shardio.run(_noop, shards=2, cpus=[ALLOWED[0], ALLOWED[0]])
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


# -- what crosses shards ------------------------------------------------------------


def _read(file: Any) -> str:
    return str(file.read())


@pytest.mark.shardio(shards=2)
async def test_an_open_text_file_cannot_be_sent_to_another_shard(tmp_path: Any) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with open(path) as file, pytest.raises(TypeError, match="an open file") as info:  # noqa: ASYNC230
        await shardio.run_on(1, _read, file)
    assert "send its path" in str(info.value)


async def _work(x: int) -> int:
    return x


@pytest.mark.shardio(shards=2)
async def test_run_on_with_a_coroutine_object_shows_the_fix() -> None:
    with pytest.raises(TypeError, match=r"run_on\(shard, fn, arg1, arg2\)"):
        await shardio.run_on(1, _work(1))  # type: ignore[arg-type]


@pytest.mark.shardio(shards=2)
async def test_a_coroutine_object_as_an_argument_says_pass_the_function() -> None:
    with pytest.raises(TypeError, match=r"argument 0 of .* is a coroutine object"):
        await shardio.run_on(1, _read, _work(1))


async def test_a_trio_trap_awaited_in_a_shardio_task_names_trio() -> None:
    import trio

    with pytest.raises(TypeError, match=r"\(from trio\): a shardio task awaited a trio") as info:
        await trio.lowlevel.cancel_shielded_checkpoint()
    assert "shardio.to_thread.run_sync(trio.run, fn)" in str(info.value)


async def test_asyncio_sleep_zero_in_a_shardio_task_names_asyncio() -> None:
    import asyncio

    with pytest.raises(TypeError, match=r"\(from asyncio\): a shardio task awaited an? asyncio"):
        await asyncio.sleep(0)


# -- sniffio --------------------------------------------------------------------------


def _library() -> str:
    return sniffio.current_async_library()


async def _library_async() -> str:
    return sniffio.current_async_library()


@pytest.mark.shardio(shards=2)
async def test_sniffio_sees_shardio_in_remote_calls_sync_and_async() -> None:
    assert await shardio.run_on(1, _library_async) == "shardio"
    assert await shardio.run_on(1, _library) == "shardio"


async def test_sniffio_sees_shardio_in_run_sync_soon_callbacks() -> None:
    seen: list[str] = []
    lowlevel.current_token().run_sync_soon(lambda: seen.append(_library()))
    await shardio.sleep(0.001)
    assert seen == ["shardio"]


def test_sniffio_sees_nothing_after_the_run() -> None:
    shardio.run(_noop)
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()


async def test_a_token_can_be_weakly_referenced() -> None:
    token = lowlevel.current_token()
    assert weakref.ref(token)() is token


# -- ShardCrashed, one per waiter ---------------------------------------------------------


async def _wait_here() -> None:
    await shardio.sleep_forever()


def test_each_task_waiting_on_a_dead_shard_gets_its_own_shard_crashed() -> None:
    errors: dict[str, BaseException] = {}

    async def waiter(name: str) -> None:
        try:
            await shardio.run_on(1, _wait_here)
        except shardio.ShardCrashed as exc:
            errors[name] = exc

    async def main() -> None:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(waiter, "a")
            nursery.start_soon(waiter, "b")
            await shardio.testing.wait_all_tasks_blocked(0.05)
            nursery.start_soon(shardio.run_on, 1, os._exit, 3)

    with pytest.raises(shardio.ShardCrashed):
        shardio.run(main, shards=2, cpus=False)
    assert sorted(errors) == ["a", "b"]
    assert errors["a"] is not errors["b"]
    for exc in errors.values():
        # Its traceback is its own task's: one waiter frame, not both.
        assert [frame.name for frame in _frames(exc)].count("waiter") == 1
        assert str(exc) == "shard 1 exited with code 3"


def _frames(exc: BaseException) -> list[Any]:
    import traceback

    return list(traceback.extract_tb(exc.__traceback__))


# -- rebuilding objects: what user code raises fails only its own call ---------------------


class _RaisesWhenRebuilt:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        return (_raise, (self.error,))


def _raise(error: BaseException) -> Any:
    raise error


def _echo(value: Any) -> Any:
    return value


def _give(error: BaseException) -> Any:
    return _RaisesWhenRebuilt(error)


def _fail_with(error: BaseException) -> None:
    raise ValueError("remote failure") from None


_REBUILD_ERRORS = [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), ValueError("bad")]


@pytest.mark.shardio(shards=2)
@pytest.mark.parametrize("error", _REBUILD_ERRORS, ids=lambda e: type(e).__name__)
async def test_an_argument_whose_rebuild_raises_fails_only_its_call(error: BaseException) -> None:
    with pytest.raises(TypeError, match="could not be unpickled on shard 1"):
        await shardio.run_on(1, _echo, _RaisesWhenRebuilt(error))
    # The shard is alive and serves the next call.
    assert await shardio.run_on(1, _echo, 5) == 5


@pytest.mark.shardio(shards=2)
@pytest.mark.parametrize("error", _REBUILD_ERRORS, ids=lambda e: type(e).__name__)
async def test_a_result_whose_rebuild_raises_fails_only_its_call(error: BaseException) -> None:
    with pytest.raises(TypeError, match="could not be unpickled on shard 0"):
        await shardio.run_on(1, _give, error)
    assert await shardio.run_on(1, _echo, 5) == 5


async def _start_with(error: BaseException, task_status: Any = shardio.TASK_STATUS_IGNORED) -> None:
    task_status.started(_RaisesWhenRebuilt(error))
    await shardio.sleep_forever()


@pytest.mark.shardio(shards=2)
@pytest.mark.parametrize("error", _REBUILD_ERRORS, ids=lambda e: type(e).__name__)
async def test_a_started_value_whose_rebuild_raises_fails_the_start(error: BaseException) -> None:
    # The remote task is cancelled; start() raises once it has finished.
    async with shardio.open_nursery() as nursery:
        with pytest.raises(TypeError, match=r"passed to task_status\.started"):
            await nursery.start(_start_with, error, shard=1)
    assert await shardio.run_on(1, _echo, 5) == 5


# -- a scheduler failing on shard 0 -----------------------------------------------------------


def test_a_failure_of_shard_0s_scheduler_stops_the_other_shards_and_run_raises() -> None:
    # A run_sync_soon callback that raises ends shard 0's scheduler. The
    # children must be told and reaped; formerly run() waited for them forever.
    code = textwrap.dedent(
        """
        import os, shardio
        from shardio import lowlevel

        async def child_pid():
            return os.getpid()

        async def main():
            pid = await shardio.run_on(1, child_pid)
            print(pid, flush=True)
            def fail():
                raise RuntimeError("callback failed")
            lowlevel.current_token().run_sync_soon(fail)
            await shardio.sleep_forever()

        try:
            shardio.run(main, shards=2, cpus=False)
        except shardio.ShardioInternalError as exc:
            print("ShardioInternalError", repr(exc.__cause__), flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, cwd=ROOT, text=True
    )
    assert proc.returncode == 0, proc.stderr
    pid, outcome = proc.stdout.splitlines()
    assert outcome == "ShardioInternalError RuntimeError('callback failed')"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


# -- idle polling -------------------------------------------------------------------------


class _CountingPoller(lowlevel.Poller):
    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> bool:
        self.polls += 1
        return False


def _polls_during_idle_sleeps(**run_options: Any) -> int:
    async def main() -> int:
        poller = _CountingPoller()
        lowlevel.add_poller(poller)
        for _ in range(20):
            await shardio.sleep(0.001)
        lowlevel.remove_poller(poller)
        return poller.polls

    result: int = shardio.run(main, **run_options)
    return result


def test_a_single_shard_run_sleeps_at_once_when_idle_unless_asked_to_spin() -> None:
    # A pass polls a handful of times; a spin before sleeping polls for the
    # whole idle_poll_us, hundreds of times per idle period.
    assert _polls_during_idle_sleeps() < 20 * 10
    assert _polls_during_idle_sleeps(idle_poll_us=500) > 20 * 10
