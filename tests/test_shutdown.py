"""The order of a run's end: user code unwinds first, the services it relies on close after.

Ctrl-C, SIGTERM and the main task's exit cancel the user's tasks; while they
unwind, the disk backend, the other shards and the messenger still work. Each
scenario runs in a child process that receives real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A task writes a file stream and is stopped in the middle; its finally
# closes the stream (flush, truncate to the bytes sent, fdatasync).
_WRITER = """
import os, signal, sys
import shardio, shardio_disk

PATH = sys.argv[1]
SHARDS = int(sys.argv[2])

async def write_until_stopped():
    stream = shardio_disk.FileOutputStream(await shardio_disk.open_dma(PATH, "w"))
    try:
        await stream.send_all(b"x" * 1000)
        print("ready", flush=True)
        await shardio.sleep_forever()
    finally:
        try:
            await stream.aclose()
        except shardio.Cancelled:  # aclose is a checkpoint: the stop shows there
            print("closed", flush=True)
            raise

async def main(where):
    if where == 0:
        await write_until_stopped()
    else:
        await shardio.run_on(where, write_until_stopped)

try:
    shardio.run(main, int(sys.argv[3]), shards=SHARDS, cpus=False)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
except SystemExit as exc:
    print("SystemExit", exc.code, flush=True)
"""


def _stop_writer(
    tmp_path: Path, signum: int, *, shards: int = 1, where: int = 0, backend: str = "io_uring"
) -> tuple[str, Path]:
    path = tmp_path / "out.bin"
    env = dict(os.environ, SHARDIO_DISK_BACKEND=backend)
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(shards), str(where)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.strip() == "ready", line + proc.stdout.read().decode()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode()
    return out.decode(), path


@pytest.mark.parametrize("backend", ["io_uring", "threads"])
def test_a_file_stream_closed_after_ctrl_c_is_flushed_truncated_and_complete(
    tmp_path: Path, backend: str
) -> None:
    out, path = _stop_writer(tmp_path, signal.SIGINT, backend=backend)
    assert out.splitlines() == ["closed", "KeyboardInterrupt"]
    assert path.read_bytes() == b"x" * 1000


def test_a_file_stream_closed_after_sigterm_is_complete(tmp_path: Path) -> None:
    out, path = _stop_writer(tmp_path, signal.SIGTERM)
    assert out.splitlines() == ["closed", "SystemExit 143"]
    assert path.read_bytes() == b"x" * 1000


def test_a_remote_task_closes_its_file_stream_when_ctrl_c_stops_the_run(tmp_path: Path) -> None:
    # The writer runs on shard 1: Ctrl-C reaches it as a cancel message, and
    # shard 1's disk backend is still there while it unwinds.
    out, path = _stop_writer(tmp_path, signal.SIGINT, shards=2, where=1)
    assert out.splitlines() == ["closed", "KeyboardInterrupt"]
    assert path.read_bytes() == b"x" * 1000


def test_several_runs_then_a_ctrl_c_run_in_one_process_all_close_their_files(
    tmp_path: Path,
) -> None:
    # Formerly the Ctrl-C'd run's cleanup wrote into the previous rings'
    # freed memory and crashed the interpreter, most of the time.
    code = textwrap.dedent(
        """
        import os, signal, sys
        import shardio, shardio_disk

        async def write(path, interrupt):
            stream = shardio_disk.FileOutputStream(await shardio_disk.open_dma(path, "w"))
            try:
                await stream.send_all(path.encode() * 50)
                if interrupt:
                    os.kill(os.getpid(), signal.SIGINT)
                await shardio.sleep(0.01)
            finally:
                await stream.aclose()

        base = sys.argv[1]
        for i in range(5):
            shardio.run(write, f"{base}/plain{i}", False)
        try:
            shardio.run(write, f"{base}/stopped", True)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"KeyboardInterrupt\n", b"")
    for name in [f"plain{i}" for i in range(5)] + ["stopped"]:
        path = tmp_path / name
        assert path.read_bytes() == str(path).encode() * 50


@pytest.mark.parametrize("backend", ["io_uring", "threads"])
def test_a_disk_file_used_after_its_run_ended_raises_run_finished_error(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shardio
    import shardio_disk

    monkeypatch.setenv("SHARDIO_DISK_BACKEND", backend)

    async def open_it() -> shardio_disk.DmaFile:
        return await shardio_disk.open_dma(tmp_path / "f", "w")

    async def use(file: shardio_disk.DmaFile) -> None:
        await file.write_at(0, shardio_disk.aligned_buffer(4096))

    file = shardio.run(open_it)
    with pytest.raises(shardio.RunFinishedError, match="open it again in this run"):
        shardio.run(use, file)


def test_ctrl_c_lets_user_tasks_unwind_before_system_tasks_are_cancelled() -> None:
    import shardio
    from shardio import lowlevel
    from shardio.testing import wait_all_tasks_blocked

    events: list[str] = []

    async def service() -> None:
        try:
            await shardio.sleep_forever()
        finally:
            events.append("service closed")

    async def worker() -> None:
        try:
            await shardio.sleep_forever()
        finally:
            with shardio.CancelScope(shield=True):
                await shardio.sleep(0.01)
            events.append("worker finished")

    async def main() -> None:
        lowlevel.spawn_system_task(service)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(worker)
            await wait_all_tasks_blocked()
            os.kill(os.getpid(), signal.SIGINT)
            await shardio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        shardio.run(main)
    assert events == ["worker finished", "service closed"]
