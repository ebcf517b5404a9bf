"""Shards that die, Ctrl-C and SIGTERM across shards, and what a run leaves behind.

Each scenario runs in a child Python process (the parent of the shards) and
prints what it observed; the test then checks /proc for leftovers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shardio
import shardio.testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


def _spawn(body: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group, for group signals
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


CRASH_SCENARIO = """
    import os, signal, shardio, ctypes

    def die(how):
        if how == "exit":
            os._exit(3)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segfault":
            ctypes.string_at(0)

    async def victim():
        try:
            await shardio.sleep_forever()
        finally:
            print("main's other task was cancelled", flush=True)

    async def main():
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(victim)
            await shardio.run_on(1, os.getpid)
            await shardio.run_on(1, die, {how!r})

    try:
        shardio.run(main, shards=2)
    except shardio.ShardCrashed as exc:
        print("ShardCrashed", exc.shard, exc.exitcode, exc.signal, flush=True)
"""


@pytest.mark.parametrize(
    ("how", "exitcode", "signum"),
    [("exit", "3", "None"), ("kill", "None", "9"), ("segfault", "None", "11")],
)
def test_a_dying_shard_fails_the_run_with_shard_crashed(
    how: str, exitcode: str, signum: str
) -> None:
    out = _finish(_spawn(CRASH_SCENARIO.format(how=how)))
    lines = out.splitlines()
    assert "main's other task was cancelled" in lines, out
    assert lines[-1] == f"ShardCrashed 1 {exitcode} {signum}", out


def test_killing_shard_zero_leaves_no_orphans() -> None:
    proc = _spawn(
        """
        import os, shardio

        async def main():
            child = await shardio.run_on(1, os.getpid)
            print(os.getpid(), child, flush=True)
            await shardio.sleep_forever()

        shardio.run(main, shards=2)
        """
    )
    assert proc.stdout is not None
    parent, child = map(int, proc.stdout.readline().split())
    assert _alive(child)
    os.kill(parent, signal.SIGKILL)
    _finish(proc)
    assert _wait_gone([child]) == []


STOP_SCENARIO = """
    import os, shardio

    async def remote_worker():
        try:
            await shardio.sleep_forever()
        finally:
            print("remote worker cleaned up on shard", shardio.current_shard(), flush=True)

    async def main():
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(remote_worker, shard=1)
            nursery.start_soon(remote_worker)
            child = await shardio.run_on(1, os.getpid)
            print("ready", os.getpid(), child, flush=True)

    try:
        shardio.run(main, shards=2)
    except BaseException as exc:
        print("run raised", type(exc).__name__, getattr(exc, "code", ""), flush=True)
"""


@pytest.mark.parametrize(
    ("signum", "to_group", "expected"),
    [
        (signal.SIGINT, True, "run raised KeyboardInterrupt "),
        (signal.SIGTERM, False, "run raised SystemExit 143"),
        (signal.SIGTERM, True, "run raised SystemExit 143"),
    ],
    ids=["ctrl-c to the group", "SIGTERM to shard 0", "SIGTERM to the group (systemd)"],
)
def test_stop_signal_cancels_every_shard_in_order(
    signum: int, to_group: bool, expected: str
) -> None:
    proc = _spawn(STOP_SCENARIO)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[0] == "ready", line
    parent, child = int(line[1]), int(line[2])
    if to_group:
        os.killpg(proc.pid, signum)
    else:
        os.kill(parent, signum)
    out = _finish(proc)
    lines = out.splitlines()
    assert sorted(lines[:2]) == [
        "remote worker cleaned up on shard 0",
        "remote worker cleaned up on shard 1",
    ], out
    assert lines[2:] == [expected], out
    assert _wait_gone([child]) == []


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _shared_mappings() -> list[str]:
    with open("/proc/self/maps") as f:
        return [line for line in f if "zero (deleted)" in line or "anon_shmem" in line]


def _children() -> list[str]:
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return f.read().split()


def test_no_fd_process_or_mapping_outlives_the_run() -> None:
    async def main() -> int:
        pid: int = await shardio.run_on(2, os.getpid)
        return pid

    before_fds = _fds()
    before_maps = _shared_mappings()
    child = shardio.run(main, shards=3, cpus=False)
    assert not _alive(child)
    assert _children() == []
    assert _fds() == before_fds
    assert _shared_mappings() == before_maps


def test_a_crash_also_leaves_nothing_behind() -> None:
    async def main() -> None:
        await shardio.run_on(1, os._exit, 7)

    before_fds = _fds()
    with pytest.raises(shardio.ShardCrashed) as info:
        shardio.run(main, shards=2, cpus=False)
    assert info.value.exitcode == 7
    assert _children() == []
    assert _fds() == before_fds


def test_too_many_shards_for_the_cpus_is_a_clear_error() -> None:
    async def main() -> None:
        pass

    count = len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="cpus=False"):
        shardio.run(main, shards=count + 1)


def test_a_mock_clock_with_several_shards_is_refused() -> None:
    async def main() -> None:
        pass

    with pytest.raises(ValueError, match="one shard only"):
        shardio.run(main, shards=2, clock=shardio.testing.MockClock())


def test_a_send_waiting_on_a_dead_shards_channel_raises_shard_crashed() -> None:
    out = _finish(
        _spawn(
            """
            import os, shardio

            async def consume_one_then_die(receive):
                await receive.receive()
                os._exit(5)

            async def main():
                send, receive = shardio.open_channel(1)
                async with shardio.open_nursery() as nursery:
                    nursery.start_soon(consume_one_then_die, receive, shard=1)
                    try:
                        while True:
                            await send.send("x")
                    except BaseException as exc:
                        print("send raised", type(exc).__name__, flush=True)
                        raise

            try:
                shardio.run(main, shards=2)
            except shardio.ShardCrashed as exc:
                print("run raised ShardCrashed", exc.shard, exc.exitcode, flush=True)
            """
        )
    )
    assert out.splitlines() == ["send raised ShardCrashed", "run raised ShardCrashed 1 5"], out
