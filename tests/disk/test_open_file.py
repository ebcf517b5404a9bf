"""open_file against open(): the same operations give the same results,
positions, exceptions and file contents.

The differential tests generate sequences of operations with hypothesis,
run each on a file from ``open()`` and on an identical file from
``shardio_disk.open_file()``, and compare every result (an exception
counts as a result: its type and message) and the bytes on disk at the
end. The contents are sized and laced with ``\\r``, ``\\n`` and multi-byte
characters so that reads cross buffer and chunk boundaries, newlines get
split between chunks, and text ``tell()`` has decoder state to encode.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shardio
import shardio_disk

Op = tuple[Any, ...]
Outcome = tuple[Any, ...]

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- contents ----------------------------------------------------------------------

TEXT_PIECES = {
    "utf-8": ["a", "bc", "é", "€", "\U0001f600", "\n", "\r", "\r\n", "  "],
    "latin-1": ["a", "bc", "é", "ÿ", "\n", "\r", "\r\n", "  "],
    "utf-16": ["a", "bc", "é", "€", "\U0001f600", "\n", "\r", "\r\n"],
    "utf-8-sig": ["a", "é", "€", "\n", "\r\n", "\r"],
}


def make_text(encoding: str, seed: int, pieces: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(TEXT_PIECES[encoding]) for _ in range(pieces))


def make_bytes(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.choice(b"ab\n\r\x00\xff") for _ in range(size))


# -- operations ---------------------------------------------------------------------

SIZES = st.one_of(
    st.integers(-1, 20),
    st.sampled_from([4095, 4096, 4097, 8191, 8192, 8193, 12000]),
    st.integers(0, 20000),
)


def binary_ops() -> st.SearchStrategy[list[Op]]:
    data = st.one_of(
        st.binary(max_size=40),
        st.integers(0, 12000).map(lambda n: make_bytes(n, n)),
    )
    op = st.one_of(
        st.tuples(st.just("read"), st.one_of(SIZES, st.none())),
        st.tuples(st.just("read1"), SIZES),
        st.tuples(st.just("readline"), st.one_of(SIZES, st.none())),
        st.tuples(st.just("readlines"), st.integers(-1, 30)),
        st.tuples(st.just("readinto"), st.integers(0, 9000)),
        st.tuples(st.just("readinto1"), st.integers(0, 9000)),
        st.tuples(st.just("peek")),
        st.tuples(st.just("write"), data),
        st.tuples(st.just("writelines"), st.lists(st.binary(max_size=10), max_size=3)),
        st.tuples(st.just("seek"), st.integers(-5, 30000), st.sampled_from([0, 1, 2])),
        st.tuples(st.just("tell")),
        st.tuples(st.just("flush")),
        st.tuples(st.just("truncate"), st.one_of(st.none(), st.integers(0, 30000))),
    )
    return st.lists(op, max_size=25)


def text_ops(encoding: str) -> st.SearchStrategy[list[Op]]:
    text = st.one_of(
        st.lists(st.sampled_from(TEXT_PIECES[encoding]), max_size=12).map("".join),
        st.integers(0, 3000).map(lambda n: make_text(encoding, n, n)),
    )
    op = st.one_of(
        st.tuples(st.just("read"), st.one_of(SIZES, st.none())),
        st.tuples(st.just("readline"), SIZES),
        st.tuples(st.just("readlines"), st.integers(-1, 30)),
        st.tuples(st.just("write"), text),
        st.tuples(st.just("writelines"), st.lists(text, max_size=3)),
        st.tuples(st.just("seek_cookie"), st.integers(0, 100)),
        st.tuples(st.just("seek"), st.just(0), st.sampled_from([0, 1, 2])),
        st.tuples(st.just("tell")),
        st.tuples(st.just("flush")),
        st.tuples(st.just("truncate"), st.one_of(st.none(), st.integers(0, 30000))),
        st.tuples(st.just("newlines")),
    )
    return st.lists(op, max_size=25)


def without_stale_snapshot_tells(ops: list[Op]) -> list[Op]:
    """``ops`` without the tells that CPython answers from freed memory.

    ``readlines()`` iterates, and iteration turns telling off, so its reads
    record no snapshot; ``flush()`` (or ``truncate()``) turns telling back
    on, and a ``tell()`` then computes from the snapshot of an older chunk
    with the byte/character ratio and position of the current one. C's
    ``textiowrapper_tell`` then decodes ``skip_bytes`` bytes from a buffer
    that may be shorter (``_pyio`` asserts ``skip_bytes <= len(next_input)``
    there): the result depends on what lies past the end of a bytes object.
    The port reads only the bytes there are; those tells are not compared:
    after a ``readlines()``, none until a seek (which takes a fresh snapshot).
    """
    kept = []
    stale = False
    for op in ops:
        name = op[0]
        if name == "readlines":
            stale = True
        elif name == "seek_cookie" or (name == "seek" and op[2] != 1):
            stale = False
        elif stale and (name == "tell" or (name == "seek" and op[2] == 1)):
            continue
        kept.append(op)
    return kept


def call_sync(f: Any, name: str, args: tuple[Any, ...], cookies: list[int]) -> Any:
    """One operation on a file from open()."""
    if name == "seek_cookie":
        return f.seek(cookies[args[0] % len(cookies)] if cookies else 0)
    if name in ("readinto", "readinto1"):
        buf = bytearray(args[0])
        return getattr(f, name)(buf), bytes(buf)
    if name == "newlines":
        return f.newlines
    return getattr(f, name)(*args)


async def call_async(f: Any, name: str, args: tuple[Any, ...], cookies: list[int]) -> Any:
    """The same operation on a file from open_file()."""
    if name == "seek_cookie":
        return await f.seek(cookies[args[0] % len(cookies)] if cookies else 0)
    if name in ("readinto", "readinto1"):
        buf = bytearray(args[0])
        return await getattr(f, name)(buf), bytes(buf)
    if name == "newlines":
        return f.newlines
    return await getattr(f, name)(*args)


def run_sync(f: Any, ops: list[Op]) -> list[Outcome]:
    cookies: list[int] = []
    results: list[Outcome] = []
    for name, *args in ops:
        try:
            result: Outcome = ("ok", call_sync(f, name, tuple(args), cookies))
        except Exception as exc:
            result = ("error", type(exc).__name__, str(exc))
        if name == "tell" and result[0] == "ok":
            cookies.append(result[1])
        results.append(result)
    return results


async def run_async(f: Any, ops: list[Op]) -> list[Outcome]:
    cookies: list[int] = []
    results: list[Outcome] = []
    for name, *args in ops:
        try:
            result: Outcome = ("ok", await call_async(f, name, tuple(args), cookies))
        except Exception as exc:
            result = ("error", type(exc).__name__, str(exc))
        if name == "tell" and result[0] == "ok":
            cookies.append(result[1])
        results.append(result)
    return results


def compare(
    directory: Path,
    initial: bytes | None,
    ops: list[Op],
    mode: str,
    **kwargs: Any,
) -> None:
    """Run ``ops`` on both, and check that every outcome and the final
    contents agree."""
    expected_path = directory / "expected"
    actual_path = directory / "actual"
    for path in (expected_path, actual_path):
        if path.exists():
            path.unlink()
        if initial is not None:
            path.write_bytes(initial)
    with open(expected_path, mode, **kwargs) as f:
        expected = run_sync(f, ops)

    async def main() -> list[Outcome]:
        async with await shardio_disk.open_file(actual_path, mode, **kwargs) as f:
            return await run_async(f, ops)

    actual = shardio.run(main)
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        if want[:2] == ("error", "AttributeError"):
            # A method this kind of io object lacks: RawFile lacks it too;
            # BufferedFile is one class for readers and writers, and refuses it.
            assert got[0] == "error", f"operation {i}: {ops[i]!r}"
            assert got[1] in ("AttributeError", "UnsupportedOperation")
            continue
        assert got == want, f"operation {i}: {ops[i]!r}"
    assert actual_path.read_bytes() == expected_path.read_bytes()


# -- the differential tests ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["rb", "r+b", "wb", "w+b", "ab", "a+b"])
@SETTINGS
@given(seed=st.integers(0, 1000), size=st.integers(0, 20000), ops=binary_ops())
def test_binary_files_behave_as_open_does(
    dma_dir: Path, mode: str, seed: int, size: int, ops: list[Op]
) -> None:
    compare(dma_dir, make_bytes(seed, size), ops, mode)


@pytest.mark.parametrize("buffering", [0, 7, 64])
@SETTINGS
@given(seed=st.integers(0, 1000), size=st.integers(0, 3000), ops=binary_ops())
def test_binary_files_with_other_buffer_sizes_behave_as_open_does(
    dma_dir: Path, buffering: int, seed: int, size: int, ops: list[Op]
) -> None:
    compare(dma_dir, make_bytes(seed, size), ops, "r+b", buffering=buffering)


@pytest.mark.parametrize("mode", ["r", "r+", "w", "w+", "a", "a+"])
@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "utf-16", "utf-8-sig"])
@SETTINGS
@given(
    seed=st.integers(0, 1000),
    pieces=st.integers(0, 6000),
    newline=st.sampled_from([None, "", "\n", "\r", "\r\n"]),
    ops=st.data(),
)
def test_text_files_behave_as_open_does(
    dma_dir: Path,
    mode: str,
    encoding: str,
    seed: int,
    pieces: int,
    newline: str | None,
    ops: st.DataObject,
) -> None:
    initial = make_text(encoding, seed, pieces).encode(encoding)
    sequence = without_stale_snapshot_tells(ops.draw(text_ops(encoding)))
    compare(dma_dir, initial, sequence, mode, encoding=encoding, newline=newline)


@pytest.mark.parametrize("buffering", [1, 16])
@SETTINGS
@given(seed=st.integers(0, 1000), pieces=st.integers(0, 3000), ops=text_ops("utf-8"))
def test_line_buffered_and_small_buffered_text_behaves_as_open_does(
    dma_dir: Path, buffering: int, seed: int, pieces: int, ops: list[Op]
) -> None:
    initial = make_text("utf-8", seed, pieces).encode()
    sequence = without_stale_snapshot_tells(ops)
    compare(dma_dir, initial, sequence, "r+", encoding="utf-8", buffering=buffering)
