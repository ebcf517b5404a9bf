"""run_process, open_process, Process and FdStream under Trio and shardio:
the same children, and what each library let a user see of them.

Each scenario is ``observe(lib)``, run once under ``trio.run`` and once under
``shardio.run``, returning plain data: results, exit statuses, exception
shapes, and reprs with the library's name and the pid taken out. Real
processes need the real clock (one scenario uses an autojumping MockClock
for Trio's five-second SIGTERM grace); ordering comes from the processes'
own output, never from sleeps.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import shardio
import shardio.lowlevel
import shardio.testing

from ._harness import shape

PYTHON = sys.executable


def completed(result: subprocess.CompletedProcess[bytes]) -> tuple[Any, ...]:
    return (result.args, result.returncode, result.stdout, result.stderr)


async def outcome_of(awaitable: Awaitable[Any]) -> object:
    try:
        return ("ok", await awaitable)
    except BaseException as exc:
        return ("raised", shape(exc))


def plain_repr(lib: ModuleType, process: Any) -> str:
    return repr(process).replace(lib.__name__, "LIB").replace(str(process.pid), "PID")


async def completed_processes(lib: ModuleType) -> Any:
    run = lib.run_process
    failed: list[object] = []
    try:
        await run(["sh", "-c", "echo oops; echo bad >&2; exit 2"], capture_stdout=True)
    except subprocess.CalledProcessError as exc:
        failed = [exc.returncode, exc.cmd, exc.stdout, exc.stderr]
    return [
        completed(await run(["echo", "hi"], capture_stdout=True)),
        completed(await run(["cat"], stdin=b"fed", capture_stdout=True)),
        completed(await run(["cat"], capture_stdout=True)),
        completed(
            await run(
                ["sh", "-c", "echo o; echo e >&2; exit 5"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        ),
        completed(
            await run(
                ["sh", "-c", "echo one; echo two >&2"],
                capture_stdout=True,
                stderr=subprocess.STDOUT,
            )
        ),
        completed(await run("echo $0", shell=True, capture_stdout=True, executable="/bin/sh")),
        completed(await run(["true"], stdout=subprocess.DEVNULL)),
        failed,
    ]


async def cancellation_terminates_and_waits(lib: ModuleType) -> Any:
    calls: list[object] = []

    async def deliver_cancel(process: Any) -> None:
        calls.append(("delivered", process.returncode))
        process.send_signal(signal.SIGUSR1)
        try:
            await lib.sleep_forever()
        finally:
            calls.append(("deliver_cancel cancelled", process.returncode))

    seen = []
    for custom in (None, deliver_cancel):
        with lib.CancelScope() as scope:
            async with lib.open_nursery() as nursery:
                process = await nursery.start(
                    functools.partial(lib.run_process, ["sleep", "100"], deliver_cancel=custom)
                )
                seen.append(process.returncode)
                scope.cancel()
        seen.append((scope.cancelled_caught, process.returncode))
    return seen, calls


async def stubborn_child_gets_sigkill_after_five_seconds(lib: ModuleType) -> Any:
    stubborn = [
        PYTHON,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(100)",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with lib.CancelScope() as scope:
            async with lib.open_nursery() as nursery:
                process = await nursery.start(
                    functools.partial(lib.run_process, stubborn, stdout=subprocess.PIPE)
                )
                ready = await process.stdout.receive_some()
                start = lib.current_time()
                scope.cancel()
    return (
        ready,
        lib.current_time() - start,
        process.returncode,
        [(w.category.__name__, "ignored SIGTERM for 5 seconds" in str(w.message)) for w in caught],
    )


async def mistakes(lib: ModuleType) -> Any:
    return [
        await outcome_of(lib.lowlevel.open_process("echo hi")),
        await outcome_of(lib.lowlevel.open_process(["echo", "hi"], shell=True)),
        await outcome_of(lib.lowlevel.open_process(["echo"], text=True)),
        await outcome_of(lib.lowlevel.open_process(["echo"], bufsize=1)),
        await outcome_of(lib.run_process(["echo"], capture_stdout=True, stdout=subprocess.DEVNULL)),
        await outcome_of(lib.run_process(["echo"], capture_stderr=True, stderr=subprocess.DEVNULL)),
        await outcome_of(lib.run_process(["echo"], stdin=subprocess.PIPE)),
        await outcome_of(lib.run_process(["echo"], stdout=subprocess.PIPE)),
        await outcome_of(lib.run_process(["cat"], stdin="text")),
        await outcome_of(lib.run_process(["no-such-program-here"])),
        await outcome_of(lib.run_process(["true"], cwd="/no/such/directory")),
    ]


async def a_process_and_its_streams(lib: ModuleType) -> Any:
    process = await lib.lowlevel.open_process(
        ["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    seen: list[object] = [
        type(process.stdin).__name__,
        type(process.stdout).__name__,
        process.stderr,
        type(process.stdio).__name__,
        (process.universal_newlines, process.encoding, process.errors),
        process.args,
        process.poll(),
        plain_repr(lib, process),
    ]
    await process.stdio.send_all(b"ping")
    seen.append(await process.stdio.receive_some())
    process.terminate()
    seen += [await process.wait(), process.returncode, process.poll(), plain_repr(lib, process)]
    process.kill()  # already reaped: nothing happens
    await process.stdio.send_eof()  # closes stdin, whose reader is gone
    seen.append(await process.stdout.receive_some())
    await process.stdout.aclose()
    exited = await lib.lowlevel.open_process(["sh", "-c", "exit 7"])
    seen += [await exited.wait(), plain_repr(lib, exited), exited.stdio]
    return seen


async def fd_streams(lib: ModuleType) -> Any:
    FdStream = lib.lowlevel.FdStream
    read_end, write_end = os.pipe()
    send, receive = FdStream(write_end), FdStream(read_end)
    seen: list[object] = []
    await send.send_all(b"abc")
    seen += [
        await receive.receive_some(2),
        await receive.receive_some(),
        await outcome_of(receive.receive_some(0)),
        await outcome_of(receive.receive_some(1.5)),
        await outcome_of(receive.receive_some("1")),
    ]
    await send.aclose()
    seen += [
        await receive.receive_some(),
        send.fileno(),
        await outcome_of(send.send_all(b"")),
        await outcome_of(send.wait_send_all_might_not_block()),
    ]
    await receive.aclose()
    seen.append(await outcome_of(receive.receive_some()))
    read_end, write_end = os.pipe()
    send, receive = FdStream(write_end), FdStream(read_end)
    await receive.aclose()
    seen.append(await outcome_of(send.send_all(b"nobody reads")))
    await send.aclose()
    try:
        FdStream("3")
    except TypeError:
        seen.append("TypeError for a non-int fd")
    return seen


SCENARIOS: dict[str, Callable[[ModuleType], Awaitable[Any]]] = {
    f.__name__: f
    for f in (
        completed_processes,
        cancellation_terminates_and_waits,
        mistakes,
        a_process_and_its_streams,
        fd_streams,
    )
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_trio_and_shardio_processes_look_the_same(name: str) -> None:
    with_trio = trio.run(SCENARIOS[name], trio)
    with_shardio = shardio.run(SCENARIOS[name], shardio)
    assert with_shardio == with_trio


def test_trio_and_shardio_give_a_stubborn_child_the_same_grace() -> None:
    scenario = stubborn_child_gets_sigkill_after_five_seconds
    with_trio = trio.run(scenario, trio, clock=trio.testing.MockClock(autojump_threshold=0))
    with_shardio = shardio.run(
        scenario, shardio, clock=shardio.testing.MockClock(autojump_threshold=0)
    )
    assert with_shardio == with_trio
    assert with_shardio == (b"ready\n", 5, -signal.SIGKILL, [("RuntimeWarning", True)])
