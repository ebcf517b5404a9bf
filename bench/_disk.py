"""What the disk benchmarks (D1-D3) share: the test file, and each
implementation's read loop.

The file is 1 GiB of random bytes -- written, not sparse and not
preallocated, so that every read reaches the device -- on a filesystem that
supports O_DIRECT (``SHARDIO_BENCH_DIR``, default ``/var/tmp/shardio-bench``;
tmpfs is refused). It is made once, by whichever trial needs it first, under
a temporary name renamed into place when complete, and reused by every
implementation and every later run. Its pages may stay in the page cache
from the writing: O_DIRECT reads bypass the cache, for every implementation
alike, so nothing is dropped from it.

``size`` is the measured time in seconds: each implementation reads for
that long (fio with ``--time_based --runtime``), and the figure is the
reads it completed (or the bytes they moved) per second of wall-clock time,
the reads in flight at the stop included.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from ._spec import Figures

FILE_SIZE = 1 << 30
_CHUNK = 8 << 20
_TMPFS_MAGIC = 0x01021994


def bench_file(size: int = FILE_SIZE) -> Path:
    """The benchmark file, made if it does not exist yet."""
    directory = Path(os.environ.get("SHARDIO_BENCH_DIR", "/var/tmp/shardio-bench"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"data-{size >> 20}M.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    _check_direct_io(directory)
    partial = directory / f".{path.name}.{os.getpid()}.partial"
    with open(partial, "wb") as out:
        for _ in range(0, size, _CHUNK):
            out.write(os.urandom(_CHUNK))
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return path


def _check_direct_io(directory: Path) -> None:
    if _is_tmpfs(directory):
        raise RuntimeError(f"{directory} is on tmpfs: set SHARDIO_BENCH_DIR to a disk")
    probe = directory / ".o_direct_probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise RuntimeError(
                f"{directory} does not support O_DIRECT: set SHARDIO_BENCH_DIR"
            ) from None
        raise
    os.close(fd)
    probe.unlink()


def _is_tmpfs(directory: Path) -> bool:
    """Whether ``directory`` is on tmpfs (from /proc/self/mountinfo)."""
    best, kind = "", ""
    target = str(directory.resolve())
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point = fields[4]
            fs_type = fields[fields.index("-") + 1]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, fs_type
    return kind == "tmpfs"


# -- the implementations' loops ------------------------------------------------------------


def shardio_reads(seconds: float, *, block: int, depth: int, sequential: bool) -> Figures:
    """``depth`` tasks, each a loop of ``DmaFile.read_into`` into its own
    aligned buffer: random blocks, or the file in order (each task takes
    the next block)."""
    import shardio
    import shardio_disk

    path = bench_file()
    blocks = FILE_SIZE // block
    state = {"stop": False, "next": 0}

    async def worker(f: shardio_disk.DmaFile, seed: int, counts: list[int]) -> None:
        buf = shardio_disk.aligned_buffer(block)
        read_into = f.read_into
        pick = random.Random(seed).random
        done = 0
        while not state["stop"]:
            if sequential:
                index = state["next"]
                state["next"] = (index + 1) % blocks
            else:
                index = int(pick() * blocks)
            await read_into(index * block, buf)
            done += 1
        counts.append(done)

    async def main() -> tuple[int, float]:
        counts: list[int] = []
        async with await shardio_disk.open_dma(path, "r") as f:
            start = time.perf_counter()
            async with shardio.open_nursery() as nursery:
                for seed in range(depth):
                    nursery.start_soon(worker, f, seed, counts)
                await shardio.sleep(seconds)
                state["stop"] = True
            elapsed = time.perf_counter() - start
        return sum(counts), elapsed

    reads, elapsed = shardio.run(main)
    return _figures(reads, block, elapsed)


def trio_reads(seconds: float, *, block: int, depth: int) -> Figures:
    """``depth`` trio tasks, each a loop of ``trio.to_thread.run_sync(os.preadv, ...)``
    on an O_DIRECT file descriptor, into its own page-aligned buffer."""
    import trio

    path = bench_file()
    blocks = FILE_SIZE // block
    stop = False

    async def worker(fd: int, seed: int, counts: list[int]) -> None:
        buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
        pick = random.Random(seed).random
        run_sync = trio.to_thread.run_sync
        done = 0
        while not stop:
            await run_sync(os.preadv, fd, [buf], int(pick() * blocks) * block)
            done += 1
        counts.append(done)

    async def main() -> tuple[int, float]:
        nonlocal stop
        counts: list[int] = []
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for seed in range(depth):
                    nursery.start_soon(worker, fd, seed, counts)
                await trio.sleep(seconds)
                stop = True
            elapsed = time.perf_counter() - start
        finally:
            os.close(fd)
        return sum(counts), elapsed

    reads, elapsed = trio.run(main)
    return _figures(reads, block, elapsed)


def fio_reads(seconds: float, *, block: int, depth: int, sequential: bool) -> Figures:
    """fio with its io_uring engine and O_DIRECT on the same file (pinned to
    the same CPU: it inherits this process's affinity)."""
    path = bench_file()
    command = [
        "fio",
        "--name=bench",
        f"--filename={path}",
        "--ioengine=io_uring",
        "--direct=1",
        f"--rw={'read' if sequential else 'randread'}",
        f"--bs={block}",
        f"--iodepth={depth}",
        f"--size={FILE_SIZE}",
        "--numjobs=1",
        "--time_based",
        f"--runtime={max(1, round(seconds))}",
        "--norandommap",
        "--randrepeat=0",
        "--output-format=json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    report: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    read = report["jobs"][0]["read"]
    elapsed = read["runtime"] / 1000
    return _figures(int(read["total_ios"]), block, elapsed)


def _figures(reads: int, block: int, elapsed: float) -> Figures:
    return {"iops": reads / elapsed, "bandwidth": reads * block / elapsed / (1 << 20)}
