"""shardio_disk.Path against trio.Path: the same calls on the same files give
the same results, exceptions, types and files on disk; the disk backend
serves open, reads, writes and stats, worker threads the rest.

The differential tests build two identical trees, run one scenario on
``trio.Path`` in one and on ``shardio_disk.Path`` in the other (on shard 0,
and on shard 1 of a two-shard run), and compare what the scenario recorded
and what the trees hold afterwards. A recorded value is made comparable by
:func:`plain`: a path becomes its text with the tree's root replaced and a
mark saying whether it is of the library's ``Path`` class, an exception its
type, errno and file name, an async file the kind of ``io`` object it stands
for, and so on.
"""

from __future__ import annotations

import array
import difflib
import importlib
import inspect
import os
import pathlib
import socket
import stat
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing

import shardio
import shardio_disk
from shardio_disk import BufferedFile, RawFile, TextFile

# -- the two trees -------------------------------------------------------------------


def make_tree(root: pathlib.Path) -> None:
    """Files of every kind a Path method tells apart."""
    root.mkdir()
    (root / "file.txt").write_text("héllo\nwörld\n", encoding="utf-8")
    (root / "latin.bin").write_bytes(b"caf\xe9\r\n")
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.txt").write_text("a")
    (root / "dir" / "b.py").write_text("b")
    (root / "dir" / "sub" / "c.txt").write_text("c")
    (root / "empty").mkdir()
    (root / "link").symlink_to("file.txt")
    (root / "dirlink").symlink_to("dir")
    (root / "broken").symlink_to("missing")
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(root / "sock"))


def snapshot(root: pathlib.Path) -> list[tuple[str, ...]]:
    """What a tree holds: every entry's kind, permissions, and contents or target."""
    entries = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        name = os.fspath(path.relative_to(root))
        kind = stat.S_IFMT(info.st_mode)
        if stat.S_ISREG(info.st_mode):
            detail = path.read_bytes().hex()
        elif stat.S_ISLNK(info.st_mode):
            detail = os.readlink(path)
        else:
            detail = ""
        entries.append((name, oct(kind), oct(stat.S_IMODE(info.st_mode)), detail))
    return entries


# -- making results comparable --------------------------------------------------------


def plain(value: Any, lib_path: type, root: str) -> Any:
    """``value`` as plain data, the same for both libraries when they agree."""

    def text(path: str) -> str:
        return path.replace(root, "<root>")

    if isinstance(value, BaseException):
        filename = value.filename if isinstance(value, OSError) else None
        return (
            "raised",
            type(value).__name__,
            getattr(value, "errno", None),
            text(filename) if isinstance(filename, str) else repr(filename),
        )
    if isinstance(value, lib_path):
        return ("Path", text(str(value)))
    if isinstance(value, pathlib.PurePath):
        return (type(value).__name__, text(str(value)))
    if isinstance(value, os.stat_result):
        # Inodes and times differ between the trees; os.stat equality is
        # checked on its own below.
        return ("stat", stat.filemode(value.st_mode), value.st_size, value.st_nlink)
    if isinstance(value, Iterator):
        return ("iterator", sorted(plain(v, lib_path, root) for v in value))
    if isinstance(value, str):
        return text(value)
    if isinstance(value, bytes | int | bool | type(None)):
        return value
    raise AssertionError(f"no plain form for {value!r}")


def file_kind(f: Any) -> str:
    """Which ``io`` class an async file stands for."""
    if isinstance(f, TextFile):
        return "TextIOWrapper"
    if isinstance(f, RawFile):
        return "FileIO"
    if isinstance(f, BufferedFile):
        return "Buffered" + ("Random" if f.readable() and f.writable() else "")
    kind = type(f.wrapped).__name__
    return (
        kind
        if kind in ("TextIOWrapper", "FileIO")
        else "Buffered" + ("Random" if kind == "BufferedRandom" else "")
    )


class Recorder:
    """Runs steps and records what each returned or raised."""

    def __init__(self, lib_path: type, root: str) -> None:
        self.lib_path = lib_path
        self.root = root
        self.events: list[Any] = []

    async def step(self, label: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            self.events.append((label, plain(exc, self.lib_path, self.root)))
            return None
        self.events.append((label, plain(result, self.lib_path, self.root)))
        return result

    async def opened(self, label: str, path: Any, *args: Any, **kwargs: Any) -> None:
        """Open, record the kind of file, its name and mode, and what a
        read gives if it reads; close."""
        try:
            f = await path.open(*args, **kwargs)
        except Exception as exc:
            self.events.append((label, plain(exc, self.lib_path, self.root)))
            return
        async with f:
            name = f.name.replace(self.root, "<root>")
            content = await f.read() if f.readable() else None
            self.events.append((label, file_kind(f), name, f.mode, content))


# -- the scenarios ---------------------------------------------------------------------


def libraries(lib_name: str) -> tuple[Any, type]:
    lib = importlib.import_module(lib_name)
    return lib, (trio.Path if lib_name == "trio" else shardio_disk.Path)


async def every_method(lib_name: str, root: str) -> list[Any]:
    """Each method of Path on files of every kind, on success and on error."""
    _, P = libraries(lib_name)
    r = Recorder(P, root)
    f = P(root, "file.txt")

    # Which names exist, and which are coroutines.
    for name in sorted(n for n in dir(pathlib.Path) if not n.startswith("_")):
        attribute = getattr(P, name, None)
        r.events.append(
            ("api", name, attribute is not None, inspect.iscoroutinefunction(attribute))
        )

    # Pure methods stay sync and keep the class.
    await r.step("div", lambda: f / "x")
    await r.step("rdiv", lambda: "/a" / P("b"))
    await r.step("parent", lambda: f.parent)
    await r.step("with_suffix", lambda: f.with_suffix(".md"))
    await r.step("as_uri", lambda: f.as_uri())
    await r.step("relative_to", lambda: f.relative_to(root))

    kinds = [
        "file.txt", "dir", "empty", "link", "dirlink", "broken", "loop", "fifo", "sock",
        "missing", "file.txt/below", "nul\0byte", "x" * 300, "/dev/null", "/dev/loop0",
    ]  # fmt: skip
    tests = [
        "exists", "is_file", "is_dir", "is_symlink", "is_socket", "is_fifo",
        "is_block_device", "is_char_device", "is_mount",
    ]  # fmt: skip
    for kind in kinds:
        p = P(root, kind)
        await r.step(f"stat {kind}", lambda: p.stat())  # noqa: B023
        await r.step(f"lstat {kind}", lambda: p.lstat())  # noqa: B023
        await r.step(f"stat nofollow {kind}", lambda: p.stat(follow_symlinks=False))  # noqa: B023
        for test in tests:
            await r.step(f"{test} {kind}", getattr(p, test))
    for mount in ("/", "/proc", root):
        await r.step(f"is_mount {mount.replace(root, '<root>')}", P(mount).is_mount)

    await r.step("samefile str", lambda: f.samefile(os.path.join(root, "link")))
    await r.step("samefile other", lambda: f.samefile(os.path.join(root, "dir")))
    await r.step("samefile missing", lambda: f.samefile(os.path.join(root, "missing")))
    await r.step("samefile missing self", lambda: P(root, "missing").samefile(root))
    await r.step("samefile int", lambda: f.samefile(3))  # type: ignore[arg-type]

    # Whole-file reads and writes.
    await r.step("read_bytes", f.read_bytes)
    await r.step("read_text", f.read_text)
    await r.step("read_text latin-1", lambda: P(root, "latin.bin").read_text("latin-1"))
    await r.step("read_text strict", lambda: P(root, "latin.bin").read_text("utf-8"))
    await r.step("read_text replace", lambda: P(root, "latin.bin").read_text("utf-8", "replace"))
    await r.step("read_text bogus", lambda: f.read_text("no-such-codec"))
    await r.step("read_bytes missing", P(root, "missing").read_bytes)
    await r.step("read_bytes dir", P(root, "dir").read_bytes)
    await r.step("read_bytes nul", P(root, "nul\0").read_bytes)
    out = P(root, "out")
    await r.step("write_bytes", lambda: out.write_bytes(b"one\ntwo"))
    await r.step("write_bytes bytearray", lambda: out.write_bytes(bytearray(b"three")))
    await r.step("write_bytes array", lambda: out.write_bytes(array.array("i", [1, 2, 3])))
    await r.step("after write_bytes", out.read_bytes)
    fresh = P(root, "fresh")
    await r.step("write_bytes str", lambda: fresh.write_bytes("text"))  # type: ignore[arg-type]
    await r.step("write_text bytes", lambda: fresh.write_text(b"x"))  # type: ignore[arg-type]
    await r.step("not created", fresh.exists)
    await r.step("write_bytes dir", lambda: P(root, "dir").write_bytes(b"x"))
    await r.step("write_bytes no dir", lambda: P(root, "none", "x").write_bytes(b"x"))
    await r.step("write_text", lambda: out.write_text("a\nb\n"))
    await r.step("write_text crlf", lambda: out.write_text("a\nb\n", newline="\r\n"))
    await r.step("after crlf", out.read_bytes)
    await r.step("write_text utf-16", lambda: out.write_text("é€", encoding="utf-16"))
    await r.step("after utf-16", out.read_bytes)
    await r.step("write_text ascii", lambda: out.write_text("é", encoding="ascii"))
    await r.step("after failed encode", out.read_bytes)

    # open, in every kind of mode.
    await r.opened("open r", f)
    await r.opened("open rb", f, "rb")
    await r.opened("open rb unbuffered", f, "rb", buffering=0)
    await r.opened("open r+b", f, "r+b")
    await r.opened("open latin-1", P(root, "latin.bin"), encoding="latin-1", newline="")
    await r.opened("open w", P(root, "opened"), "w")
    await r.opened("open x", P(root, "opened"), "x")
    await r.opened("open missing", P(root, "missing"))
    await r.opened("open dir", P(root, "dir"))
    await r.opened("open bad mode", f, "rw")

    # In worker threads.
    made = P(root, "made")
    await r.step("mkdir", made.mkdir)
    await r.step("mkdir again", made.mkdir)
    await r.step("mkdir exist_ok", lambda: made.mkdir(exist_ok=True))
    await r.step("mkdir no parent", P(root, "a", "b").mkdir)
    await r.step("mkdir parents", lambda: P(root, "a", "b").mkdir(parents=True))
    await r.step("mkdir mode", lambda: P(root, "m700").mkdir(0o700))
    await r.step("touch", P(root, "touched").touch)
    await r.step("touch again", P(root, "touched").touch)
    await r.step("touch exclusive", lambda: P(root, "touched").touch(exist_ok=False))
    await r.step("chmod", lambda: P(root, "touched").chmod(0o640))
    await r.step("lchmod", lambda: P(root, "link").lchmod(0o600))
    await r.step("chmod missing", lambda: P(root, "missing").chmod(0o600))
    await r.step("rename", lambda: P(root, "touched").rename(os.path.join(root, "renamed")))
    await r.step("rename missing", lambda: P(root, "missing").rename(os.path.join(root, "x")))
    await r.step("replace", lambda: P(root, "renamed").replace(P(root, "out")))
    await r.step("replace dir", lambda: P(root, "out").replace(P(root, "dir")))
    await r.step("unlink", P(root, "out").unlink)
    await r.step("unlink missing", P(root, "out").unlink)
    await r.step("unlink missing_ok", lambda: P(root, "out").unlink(missing_ok=True))
    await r.step("unlink dir", P(root, "dir").unlink)
    await r.step("rmdir", P(root, "empty").rmdir)
    await r.step("rmdir full", P(root, "dir").rmdir)
    await r.step("symlink_to", lambda: P(root, "new-link").symlink_to("dir/a.txt"))
    await r.step("readlink", P(root, "new-link").readlink)
    await r.step("readlink file", f.readlink)
    await r.step("hardlink_to", lambda: P(root, "hard").hardlink_to(f))
    await r.step("hardlink nlink", lambda: f.stat())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        await r.step("link_to", lambda: f.link_to(P(root, "hard2")))
    await r.step("iterdir", P(root, "dir").iterdir)
    await r.step("iterdir file", f.iterdir)
    await r.step("iterdir missing", P(root, "missing").iterdir)
    await r.step("glob", lambda: P(root).glob("*.txt"))
    await r.step("glob deep", lambda: P(root).glob("*/*.txt"))
    await r.step("glob empty", lambda: P(root).glob(""))
    await r.step("glob absolute", lambda: P(root).glob("/x"))
    await r.step("rglob", lambda: P(root).rglob("*.txt"))
    await r.step("resolve", P(root, "dirlink", "..", "link").resolve)
    await r.step("resolve strict missing", lambda: P(root, "missing").resolve(strict=True))
    await r.step("resolve loop", P(root, "loop").resolve)
    await r.step("absolute", P("relative", "x").absolute)
    await r.step("expanduser", P("~", "x").expanduser)
    await r.step("cwd", P.cwd)
    await r.step("home", P.home)
    await r.step("owner", f.owner)
    await r.step("group", f.group)
    await r.step("owner missing", P(root, "missing").owner)
    return r.events


async def cancellation(lib_name: str, root: str) -> list[Any]:
    """Each method is a checkpoint where it starts: in a cancelled scope it
    raises Cancelled and does nothing, bad arguments included; not
    cancelled, it lets other tasks run. Once started, it finishes."""
    lib, P = libraries(lib_name)
    events: list[Any] = []
    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("stat", P(root, "file.txt").stat),
        ("stat missing", P(root, "missing").stat),
        ("stat nul", P(root, "nul\0").stat),
        ("exists", P(root, "file.txt").exists),
        ("is_dir", P(root, "dir").is_dir),
        ("samefile", lambda: P(root, "file.txt").samefile(root)),
        ("read_bytes", P(root, "file.txt").read_bytes),
        ("read_text", P(root, "file.txt").read_text),
        ("write_bytes", lambda: P(root, "w1").write_bytes(b"x")),
        ("write_bytes bad", lambda: P(root, "w2").write_bytes(1.5)),  # type: ignore[arg-type]
        ("write_text", lambda: P(root, "w3").write_text("x")),
        ("write_text bad", lambda: P(root, "w4").write_text(b"x")),
        ("mkdir", P(root, "d1").mkdir),
        ("touch", P(root, "t1").touch),
        ("iterdir", P(root, "dir").iterdir),
        ("cwd", P.cwd),
    ]
    for label, call in calls:
        with lib.CancelScope() as scope:
            scope.cancel()
            try:
                await call()
            except Exception as exc:
                events.append((label, "cancelled scope", "raised", type(exc).__name__))
        events.append((label, "cancelled scope", "caught", scope.cancelled_caught))
    events.append(("left", sorted(os.listdir(root))))

    # A schedule point: a task started just before runs during the call.
    for label, call in calls:
        ran = []

        async def mark() -> None:
            ran.append(True)  # noqa: B023

        async with lib.open_nursery() as nursery:
            nursery.start_soon(mark)
            try:
                await call()
            except Exception as exc:
                events.append((label, "raised", type(exc).__name__))
            events.append((label, "let another task run", bool(ran)))

    # Cancelled while it waits in the kernel (opening a FIFO for writing
    # waits for a reader): the write still happens in full, the result is
    # returned, and the cancellation comes at the next checkpoint.
    fifo = os.path.join(root, "fifo")
    writer_scope = lib.CancelScope()

    async def writer() -> None:
        with writer_scope:
            written = await P(fifo).write_bytes(b"through the fifo")
            events.append(("write_bytes returned", written))
            await lib.lowlevel.checkpoint()
            events.append(("write_bytes", "not cancelled"))
        events.append(("write_bytes cancelled", writer_scope.cancelled_caught))

    async with lib.open_nursery() as nursery:
        nursery.start_soon(writer)
        await lib.testing.wait_all_tasks_blocked()
        writer_scope.cancel()
        await lib.testing.wait_all_tasks_blocked()
        events.append(("still waiting for a reader", writer_scope.cancelled_caught))
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        events.append(("the reader got", os.read(reader, 100)))
    finally:
        os.close(reader)
    return events


async def on_shard(shard: int, scenario: Any, lib_name: str, root: str) -> list[Any]:
    """``scenario`` on ``shard``, and which process ran it."""
    events: list[Any] = await shardio.run_on(shard, scenario, lib_name, root)
    return events


def differential(scenario: Any, tmp_path: pathlib.Path, *, shard: int = 0) -> None:
    """Run ``scenario`` on Trio and on shardio in twin trees; compare."""
    trio_root, shardio_root = tmp_path / "trio", tmp_path / "shardio"
    make_tree(trio_root)
    make_tree(shardio_root)
    theirs = trio.run(scenario, "trio", os.fspath(trio_root))
    if shard == 0:
        ours = shardio.run(scenario, "shardio", os.fspath(shardio_root))
    else:
        ours = shardio.run(
            on_shard, shard, scenario, "shardio", os.fspath(shardio_root), shards=shard + 1
        )
    if ours != theirs:
        lines = difflib.unified_diff(
            [repr(e) for e in theirs], [repr(e) for e in ours], "trio", "shardio", lineterm=""
        )
        pytest.fail("shardio's results differ from Trio's:\n" + "\n".join(lines), pytrace=False)
    assert snapshot(shardio_root) == snapshot(trio_root)


def test_every_method_does_what_trios_does(tmp_path: pathlib.Path) -> None:
    differential(every_method, tmp_path)


def test_every_method_does_what_trios_does_on_shard_1(tmp_path: pathlib.Path) -> None:
    differential(every_method, tmp_path, shard=1)


def test_cancellation_and_checkpoints_are_trios(tmp_path: pathlib.Path) -> None:
    differential(cancellation, tmp_path)


def test_cancellation_and_checkpoints_are_trios_on_shard_1(tmp_path: pathlib.Path) -> None:
    differential(cancellation, tmp_path, shard=1)


# -- the disk backend and the threads -------------------------------------------------


async def test_stat_gives_what_os_stat_gives_field_for_field(tmp_path: pathlib.Path) -> None:
    make_tree(tmp_path / "t")
    names = ["file.txt", "dir", "link", "dirlink", "broken", "fifo", "sock", "/dev/null", "/"]
    for name in names:
        path = tmp_path / "t" / name
        for follow in (True, False):
            if name == "broken" and follow:
                continue
            ours = await shardio_disk.Path(path).stat(follow_symlinks=follow)
            reference = os.stat(path, follow_symlinks=follow)
            fields = [n for n in dir(reference) if n.startswith("st_")]
            assert [getattr(ours, n) for n in fields] == [getattr(reference, n) for n in fields]
            assert ours == reference


async def test_the_disk_backend_serves_open_reads_writes_and_stats_without_threads(
    tmp_path: pathlib.Path, disk_backend: str
) -> None:
    # With every worker-thread token held, anything that needed a thread
    # from shardio.to_thread would wait for ever.
    limiter = shardio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = 1
    holder = object()
    await limiter.acquire_on_behalf_of(holder)
    try:
        path = shardio_disk.Path(tmp_path, "f")

        def submitted() -> int:
            return shardio_disk.statistics().submitted

        before = submitted()
        assert await path.write_text("x" * 10) == 10  # openat, statx, write, close
        assert submitted() - before == 4
        before = submitted()
        assert await path.read_bytes() == b"x" * 10  # openat, statx, the reads, close
        assert submitted() - before >= 4
        before = submitted()
        assert (await path.stat()).st_size == 10
        assert await path.exists()
        assert await path.is_file()
        assert not await path.is_dir()
        assert not await (path / "below").exists()
        assert await path.samefile(path)
        assert submitted() - before == 7  # one statx each, two for samefile
        async with await path.open("rb") as f:
            assert await f.read() == b"x" * 10
        assert shardio_disk.statistics().backend == disk_backend
        if disk_backend == "io_uring":
            assert shardio_disk.statistics().syscalls > 0
    finally:
        limiter.release_on_behalf_of(holder)


async def test_the_other_methods_run_in_worker_threads(tmp_path: pathlib.Path) -> None:
    limiter = shardio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = 1
    holder = object()
    await limiter.acquire_on_behalf_of(holder)
    made = shardio_disk.Path(tmp_path, "made")
    before = shardio_disk.statistics().submitted
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(made.mkdir)
        await shardio.testing.wait_all_tasks_blocked()
        # Waiting for a thread: nothing done, nothing asked of the disk backend.
        assert made.name not in os.listdir(tmp_path)
        limiter.release_on_behalf_of(holder)
    assert made.name in os.listdir(tmp_path)
    assert shardio_disk.statistics().submitted == before


async def test_samefile_takes_a_path_of_its_own_class(tmp_path: pathlib.Path) -> None:
    # trio.Path.samefile(trio.Path(...)) calls the other path's async stat
    # synchronously and fails; a Path, a pathlib path or a str all work here.
    path = shardio_disk.Path(tmp_path)
    await (path / "sub").mkdir()
    assert await path.samefile(shardio_disk.Path(tmp_path, "sub", ".."))
    assert await path.samefile(pathlib.Path(tmp_path))
    assert not await path.samefile(os.fspath(tmp_path.parent))


@pytest.mark.shardio(shards=2)
async def test_a_path_is_a_value_that_travels_to_another_shard(tmp_path: pathlib.Path) -> None:
    path = shardio_disk.Path(tmp_path, "f")
    await path.write_bytes(b"from shard 0")
    pid, content = await shardio.run_on(1, _read_here, path)
    assert pid != os.getpid()
    assert content == b"from shard 0"


async def _read_here(path: shardio_disk.Path) -> tuple[int, bytes]:
    assert type(path) is shardio_disk.Path
    return os.getpid(), await path.read_bytes()
