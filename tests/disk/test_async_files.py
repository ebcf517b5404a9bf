"""open_file beyond the differential tests: the classes and attributes,
async with and async for, errors when opening, several tasks on one file,
cancellation (regular files complete, pipes are interrupted and lose
nothing), no thread per call, no fd leak."""

from __future__ import annotations

import errno
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import shardio
import shardio_disk
from shardio import lowlevel
from shardio_disk._choice import current_backend


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def cancel_after(scope: shardio.CancelScope, steps: int) -> None:
    for _ in range(steps):
        await lowlevel.checkpoint()
    scope.cancel()


def open_error(path: Path, mode: str, kwargs: dict[str, object]) -> str:
    """What open() says about these arguments."""
    try:
        with open(path, mode, **kwargs):  # type: ignore[call-overload]
            pass
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"open() accepted {mode!r} {kwargs}")


async def test_each_mode_gets_the_layer_open_would_give(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    async with await shardio_disk.open_file(path, "r+", encoding="latin-1") as text:
        assert isinstance(text, shardio_disk.TextFile)
        assert (text.name, text.mode, text.encoding, text.errors) == (
            str(path),
            "r+",
            "latin-1",
            "strict",
        )
        assert isinstance(text.buffer, shardio_disk.BufferedFile)
        assert text.buffer.mode == "rb+"
        assert isinstance(text.buffer.raw, shardio_disk.RawFile)
        assert text.readable() and text.writable() and text.seekable()
        assert not text.isatty()
        assert text.fileno() == text.buffer.raw.fileno()
        assert text.line_buffering is False
        assert text.newlines is None
    assert text.closed
    async with await shardio_disk.open_file(path, "ab") as buffered:
        assert isinstance(buffered, shardio_disk.BufferedFile)
        assert (buffered.mode, buffered.readable(), buffered.writable()) == ("ab", False, True)
    async with await shardio_disk.open_file(path, "rb", buffering=0) as raw:
        assert isinstance(raw, shardio_disk.RawFile)
        assert raw.mode == "rb"
    async with await shardio_disk.open_file(path, "w", buffering=1) as lines:
        assert lines.line_buffering is True


async def test_async_with_closes_and_async_for_iterates_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    async with await shardio_disk.open_file(path, "w", newline="") as f:
        await f.writelines(["one\n", "two\r\n", "three\r", "four"])
    assert path.read_bytes() == b"one\ntwo\r\nthree\rfour"
    async with await shardio_disk.open_file(path) as f:
        lines = [line async for line in f]
        assert f.newlines == ("\r", "\n", "\r\n")
    assert lines == ["one\n", "two\n", "three\n", "four"]
    async with await shardio_disk.open_file(path, "rb") as b:
        assert [line async for line in b] == [b"one\n", b"two\r\n", b"three\rfour"]
    with pytest.raises(ValueError, match="closed file"):
        await f.read()
    await f.aclose()  # closing a closed file does nothing


async def test_opening_fails_as_open_does(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as not_found:
        await shardio_disk.open_file(missing)
    assert (not_found.value.errno, not_found.value.filename) == (errno.ENOENT, str(missing))
    missing.write_text("")
    with pytest.raises(FileExistsError):
        await shardio_disk.open_file(missing, "x")
    with pytest.raises(IsADirectoryError) as directory:
        await shardio_disk.open_file(tmp_path)
    assert directory.value.filename == str(tmp_path)
    bad: list[tuple[str, dict[str, object]]] = [
        ("rw", {}),
        ("rr", {}),
        ("rbt", {}),
        ("q", {}),
        ("+", {}),
        ("rb", {"encoding": "utf-8"}),
        ("rb", {"newline": ""}),
        ("r", {"newline": "\t"}),
        ("r", {"buffering": 0}),
    ]
    for mode, kwargs in bad:
        with pytest.raises(ValueError) as ours:
            await shardio_disk.open_file(missing, mode, **kwargs)  # type: ignore[call-overload]
        assert str(ours.value) == open_error(missing, mode, kwargs)
    with pytest.raises(LookupError, match="not a text encoding"):
        await shardio_disk.open_file(missing, encoding="rot13")


async def test_a_failed_or_cancelled_open_leaks_no_file_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("hello")
    current_backend()
    before = open_fds()
    with pytest.raises(LookupError):
        await shardio_disk.open_file(path, encoding="no-such-codec")
    for steps in range(8):
        async with shardio.open_nursery() as nursery:
            with shardio.CancelScope() as scope:
                nursery.start_soon(cancel_after, scope, steps)
                f = await shardio_disk.open_file(path)
                await f.aclose()
    assert open_fds() == before


async def test_operations_from_several_tasks_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    f = await shardio_disk.open_file(path, "wb", buffering=4096)
    async with f, shardio.open_nursery() as nursery:
        for letter in b"abcdefgh":
            nursery.start_soon(f.write, bytes([letter]) * 10_000)
    data = path.read_bytes()
    assert sorted(data[i] for i in range(0, len(data), 10_000)) == list(b"abcdefgh")
    for i in range(0, len(data), 10_000):
        assert data[i : i + 10_000] == data[i : i + 1] * 10_000


async def test_a_started_operation_on_a_regular_file_completes_when_cancelled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big"
    data = os.urandom(8 << 20)
    path.write_bytes(data)
    async with await shardio_disk.open_file(path, "rb") as f:
        got: list[bytes] = []
        async with shardio.open_nursery() as nursery:
            with shardio.CancelScope() as scope:
                nursery.start_soon(cancel_after, scope, 1)
                got.append(await f.read())
                await lowlevel.checkpoint()  # the cancellation comes here
                got.append(b"not reached")
        assert scope.cancelled_caught
        assert got == [data]
        assert await f.tell() == len(data)
        # Cancelled before it starts, an operation does nothing.
        await f.seek(0)
        with shardio.CancelScope() as scope:
            scope.cancel()
            await f.read(10)
        assert await f.tell() == 0


async def test_io_uring_files_use_the_ring_and_no_threads(
    tmp_path: Path, disk_backend: str
) -> None:
    if disk_backend != "io_uring":
        pytest.skip("the thread backend uses threads")
    path = tmp_path / "ring"
    threads = threading.active_count()
    before = shardio_disk.statistics().submitted
    async with await shardio_disk.open_file(path, "w+b", buffering=0) as f:
        for _ in range(100):
            await f.write(b"x" * 100)
        await f.seek(0)
        assert await f.read() == b"x" * 10_000
    stats = shardio_disk.statistics()
    assert stats.backend == "io_uring"
    # open + statx + 100 writes + statx and 2 reads (read-all) + close.
    assert stats.submitted - before == 106
    assert threading.active_count() == threads


# -- pipes: cancellation reaches the kernel ---------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path, disk_backend: str) -> Iterator[tuple[Path, int]]:
    """A FIFO, with a write end held here (so opening it does not block)."""
    if disk_backend != "io_uring":
        pytest.skip("a read blocked in a thread cannot be interrupted")
    path = tmp_path / "fifo"
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        yield path, writer
    finally:
        os.close(writer)


async def test_a_cancelled_read_on_a_pipe_returns_and_consumes_nothing(
    fifo: tuple[Path, int],
) -> None:
    path, writer = fifo
    async with await shardio_disk.open_file(path, "rb") as f:
        assert not f.seekable()
        os.write(writer, b"hel")
        # readline takes "hel" from the pipe, then waits for the rest.
        with shardio.move_on_after(0.05) as scope:
            await f.readline()
        assert scope.cancelled_caught
        os.write(writer, b"lo\nworld")
        assert await f.readline() == b"hello\n"
        with shardio.move_on_after(0.05) as scope:
            await f.read(10)
        assert scope.cancelled_caught
        os.write(writer, b"!!")
        assert await f.read(7) == b"world!!"


async def test_a_cancelled_text_read_on_a_pipe_consumes_nothing(
    fifo: tuple[Path, int],
) -> None:
    path, writer = fifo
    async with await shardio_disk.open_file(path, encoding="utf-8") as f:
        os.write(writer, "é".encode() + b"\xe2")  # and half of a euro sign
        with shardio.move_on_after(0.05) as scope:
            await f.readline()
        assert scope.cancelled_caught
        with shardio.move_on_after(0.05) as scope:
            await f.read(3)
        assert scope.cancelled_caught
        os.write(writer, "€\r\nnext".encode()[1:])
        assert await f.readline() == "é€\n"
        assert await f.read(4) == "next"
        with pytest.raises(io.UnsupportedOperation):
            await f.tell()
