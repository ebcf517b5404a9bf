"""Cancelling disk operations: the task waits until the kernel (or thread) is
done with its buffer, and a cancelled open leaks no file descriptor."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import shardio
import shardio_disk
from shardio import lowlevel
from shardio_disk._choice import current_backend
from shardio_disk._uring_c import ffi


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_cancelled_read_returns_only_when_its_buffer_is_no_longer_written(
    dma_dir: Path,
) -> None:
    size = 32 << 20
    path = dma_dir / "big"
    path.write_bytes(os.urandom(size))
    async with await shardio_disk.open_dma(path, "r") as f:
        buf = shardio_disk.aligned_buffer(size)
        buf[:] = b"\xaa" * size
        outcome: list[str] = []

        async def reader(task_status: shardio.TaskStatus[shardio.CancelScope]) -> None:
            with shardio.CancelScope() as scope:
                task_status.started(scope)
                await f.read_into(0, buf)
                outcome.append("finished")
            if scope.cancelled_caught:
                outcome.append("cancelled")

        async with shardio.open_nursery() as nursery:
            scope = await nursery.start(reader)
            await lowlevel.checkpoint()  # the read is in the kernel now
            scope.cancel()
        assert outcome in (["cancelled"], ["finished"])
        assert shardio_disk.statistics().in_flight == 0
        # Whatever the device wrote, it wrote before the read returned.
        snapshot = bytes(buf)
        await shardio.sleep(0.1)
        assert bytes(buf) == snapshot


async def test_a_cancelled_open_leaks_no_file_descriptor(dma_dir: Path) -> None:
    path = dma_dir / "f"
    path.write_bytes(bytes(4096))
    current_backend()  # the ring's own fds are not what this counts
    before = open_fds()
    # Cancel at every point: before the open is submitted, while it is in
    # the kernel, after it completed but before its task saw the result,
    # and during the statx that follows.
    for delay_passes in range(6):
        for cancel_from_a_sibling in (False, True):
            done: list[object] = []

            async def opener(scope: shardio.CancelScope, done: list[object]) -> None:
                with scope:
                    f = await shardio_disk.open_dma(path, "r")
                    done.append(f)

            async def canceller(scope: shardio.CancelScope, passes: int) -> None:
                for _ in range(passes):
                    await lowlevel.cancel_shielded_checkpoint()
                scope.cancel()

            scope = shardio.CancelScope()
            async with shardio.open_nursery() as nursery:
                nursery.start_soon(opener, scope, done)
                if cancel_from_a_sibling:
                    # Runs right after the opener parked, in the same batch.
                    nursery.start_soon(canceller, scope, delay_passes)
                else:
                    for _ in range(delay_passes):
                        await lowlevel.cancel_shielded_checkpoint()
                    scope.cancel()
            for f in done:
                assert isinstance(f, shardio_disk.DmaFile)
                await f.aclose()
            assert open_fds() == before


async def test_an_already_cancelled_operation_never_starts(dma_dir: Path) -> None:
    async with await shardio_disk.open_dma(dma_dir / "x", "w+") as f:
        before = shardio_disk.statistics().submitted
        with shardio.CancelScope() as scope:
            scope.cancel()
            await f.read_at(0, 4096)
        assert scope.cancelled_caught
        assert shardio_disk.statistics().submitted == before


async def test_a_blocked_read_is_cancelled_in_the_kernel_or_waited_for_in_its_thread(
    disk_backend: str,
) -> None:
    backend = current_backend()
    r, w = os.pipe()
    writer = threading.Timer(0.4, os.write, (w, b"hello"))
    try:
        buf = shardio_disk.aligned_buffer(4096)
        cbuf = ffi.from_buffer(buf)
        writer.start()
        start = time.monotonic()
        with shardio.move_on_after(0.1) as scope:
            await backend.read(r, buf, cbuf, -1)
        elapsed = time.monotonic() - start
        ffi.release(cbuf)
        assert scope.cancelled_caught
        if disk_backend == "io_uring":
            # ASYNC_CANCEL took the read back: nothing was consumed.
            assert elapsed < 0.35
            writer.join()
            assert os.read(r, 100) == b"hello"
            assert bytes(buf[:5]) == bytes(5)
        else:
            # A thread cannot be interrupted: the task waited for its read.
            assert elapsed >= 0.35
            assert bytes(buf[:5]) == b"hello"
    finally:
        writer.cancel()
        writer.join()
        os.close(r)
        os.close(w)


async def test_aclose_closes_even_when_cancelled(dma_dir: Path) -> None:
    f = await shardio_disk.open_dma(dma_dir / "c", "w")
    fd = f.fileno()
    with shardio.CancelScope() as scope:
        scope.cancel()
        await f.aclose()
    assert scope.cancelled_caught
    assert f.closed
    with pytest.raises(OSError):
        os.fstat(fd)
