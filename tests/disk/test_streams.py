"""FileInputStream and FileOutputStream: round trips around the alignment,
the read-ahead and write-behind depths, the tail and the final truncate,
errors from background writes, cancellation mid-stream."""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import shardio
import shardio_disk
from shardio import lowlevel
from shardio.abc import ReceiveStream, SendStream

KiB = 1 << 10
MiB = 1 << 20
SIZES = [0, 1, 4095, 4096, 4097, 3 * MiB, 3 * MiB + 4097]


def pattern(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def write_stream(
    path: Path, data: bytes, *, piece: int = 10_000, mode: str = "w", **options: int
) -> shardio_disk.FileOutputStream:
    out = shardio_disk.FileOutputStream(await shardio_disk.open_dma(path, mode), **options)
    async with out:
        for i in range(0, len(data), piece):
            await out.send_all(data[i : i + piece])
    return out


async def read_stream(path: Path, **options: int) -> bytes:
    stream = shardio_disk.FileInputStream(await shardio_disk.open_dma(path, "r"), **options)
    chunks = []
    async with stream:
        async for chunk in stream:
            chunks.append(chunk)
    return b"".join(chunks)


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("buffer_size", "depth"), [(4 * KiB, 0), (64 * KiB, 1), (128 * KiB, 4)])
async def test_a_round_trip_gives_back_the_bytes_and_the_exact_size(
    dma_dir: Path, size: int, buffer_size: int, depth: int
) -> None:
    path = dma_dir / "round"
    data = pattern(size, seed=size)
    await write_stream(path, data, buffer_size=buffer_size, write_behind=depth)
    # The padded tail is cut off: the file is exactly as long as the data.
    assert path.stat().st_size == size
    assert path.read_bytes() == data
    assert await read_stream(path, buffer_size=buffer_size, read_ahead=depth) == data


async def test_the_streams_are_shardio_byte_streams(dma_dir: Path) -> None:
    path = dma_dir / "abc"
    out = shardio_disk.FileOutputStream(await shardio_disk.open_dma(path, "w"))
    assert isinstance(out, SendStream)
    await out.aclose()
    stream = shardio_disk.FileInputStream(await shardio_disk.open_dma(path, "r"))
    assert isinstance(stream, ReceiveStream)
    await stream.aclose()


@pytest.mark.parametrize(("offset", "length"), [(0, 10), (1, 4095), (4095, 2), (5000, None)])
async def test_an_input_stream_reads_a_range_from_any_offset(
    dma_dir: Path, offset: int, length: int | None
) -> None:
    path = dma_dir / "range"
    data = pattern(3 * 4096 + 17)
    path.write_bytes(data)
    file = await shardio_disk.open_dma(path, "r")
    async with shardio_disk.FileInputStream(file, 4096, 2, offset=offset, length=length) as stream:
        got = await stream.read_exactly(len(data))
    end = None if length is None else offset + length
    assert got == data[offset:end]


async def test_read_exactly_and_receive_some_take_what_they_are_asked(dma_dir: Path) -> None:
    path = dma_dir / "pieces"
    data = pattern(10_000)
    path.write_bytes(data)
    async with shardio_disk.FileInputStream(await shardio_disk.open_dma(path, "r"), 4096) as s:
        assert await s.read_exactly(0) == b""
        assert await s.receive_some(3) == data[:3]
        assert await s.read_exactly(5000) == data[3:5003]
        # At most one buffer's worth: the rest of the current one.
        assert await s.receive_some() == data[5003:8192]
        assert await s.read_exactly(5000) == data[8192:]
        assert await s.receive_some() == b""
        assert await s.read_exactly(5) == b""


# -- depths ----------------------------------------------------------------------------


@pytest.mark.parametrize("read_ahead", [0, 1, 4, 16])
async def test_the_read_ahead_depth_is_reached_and_not_exceeded(
    dma_dir: Path, read_ahead: int
) -> None:
    path = dma_dir / "ahead"
    path.write_bytes(pattern(64 * 4096))
    file = await shardio_disk.open_dma(path, "r")
    async with shardio_disk.FileInputStream(file, 4096, read_ahead) as stream:
        assert await stream.read_exactly(64 * 4096) == path.read_bytes()
        stats = stream.statistics()
        # The first receive starts read_ahead reads before it waits for any.
        assert stats.peak_in_flight == max(read_ahead, 1)
        assert file.statistics().peak_in_flight == max(read_ahead, 1)
        assert stats.operations >= 64
        assert stats.bytes == 64 * 4096


async def test_without_read_ahead_the_stream_reads_on_demand(dma_dir: Path) -> None:
    path = dma_dir / "on-demand"
    data = pattern(8 * 4096)
    path.write_bytes(data)
    file = await shardio_disk.open_dma(path, "r")
    async with shardio_disk.FileInputStream(file, 4096, 0) as stream:
        for block in range(3):
            assert await stream.receive_some() == data[block * 4096 : (block + 1) * 4096]
            # Nothing read ahead: no read until the next call asks.
            assert stream.statistics().in_flight == 0
            assert stream.statistics().operations == block + 1


@pytest.mark.parametrize("write_behind", [0, 1, 4, 16])
async def test_the_write_behind_depth_is_reached_and_not_exceeded(
    dma_dir: Path, write_behind: int
) -> None:
    path = dma_dir / "behind"
    data = pattern(64 * 4096)
    file = await shardio_disk.open_dma(path, "w")
    out = shardio_disk.FileOutputStream(file, 4096, write_behind)
    async with out:
        # One send_all of 64 buffers: writes start as buffers fill, and only
        # the write-behind limit makes it wait.
        await out.send_all(data)
        assert file.statistics().peak_in_flight == max(write_behind, 1)
    stats = out.statistics()
    assert stats.peak_in_flight == max(write_behind, 1)
    assert stats.operations == 64
    assert stats.bytes == len(data)
    assert stats.in_flight == 0
    assert path.read_bytes() == data


# -- the tail --------------------------------------------------------------------------


async def test_closing_truncates_a_longer_file_to_what_was_sent(dma_dir: Path) -> None:
    path = dma_dir / "longer"
    path.write_bytes(b"\xff" * MiB)
    data = pattern(5000)
    await write_stream(path, data, mode="r+")
    assert path.read_bytes() == data


async def test_a_flushed_tail_is_padded_then_completed_by_later_data(dma_dir: Path) -> None:
    path = dma_dir / "tail"
    data = pattern(3 * 4096 + 100)
    file = await shardio_disk.open_dma(path, "w")
    async with shardio_disk.FileOutputStream(file, 8192, 2) as out:
        await out.send_all(data[:5000])
        await out.flush()
        # Padded to the alignment, zeros after the data, until the close.
        padded = -(-5000 // file.alignment.write) * file.alignment.write
        assert path.stat().st_size == padded
        assert path.read_bytes() == data[:5000] + bytes(padded - 5000)
        await out.send_all(data[5000:])
        await out.flush()
        await out.flush()
    assert path.read_bytes() == data


# -- errors ----------------------------------------------------------------------------


def limit_file_size(limit: int) -> tuple[int, int, object]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    return soft, hard, previous


def restore_file_size(saved: tuple[int, int, object]) -> None:
    soft, hard, previous = saved
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)  # type: ignore[arg-type]


async def test_a_failed_background_write_surfaces_on_the_next_call(dma_dir: Path) -> None:
    path = dma_dir / "efbig"
    file = await shardio_disk.open_dma(path, "w")
    out = shardio_disk.FileOutputStream(file, 4096, 4)
    saved = limit_file_size(16 * 4096)
    try:
        with pytest.raises(OSError) as failed:
            for _ in range(64):
                await out.send_all(bytes(4096))
        # Then the stream is broken, and says why.
        with pytest.raises(shardio.BrokenResourceError) as broken:
            await out.send_all(b"x")
        await out.aclose()
    finally:
        restore_file_size(saved)
    assert failed.value.errno == errno.EFBIG
    assert failed.value.filename == str(path)
    assert broken.value.__cause__ is failed.value
    assert file.closed


async def test_a_failed_tail_write_surfaces_on_close(dma_dir: Path) -> None:
    path = dma_dir / "efbig-tail"
    file = await shardio_disk.open_dma(path, "w")
    out = shardio_disk.FileOutputStream(file, 8192, 2)
    saved = limit_file_size(4096)
    try:
        await out.send_all(bytes(6000))  # less than a buffer: nothing written yet
        with pytest.raises(OSError) as failed:
            await out.aclose()
    finally:
        restore_file_size(saved)
    assert failed.value.errno == errno.EFBIG
    assert file.closed
    await out.aclose()  # closed: nothing more to say


FILL_A_SMALL_FILESYSTEM = """
    import json, sys
    import shardio, shardio_disk

    async def stream(path, size):
        out = shardio_disk.FileOutputStream(
            await shardio_disk.open_dma(path, "w"), 64 << 10, 4)
        where = "send_all"
        try:
            await out.send_all(bytes(size))
            where = "aclose"
            await out.aclose()
        except OSError as exc:
            await out.aclose()
            return {"where": where, "errno": exc.errno, "filename": exc.filename,
                    "closed": out.file.closed}
        return {"where": None}

    async def main(directory):
        big = await stream(directory + "/big", 4 << 20)
        # The filesystem is full now; a stream smaller than its buffer
        # writes nothing until it closes.
        small = await stream(directory + "/small", 10000)
        return [big, small]

    print(json.dumps(shardio.run(main, sys.argv[1])))
"""


def test_a_full_filesystem_surfaces_enospc_from_send_all_or_from_aclose(
    tmp_path: Path, disk_backend: str
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a small tmpfs in a private namespace")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    script = f'mount -t tmpfs -o size=1m tmpfs {mount_point} && exec "$@"'
    result = subprocess.run(
        [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"),
            *(sys.executable, "-c", textwrap.dedent(FILL_A_SMALL_FILESYSTEM), str(mount_point)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    if "does not support direct I/O" in result.stderr:
        pytest.skip("tmpfs has no O_DIRECT on this kernel (Linux < 6.6)")
    assert result.returncode == 0, result.stderr
    big, small = json.loads(result.stdout)
    assert big == {
        "where": "send_all",
        "errno": errno.ENOSPC,
        "filename": str(mount_point / "big"),
        "closed": True,
    }
    assert small == {
        "where": "aclose",
        "errno": errno.ENOSPC,
        "filename": str(mount_point / "small"),
        "closed": True,
    }


async def test_a_failed_read_is_raised_then_the_stream_is_broken(dma_dir: Path) -> None:
    path = dma_dir / "closed-under"
    path.write_bytes(pattern(8192))
    file = await shardio_disk.open_dma(path, "r")
    stream = shardio_disk.FileInputStream(file, 4096, 0)
    assert await stream.receive_some(10) == path.read_bytes()[:10]
    # Its file closed behind its back: the next read cannot be started.
    await file.aclose()
    with pytest.raises(OSError) as failed:
        await stream.read_exactly(8192)
    assert failed.value.errno == errno.EBADF
    await stream.aclose()


# -- busy, closed ------------------------------------------------------------------------


async def test_two_tasks_cannot_receive_at_once_and_closing_wakes_a_receiver(
    dma_dir: Path,
) -> None:
    path = dma_dir / "busy"
    path.write_bytes(pattern(4 * MiB))
    stream = shardio_disk.FileInputStream(await shardio_disk.open_dma(path, "r"), MiB, 2)
    outcome: list[str] = []

    async def receiver() -> None:
        try:
            while await stream.receive_some():
                pass
        except shardio.ClosedResourceError:
            outcome.append("closed")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await lowlevel.checkpoint()
        with pytest.raises(shardio.BusyResourceError):
            await stream.receive_some()
        await stream.aclose()
    assert outcome == ["closed"]
    assert stream.statistics().in_flight == 0
    assert shardio_disk.statistics().in_flight == 0
    with pytest.raises(shardio.ClosedResourceError):
        await stream.receive_some()


async def test_a_closed_output_stream_refuses_data(dma_dir: Path) -> None:
    out = shardio_disk.FileOutputStream(await shardio_disk.open_dma(dma_dir / "c", "w"))
    await out.aclose()
    with pytest.raises(shardio.ClosedResourceError):
        await out.send_all(b"late")
    with pytest.raises(shardio.ClosedResourceError):
        await out.flush()


# -- cancellation ----------------------------------------------------------------------


async def cancel_after(scope: shardio.CancelScope, steps: int) -> None:
    for _ in range(steps):
        await lowlevel.checkpoint()
    scope.cancel()


@pytest.mark.parametrize("steps", range(0, 40, 3))
async def test_a_cancelled_read_loses_nothing(dma_dir: Path, steps: int) -> None:
    path = dma_dir / "cancel-read"
    data = pattern(64 * 4096 + 7)
    path.write_bytes(data)
    stream = shardio_disk.FileInputStream(await shardio_disk.open_dma(path, "r"), 4096, 4)
    got: list[bytes] = []
    async with stream:
        # Interrupt read_exactly at some point of its way through the file.
        async with shardio.open_nursery() as nursery:
            with shardio.CancelScope() as scope:
                nursery.start_soon(cancel_after, scope, steps)
                got.append(await stream.read_exactly(len(data) // 2))
            nursery.cancel_scope.cancel()
        # Whatever it had gathered, the stream hands out again, in order.
        while chunk := await stream.receive_some(5000):
            got.append(chunk)
    assert b"".join(got) == data
    assert shardio_disk.statistics().in_flight == 0


@pytest.mark.parametrize("steps", range(0, 40, 3))
async def test_a_cancelled_send_keeps_the_file_in_step_with_what_it_took(
    dma_dir: Path, steps: int
) -> None:
    path = dma_dir / "cancel-write"
    data = pattern(64 * 4096 + 7)
    out = shardio_disk.FileOutputStream(await shardio_disk.open_dma(path, "w"), 4096, 2)
    async with out:
        async with shardio.open_nursery() as nursery:
            with shardio.CancelScope() as scope:
                nursery.start_soon(cancel_after, scope, steps)
                await out.send_all(data)
            nursery.cancel_scope.cancel()
        taken = out.statistics().bytes
        # The stream works on: the rest follows what it took.
        await out.send_all(data[taken:])
    assert path.read_bytes() == data
    assert shardio_disk.statistics().in_flight == 0


async def test_closing_with_reads_in_flight_waits_for_the_kernel(dma_dir: Path) -> None:
    path = dma_dir / "inflight"
    path.write_bytes(pattern(8 * MiB))
    file = await shardio_disk.open_dma(path, "r")
    stream = shardio_disk.FileInputStream(file, MiB, 8)
    assert len(await stream.receive_some(1)) == 1
    assert stream.statistics().in_flight > 0
    with shardio.CancelScope() as scope:
        scope.cancel()
        await stream.aclose()  # cancelled, it still closes, and waits
    assert scope.cancelled_caught
    assert stream.statistics().in_flight == 0
    assert file.statistics().in_flight == 0
    assert file.closed
