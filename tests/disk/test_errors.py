"""Errors from the kernel as the user sees them, and the fallbacks: no room
to register buffers, no io_uring at all."""

from __future__ import annotations

import errno
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import shardio_disk


async def test_a_write_past_the_file_size_limit_is_efbig(dma_dir: Path) -> None:
    path = dma_dir / "limited"
    limit = 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Without this the kernel kills the process with SIGXFSZ instead.
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        async with await shardio_disk.open_dma(path, "w") as f:
            buf = shardio_disk.aligned_buffer(8192)
            # Straddling the limit: a short write, as pwrite gives.
            assert await f.write_at(limit - 4096, buf) == 4096
            with pytest.raises(OSError) as too_big:
                await f.write_at(limit, buf)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert too_big.value.errno == errno.EFBIG
    assert too_big.value.filename == str(path)


def _run_script(
    script: str, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


FILL_UNTIL_FULL = """
    import json, sys
    import shardio, shardio_disk

    async def main(path):
        try:
            f = await shardio_disk.open_dma(path, "w")
        except OSError as exc:
            return {"open_errno": exc.errno}
        async with f:
            buf = shardio_disk.aligned_buffer(1 << 16)
            pos = 0
            try:
                while True:
                    pos += await f.write_at(pos, buf)
            except OSError as exc:
                return {"errno": exc.errno, "filename": exc.filename, "written": pos}

    print(json.dumps(shardio.run(main, sys.argv[1])))
"""


def test_a_full_filesystem_is_enospc(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a small tmpfs in a private namespace")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    script = f'mount -t tmpfs -o size=1m tmpfs {mount_point} && exec "$@"'
    result = _run_script(
        FILL_UNTIL_FULL,
        str(mount_point / "full"),
        prefix=("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"),
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    if outcome.get("open_errno") == errno.EINVAL:
        pytest.skip("tmpfs has no O_DIRECT on this kernel (Linux < 6.6)")
    assert outcome["errno"] == errno.ENOSPC
    assert outcome["filename"] == str(mount_point / "full")
    assert 0 < outcome["written"] <= 1 << 20


ROUND_TRIP_WITHOUT_MEMLOCK = """
    import json, os, resource, sys
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 << 10, 64 << 10))
    import shardio, shardio_disk

    async def main(path):
        async with await shardio_disk.open_dma(path, "w+") as f:
            buf = shardio_disk.aligned_buffer(1 << 16)
            buf[:] = os.urandom(1 << 16)
            await f.write_at(0, buf)
            back = await f.read_at(0, 1 << 16)
            stats = shardio_disk.statistics()
            return {
                "same": back == bytes(buf),
                "registered": stats.registered_buffers,
                "fixed": stats.fixed_buffer_ops,
                "backend": stats.backend,
            }

    print(json.dumps(shardio.run(main, sys.argv[1])))
"""


def test_without_memlock_room_buffers_work_unregistered(dma_dir: Path, disk_backend: str) -> None:
    if disk_backend != "io_uring":
        pytest.skip("registered buffers are an io_uring feature")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv(1) to drop CAP_IPC_LOCK, which lifts the memlock limit")
    result = _run_script(
        ROUND_TRIP_WITHOUT_MEMLOCK,
        str(dma_dir / "f"),
        prefix=("setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "same": True,
        "registered": False,
        "fixed": 0,
        "backend": "io_uring",
    }


WITHOUT_IO_URING = """
    import ctypes, json, os, sys

    # A seccomp filter that fails io_uring_setup with EPERM, as container
    # runtimes' default profiles do.
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
    program = (SockFilter * 6)(
        SockFilter(LD_ABS, 0, 0, 4),                 # the architecture
        SockFilter(JEQ, 0, 3, 0xC000003E),           # not x86-64: allow
        SockFilter(LD_ABS, 0, 0, 0),                 # the system call number
        SockFilter(JEQ, 0, 1, 425),                  # io_uring_setup?
        SockFilter(RET, 0, 0, 0x00050000 | 1),       # fail with EPERM
        SockFilter(RET, 0, 0, 0x7FFF0000),           # allow
    )
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0           # PR_SET_NO_NEW_PRIVS
    fprog = SockFprog(len(program), program)
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, filter

    import shardio, shardio_disk

    async def main(path):
        async with await shardio_disk.open_dma(path, "w+") as f:
            buf = shardio_disk.aligned_buffer(4096)
            buf[:] = b"x" * 4096
            await f.write_at(0, buf)
            return shardio_disk.backend(), await f.read_at(0, 4096) == bytes(buf)

    first = shardio.run(main, sys.argv[1])
    second = shardio.run(main, sys.argv[1])
    print(json.dumps([first, second]))
"""


def test_where_io_uring_is_forbidden_the_thread_pool_serves_and_says_so_once(
    dma_dir: Path, disk_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if disk_backend != "threads":
        pytest.skip("tests the automatic choice; one run is enough")
    if platform.machine() != "x86_64":
        pytest.skip("the seccomp filter here is written for x86-64")
    monkeypatch.delenv("SHARDIO_DISK_BACKEND")
    result = _run_script(WITHOUT_IO_URING, str(dma_dir / "f"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["threads", True], ["threads", True]]
    warnings = [line for line in result.stderr.splitlines() if "io_uring is unavailable" in line]
    assert len(warnings) == 1
    assert "EPERM" in warnings[0] and "thread pool" in warnings[0]
