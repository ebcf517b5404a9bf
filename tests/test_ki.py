"""Ctrl-C: an orderly cancellation of every task, then KeyboardInterrupt from run().

Each scenario runs in a child process that receives a real SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_child(body: str, signals: int = 1) -> tuple[int, str]:
    code = textwrap.dedent(body)
    # Unbuffered binary pipe: readline() must not read ahead, because
    # communicate() reads the pipe's fd directly and would miss what a
    # buffered reader had already taken from it.
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        # The child prints "ready" once every task is blocked.
        line = proc.stdout.readline().decode()
        assert line.strip() == "ready", line
        for i in range(signals):
            proc.send_signal(signal.SIGINT)
            if i == 0 and signals > 1:
                # The child says when it is stuck in code without checkpoints.
                assert proc.stdout.readline().decode().strip() == "spinning"
                # Two signals in quick succession coalesce into one delivery
                # (CPython keeps one "tripped" bit per signal); let the first
                # one's handler run before sending the second.
                time.sleep(0.3)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode()


def test_ctrl_c_cancels_every_task_then_run_raises_keyboard_interrupt() -> None:
    code, out = _run_child(
        """
        import shardio, shardio.testing

        async def worker(name):
            try:
                await shardio.sleep_forever()
            finally:
                print("cleanup", name, flush=True)

        async def main():
            try:
                async with shardio.open_nursery() as nursery:
                    for name in "abc":
                        nursery.start_soon(worker, name)
                    await shardio.testing.wait_all_tasks_blocked()
                    print("ready", flush=True)
                    await shardio.sleep_forever()
            finally:
                print("main cleanup", flush=True)

        try:
            shardio.run(main)
        except KeyboardInterrupt as exc:
            print("KeyboardInterrupt", repr(exc.__context__), flush=True)
        """
    )
    assert code == 0, out
    lines = out.splitlines()
    assert sorted(lines[:3]) == ["cleanup a", "cleanup b", "cleanup c"]
    assert lines[3:] == ["main cleanup", "KeyboardInterrupt None"]


def test_ctrl_c_lets_cleanup_code_await() -> None:
    # Cleanup that must await (shielded) still completes before run() raises.
    code, out = _run_child(
        """
        import shardio, shardio.testing

        async def main():
            try:
                print("ready", flush=True)
                await shardio.sleep_forever()
            finally:
                with shardio.CancelScope(shield=True):
                    await shardio.sleep(0.05)
                print("flushed", flush=True)

        try:
            shardio.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
        """
    )
    assert code == 0, out
    assert out.splitlines() == ["flushed", "KeyboardInterrupt"]


def test_second_ctrl_c_interrupts_a_task_stuck_without_checkpoints() -> None:
    code, out = _run_child(
        """
        import shardio, time

        async def main():
            print("ready", flush=True)
            try:
                await shardio.sleep_forever()
            finally:
                print("spinning", flush=True)
                while True:  # cleanup that never reaches a checkpoint
                    time.sleep(0.001)

        try:
            shardio.run(main)
        except KeyboardInterrupt as exc:
            print("KeyboardInterrupt", flush=True)
        """,
        signals=2,
    )
    assert code == 0, out
    assert out.splitlines() == ["KeyboardInterrupt"]


def test_second_ctrl_c_stops_a_main_task_that_never_checkpoints() -> None:
    # The first Ctrl-C cannot be delivered (no checkpoint ever comes); the
    # second raises KeyboardInterrupt in the running code, as plain Python does.
    code, out = _run_child(
        """
        import shardio, time

        async def main():
            print("ready", flush=True)
            print("spinning", flush=True)
            while True:
                time.sleep(0.001)

        try:
            shardio.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
        """,
        signals=2,
    )
    assert code == 0, out
    assert out.splitlines() == ["KeyboardInterrupt"]


def test_ctrl_c_before_any_checkpoint_still_stops_the_run() -> None:
    code, out = _run_child(
        """
        import os, signal, shardio

        async def main():
            print("ready", flush=True)
            os.kill(os.getpid(), signal.SIGINT)  # arrives while main runs user code
            await shardio.sleep(30)
            print("not reached", flush=True)

        try:
            shardio.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
        """,
        signals=0,
    )
    assert code == 0, out
    assert out.splitlines() == ["KeyboardInterrupt"]


def test_sigint_handler_is_restored_after_run() -> None:
    import shardio

    async def main() -> object:
        return signal.getsignal(signal.SIGINT)

    during = shardio.run(main)
    assert during is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_ctrl_c_interrupts_a_serve_tcp_handler_spinning_after_a_receive() -> None:
    # The handler runs under shardio_net's frames: it is still the user's
    # code, and a second Ctrl-C must reach it.
    code, out = _run_child(
        """
        import functools, socket, time
        import shardio, shardio_net

        async def handler(stream):
            await stream.receive_some()
            print("ready", flush=True)
            print("spinning", flush=True)
            while True:
                time.sleep(0.001)

        async def main():
            async with shardio.open_nursery() as nursery:
                [address] = await nursery.start(
                    functools.partial(shardio_net.serve_tcp, handler, 0, host="127.0.0.1")
                )
                client = socket.create_connection(address[:2])
                client.sendall(b"hello")
                await shardio.sleep_forever()

        try:
            shardio.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
        """,
        signals=2,
    )
    assert code == 0, out
    assert out.splitlines() == ["KeyboardInterrupt"]


_SPIN_IN_RUN_ON = """
import time
import shardio

def spin():
    print("ready", flush=True)
    print("spinning", flush=True)
    while True:
        time.sleep(0.001)

async def call_back():
    await shardio.run_on(0, spin)

async def main(caller):
    if caller == 0:
        await shardio.run_on(0, spin)  # runs in this task, without pickling
    else:
        await shardio.run_on(1, call_back)  # shard 0's scheduler runs it

try:
    shardio.run(main, CALLER, shards=SHARDS, cpus=False)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


@pytest.mark.parametrize(
    ("caller", "shards"), [(0, 1), (1, 2)], ids=["run-on-its-own-shard", "called-from-shard-1"]
)
def test_second_ctrl_c_interrupts_a_sync_function_sent_to_shard_0_with_run_on(
    caller: int, shards: int
) -> None:
    # Whether it runs in the calling task or in shard 0's scheduler under the
    # messenger's frames, the function is the user's code.
    code, out = _run_child(
        _SPIN_IN_RUN_ON.replace("CALLER", str(caller)).replace("SHARDS", str(shards)),
        signals=2,
    )
    assert code == 0, out
    assert out.splitlines() == ["KeyboardInterrupt"]


def test_ki_protection_is_marked_on_library_code_and_off_in_user_tasks() -> None:
    import shardio
    from shardio import lowlevel

    seen: dict[str, bool] = {}

    @lowlevel.enable_ki_protection
    def protected() -> bool:
        return lowlevel.currently_ki_protected()

    @lowlevel.enable_ki_protection
    async def protected_calls_user() -> bool:
        return await unprotected_boundary()

    @lowlevel.disable_ki_protection
    async def unprotected_boundary() -> bool:
        return lowlevel.currently_ki_protected()

    async def system_task() -> None:
        seen["system task"] = lowlevel.currently_ki_protected()

    async def main() -> None:
        seen["main task"] = lowlevel.currently_ki_protected()
        seen["protected function"] = protected()
        seen["boundary inside protected code"] = await protected_calls_user()
        lowlevel.spawn_system_task(system_task)
        token = lowlevel.current_token()
        token.run_sync_soon(lambda: seen.setdefault("callback", lowlevel.currently_ki_protected()))
        await shardio.sleep(0.01)

    shardio.run(main)
    assert seen == {
        "main task": False,
        "protected function": True,
        "boundary inside protected code": False,
        "system task": True,
        "callback": True,
    }


def test_ki_protection_decorators_refuse_what_has_no_code() -> None:
    import pytest

    from shardio import lowlevel

    with pytest.raises(TypeError, match="staticmethod"):
        lowlevel.enable_ki_protection(len)  # type: ignore[arg-type]


_RUN_IN_A_LOOP = """
import logging, sys, shardio

async def noop():
    pass

print("ready", flush=True)
try:
    while True:
        shardio.run(noop, shards=2, cpus=False)
except KeyboardInterrupt:
    pass
# The run is usable again, and logging's lock (taken around fork) is free.
assert shardio.run(noop) is None
logging.basicConfig(stream=sys.stdout, format="%(message)s")
logging.getLogger("after").warning("stopped")
"""


def test_ctrl_c_at_any_moment_of_repeated_runs_stops_the_program_cleanly() -> None:
    # SIGINTs land at random moments: in a fork, in logging's at-fork hooks,
    # while the stop handlers are installed or removed, between runs. Each
    # must end the loop, leave no run registered and no lock held.
    import random

    rng = random.Random(1234)
    failures = []
    for attempt in range(30):
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUN_IN_A_LOOP],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().decode().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.3))
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=15)
            if (proc.returncode, out.decode()) != (0, "stopped\n"):
                failures.append((attempt, proc.returncode, out.decode()[-500:]))
        except subprocess.TimeoutExpired:
            failures.append((attempt, "hung", ""))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert failures == []
