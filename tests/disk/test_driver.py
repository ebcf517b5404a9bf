"""The drivers under the files: batching, registered buffers, a full ring,
waking a sleeping shard, one ring per shard, choosing the backend."""

from __future__ import annotations

import gc
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

import shardio
import shardio_disk
from shardio import lowlevel
from shardio_disk._backend import KIND_IO
from shardio_disk._choice import current_backend
from shardio_disk._uring import Uring, UringBackend
from shardio_disk._uring_c import ffi, lib


class IOWaits(lowlevel.Instrument):
    """Records how long the scheduler was prepared to block each time."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def before_io_wait(self, timeout: float) -> None:
        self.timeouts.append(timeout)


async def test_a_completion_wakes_a_sleeping_shard() -> None:
    # Nothing else is runnable while the read waits on the pipe: the shard
    # sleeps in epoll_wait, and only the completion can wake it.
    backend = current_backend()
    r, w = os.pipe()
    writer = threading.Timer(0.2, os.write, (w, b"wake up"))
    waits = IOWaits()
    try:
        buf = shardio_disk.aligned_buffer(4096)
        cbuf = ffi.from_buffer(buf)
        lowlevel.add_instrument(waits)
        writer.start()
        start = time.monotonic()
        with shardio.fail_after(10):
            n = await backend.read(r, buf, cbuf, -1)
        elapsed = time.monotonic() - start
        lowlevel.remove_instrument(waits)
        ffi.release(cbuf)
        assert bytes(buf[:n]) == b"wake up"
        assert 0.15 < elapsed < 5
        assert max(waits.timeouts) > 5  # it slept with nothing due for seconds
    finally:
        writer.join()
        os.close(r)
        os.close(w)


async def test_reads_into_arena_buffers_use_the_registered_buffer(
    dma_dir: Path, disk_backend: str
) -> None:
    if disk_backend != "io_uring":
        pytest.skip("registered buffers are an io_uring feature")
    path = dma_dir / "fixed"
    path.write_bytes(os.urandom(1 << 16))
    gc.collect()  # buffers of earlier tests, still held in reference cycles
    assert lib.dma_arena_free_bytes() >= 1 << 16
    async with await shardio_disk.open_dma(path, "r") as f:
        stats = shardio_disk.statistics()
        assert stats.registered_buffers
        await f.read_into(0, shardio_disk.aligned_buffer(1 << 16))
        after = shardio_disk.statistics()
        assert after.fixed_buffer_ops == stats.fixed_buffer_ops + 1
        # Memory outside the arena (here: larger than it) works unregistered.
        big = shardio_disk.aligned_buffer(32 << 20)
        assert await f.read_into(0, big) == 1 << 16
        assert shardio_disk.statistics().fixed_buffer_ops == after.fixed_buffer_ops
        assert bytes(big[: 1 << 16]) == path.read_bytes()


async def test_a_tiny_ring_still_runs_many_operations(dma_dir: Path, disk_backend: str) -> None:
    # Two SQ slots and two CQ slots for 64 concurrent reads: the SQ fills
    # (submit early to make room) and the CQ overflows (the kernel keeps the
    # extra completions; reaping enters the kernel to flush them).
    if disk_backend != "io_uring":
        pytest.skip("exercises the io_uring driver itself")
    block = 4096
    data = os.urandom(64 * block)
    (dma_dir / "t").write_bytes(data)
    fd = os.open(dma_dir / "t", os.O_RDONLY | os.O_DIRECT)
    ring = Uring(entries=2, cq_entries=2)
    got: dict[int, bytes] = {}

    async def one(i: int) -> None:
        buf = shardio_disk.aligned_buffer(block)
        cbuf = ffi.from_buffer(buf)
        n = await ring.perform(KIND_IO, buf, lib.uring_prep_read, fd, cbuf, block, i * block)
        ffi.release(cbuf)
        got[i] = bytes(buf[:n])

    try:
        async with shardio.open_nursery() as nursery:
            for i in range(64):
                nursery.start_soon(one, i)
    finally:
        ring.close()
        os.close(fd)
    assert got == {i: data[i * block : (i + 1) * block] for i in range(64)}


async def write_and_read_back(path: Path, seed: int) -> tuple[str, int, int, bool]:
    """On the calling shard: 32 writes and 32 reads; what the shard saw."""
    block = 4096
    payload = bytes([seed]) * (32 * block)
    before = shardio_disk.statistics().submitted
    async with await shardio_disk.open_dma(path, "w+") as f:
        buf = shardio_disk.aligned_buffer(block)
        buf[:] = payload[:block]
        async with shardio.open_nursery() as nursery:
            for i in range(32):
                nursery.start_soon(f.write_at, i * block, buf)
        back = await f.read_many([(i * block, block) for i in range(32)], max_merged=0)
    ops = shardio_disk.statistics().submitted - before
    return shardio_disk.backend(), os.getpid(), ops, b"".join(back) == payload


@pytest.mark.shardio(shards=2)
async def test_each_shard_drives_its_own_ring(dma_dir: Path, disk_backend: str) -> None:
    results: dict[int, tuple[str, int, int, bool]] = {}

    async def on(shard: int) -> None:
        results[shard] = await shardio.run_on(
            shard, write_and_read_back, dma_dir / f"shard{shard}", shard + 1
        )

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(on, 0)
        nursery.start_soon(on, 1)
    (backend0, pid0, ops0, ok0), (backend1, pid1, ops1, ok1) = results[0], results[1]
    assert ok0 and ok1
    assert backend0 == backend1 == disk_backend
    assert pid0 != pid1
    # open + statx + 32 writes + 32 reads + close: each shard counted its own only.
    assert ops0 == ops1 == 67


def test_backend_names_the_backend_and_the_variable_forces_it(
    disk_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shardio_disk.backend() == disk_backend
    monkeypatch.setenv("SHARDIO_DISK_BACKEND", "carrier-pigeon")
    with pytest.raises(ValueError, match="SHARDIO_DISK_BACKEND='carrier-pigeon'"):
        shardio_disk.backend()


async def test_inside_a_run_backend_reports_the_one_in_use(
    dma_dir: Path, disk_backend: str
) -> None:
    async with await shardio_disk.open_dma(dma_dir / "b", "w"):
        assert shardio_disk.backend() == disk_backend
        assert shardio_disk.statistics().backend == disk_backend


async def test_without_ioring_op_ftruncate_a_thread_truncates(
    dma_dir: Path, disk_backend: str
) -> None:
    # IORING_OP_FTRUNCATE is Linux 6.9; older kernels truncate on a thread.
    if disk_backend != "io_uring":
        pytest.skip("exercises the io_uring backend's fallback")
    async with await shardio_disk.open_dma(dma_dir / "t", "w+") as f:
        backend = current_backend()
        assert isinstance(backend, UringBackend)
        backend._uring.can_ftruncate = False
        await f.truncate(12345)
        assert await f.size() == 12345 == (dma_dir / "t").stat().st_size


async def test_a_dma_file_refuses_to_travel_to_another_shard(dma_dir: Path) -> None:
    async with await shardio_disk.open_dma(dma_dir / "p", "w") as f:
        with pytest.raises(TypeError, match="belongs to the shard that made it"):
            pickle.dumps(f)
