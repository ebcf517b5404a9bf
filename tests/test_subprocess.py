"""Child processes: shardio.run_process, shardio.lowlevel.open_process,
shardio.Process -- and that no child outlives its run or its shard."""

from __future__ import annotations

import functools
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import shardio
from shardio import lowlevel
from shardio.testing import MockClock

PYTHON = sys.executable


def python(code: str) -> list[str]:
    return [PYTHON, "-c", code]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def is_unreaped_child(pid: int) -> bool:
    """Whether ``pid`` is a child of ours that exited and nobody reaped (a
    zombie); the check reaps nothing."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False


async def test_run_process_returns_the_status_and_the_captured_output() -> None:
    result = await shardio.run_process(
        python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert result.args == python(
        "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    )


async def test_a_failing_process_raises_called_process_error_with_its_output() -> None:
    with pytest.raises(subprocess.CalledProcessError) as caught:
        await shardio.run_process(["sh", "-c", "echo oops; exit 2"], capture_stdout=True)
    assert caught.value.returncode == 2
    assert caught.value.stdout == b"oops\n"
    assert caught.value.stderr is None


async def test_stdin_bytes_reach_the_child_followed_by_end_of_file() -> None:
    data = bytes(range(256)) * 1000  # more than a pipe holds
    result = await shardio.run_process(["cat"], stdin=data, capture_stdout=True)
    assert result.stdout == data
    empty = await shardio.run_process(["cat"], capture_stdout=True)
    assert empty.stdout == b""  # the default stdin is b"": at once end of file


async def test_stderr_merges_into_the_captured_stdout() -> None:
    result = await shardio.run_process(
        ["sh", "-c", "echo one; echo two >&2; echo three"],
        capture_stdout=True,
        stderr=subprocess.STDOUT,
    )
    assert result.stdout == b"one\ntwo\nthree\n"


async def test_cancelling_run_process_terminates_the_child_and_waits_for_it() -> None:
    with shardio.CancelScope() as scope:
        async with shardio.open_nursery() as nursery:
            process = await nursery.start(functools.partial(shardio.run_process, ["sleep", "100"]))
            assert process.returncode is None
            scope.cancel()
    assert scope.cancelled_caught
    # run_process returned only once the child had exited, and reaped it.
    assert not is_unreaped_child(process.pid)
    assert not os.path.exists(f"/proc/{process.pid}")  # noqa: ASYNC240 (a quick look at /proc)
    assert process.returncode == -signal.SIGTERM


async def test_a_child_ignoring_sigterm_is_killed_five_seconds_later_with_a_warning(
    autojump_clock: MockClock,
) -> None:
    stubborn = python(
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(100)"
    )
    with (
        pytest.warns(RuntimeWarning, match="ignored SIGTERM for 5 seconds"),
        shardio.CancelScope() as scope,
    ):
        async with shardio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(shardio.run_process, stubborn, stdout=subprocess.PIPE)
            )
            assert process.stdout is not None
            assert await process.stdout.receive_some() == b"ready\n"
            cancelled_at = shardio.current_time()
            scope.cancel()
    assert shardio.current_time() - cancelled_at == 5
    assert process.returncode == -signal.SIGKILL


async def test_a_custom_deliver_cancel_is_used_and_cancelled_once_the_child_exits() -> None:
    calls: list[str] = []

    async def deliver_cancel(process: shardio.Process) -> None:
        calls.append("delivered")
        process.send_signal(signal.SIGUSR1)
        try:
            await shardio.sleep_forever()
        finally:
            calls.append(f"cancelled, the child's status being {process.returncode}")

    with shardio.CancelScope() as scope:
        async with shardio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    shardio.run_process, ["sleep", "100"], deliver_cancel=deliver_cancel
                )
            )
            scope.cancel()
    assert calls == ["delivered", f"cancelled, the child's status being {-signal.SIGUSR1}"]


async def test_a_process_talks_through_its_streams_and_answers_signals() -> None:
    process = await lowlevel.open_process(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert isinstance(process.stdin, lowlevel.FdStream)
    assert process.stderr is None
    assert process.stdio is not None
    await process.stdio.send_all(b"ping")
    assert await process.stdio.receive_some() == b"ping"
    assert process.poll() is None
    assert repr(process) == f"<shardio.Process ['cat']: running with PID {process.pid}>"
    process.terminate()
    assert await process.wait() == -signal.SIGTERM
    assert process.returncode == process.poll() == -signal.SIGTERM
    assert repr(process) == f"<shardio.Process ['cat']: exited with signal {signal.SIGTERM}>"
    process.kill()  # a reaped process is not signalled again (its pid may be reused)
    await process.stdio.aclose()

    done = await lowlevel.open_process(["sh", "-c", "exit 7"])
    assert await done.wait() == 7
    assert repr(done) == "<shardio.Process ['sh', '-c', 'exit 7']: exited with status 7>"


async def test_several_tasks_wait_for_one_process_and_a_cancelled_wait_leaves_it_running() -> None:
    process = await lowlevel.open_process(["cat"], stdin=subprocess.PIPE)
    with shardio.move_on_after(0.01) as scope:
        await process.wait()
    assert scope.cancelled_caught
    assert process.returncode is None
    statuses: list[int] = []
    async with shardio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _append(statuses, process.wait()))
        await shardio.testing.wait_all_tasks_blocked()
        assert process.stdin is not None
        await process.stdin.aclose()  # cat sees end of file and exits
    assert statuses == [0, 0, 0]


async def _append(values: list[Any], awaitable: Any) -> None:
    values.append(await awaitable)


async def test_bad_arguments_say_what_was_wrong_and_leak_no_fd() -> None:
    before = open_fds()
    with pytest.raises(TypeError, match="must be a sequence"):
        await lowlevel.open_process("echo hi")
    with pytest.raises(TypeError, match="must be a string or bytes"):
        await lowlevel.open_process(["echo", "hi"], shell=True)
    with pytest.raises(TypeError, match="'text' option is not supported"):
        await lowlevel.open_process(["echo"], text=True)
    with pytest.raises(ValueError, match="both stdout and capture_stdout"):
        await shardio.run_process(["echo"], capture_stdout=True, stdout=subprocess.DEVNULL)
    with pytest.raises(ValueError, match=r"stdin=subprocess\.PIPE is only valid with nursery"):
        await shardio.run_process(["echo"], stdin=subprocess.PIPE)
    with pytest.raises(UnicodeError):
        await shardio.run_process(["cat"], stdin="text")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        await shardio.run_process(["no-such-program-here"], capture_stdout=True)
    assert open_fds() == before


async def test_a_users_preexec_fn_still_runs() -> None:
    result = await shardio.run_process(
        ["sh", "-c", "umask"], capture_stdout=True, preexec_fn=lambda: os.umask(0o077)
    )
    assert result.stdout == b"0077\n"


async def test_exited_processes_are_reaped_at_the_next_spawn() -> None:
    first = await lowlevel.open_process(["true"])
    # Wait until it has exited, without reaping it.
    await shardio.to_thread.run_sync(os.waitid, os.P_PID, first.pid, os.WEXITED | os.WNOWAIT)
    assert is_unreaped_child(first.pid)
    second = await lowlevel.open_process(["true"])
    assert not is_unreaped_child(first.pid)
    assert first.returncode == 0
    await second.wait()


def test_a_process_still_running_when_the_run_ends_is_killed_and_reaped() -> None:
    async def main() -> shardio.Process:
        return await lowlevel.open_process(["sleep", "100"])

    process = shardio.run(main)
    assert not is_unreaped_child(process.pid)
    assert not Path(f"/proc/{process.pid}").exists()
    assert process.returncode == -signal.SIGKILL


def test_the_thread_that_spawns_ends_with_the_run() -> None:
    async def main() -> list[threading.Thread]:
        await shardio.run_process(["true"])
        return [t for t in threading.enumerate() if t.name == "shardio spawner"]

    spawners = shardio.run(main)
    assert len(spawners) == 1
    spawners[0].join(10)
    assert not spawners[0].is_alive()


async def start_sleeper() -> tuple[int, int]:
    process = await lowlevel.open_process(["sleep", "1000"])
    return os.getpid(), process.pid


async def run_on_shard_1() -> subprocess.CompletedProcess[bytes]:
    return await shardio.run_process(python("import os; print(os.getppid())"), capture_stdout=True)


@pytest.mark.shardio(shards=2)
async def test_processes_run_on_any_shard_and_belong_to_it() -> None:
    result = await shardio.run_on(1, run_on_shard_1)
    shard_1 = await shardio.run_on(1, os.getpid)
    assert result.stdout == f"{shard_1}\n".encode()
    # A Process cannot travel: run_process under nursery.start runs where it reports.
    with pytest.raises(ExceptionGroup) as caught:
        async with shardio.open_nursery() as nursery:
            await nursery.start(functools.partial(shardio.run_process, ["sleep", "1"]), shard=1)
    assert caught.group_contains(TypeError, match="a Process belongs to the shard that made it")


def test_a_shard_killed_with_sigkill_takes_its_children_with_it() -> None:
    pidfds: list[int] = []

    async def main() -> None:
        shard_pid, child_pid = await shardio.run_on(1, start_sleeper)
        pidfds.append(os.pidfd_open(child_pid))
        os.kill(shard_pid, signal.SIGKILL)
        await shardio.sleep_forever()

    with pytest.raises(shardio.ShardCrashed):
        shardio.run(main, shards=2)
    poller = select.poll()
    poller.register(pidfds[0], select.POLLIN)
    try:
        assert poller.poll(10_000), "the child of the killed shard is still running"
    finally:
        os.close(pidfds[0])
