"""DmaFile: reading, writing, alignment, modes, sizes, read_many, closing."""

from __future__ import annotations

import errno
import gc
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import shardio
import shardio_disk
from shardio_disk._backend import STATX_DIO_READ_ALIGN, STATX_DIOALIGN, FileInfo
from shardio_disk._dma import Alignment, alignment_for


def pattern(size: int, seed: int = 0) -> bytes:
    """Reproducible random bytes: misplaced or stale data shows."""
    return random.Random(seed).randbytes(size)


def filled(data: bytes, alignment: int = 4096) -> memoryview:
    buf = shardio_disk.aligned_buffer(len(data), alignment)
    buf[:] = data
    return buf


# -- round trips -------------------------------------------------------------


@pytest.mark.parametrize("blocks_at", [0, 1, 7, 256])
@pytest.mark.parametrize("blocks", [1, 3, 16, 257])
async def test_write_then_read_back_at_aligned_offsets_and_sizes(
    dma_dir: Path, blocks_at: int, blocks: int
) -> None:
    path = dma_dir / "data"
    async with await shardio_disk.open_dma(path, "w+") as f:
        pos = blocks_at * f.alignment.write
        data = pattern(blocks * f.alignment.write, seed=blocks_at)
        assert await f.write_at(pos, filled(data)) == len(data)
        assert await f.read_at(pos, len(data)) == data
        into = shardio_disk.aligned_buffer(len(data))
        assert await f.read_into(pos, into) == len(data)
        assert bytes(into) == data
    # What another reader of the file sees: the same bytes, at the same place.
    assert path.read_bytes()[pos:] == data
    assert path.stat().st_size == pos + len(data)


async def test_reads_past_the_end_of_the_file_come_back_short(dma_dir: Path) -> None:
    async with await shardio_disk.open_dma(dma_dir / "short", "w+") as f:
        block = f.alignment.read
        data = pattern(4 * block)
        await f.write_at(0, filled(data))
        await f.truncate(2 * block + 100)
        assert await f.read_at(0, 4 * block) == data[: 2 * block + 100]
        buf = shardio_disk.aligned_buffer(2 * block)
        assert await f.read_into(2 * block, buf) == 100
        assert bytes(buf[:100]) == data[2 * block : 2 * block + 100]
        assert await f.read_into(8 * block, buf) == 0
        assert await f.read_at(8 * block, block) == b""


async def test_many_concurrent_operations_on_one_shard(dma_dir: Path) -> None:
    count = 300
    async with await shardio_disk.open_dma(dma_dir / "many", "w+") as f:
        block = f.alignment.write
        got: dict[int, bytes] = {}

        async def one(i: int) -> None:
            await f.write_at(i * block, filled(pattern(block, seed=i)))
            got[i] = await f.read_at(i * block, block)

        before = shardio_disk.statistics()
        async with shardio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
        after = shardio_disk.statistics()
    assert got == {i: pattern(block, seed=i) for i in range(count)}
    assert after.submitted - before.submitted == 2 * count
    assert after.in_flight == 0
    if after.backend == "io_uring":
        # Submissions went out in batches, not one system call each.
        assert after.syscalls - before.syscalls < count


# -- alignment ---------------------------------------------------------------


async def test_misaligned_position_length_or_buffer_is_a_value_error_before_any_io(
    dma_dir: Path,
) -> None:
    async with await shardio_disk.open_dma(dma_dir / "align", "w+") as f:
        align = f.alignment
        buf = shardio_disk.aligned_buffer(4 * align.write)
        before = shardio_disk.statistics().submitted
        with pytest.raises(ValueError, match=rf"position 1 is not a multiple of {align.read}"):
            await f.read_into(1, buf)
        with pytest.raises(ValueError, match=rf"position 3 is not a multiple of {align.write}"):
            await f.write_at(3, buf)
        with pytest.raises(ValueError, match=rf"length {align.read - 1} is not a multiple"):
            await f.read_into(0, buf[: align.read - 1])
        with pytest.raises(ValueError, match=rf"length 10 is not a multiple of {align.write}"):
            await f.write_at(0, buf[:10])
        with pytest.raises(ValueError, match="not a multiple of"):
            await f.read_at(0, 100)
        with pytest.raises(ValueError, match="position -4096"):
            await f.read_at(-4096, 4096)
        # An aligned length at an address one byte off.
        skewed = shardio_disk.aligned_buffer(2 * align.write)[1 : 1 + align.write]
        with pytest.raises(ValueError, match=rf"address is not a multiple of {align.memory}"):
            await f.write_at(0, skewed)
        with pytest.raises(ValueError, match="aligned_buffer"):
            await f.read_into(0, skewed)
        with pytest.raises(ValueError, match="address"):
            await f.write_at(0, memoryview(bytes(align.write + 1))[1:])
        assert shardio_disk.statistics().submitted == before
        with pytest.raises(TypeError, match="writable"):
            await f.read_into(0, bytes(align.read))


async def test_bad_positions_and_sizes_say_what_is_wrong_and_name_the_method_called(
    dma_dir: Path,
) -> None:
    async with await shardio_disk.open_dma(dma_dir / "arguments", "w+") as f:
        buf = shardio_disk.aligned_buffer(4096)
        misaligned = f.alignment.read + 1
        cases: list[tuple[Callable[[], Awaitable[object]], type[Exception], str]] = [
            (lambda: f.write_at(-4096, buf), ValueError, "write_at: position -4096 is negative"),
            (lambda: f.read_into(-4096, buf), ValueError, "read_into: position -4096 is negative"),
            (lambda: f.read_at(-4096, 4096), ValueError, "read_at: position -4096 is negative"),
            (lambda: f.read_at(1, 4096), ValueError, "read_at: position 1 is not a multiple"),
            (
                lambda: f.read_at(0, misaligned),
                ValueError,
                f"read_at: size {misaligned} is not a multiple",
            ),
            (lambda: f.read_at(0, -1), ValueError, "read_at: size -1 is negative"),
            (
                lambda: f.read_at(4096.0, 4096),  # type: ignore[arg-type]
                TypeError,
                "read_at: position must be an int",
            ),
            (
                lambda: f.write_at(None, buf),  # type: ignore[arg-type]
                TypeError,
                "write_at: position must be an int",
            ),
            (lambda: f.truncate(-1), ValueError, "truncate: size -1 is negative"),
            (lambda: f.allocate(-4096, 4096), ValueError, "allocate: position -4096 is negative"),
            (lambda: f.allocate(0, -1), ValueError, "allocate: length -1 is negative"),
            (lambda: f.allocate(0, 0), OSError, "allocate: length must be > 0, not 0"),
            (lambda: f.read_many([(-1, 10)]), ValueError, "read_many: .* negative position"),
        ]
        before = shardio_disk.statistics().submitted
        for call, error, message in cases:
            with pytest.raises(error, match=message):
                await call()
        assert shardio_disk.statistics().submitted == before


async def test_alignment_reports_what_the_filesystem_needs(dma_dir: Path) -> None:
    async with await shardio_disk.open_dma(dma_dir / "a", "w") as f:
        for value in (f.alignment.memory, f.alignment.read, f.alignment.write):
            assert value >= 1 and value & (value - 1) == 0
        assert f.alignment.write <= 4096


def _info(mask: int, mem: int = 0, offset: int = 0, read: int = 0) -> FileInfo:
    return FileInfo(
        mask=mask,
        size=0,
        dev_major=8,
        dev_minor=1,
        dio_mem_align=mem,
        dio_offset_align=offset,
        dio_read_offset_align=read,
    )


def test_alignment_comes_from_statx_dioalign_then_block_size_then_4096() -> None:
    def no_device(major: int, minor: int) -> int | None:
        return None

    def device_of_512(major: int, minor: int) -> int | None:
        return 512 if (major, minor) == (8, 1) else None

    assert alignment_for(_info(STATX_DIOALIGN, 4, 512)) == Alignment(4, 512, 512)
    assert alignment_for(_info(STATX_DIOALIGN | STATX_DIO_READ_ALIGN, 4, 4096, 512)) == Alignment(
        4, 512, 4096
    )
    # A zero read alignment means "the same as for writes".
    assert alignment_for(_info(STATX_DIOALIGN | STATX_DIO_READ_ALIGN, 8, 4096, 0)) == Alignment(
        8, 4096, 4096
    )
    # The filesystem says: no direct I/O on this file.
    assert alignment_for(_info(STATX_DIOALIGN, 0, 0)) is None
    assert alignment_for(_info(0), device_of_512) == Alignment(512, 512, 512)
    assert alignment_for(_info(0), no_device) == Alignment(4096, 4096, 4096)


def test_aligned_buffer_is_zeroed_writable_and_aligned() -> None:
    from shardio_disk._uring_c import ffi

    for alignment in (512, 4096, 1 << 16):
        buf = shardio_disk.aligned_buffer(10_000, alignment)
        assert len(buf) == 10_000 and not buf.readonly
        assert bytes(buf) == bytes(10_000)
        assert int(ffi.cast("uintptr_t", ffi.from_buffer(buf))) % alignment == 0
    assert len(shardio_disk.aligned_buffer(0)) == 0
    # Larger than the arena: served from the heap, aligned all the same.
    big = shardio_disk.aligned_buffer(40 << 20)
    assert int(ffi.cast("uintptr_t", ffi.from_buffer(big))) % 4096 == 0
    with pytest.raises(ValueError, match="power of two"):
        shardio_disk.aligned_buffer(4096, 3000)
    with pytest.raises(ValueError, match=">= 0"):
        shardio_disk.aligned_buffer(-1)


def test_arena_memory_returns_when_the_last_view_goes() -> None:
    from shardio_disk._uring_c import lib

    buf = shardio_disk.aligned_buffer(1 << 20)  # makes sure the arena exists
    free_before = lib.dma_arena_free_bytes()
    buf2 = shardio_disk.aligned_buffer(1 << 20)
    view = buf2[4096:8192]
    assert lib.dma_arena_free_bytes() == free_before - (1 << 20)
    del buf2
    assert lib.dma_arena_free_bytes() == free_before - (1 << 20)  # the slice keeps it
    view.release()
    del view
    assert lib.dma_arena_free_bytes() == free_before
    del buf


def test_arena_blocks_never_overlap_and_all_come_back() -> None:
    from shardio_disk._uring_c import lib

    gc.collect()
    shardio_disk.aligned_buffer(4096)  # makes sure the arena exists
    free_before = lib.dma_arena_free_bytes()
    rng = random.Random(5)
    live: dict[int, memoryview] = {}
    for step in range(2000):
        if live and rng.random() < 0.45:
            key = rng.choice(list(live))
            view = live.pop(key)
            # Nobody else wrote into this block while it was handed out.
            assert view.tobytes() == bytes([key % 251]) * len(view)
            view.release()
        else:
            size = rng.choice((512, 4096, 5000, 65536, 300_000))
            view = shardio_disk.aligned_buffer(size, rng.choice((512, 4096, 65536)))
            view[:] = bytes([step % 251]) * size
            live[step] = view
    for view in live.values():
        view.release()
    live.clear()
    assert lib.dma_arena_free_bytes() == free_before


# -- modes -------------------------------------------------------------------


async def test_modes(dma_dir: Path) -> None:
    path = dma_dir / "modes"
    async with await shardio_disk.open_dma(path, "x") as f:
        await f.write_at(0, filled(pattern(8192)))
    with pytest.raises(FileExistsError) as exists:
        await shardio_disk.open_dma(path, "x")
    assert exists.value.filename == str(path)

    async with await shardio_disk.open_dma(path, "r") as f:
        assert await f.read_at(0, 8192) == pattern(8192)
        with pytest.raises(OSError) as read_only:
            await f.write_at(0, filled(pattern(4096)))
        assert read_only.value.errno == errno.EBADF
        assert read_only.value.filename == str(path)

    async with await shardio_disk.open_dma(path, "r+") as f:
        await f.write_at(0, filled(pattern(4096, seed=9)))
        assert await f.size() == 8192
    assert path.read_bytes() == pattern(4096, seed=9) + pattern(8192)[4096:]

    async with await shardio_disk.open_dma(path, "w") as f:
        assert await f.size() == 0  # "w" truncates
        with pytest.raises(OSError) as write_only:
            await f.read_at(0, 4096)
        assert write_only.value.errno == errno.EBADF

    with pytest.raises(FileNotFoundError) as missing:
        await shardio_disk.open_dma(dma_dir / "nope", "r")
    assert missing.value.filename == str(dma_dir / "nope")
    with pytest.raises(ValueError, match="invalid mode 'rb'"):
        await shardio_disk.open_dma(path, "rb")
    with pytest.raises(ValueError, match="null byte"):
        await shardio_disk.open_dma(str(path) + "\0x", "r")


async def test_a_filesystem_without_direct_io_says_so() -> None:
    with pytest.raises(OSError) as refused:
        await shardio_disk.open_dma("/proc/self/status", "r")
    assert refused.value.errno == errno.EINVAL
    assert "O_DIRECT" in str(refused.value)
    assert refused.value.filename == "/proc/self/status"


# -- size, truncate, allocate, sync --------------------------------------------


async def test_truncate_allocate_and_size(dma_dir: Path) -> None:
    path = dma_dir / "sizes"
    async with await shardio_disk.open_dma(path, "w+") as f:
        assert await f.size() == 0
        await f.allocate(0, 1 << 20)
        assert await f.size() == 1 << 20
        assert path.stat().st_blocks * 512 >= 1 << 20  # the space is really reserved
        assert await f.read_at(0, 8192) == bytes(8192)
        await f.truncate(5000)
        assert await f.size() == 5000 == path.stat().st_size
        await f.truncate(3 << 20)
        assert await f.size() == 3 << 20
        with pytest.raises(ValueError):
            await f.truncate(-1)
        with pytest.raises(OSError) as bad:
            await f.allocate(0, 0)
        assert bad.value.errno == errno.EINVAL


async def test_fsync_and_fdatasync_leave_the_data_in_the_file(dma_dir: Path) -> None:
    path = dma_dir / "synced"
    async with await shardio_disk.open_dma(path, "w") as f:
        await f.write_at(0, filled(pattern(4096)))
        await f.fdatasync()
        await f.write_at(4096, filled(pattern(4096, seed=1)))
        await f.fsync()
    assert path.read_bytes() == pattern(4096) + pattern(4096, seed=1)


# -- read_many -----------------------------------------------------------------


async def test_read_many_merges_nearby_ranges_and_slices_each_answer(dma_dir: Path) -> None:
    data = pattern(1 << 20)
    (dma_dir / "many").write_bytes(data)
    requests = [
        (100, 10),  # these four share one merged read
        (5000, 3000),
        (4090, 20),
        (9000, 1),
        (600_000, 5),  # far away: a read of its own
        (1_048_570, 100),  # runs past the end of the file: short
        (2 << 20, 10),  # wholly past the end: empty
        (123, 0),  # empty
        (100, 10),  # duplicates are fine
    ]
    async with await shardio_disk.open_dma(dma_dir / "many", "r") as f:
        before = shardio_disk.statistics().submitted
        got = await f.read_many(requests)
        reads = shardio_disk.statistics().submitted - before
        assert got == [data[pos : pos + size] for pos, size in requests]
        assert reads == 4
        # Without merging, every non-empty range is read on its own.
        before = shardio_disk.statistics().submitted
        assert await f.read_many(requests, max_gap=0, max_merged=0) == got
        assert shardio_disk.statistics().submitted - before == 8
        assert await f.read_many([]) == []
        with pytest.raises(ValueError):
            await f.read_many([(-1, 10)])


async def test_read_many_limits_the_size_of_a_merged_read(dma_dir: Path) -> None:
    data = pattern(1 << 20)
    (dma_dir / "m").write_bytes(data)
    requests = [(i * 65536, 65536) for i in range(16)]
    async with await shardio_disk.open_dma(dma_dir / "m", "r") as f:
        before = shardio_disk.statistics().submitted
        got = await f.read_many(requests, max_merged=256 << 10)
        assert shardio_disk.statistics().submitted - before == 4
    assert b"".join(got) == data


# -- closing -------------------------------------------------------------------


async def test_closed_file_fails_with_ebadf_and_closing_twice_is_fine(dma_dir: Path) -> None:
    path = dma_dir / "closed"
    f = await shardio_disk.open_dma(path, "w+")
    fd = f.fileno()
    await f.aclose()
    assert f.closed
    await f.aclose()
    for attempt in (
        f.read_at(0, 4096),
        f.write_at(0, shardio_disk.aligned_buffer(4096)),
        f.size(),
        f.fsync(),
        f.truncate(0),
    ):
        with pytest.raises(OSError) as closed:
            await attempt
        assert closed.value.errno == errno.EBADF
        assert closed.value.filename == str(path)
    with pytest.raises(OSError):
        os.fstat(fd)  # really closed
    with pytest.raises(ValueError):
        f.fileno()


async def test_aclose_waits_for_operations_in_flight(dma_dir: Path) -> None:
    size = 16 << 20
    path = dma_dir / "big"
    path.write_bytes(pattern(size))
    f = await shardio_disk.open_dma(path, "r")
    buf = shardio_disk.aligned_buffer(size)
    events: list[object] = []

    async def reader() -> None:
        events.append(await f.read_into(0, buf))

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await shardio.lowlevel.checkpoint()  # the read is in flight
        await f.aclose()
        events.append("closed")
        # Started after aclose began: refused.
        with pytest.raises(OSError) as late:
            await f.read_at(0, 4096)
        assert late.value.errno == errno.EBADF
    assert events == [size, "closed"]
    assert bytes(buf) == pattern(size)
