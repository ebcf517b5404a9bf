"""A shard's durable log on a real file (O_DIRECT, fdatasync): changes are
acknowledged only once on disk, many at a time; a reopened log gives the
data back, cutting off a torn write; a log damaged in the middle is refused
untouched, or salvaged with every valid record and the file kept as found;
compaction rewrites it smaller while writes go on; the data directory is
locked and cleaned."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import shardio
from examples.memcached.datadir import DataDirectory, DataDirectoryError, compact_path, log_path
from examples.memcached.jobs import run_jobs
from examples.memcached.log import MAX_TORN, DamagedLogError, ShardLog
from examples.memcached.records import FRAME_SIZE, LogReader, Put, Record
from examples.memcached.server import ShardNode
from examples.memcached.settings import Settings


def records_on_disk(path: Path) -> list[Record]:
    """What a reader of the file (not this process's memory) finds in it."""
    reader = LogReader(max_record=1 << 20)
    records = reader.feed(path.read_bytes())
    more, end = reader.finish()
    assert end.damaged == ()
    return records + more


def record_offsets(path: Path) -> list[int]:
    """Where each record of an undamaged log starts, and where the last ends."""
    data = path.read_bytes()
    offsets = [0]
    while offsets[-1] + FRAME_SIZE <= len(data):
        length = int.from_bytes(data[offsets[-1] : offsets[-1] + 4], "little")
        if not length:
            break
        offsets.append(offsets[-1] + FRAME_SIZE + length)
    return offsets


def files_in(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def flip(path: Path, offset: int, count: int) -> bytes:
    """Invert ``count`` bytes of the file at ``offset`` (damage no crash
    makes); the file's bytes now."""
    data = bytearray(path.read_bytes())
    for position in range(offset, offset + count):
        data[position] ^= 0xFF
    path.write_bytes(data)
    return bytes(data)


@contextlib.asynccontextmanager
async def running_node(
    data_dir: Path, *, writer: bool = True, **settings: int | float
) -> AsyncIterator[ShardNode]:
    """A one-shard node with its log in ``data_dir`` and (unless told not
    to) its writer running, as the server runs them."""
    directory = DataDirectory.open(data_dir, 1)
    try:
        node = await ShardNode.create(
            Settings(data_dir=str(data_dir), **settings),  # type: ignore[arg-type]
            directory.previous,
        )
        try:
            await directory.commit()
            async with shardio.open_nursery() as nursery:
                if writer:
                    nursery.start_soon(log_of(node).run)
                yield node
                nursery.cancel_scope.cancel()
        finally:
            await node.aclose()
    finally:
        directory.close()


def log_of(node: ShardNode) -> ShardLog:
    assert node.log is not None
    return node.log


async def converse(node: ShardNode, script: bytes) -> bytes:
    """Run a client's ``script`` on the node, as one batch; the replies."""
    plan = node.frontend.plan(node.parser().feed(script))
    results = {shard: await node.run_jobs(jobs) for shard, jobs in plan.jobs.items()}
    return b"".join(plan.assemble(results))


def figures(node: ShardNode) -> dict[str, int]:
    return log_of(node).journal.statistics()


async def test_a_change_is_answered_once_its_record_is_in_the_file(data_dir: Path) -> None:
    async with running_node(data_dir) as node:
        assert await converse(node, b"set k 3 0 5\r\nvalue\r\n") == b"STORED\r\n"
        records = records_on_disk(log_path(data_dir, 0, 1))
        put = records[-1]
        assert isinstance(put, Put)
        assert (put.key, put.value, put.flags) == (b"k", b"value", 3)


async def test_without_its_writer_a_change_is_never_answered(data_dir: Path) -> None:
    async with running_node(data_dir, writer=False) as node:
        with shardio.move_on_after(0.3) as scope:
            await converse(node, b"set k 0 0 1\r\nv\r\n")
        assert scope.cancelled_caught
        # Reads do not wait for the log.
        assert await converse(node, b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"


async def test_concurrent_changes_share_a_commit(data_dir: Path) -> None:
    async with running_node(data_dir) as node:
        replies: list[bytes] = []

        async def client(i: int) -> None:
            replies.append(await converse(node, b"set key%d 0 0 2\r\n%02d\r\n" % (i, i % 100)))

        async with shardio.open_nursery() as nursery:
            for i in range(400):
                nursery.start_soon(client, i)
        assert replies == [b"STORED\r\n"] * 400
        counts = figures(node)
        assert counts["log_records"] == 400
        assert counts["log_commits"] < 100  # one fdatasync serves many changes
    keys = [r.key for r in records_on_disk(log_path(data_dir, 0, 1)) if isinstance(r, Put)]
    assert sorted(keys) == sorted(b"key%d" % i for i in range(400))


async def test_a_reopened_log_gives_back_the_data_and_goes_on(data_dir: Path) -> None:
    async with running_node(data_dir) as node:
        await converse(node, b"set a 1 0 1\r\na\r\nset b 2 0 1\r\nb\r\ndelete a\r\n")
        await converse(node, b"set c 0 0 3\r\n100\r\ndecr c 1\r\n")
    async with running_node(data_dir) as node:
        assert await converse(node, b"gets a b c\r\n") == (
            b"VALUE b 2 1 2\r\nb\r\nVALUE c 0 3 4\r\n99 \r\nEND\r\n"
        )
        await converse(node, b"set d 0 0 1\r\nd\r\n")
    async with running_node(data_dir) as node:
        assert await converse(node, b"gets b c d\r\n") == (
            b"VALUE b 2 1 2\r\nb\r\nVALUE c 0 3 4\r\n99 \r\nVALUE d 0 1 5\r\nd\r\nEND\r\n"
        )


async def test_a_torn_last_record_is_cut_off_and_appending_resumes(data_dir: Path) -> None:
    async with running_node(data_dir) as node:
        await converse(node, b"set kept 0 0 4\r\nkept\r\n")
    path = log_path(data_dir, 0, 1)
    valid_end = len(path.read_bytes().rstrip(b"\0"))
    # A crash in the middle of a write: the first bytes of a record, then
    # whatever the block held.
    torn = (300).to_bytes(4, "little") + b"\x12\x34\x56\x78" + b"half a record"
    path.write_bytes(path.read_bytes()[:valid_end] + torn)
    async with running_node(data_dir) as node:
        assert path.stat().st_size == valid_end  # truncated before anything else
        assert await converse(node, b"get kept\r\n") == b"VALUE kept 0 4\r\nkept\r\nEND\r\n"
        await converse(node, b"set later 0 0 5\r\nlater\r\n")
    async with running_node(data_dir) as node:
        assert await converse(node, b"get kept later\r\n") == (
            b"VALUE kept 0 4\r\nkept\r\nVALUE later 0 5\r\nlater\r\nEND\r\n"
        )


async def write_keys(data_dir: Path, count: int) -> list[int]:
    """Store k0, k1, ... (one record each, after the header); the offsets
    where the log's records start."""
    async with running_node(data_dir) as node:
        script = b"".join(b"set k%d 0 0 4\r\nv%03d\r\n" % (i, i) for i in range(count))
        assert await converse(node, script) == b"STORED\r\n" * count
    return record_offsets(log_path(data_dir, 0, 1))


async def open_node(data_dir: Path) -> None:
    """Open the data directory's log as the server does at start, and close it."""
    directory = DataDirectory.open(data_dir, 1)
    try:
        node = await ShardNode.create(Settings(data_dir=str(data_dir)), directory.previous)
        await node.aclose()
    finally:
        directory.close()


async def test_a_log_damaged_in_the_middle_is_refused_and_left_as_it_was(data_dir: Path) -> None:
    offsets = await write_keys(data_dir, 100)
    path = log_path(data_dir, 0, 1)
    damaged = flip(path, offsets[50] + 20, 8)  # inside the record of k49
    with pytest.raises(DamagedLogError) as caught:
        await open_node(data_dir)
    message = str(caught.value)
    length = offsets[51] - offsets[50]
    assert f"{path} is damaged: {length} bytes at offset {offsets[50]} hold no valid record" in (
        message
    )
    assert "Nothing was changed" in message and "--salvage-damaged-logs" in message
    assert path.read_bytes() == damaged
    assert files_in(data_dir) == ["LOCK", "MANIFEST", path.name]


async def test_salvaging_a_damaged_log_keeps_every_valid_record_and_the_file_as_found(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offsets = await write_keys(data_dir, 100)
    path = log_path(data_dir, 0, 1)
    damaged = flip(path, offsets[50] + 20, 8)
    capsys.readouterr()
    async with running_node(data_dir, salvage_damaged_logs=True) as node:
        reply = await converse(node, b"get " + b" ".join(b"k%d" % i for i in range(100)) + b"\r\n")
        assert (
            reply
            == b"".join(b"VALUE k%d 0 4\r\nv%03d\r\n" % (i, i) for i in range(100) if i != 49)
            + b"END\r\n"
        )
        await converse(node, b"set after 0 0 1\r\na\r\n")
    (kept,) = [data_dir / name for name in files_in(data_dir) if ".damaged-" in name]
    assert kept.read_bytes() == damaged
    report = capsys.readouterr().err.splitlines()
    assert report[0].startswith("memcached: shard 0: recovered 99 items (100 records")
    assert report[1] == (
        f"memcached: shard 0: {path} was damaged: {offsets[51] - offsets[50]} bytes at offset "
        f"{offsets[50]} held no valid record; every valid record after them was kept; "
        f"the file as found is kept as {kept}"
    )
    # The log was rewritten without the damage: a plain start takes it.
    async with running_node(data_dir) as node:
        reply = await converse(node, b"get k0 k49 k99 after\r\n")
        assert reply == b"VALUE k0 0 4\r\nv000\r\nVALUE k99 0 4\r\nv099\r\n" + (
            b"VALUE after 0 1\r\na\r\nEND\r\n"
        )


async def test_garbage_at_the_end_longer_than_any_write_is_damage_not_a_torn_write(
    data_dir: Path,
) -> None:
    offsets = await write_keys(data_dir, 3)
    path = log_path(data_dir, 0, 1)
    with path.open("r+b") as file:
        file.truncate(offsets[-1])
        file.seek(offsets[-1])
        file.write(b"\xff" * (MAX_TORN + 1))
    with pytest.raises(DamagedLogError, match=f"{MAX_TORN + 1} bytes at offset {offsets[-1]}"):
        await open_node(data_dir)
    assert path.stat().st_size == offsets[-1] + MAX_TORN + 1


async def write_large_values(data_dir: Path, count: int) -> None:
    """Store k0, k1, ... with 1000-byte values (about 1 KiB of memory each)."""
    async with running_node(data_dir) as node:
        value = b"v" * 1000
        script = b"".join(b"set k%d 0 0 1000\r\n%s\r\n" % (i, value) for i in range(count))
        assert await converse(node, script) == b"STORED\r\n" * count


async def present(node: ShardNode, count: int) -> list[int]:
    """Which of k0, k1, ... the node holds."""
    return [i for i in range(count) if await converse(node, b"get k%d\r\n" % i) != b"END\r\n"]


async def test_a_restart_with_less_memory_says_how_many_items_it_dropped(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await write_large_values(data_dir, 100)
    capsys.readouterr()
    async with running_node(data_dir, memory_limit=40_000) as node:
        kept = await present(node, 100)
    # What fits is kept, the most recently written as the LRU keeps them...
    assert 0 < len(kept) < 100
    assert kept == list(range(100 - len(kept), 100))
    # ... and the server says what it dropped, not only what it recovered.
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"memcached: shard 0: recovered {len(kept)} items (101 records, ")
    assert line.endswith(
        f"; dropped {100 - len(kept)} live items that did not fit in its memory limit (-m)"
    )


async def test_items_dropped_for_lack_of_memory_stay_gone_at_a_start_with_more(
    data_dir: Path,
) -> None:
    await write_large_values(data_dir, 100)
    async with running_node(data_dir, memory_limit=40_000) as node:
        kept = await present(node, 100)
        # A client deletes a key it finds missing (nothing to delete: the
        # cache does not hold it).
        assert await converse(node, b"delete k0\r\n") == b"NOT_FOUND\r\n"
    async with running_node(data_dir) as node:
        assert await present(node, 100) == kept


async def test_compaction_rewrites_the_log_smaller_while_writes_go_on(data_dir: Path) -> None:
    value = b"v" * 500
    async with running_node(data_dir, compact_min_bytes=64 * 1024, compact_ratio=2.0) as node:

        async def writer(worker: int) -> None:
            for round_ in range(150):
                key = b"w%d-%d" % (worker, round_ % 10)
                data = b"%d:%d:" % (worker, round_) + value
                reply = await converse(node, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(data), data))
                assert reply == b"STORED\r\n"

        async with shardio.open_nursery() as nursery:
            for worker in range(8):
                nursery.start_soon(writer, worker)
        assert figures(node)["log_compactions"] >= 1
        # Once the writes stop, the log settles under the compaction
        # threshold -- a compaction may still be finishing.
        threshold = max(64 * 1024, 2.0 * node.partition.cache.bytes_used)
        with shardio.fail_after(10):
            while figures(node)["log_file_bytes"] > threshold:
                await shardio.sleep(0.02)
            while compact_path(data_dir, 0, 1).exists():
                await shardio.sleep(0.02)
        counts = figures(node)
        assert counts["log_file_bytes"] < counts["log_appended_bytes"] / 5
    async with running_node(data_dir) as node:
        for worker in range(8):
            for slot in range(10):
                last = 140 + slot
                expected = b"%d:%d:" % (worker, last) + value
                reply = await converse(node, b"get w%d-%d\r\n" % (worker, slot))
                assert reply == b"VALUE w%d-%d 0 %d\r\n%s\r\nEND\r\n" % (
                    worker,
                    slot,
                    len(expected),
                    expected,
                )


async def test_an_interrupted_compaction_leaves_the_old_log_in_charge(data_dir: Path) -> None:
    async with running_node(data_dir) as node:
        await converse(node, b"set a 0 0 1\r\na\r\n")
    leftover = compact_path(data_dir, 0, 1)
    leftover.write_bytes(b"a compaction that a crash interrupted")
    async with running_node(data_dir) as node:
        assert not leftover.exists()
        assert await converse(node, b"get a\r\n") == b"VALUE a 0 1\r\na\r\nEND\r\n"


async def test_a_stopping_writer_commits_what_is_still_buffered(data_dir: Path) -> None:
    async with running_node(data_dir, writer=False) as node:
        # Changes made, but not waited for: what the server holds when it is
        # stopped while its connections wait for the log.
        plan = node.frontend.plan(
            node.parser().feed(b"".join(b"set q%d 0 0 1\r\nq\r\n" % i for i in range(50)))
        )
        run_jobs(node.partition, plan.jobs[0])
        assert figures(node)["log_pending_bytes"] > 0
        with shardio.CancelScope() as scope:
            scope.cancel()  # the writer is stopped before it ever ran
            await log_of(node).run()
        assert figures(node)["log_pending_bytes"] == 0
    async with running_node(data_dir) as node:
        reply = await converse(node, b"get " + b" ".join(b"q%d" % i for i in range(50)) + b"\r\n")
        assert reply.count(b"VALUE") == 50


def test_a_data_directory_can_be_used_by_one_server_at_a_time(data_dir: Path) -> None:
    first = DataDirectory.open(data_dir, 2)
    try:
        with pytest.raises(DataDirectoryError, match="in use by another server"):
            DataDirectory.open(data_dir, 2)
    finally:
        first.close()
    DataDirectory.open(data_dir, 2).close()


def test_a_damaged_manifest_is_refused(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "MANIFEST").write_text("shards=two\n")
    with pytest.raises(DataDirectoryError, match="MANIFEST is damaged"):
        DataDirectory.open(data_dir, 2)


async def test_a_log_of_another_shard_is_refused(data_dir: Path) -> None:
    async with running_node(data_dir) as node:
        await converse(node, b"set a 0 0 1\r\na\r\n")
    data_dir.joinpath("MANIFEST").write_text("shardio-memcached shards=2\n")
    os.rename(log_path(data_dir, 0, 1), log_path(data_dir, 0, 2))
    directory = DataDirectory.open(data_dir, 2)
    try:
        with pytest.raises(DataDirectoryError, match="written by shard 0 of 1"):
            await ShardNode.create(Settings(data_dir=str(data_dir), shards=2), directory.previous)
    finally:
        directory.close()
