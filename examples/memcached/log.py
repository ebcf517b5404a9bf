"""A shard's durable log: direct writes, group commit, recovery, compaction.

With ``--data-dir`` every shard keeps an append-only log of the changes to
the keys it owns (the records of :mod:`.records`, produced by the shard's
:class:`~.journal.Journal`), and a change is acknowledged to the client
only once its record is on stable storage. This file is the I/O half: the
log file, the task that writes it, and the two operations that read or
rewrite it whole -- recovery at start and compaction.

Group commit
------------
Requests append records to the journal's memory buffer as they run; they
never write. One *writer task* per shard loops: take everything buffered,
write it with one O_DIRECT write (``shardio_disk``, io_uring), then
``fdatasync``, then wake every request whose records that covered. While one
write and sync are in flight, the records of all the requests that run
meanwhile pile up in the buffer, and the next round takes them all: under
load, one sync serves many requests (and many connections), without any
timer or tuning -- the batch is exactly what arrived during the previous
sync. A request waits for a *sequence number* (the journal's count of bytes
appended when it finished) to become durable; a pipeline waits once, for
its last record. Reads append nothing and never wait. ``noreply`` requests
append records like the others: nobody is answered, but they reach the
log in the order they ran, so a later acknowledged write is never durable
without them.

O_DIRECT writes must cover whole aligned blocks (``DmaFile.alignment``, 512
or 4096 bytes) from an aligned buffer. The log's end is rarely aligned, so
each write starts at the block holding the end: it rewrites that block's
bytes already in the file, followed by the new records, followed by zeros up
to the next block boundary (the zeros are the padding :class:`LogReader`
stops at). Rewriting durable records is safe even if the write is torn by a
crash: the block's old and new contents agree on every byte of the old
records, so whichever sectors reached the disk, those bytes are intact; only
the new records may be torn, and their CRC says so.

``fdatasync`` flushes the data and the metadata needed to read it (the file
size, the extents); O_DIRECT alone would leave it in the device's cache.

Recovery
--------
At start the shard reads its log in 1 MiB direct reads, feeds it to a
:class:`~.records.LogReader` and applies the records to a
:class:`~.recovery.Replay`, which :func:`~.recovery.restore` loads into the
cache. A record torn by a crash -- and anything after it -- is cut off:
the file is truncated to the end of the last valid record (and synced)
before anything is appended.

Compaction
----------
Records of overwritten, deleted and expired items stay in the log, so it
grows without bound while the live data does not. When the file passes
``compact_ratio`` times the live data (and ``compact_min_bytes``), the
writer starts a compaction beside it: a task notes the current sequence
number, writes every live item of the cache into a new file
(``shard-K-of-N.log.compact``) in large direct writes, and syncs it.
Meanwhile the writer goes on committing to the old log -- requests never
wait for a compaction -- and keeps a copy of every record appended after
the noted sequence number. When the new file is ready, the writer appends
that copy and whatever is buffered to it, syncs it, renames it over the
log and syncs the directory; from then on it appends there.

Because every record states the whole resulting state of its key, the
snapshot need not be a frozen image: an item changed while the snapshot is
being written may be written in its newer state, and the copied records
then state it again. Until the rename, the old log holds every acknowledged
change; from the rename on, the new one does; a crash between the rename
and the directory sync leaves one or the other under the name, both
complete.

Failure
-------
A failed write or sync stops the shard's writer with the error, which
stops the server: after a failed ``fdatasync`` Linux may have dropped the
dirty data and reports the error once, so the only safe answer is to stop
acknowledging writes (as PostgreSQL does).
"""

from __future__ import annotations

import collections
import errno
from pathlib import Path

import attrs

import shardio
import shardio_disk
from shardio import lowlevel

from .datadir import DataDirectoryError, compact_path, log_path, replace_durably, sync_directory
from .journal import Journal
from .records import Header, LogReader, encode
from .recovery import Replay, restore
from .sharding import shard_for_key
from .store import Cache, Item

__all__ = ["LogOptions", "OpenSummary", "ShardLog"]

READ_CHUNK = 1 << 20
"""Bytes per direct read during recovery."""

WRITE_CHUNK = 1 << 20
"""Bytes of records per direct write of a snapshot."""

MAX_COMMIT = 4 << 20
"""The most record bytes one group commit writes (the rest waits a round)."""

MAX_RECORD = 1 << 31
"""The longest record body the format allows (an item of up to 2 GiB)."""

FINAL_COMMIT_SECONDS = 5.0
"""How long a stopping writer may take to commit what is still buffered."""


@attrs.frozen
class LogOptions:
    """When to compact: once the log file is larger than ``compact_ratio``
    times the live data (the cache's ``bytes``) and than ``compact_min_bytes``."""

    compact_ratio: float = 4.0
    compact_min_bytes: int = 16 << 20


@attrs.frozen
class OpenSummary:
    """What opening a shard's log found: the items recovered, the records
    and bytes read, the bytes of a torn write cut off, and the shard count
    the data was resharded from (None if it was not)."""

    items: int
    records: int
    log_bytes: int
    torn_bytes: int
    resharded_from: int | None

    def describe(self, shard: int) -> str:
        """One line for the server's log."""
        text = (
            f"shard {shard}: recovered {self.items} items "
            f"({self.records} records, {self.log_bytes} bytes of log)"
        )
        if self.resharded_from is not None:
            text += f", resharded from {self.resharded_from} shards"
        if self.torn_bytes:
            text += f"; cut off {self.torn_bytes} bytes of a write torn by a crash"
        return text


@attrs.define(eq=False, slots=True)
class _Appender:
    """A log file that grows by aligned direct writes.

    ``end`` is where the records end; ``block`` holds the file's bytes from
    the last block boundary before ``end`` up to it (rewritten, with the new
    records, by the next write). One append at a time.
    """

    file: shardio_disk.DmaFile
    path: Path
    end: int = 0
    block: bytes = b""
    _buffer: memoryview | None = None

    async def append(self, data: bytes | bytearray, *, sync: bool) -> None:
        """Write ``data`` after the records (and ``fdatasync`` if ``sync``).

        Only once that is done does the appender move its end: an append
        that failed or was cancelled may be retried with the same data (and
        more), which then lands in the same place."""
        end, block = self.end, self.block
        if data:
            align = self.file.alignment.write
            used = len(block) + len(data)
            size = -(-used // align) * align
            buffer = self._buffer_for(size)
            buffer[: len(block)] = block
            buffer[len(block) : used] = data
            buffer[used:size] = bytes(size - used)
            written = await self.file.write_at(end - len(block), buffer[:size])
            if written != size:
                raise OSError(errno.EIO, f"short write ({written} of {size} bytes)", self.path)
            end += len(data)
            block = bytes(buffer[used - used % align : used])
        if sync:
            await self.file.fdatasync()
        self.end, self.block = end, block

    def _buffer_for(self, size: int) -> memoryview:
        buffer = self._buffer
        if buffer is None or len(buffer) < size:
            capacity = 1 << max(16, (size - 1).bit_length())
            buffer = shardio_disk.aligned_buffer(capacity, self.file.alignment.memory)
            self._buffer = buffer
        return buffer


async def _read_log(path: Path, replay: Replay) -> tuple[shardio_disk.DmaFile, int, int, bytes]:
    """Read a log into ``replay``; the open file, the end of its valid
    records, the bytes cut off after them, and the partial block at the end."""
    file = await shardio_disk.open_dma(path, "r+")
    try:
        reader = LogReader(MAX_RECORD)
        position = 0
        while True:
            data = await file.read_at(position, READ_CHUNK)
            for record in reader.feed(data):
                replay.apply(record)
            position += len(data)
            if len(data) < READ_CHUNK:
                break
        end = reader.finish()
        # The partial block the next write starts with: from the last
        # boundary of the *write* alignment (a multiple of the read one).
        align = file.alignment.write
        partial = end.valid_end % align
        block = b""
        if partial:
            block = (await file.read_at(end.valid_end - partial, align))[:partial]
        if position != end.valid_end:
            await file.truncate(end.valid_end)
            await file.fdatasync()
    except BaseException:
        await file.aclose()
        raise
    return file, end.valid_end, end.torn, block


def _check_header(replay: Replay, path: Path, shard: int, shards: int) -> None:
    header = replay.header
    if header is not None and (header.shard, header.shards) != (shard, shards):
        raise DataDirectoryError(
            f"{path} was written by shard {header.shard} of {header.shards}, "
            f"not shard {shard} of {shards}"
        )


@attrs.define(eq=False, slots=True)
class _Compaction:
    """A compaction under way: the sequence number its snapshot starts
    from, the records committed since (to be copied), and the new file."""

    snapshot: int
    tail: bytearray = attrs.field(factory=bytearray)
    appender: _Appender | None = None
    ready: bool = False


@attrs.define(eq=False, slots=True)
class ShardLog:
    """One shard's log: open it with :meth:`open`, run :meth:`run` as a task
    for as long as the shard serves, and :meth:`wait_durable` before
    acknowledging a change."""

    directory: Path
    shard: int
    shards: int
    journal: Journal
    options: LogOptions
    _file: _Appender
    _waiters: collections.deque[tuple[int, shardio.Event]] = attrs.field(factory=collections.deque)
    _wakeup: shardio.Event = attrs.field(factory=shardio.Event)
    _compaction: _Compaction | None = None
    _unwritten: bytes = b""

    def __attrs_post_init__(self) -> None:
        self.journal.on_append = self._notify
        self.journal.counters["log_file_bytes"] = self._file.end

    @property
    def path(self) -> Path:
        """The log file."""
        return log_path(self.directory, self.shard, self.shards)

    # -- opening -------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        directory: Path,
        shard: int,
        shards: int,
        previous: int | None,
        cache: Cache,
        options: LogOptions,
    ) -> tuple[ShardLog, OpenSummary]:
        """Recover ``cache`` (fresh) from the directory's logs and open this
        shard's log for appending. ``previous`` is the shard count the logs
        were written with (None: there are none yet)."""
        path = log_path(directory, shard, shards)
        if previous is not None and previous != shards:
            return await cls._reshard(directory, shard, shards, previous, cache, options)
        if previous is None or not path.exists():
            journal = Journal(cache)
            appender = await _create(path, shard, shards, journal, [])
            await shardio.to_thread.run_sync(sync_directory, directory)
            return cls(directory, shard, shards, journal, options, appender), OpenSummary(
                0, 0, 0, 0, None
            )
        replay = Replay()
        file, end, torn, block = await _read_log(path, replay)
        try:
            _check_header(replay, path, shard, shards)
            summary = restore(cache, [replay])
            journal = Journal(cache)
            appender = _Appender(file, path, end, block)
            if end == 0:  # a crash tore the header of a new log
                header = bytearray()
                encode(header, Header(shard, shards, cache.cas_counter))
                await appender.append(header, sync=True)
        except BaseException:
            await file.aclose()
            raise
        log = cls(directory, shard, shards, journal, options, appender)
        return log, OpenSummary(summary.items, summary.records, end, torn, None)

    @classmethod
    async def _reshard(
        cls,
        directory: Path,
        shard: int,
        shards: int,
        previous: int,
        cache: Cache,
        options: LogOptions,
    ) -> tuple[ShardLog, OpenSummary]:
        """Read every log of the old layout, keep the keys this shard owns
        now, and write them to a new log of its own."""

        def mine(key: bytes) -> bool:
            return shard_for_key(key, shards) == shard

        replays: list[Replay] = []
        read = torn = 0
        for old_shard in range(previous):
            old = log_path(directory, old_shard, previous)
            if not old.exists():
                continue
            replay = Replay(keep=mine)
            file, end, cut, _ = await _read_log(old, replay)
            await file.aclose()
            _check_header(replay, old, old_shard, previous)
            replays.append(replay)
            read += end
            torn += cut
        summary = restore(cache, replays)
        journal = Journal(cache)
        path = log_path(directory, shard, shards)
        appender = await _create(path, shard, shards, journal, cache.items())
        await shardio.to_thread.run_sync(sync_directory, directory)
        log = cls(directory, shard, shards, journal, options, appender)
        return log, OpenSummary(summary.items, summary.records, read, torn, previous)

    # -- acknowledging -------------------------------------------------------------

    async def wait_durable(self, position: int) -> None:
        """Return once the journal's records up to sequence number
        ``position`` are on stable storage. A checkpoint."""
        if self.journal.durable >= position:
            await lowlevel.checkpoint()
            return
        event = shardio.Event()
        self._waiters.append((position, event))
        await event.wait()

    def _made_durable(self, position: int) -> None:
        self.journal.durable = position
        self.journal.counters["log_file_bytes"] = self._file.end
        waiters = self._waiters
        while waiters and waiters[0][0] <= position:
            waiters.popleft()[1].set()

    def _notify(self) -> None:
        self._wakeup.set()

    # -- the writer --------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: commit records as they come, compact when the
        log has grown. Runs until cancelled; then commits what is still
        buffered (for at most :data:`FINAL_COMMIT_SECONDS`)."""
        try:
            async with shardio.open_nursery() as nursery:
                try:
                    await self._write(nursery)
                except shardio.Cancelled:
                    deadline = shardio.current_time() + FINAL_COMMIT_SECONDS
                    with shardio.CancelScope(deadline=deadline, shield=True):
                        await self._commit()
                    raise
        finally:
            with shardio.CancelScope(shield=True):
                await self._abandon_compaction()

    async def _write(self, nursery: shardio.Nursery) -> None:
        journal = self.journal
        while True:
            if self._compaction is None and self._should_compact():
                self._compaction = _Compaction(journal.appended)
                nursery.start_soon(self._compact, self._compaction)
            compaction = self._compaction
            if compaction is not None and compaction.ready:
                with shardio.CancelScope(shield=True):
                    await self._switch(compaction)
            elif journal.pending or self._unwritten:
                await self._commit()
            else:
                self._wakeup = shardio.Event()
                await self._wakeup.wait()

    async def _commit(self) -> None:
        """One group commit: write and sync what the journal has buffered."""
        data = self._unwritten + self.journal.take(MAX_COMMIT)
        if not data:
            return
        self._unwritten = data  # until written: a stopping writer retries it
        start = self.journal.durable
        await self._file.append(data, sync=True)
        self._unwritten = b""
        compaction = self._compaction
        if compaction is not None:
            compaction.tail += data[max(0, compaction.snapshot - start) :]
        self.journal.counters["log_commits"] += 1
        self._made_durable(start + len(data))

    def _should_compact(self) -> bool:
        size = self._file.end
        options = self.options
        live = self.journal.cache.bytes_used
        return size > options.compact_min_bytes and size > options.compact_ratio * live

    async def _compact(self, compaction: _Compaction) -> None:
        """Write the live items to a new file, for the writer to switch to."""
        path = compact_path(self.directory, self.shard, self.shards)
        cache = self.journal.cache
        try:
            appender = await _create(path, self.shard, self.shards, self.journal, cache.items())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        compaction.appender = appender
        compaction.ready = True
        self._notify()

    async def _abandon_compaction(self) -> None:
        """Drop a compaction the writer will not switch to (it is stopping)."""
        compaction, self._compaction = self._compaction, None
        if compaction is not None and compaction.appender is not None:
            await compaction.appender.file.aclose()
            compaction.appender.path.unlink(missing_ok=True)

    async def _switch(self, compaction: _Compaction) -> None:
        """Finish the new log with the records committed since its snapshot
        and those buffered now, and make it the log."""
        new = compaction.appender
        assert new is not None
        pending = self._unwritten + self.journal.take()
        start = self.journal.durable
        skip = max(0, compaction.snapshot - start)
        await new.append(bytes(compaction.tail) + pending[skip:], sync=True)
        self._unwritten = b""
        await shardio.to_thread.run_sync(replace_durably, new.path, self.path)
        old, self._file = self._file, new
        new.path = self.path
        self._compaction = None
        self.journal.counters["log_compactions"] += 1
        self._made_durable(start + len(pending))
        await old.file.aclose()

    async def aclose(self) -> None:
        """Close the log file (after the writer has stopped)."""
        await self._file.file.aclose()


async def _create(
    path: Path, shard: int, shards: int, journal: Journal, items: list[Item]
) -> _Appender:
    """Write a new log at ``path``: a header, the cache's flush state, and
    the live ones of ``items`` (still linked in the cache), synced."""
    cache = journal.cache
    file = await shardio_disk.open_dma(path, "w")
    appender = _Appender(file, path)
    try:
        out = bytearray()
        encode(out, Header(shard, shards, cache.cas_counter))
        if cache.oldest_live:
            encode(out, journal.flush_state())
        for item in items:
            if cache.peek(item.key) is item and cache.is_live(item):
                journal.encode_item(out, item)
                if len(out) >= WRITE_CHUNK:
                    await appender.append(out, sync=False)
                    out = bytearray()
        await appender.append(out, sync=True)
    except BaseException:
        with shardio.CancelScope(shield=True):
            await file.aclose()
        raise
    return appender
