"""shardio_disk.wrap_file against trio.wrap_file: the same calls on the same
file objects give the same results, exceptions and attributes, with the
same cancellation and checkpoints.

The scenarios run once under Trio and once under shardio (on shard 0, and
on shard 1 of a two-shard run) and record plain data; the records must be
equal.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import io
import os
import pickle
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import shardio
import shardio_disk

#: Every name the wrappers treat specially.
NAMES = sorted(
    {
        "closed", "encoding", "errors", "fileno", "isatty", "newlines", "readable",
        "seekable", "writable", "buffer", "raw", "line_buffering", "closefd", "name",
        "mode", "getvalue", "getbuffer", "flush", "read", "read1", "readall", "readinto",
        "readinto1", "readline", "readlines", "peek", "seek", "tell", "truncate", "write",
        "writelines", "detach", "aclose", "wrapped",
    }
)  # fmt: skip


def libraries(lib_name: str) -> tuple[Any, Callable[[Any], Any], type]:
    lib = importlib.import_module(lib_name)
    if lib_name == "trio":
        return lib, trio.wrap_file, trio._file_io.AsyncIOWrapper
    return lib, shardio_disk.wrap_file, shardio_disk.AsyncIOWrapper


class Recorder:
    def __init__(self, wrapper_class: type, root: str) -> None:
        self.wrapper_class = wrapper_class
        self.root = root
        self.events: list[Any] = []

    def plain(self, value: Any) -> Any:
        if isinstance(value, self.wrapper_class):
            return ("wrapper of", type(value.wrapped).__name__)
        if isinstance(value, BaseException):
            return ("raised", type(value).__name__)
        if isinstance(value, str):
            return value.replace(self.root, "<root>")
        if isinstance(value, bytes | int | bool | type(None)):
            return value
        if isinstance(value, tuple | list):
            return [self.plain(v) for v in value]
        if isinstance(value, memoryview):
            return ("memoryview", value.tobytes())
        return ("object", type(value).__name__)

    async def step(self, label: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            self.events.append((label, self.plain(exc)))
            return None
        self.events.append((label, self.plain(result)))
        return result

    def attributes(self, label: str, f: Any) -> None:
        """Which names the wrapper has, and which are coroutine functions."""
        for name in NAMES:
            has = hasattr(f, name)
            is_async = has and inspect.iscoroutinefunction(getattr(f, name))
            self.events.append((label, name, has, is_async))
        self.events.append((label, "dir", sorted(set(dir(f)) & set(NAMES))))


class Probe:
    """A duck file whose read says whether it ran in the task's thread."""

    def __init__(self) -> None:
        self.task_thread = threading.get_ident()

    def read(self, size: int = -1) -> bytes:
        return b"worker" if threading.get_ident() != self.task_thread else b"task"

    def close(self) -> None:
        pass


class WriteOnly:
    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


async def file_objects(lib_name: str, root: str) -> list[Any]:
    """BytesIO, StringIO, files from open(), a socket's makefile() and duck
    files: attributes, methods, results, errors, iteration, detach, close."""
    _, wrap_file, wrapper_class = libraries(lib_name)
    r = Recorder(wrapper_class, root)

    f = wrap_file(io.BytesIO(b"one\ntwo\nthree"))
    r.attributes("BytesIO", f)
    await r.step("type", lambda: f)
    await r.step("wrapped", lambda: type(f.wrapped).__name__)
    await r.step("read 3", lambda: f.read(3))
    await r.step("readline", f.readline)
    await r.step("tell", f.tell)
    await r.step("read1", lambda: f.read1(2))
    await r.step("seek", lambda: f.seek(0))
    await r.step("readlines", f.readlines)
    await r.step("seek end", lambda: f.seek(0, 2))
    await r.step("write", lambda: f.write(b"!"))
    await r.step("writelines", lambda: f.writelines([b"a", b"b"]))
    await r.step("getvalue", f.getvalue)
    await r.step("truncate", lambda: f.truncate(5))
    await r.step("seek 0", lambda: f.seek(0))
    buffer = bytearray(3)
    await r.step("readinto", lambda: f.readinto(buffer))
    await r.step("buffer", lambda: bytes(buffer))
    await r.step("seek bad", lambda: f.seek(-1))
    await r.step("peek", lambda: f.peek())
    await r.step("no such attribute", lambda: f.no_such_attribute)
    await r.step("same method twice", lambda: f.read is f.read)
    await f.seek(0)
    await r.step("async for", lambda: _collect(f))
    await r.step("closed", lambda: f.closed)
    await r.step("aclose", f.aclose)
    await r.step("closed after", lambda: f.closed)
    await r.step("read after close", f.read)
    await r.step("aclose again", f.aclose)

    s = wrap_file(io.StringIO("a\r\nb\n", newline=None))
    r.attributes("StringIO", s)
    await r.step("read", s.read)
    await r.step("newlines", lambda: s.newlines)
    await r.step("write", lambda: s.write("é"))
    await r.step("getvalue", s.getvalue)
    await r.step("write bytes", lambda: s.write(b"x"))
    await s.aclose()

    path = os.path.join(root, "text")
    with open(path, "w", encoding="utf-8") as plain_file:  # noqa: ASYNC230
        plain_file.write("first\nsecond\n")
    t = wrap_file(open(path, "r+", encoding="utf-8"))  # noqa: SIM115, ASYNC230
    r.attributes("TextIOWrapper", t)
    for name in ("encoding", "errors", "name", "mode", "line_buffering", "closed"):
        await r.step(name, lambda: getattr(t, name))  # noqa: B023
    await r.step("fileno", lambda: isinstance(t.fileno(), int))
    await r.step("isatty", t.isatty)
    await r.step("readable", t.readable)
    await r.step("buffer", lambda: type(t.buffer).__name__)
    await r.step("readline", t.readline)
    await r.step("write", lambda: t.write("third\n"))
    await r.step("flush", t.flush)
    buffered = await r.step("detach", t.detach)
    await r.step("detached", lambda: t.closed)
    await r.step("detached read", t.read)
    await r.step("after detach", buffered.read)
    await buffered.aclose()

    b = wrap_file(open(path, "rb"))  # noqa: SIM115, ASYNC230
    r.attributes("BufferedReader", b)
    await r.step("peek", lambda: b.peek(1))
    await r.step("raw", lambda: type(b.raw).__name__)
    await r.step("read", b.read)
    await r.step("write", lambda: b.write(b"x"))
    raw = await r.step("detach", b.detach)
    r.attributes("FileIO", raw)
    await r.step("closefd", lambda: raw.closefd)
    await r.step("seek", lambda: raw.seek(0))
    await r.step("readall", raw.readall)
    await raw.aclose()
    await r.step("closed", lambda: raw.closed)

    left, right = socket.socketpair()
    with left, right:
        m = wrap_file(left.makefile("rwb"))
        r.attributes("makefile", m)
        await r.step("mode", lambda: m.mode)
        await r.step("write", lambda: m.write(b"ping"))
        await r.step("flush", m.flush)
        await r.step("peer got", lambda: right.recv(10))
        right.sendall(b"pong\n")
        await r.step("readline", m.readline)
        await m.aclose()

    await r.step("duck file reads in a worker thread", wrap_file(Probe()).read)
    await r.step("write-only duck file", lambda: wrap_file(WriteOnly()))
    await r.step("not a file", lambda: wrap_file(object()))
    await r.step("no close", lambda: wrap_file(iter([b"x"])))
    await r.step("a path", lambda: wrap_file(path))
    return r.events


async def _collect(f: Any) -> list[Any]:
    return [line async for line in f]


async def cancellation(lib_name: str, root: str) -> list[Any]:
    """A call is a checkpoint where it starts, and once started it
    finishes: a read blocked on a socket outlives the cancellation of its
    scope, returns its data, and the Cancelled comes at the next
    checkpoint. A cancelled aclose still closes."""
    lib, wrap_file, _ = libraries(lib_name)
    events: list[Any] = []

    f = wrap_file(io.BytesIO(b"data"))
    with lib.CancelScope() as scope:
        scope.cancel()
        await f.read()
    events.append(("read in a cancelled scope", scope.cancelled_caught, await f.tell()))

    ran = []

    async def mark() -> None:
        ran.append(True)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(mark)
        await f.read(1)
        events.append(("read let another task run", bool(ran)))

    left, right = socket.socketpair()
    with left, right:
        m = wrap_file(left.makefile("rb"))
        reader_scope = lib.CancelScope()

        async def reader() -> None:
            with reader_scope:
                events.append(("read returned", await m.read(4)))
                await lib.lowlevel.checkpoint()
                events.append(("read", "not cancelled"))
            events.append(("read cancelled", reader_scope.cancelled_caught))

        async with lib.open_nursery() as nursery:
            nursery.start_soon(reader)
            await lib.testing.wait_all_tasks_blocked()
            reader_scope.cancel()
            await lib.testing.wait_all_tasks_blocked()
            events.append(("still reading", reader_scope.cancelled_caught))
            right.sendall(b"late")

        with lib.CancelScope() as scope:
            scope.cancel()
            await m.aclose()
        events.append(("aclose cancelled", scope.cancelled_caught, m.closed))
    return events


async def on_shard(shard: int, scenario: Any, lib_name: str, root: str) -> list[Any]:
    events: list[Any] = await shardio.run_on(shard, scenario, lib_name, root)
    return events


def differential(scenario: Any, tmp_path: Any, *, shard: int = 0) -> None:
    theirs = trio.run(scenario, "trio", os.fspath(tmp_path))
    if shard == 0:
        ours = shardio.run(scenario, "shardio", os.fspath(tmp_path))
    else:
        ours = shardio.run(on_shard, shard, scenario, "shardio", os.fspath(tmp_path), shards=2)
    if ours != theirs:
        lines = difflib.unified_diff(
            [repr(e) for e in theirs], [repr(e) for e in ours], "trio", "shardio", lineterm=""
        )
        pytest.fail("shardio's results differ from Trio's:\n" + "\n".join(lines), pytrace=False)


def test_wrapped_files_behave_as_trios(tmp_path: Any) -> None:
    differential(file_objects, tmp_path)


def test_wrapped_files_behave_as_trios_on_shard_1(tmp_path: Any) -> None:
    differential(file_objects, tmp_path, shard=1)


def test_cancellation_and_checkpoints_are_trios(tmp_path: Any) -> None:
    differential(cancellation, tmp_path)


def test_cancellation_and_checkpoints_are_trios_on_shard_1(tmp_path: Any) -> None:
    differential(cancellation, tmp_path, shard=1)


async def test_a_wrapped_file_stays_on_its_shard() -> None:
    f = shardio_disk.wrap_file(io.BytesIO(b"x"))
    with pytest.raises(TypeError, match="belongs to the shard that made it"):
        pickle.dumps(f)


async def test_wrapping_something_that_is_not_a_file_says_what_is_needed() -> None:
    with pytest.raises(TypeError, match=r"needs a file object, with a close\(\) method"):
        shardio_disk.wrap_file("data.txt")
