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
cache. What the reader found besides the valid records decides the rest:

* **A torn write**: nonzero bytes after the last valid record, no valid
  record after them, and no more of them than one write leaves
  (:data:`MAX_TORN`). That is the write a crash cut short; nobody was told
  its records were durable. It is cut off: the file is truncated to the end
  of the last valid record (and synced) before anything is appended, and
  the server's log says how many bytes went.
* **Damage**: bytes the reader skipped to reach valid records after them,
  or more nonzero bytes at the end than one write leaves. A crash does not
  do that -- each write was synced before the next one began, so only the
  last can be torn -- so the file was damaged on the device or by someone
  else, and records that clients were told were durable are lost. The
  shard *refuses to start*, naming the file and each damaged range (offset
  and length), and changes nothing.

One crash can look like damage: a power failure in the middle of the last
write may leave some of its sectors on the disk and not others (a disk
writes them in any order), so valid records, never acknowledged, can follow
a hole. That is refused too. Telling it from damage near the end would be
a guess, and a wrong guess of "torn" would throw away acknowledged
records; refusing loses nothing, and a salvage keeps those records
(keeping a write nobody was told about is allowed).

Why refuse rather than start with what is left: a record lost to the
damage may have held the latest state of a key whose older states are
still in the log, and nothing says which keys. Starting would serve values
that clients overwrote, or keys they deleted, and nobody would notice.
(Cassandra's commit log replay and etcd's write-ahead log refuse too.) For
a cache that is often acceptable, but it is the operator's call:
``--salvage-damaged-logs`` starts anyway, with every valid record. A
salvage destroys nothing: the file as found is first kept under a second
name (``shard-K-of-N.log.damaged-<time>``, a hard link, synced), then the
recovered items are written to a new log, as a compaction writes one, which
is renamed over the log; the server's log names each damaged range and the
file kept.

Items that do not fit: a shard started with less memory than its log's
live items take (with a smaller ``-m``, say) loads what fits, evicting as
it goes, as the cache does when it is full. The
server's log says how many it dropped. They are gone as evicted items are
gone, so the log records their deletion, as it records every eviction: a
later start with more memory must not bring back a value that a client
has since deleted (a ``delete`` of a key the cache no longer holds records
nothing). A resharded or salvaged log is rewritten from the cache, and so
holds only what was kept.

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
A failed write or sync of the log stops the shard's writer, which stops the
server: after a failed ``fdatasync`` Linux may have dropped the dirty data
and reports the error once, so the only safe answer is to stop
acknowledging writes (as PostgreSQL does). The error names the shard, the
file and the cause (ENOSPC for a full disk); every change acknowledged
before it is in the log. A write the kernel takes only in part -- a full
filesystem takes what fits -- is continued from the last whole block
written, so that the kernel says why it cannot take the rest.

A compaction that fails stops nothing: the old log is intact and still the
log. Compaction writes a second copy of the live data, so it is the first
to run out of space on a filling disk. Its file is removed, the server's
log says why, ``stats shards`` counts it (``log_compaction_failures``), and
the next attempt waits until the log has grown by a quarter more (and by
at least ``compact_min_bytes``), rather than rewriting the live data over
and over on a disk it does not fit on. (If the disk stays full, the log
fills it in the end, and the server stops as above.)
"""

from __future__ import annotations

import collections
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

import shardio
import shardio_disk
from shardio import lowlevel

from .datadir import (
    DataDirectoryError,
    compact_path,
    keep_damaged,
    log_path,
    replace_durably,
    sync_directory,
)
from .journal import Journal
from .records import FORMAT_VERSION, CorruptRecord, Damage, Header, LogEnd, LogReader, encode
from .recovery import Replay, restore
from .sharding import shard_for_key
from .store import Cache, Item

__all__ = ["DamageFound", "DamagedLogError", "LogOptions", "OpenSummary", "ShardLog", "report"]

READ_CHUNK = 1 << 20
"""Bytes per direct read during recovery."""

WRITE_CHUNK = 1 << 20
"""Bytes of records per direct write of a snapshot."""

MAX_COMMIT = 4 << 20
"""The most record bytes one group commit writes (the rest waits a round)."""

MAX_TORN = 2 * MAX_COMMIT
"""The most nonzero bytes after the last valid record that a crash can
explain: one write is at most :data:`MAX_COMMIT` bytes of records and a
block either side of them (doubled, a margin over it). More is damage."""

MAX_RECORD = 1 << 31
"""The longest record body the format allows (an item of up to 2 GiB)."""

FINAL_COMMIT_SECONDS = 5.0
"""How long a stopping writer may take to commit what is still buffered."""


def report(line: str) -> None:
    """Write ``line`` to the server's log (stderr) in one write: the shards
    share it, and their lines must not mix."""
    sys.stderr.write(f"memcached: {line}\n")
    sys.stderr.flush()


@attrs.frozen
class LogOptions:
    """When to compact: once the log file is larger than ``compact_ratio``
    times the live data (the cache's ``bytes``) and than ``compact_min_bytes``.
    ``salvage``: start even if a log is damaged (see "Recovery" above)."""

    compact_ratio: float = 4.0
    compact_min_bytes: int = 16 << 20
    salvage: bool = False


class DamagedLogError(DataDirectoryError):
    """A log is damaged in a way no crash explains, and the server was not
    told to salvage it: the message says where, and what to do."""


@attrs.frozen
class DamageFound:
    """A damaged log, salvaged: its file, the ranges of it that held no
    valid record, and where the file as found was kept (None: by another
    shard, when several read it to reshard)."""

    path: Path
    ranges: tuple[Damage, ...]
    kept_as: Path | None

    def describe(self) -> str:
        """One line for the server's log."""
        text = (
            f"{self.path} was damaged: {_ranges(self.ranges)} held no valid record; "
            "every valid record after them was kept"
        )
        if self.kept_as is not None:
            text += f"; the file as found is kept as {self.kept_as}"
        return text


@attrs.frozen
class OpenSummary:
    """What opening a shard's log found: the items recovered, the live
    items dropped because they did not fit in the cache's memory limit
    (:attr:`.recovery.RestoreSummary.dropped`), the records and bytes read,
    the bytes of a torn write cut off, the shard count the data was
    resharded from (None if it was not), and the damaged logs salvaged."""

    items: int
    dropped: int
    records: int
    log_bytes: int
    torn_bytes: int
    resharded_from: int | None
    damaged: tuple[DamageFound, ...] = ()

    def describe(self, shard: int) -> list[str]:
        """Lines for the server's log: what was recovered and what was not,
        then one per damaged log."""
        text = (
            f"shard {shard}: recovered {self.items} items "
            f"({self.records} records, {self.log_bytes} bytes of log)"
        )
        if self.resharded_from is not None:
            text += f", resharded from {self.resharded_from} shards"
        if self.dropped:
            text += f"; dropped {self.dropped} live items that did not fit in its memory limit (-m)"
        if self.torn_bytes:
            text += f"; cut off {self.torn_bytes} bytes of a write torn by a crash"
        return [text] + [f"shard {shard}: {found.describe()}" for found in self.damaged]


def _ranges(ranges: Sequence[Damage]) -> str:
    return ", ".join(str(damage) for damage in ranges)


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
            await self._write(end - len(block), buffer[:size])
            end += len(data)
            block = bytes(buffer[used - used % align : used])
        if sync:
            await self.file.fdatasync()
        self.end, self.block = end, block

    async def _write(self, position: int, data: memoryview) -> None:
        """Write all of ``data`` (aligned) at ``position``. A short count --
        a full filesystem takes what fits -- is followed by a write of the
        rest, from the last whole block written, which fails with the
        reason (ENOSPC, EDQUOT, EFBIG...)."""
        alignment = self.file.alignment
        step = max(alignment.write, alignment.memory)  # powers of two
        done = 0
        while done < len(data):
            written = await self.file.write_at(position + done, data[done:])
            if written < step:
                raise OSError(
                    errno.EIO,
                    f"a write of {len(data) - done} bytes at offset {position + done} "
                    f"stopped after {written} bytes, without an error",
                    str(self.path),
                )
            done += written - written % step

    def _buffer_for(self, size: int) -> memoryview:
        buffer = self._buffer
        if buffer is None or len(buffer) < size:
            capacity = 1 << max(16, (size - 1).bit_length())
            buffer = shardio_disk.aligned_buffer(capacity, self.file.alignment.memory)
            self._buffer = buffer
        return buffer


async def _read_log(path: Path, replay: Replay) -> tuple[shardio_disk.DmaFile, int, LogEnd]:
    """Read a log into ``replay``; the open file (changed in nothing), its
    size, and what the reader found besides the records."""
    file = await shardio_disk.open_dma(path, "r+")
    try:
        size = await file.size()
        reader = LogReader(MAX_RECORD, size)
        position = 0
        try:
            while position < size:
                data = await file.read_at(position, READ_CHUNK)
                for record in reader.feed(data):
                    replay.apply(record)
                position += len(data)
                if len(data) < READ_CHUNK:
                    break
            records, end = reader.finish()
        except CorruptRecord as error:
            raise DataDirectoryError(
                f"{path} holds a record this server does not write ({error}): "
                "written by another program, or by a newer version of this one?"
            ) from None
        for record in records:
            replay.apply(record)
    except BaseException:
        await file.aclose()
        raise
    return file, size, end


def _damage(path: Path, shard: int, end: LogEnd, salvage: bool) -> tuple[Damage, ...]:
    """The damaged ranges of a log that ``end`` describes -- those the
    reader skipped, and an end longer than a torn write -- or, if there
    are any and ``salvage`` is off, :class:`DamagedLogError`."""
    ranges = end.damaged
    if end.torn > MAX_TORN:
        ranges += (Damage(end.valid_end, end.torn),)
    if ranges and not salvage:
        raise DamagedLogError(
            f"shard {shard}: {path} is damaged: {_ranges(ranges)} hold no valid "
            f"record ({end.records} valid records were found). A crash cannot leave "
            f"that (only the last write can be torn, and by at most {MAX_TORN} bytes at "
            "the end), so records the server acknowledged are lost there, and they may "
            "have been the latest state of keys whose older states are still in the log: "
            "starting would serve those older values, or bring back deleted keys. "
            "Nothing was changed. To start anyway, with every valid record, run with "
            f"--salvage-damaged-logs (the file as found is then kept as "
            f"{path.name}.damaged-<time>)."
        )
    return ranges


async def _resume(
    file: shardio_disk.DmaFile, path: Path, size: int, end: LogEnd, header: Header
) -> _Appender:
    """The appender that goes on after the valid records of ``file``: a
    torn write cut off (and the cut synced), the partial block the next
    write starts with read, and a header written if a crash tore even that."""
    if size != end.valid_end:
        await file.truncate(end.valid_end)
        await file.fdatasync()
    # The partial block: from the last boundary of the *write* alignment
    # (a multiple of the read one).
    align = file.alignment.write
    partial = end.valid_end % align
    block = b""
    if partial:
        block = (await file.read_at(end.valid_end - partial, align))[:partial]
    appender = _Appender(file, path, end.valid_end, block)
    if end.valid_end == 0:
        out = bytearray()
        encode(out, header)
        await appender.append(out, sync=True)
    return appender


async def _rewrite(path: Path, shard: int, shards: int, journal: Journal) -> _Appender:
    """A new log at ``path`` holding the cache's live items: written beside
    it, synced, and renamed over it."""
    new = compact_path(path.parent, shard, shards)
    try:
        appender = await _create(new, shard, shards, journal, journal.cache.items())
        try:
            await shardio.to_thread.run_sync(replace_durably, new, path)
        except BaseException:
            with shardio.CancelScope(shield=True):
                await appender.file.aclose()
            raise
    except BaseException:
        new.unlink(missing_ok=True)
        raise
    appender.path = path
    return appender


def _check_header(replay: Replay, path: Path, shard: int, shards: int) -> None:
    header = replay.header
    if header is None:
        return
    if header.version != FORMAT_VERSION:
        raise DataDirectoryError(
            f"{path} is in log format {header.version}; this server reads format "
            f"{FORMAT_VERSION} only"
        )
    if (header.shard, header.shards) != (shard, shards):
        raise DataDirectoryError(
            f"{path} was written by shard {header.shard} of {header.shards}, "
            f"not shard {shard} of {shards}"
        )


@attrs.define(eq=False, slots=True)
class _Compaction:
    """A compaction under way: the sequence number its snapshot starts
    from, the records committed since (to be copied), and the new file --
    or why it could not be written."""

    snapshot: int
    tail: bytearray = attrs.field(factory=bytearray)
    appender: _Appender | None = None
    ready: bool = False
    failed: OSError | None = None


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
    _compact_after: int = 0
    """No compaction starts before the log is this large (after a failed one)."""
    _unwritten: bytes = b""
    """Records taken from the journal and not yet durable (they start at
    ``journal.durable``): a commit that was cancelled, or a switch to a
    compacted log that failed, left them to the next commit."""

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
        were written with (None: there are none yet). A damaged log is
        :class:`DamagedLogError`, unless ``options.salvage``."""
        path = log_path(directory, shard, shards)
        if previous is not None and previous != shards:
            return await cls._reshard(directory, shard, shards, previous, cache, options)
        if previous is None or not path.exists():
            journal = Journal(cache)
            appender = await _create(path, shard, shards, journal, [])
            await shardio.to_thread.run_sync(sync_directory, directory)
            return cls(directory, shard, shards, journal, options, appender), OpenSummary(
                items=0, dropped=0, records=0, log_bytes=0, torn_bytes=0, resharded_from=None
            )
        replay = Replay()
        file, size, end = await _read_log(path, replay)
        try:
            _check_header(replay, path, shard, shards)
            damaged = _damage(path, shard, end, options.salvage)
            summary = restore(cache, [replay])
            journal = Journal(cache)
            if not damaged:
                header = Header(shard, shards, cache.cas_counter)
                appender = await _resume(file, path, size, end, header)
                for key in summary.dropped:  # see "Items that do not fit"
                    journal.delete(key)
        except BaseException:
            await file.aclose()
            raise
        found: tuple[DamageFound, ...] = ()
        if damaged:
            await file.aclose()
            kept = await shardio.to_thread.run_sync(keep_damaged, path)
            appender = await _rewrite(path, shard, shards, journal)
            found = (DamageFound(path, damaged, kept),)
        torn = 0 if end.torn > MAX_TORN else end.torn
        log = cls(directory, shard, shards, journal, options, appender)
        return log, OpenSummary(
            items=summary.items,
            dropped=len(summary.dropped),
            records=summary.records,
            log_bytes=end.valid_end,
            torn_bytes=torn,
            resharded_from=None,
            damaged=found,
        )

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
        now, and write them to a new log of its own. (Every new shard reads
        every old log; a damaged one is kept aside by one of them.)"""

        def mine(key: bytes) -> bool:
            return shard_for_key(key, shards) == shard

        replays: list[Replay] = []
        damaged: list[tuple[int, Path, tuple[Damage, ...]]] = []
        read = torn = 0
        for old_shard in range(previous):
            old = log_path(directory, old_shard, previous)
            if not old.exists():
                continue
            replay = Replay(keep=mine)
            file, _, end = await _read_log(old, replay)
            await file.aclose()
            _check_header(replay, old, old_shard, previous)
            ranges = _damage(old, shard, end, options.salvage)
            if ranges:
                damaged.append((old_shard, old, ranges))
            replays.append(replay)
            read += end.valid_end
            torn += 0 if end.torn > MAX_TORN else end.torn
        summary = restore(cache, replays)
        found = []
        for old_shard, old, ranges in damaged:
            kept = None
            if old_shard % shards == shard:
                kept = await shardio.to_thread.run_sync(keep_damaged, old)
            found.append(DamageFound(old, ranges, kept))
        journal = Journal(cache)
        path = log_path(directory, shard, shards)
        appender = await _create(path, shard, shards, journal, cache.items())
        await shardio.to_thread.run_sync(sync_directory, directory)
        log = cls(directory, shard, shards, journal, options, appender)
        return log, OpenSummary(
            items=summary.items,
            dropped=len(summary.dropped),
            records=summary.records,
            log_bytes=read,
            torn_bytes=torn,
            resharded_from=previous,
            damaged=tuple(found),
        )

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
        buffered (for at most :data:`FINAL_COMMIT_SECONDS`). A failed write
        or sync of the log raises :class:`OSError` saying so."""
        try:
            async with shardio.open_nursery() as nursery:
                try:
                    await self._write(nursery)
                except shardio.Cancelled:
                    deadline = shardio.current_time() + FINAL_COMMIT_SECONDS
                    with shardio.CancelScope(deadline=deadline, shield=True):
                        try:
                            while self._unwritten or self.journal.pending:
                                await self._commit()
                        except OSError as error:
                            raise self._stopped(error) from None
                    raise
                except OSError as error:
                    raise self._stopped(error) from None
        finally:
            with shardio.CancelScope(shield=True):
                await self._abandon_compaction()

    def _stopped(self, error: OSError) -> OSError:
        """``error``, from writing or syncing the log, as the server reports it."""
        code = error.errno or errno.EIO
        name = errno.errorcode.get(code, str(code))
        advice = "; free some space and restart it" if code == errno.ENOSPC else ""
        return OSError(
            code,
            f"shard {self.shard} could not write its log {error.filename or self._file.path}: "
            f"{error.strerror or error} ({name}). The server stops, as no change can be "
            f"made durable; every change it acknowledged is in the log{advice}",
        )

    async def _write(self, nursery: shardio.Nursery) -> None:
        journal = self.journal
        while True:
            if self._compaction is None and self._should_compact():
                self._compaction = _Compaction(journal.appended)
                nursery.start_soon(self._compact, self._compaction)
            compaction = self._compaction
            if compaction is not None and compaction.failed is not None:
                self._compaction_failed(compaction.failed)
            elif compaction is not None and compaction.ready:
                with shardio.CancelScope(shield=True):
                    await self._switch(compaction)
            elif journal.pending or self._unwritten:
                await self._commit()
            else:
                self._wakeup = shardio.Event()
                await self._wakeup.wait()

    async def _commit(self) -> None:
        """One group commit: write and sync what the journal has buffered
        (at most :data:`MAX_COMMIT` bytes)."""
        if not self._unwritten:
            # Until written: a stopping writer retries it.
            self._unwritten = self.journal.take(MAX_COMMIT)
        data = self._unwritten[:MAX_COMMIT]
        if not data:
            return
        start = self.journal.durable
        await self._file.append(data, sync=True)
        self._unwritten = self._unwritten[len(data) :]
        compaction = self._compaction
        if compaction is not None:
            compaction.tail += data[max(0, compaction.snapshot - start) :]
        self.journal.counters["log_commits"] += 1
        self._made_durable(start + len(data))

    def _should_compact(self) -> bool:
        size = self._file.end
        options = self.options
        live = self.journal.cache.bytes_used
        return (
            size >= self._compact_after
            and size > options.compact_min_bytes
            and size > options.compact_ratio * live
        )

    async def _compact(self, compaction: _Compaction) -> None:
        """Write the live items to a new file, for the writer to switch to."""
        path = compact_path(self.directory, self.shard, self.shards)
        cache = self.journal.cache
        try:
            appender = await _create(path, self.shard, self.shards, self.journal, cache.items())
        except OSError as error:
            path.unlink(missing_ok=True)
            compaction.failed = error
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        else:
            compaction.appender = appender
            compaction.ready = True
        self._notify()

    def _compaction_failed(self, error: OSError) -> None:
        """Go on with the log as it is, and say why it was not compacted."""
        self._compaction = None
        size = self._file.end
        self._compact_after = size + max(self.options.compact_min_bytes, size // 4)
        self.journal.counters["log_compaction_failures"] += 1
        name = errno.errorcode.get(error.errno or 0, "")
        report(
            f"shard {self.shard}: compacting its log failed: {error}"
            + (f" ({name})" if name else "")
            + f"; the log {self.path} ({size} bytes) is intact and still in use; "
            f"the next attempt waits until it reaches {self._compact_after} bytes"
        )

    async def _abandon_compaction(self) -> None:
        """Drop a compaction the writer will not switch to."""
        compaction, self._compaction = self._compaction, None
        if compaction is not None and compaction.appender is not None:
            await compaction.appender.file.aclose()
            compaction.appender.path.unlink(missing_ok=True)

    async def _switch(self, compaction: _Compaction) -> None:
        """Finish the new log with the records committed since its snapshot
        and those buffered now, and make it the log. If the new log cannot
        be finished, the old one goes on (the records stay to be committed
        to it)."""
        new = compaction.appender
        assert new is not None
        pending = self._unwritten + self.journal.take()
        self._unwritten = pending
        start = self.journal.durable
        skip = max(0, compaction.snapshot - start)
        try:
            await new.append(bytes(compaction.tail) + pending[skip:], sync=True)
            await shardio.to_thread.run_sync(os.replace, new.path, self.path)
        except OSError as error:
            await self._abandon_compaction()
            self._compaction_failed(error)
            return
        old, self._file = self._file, new
        new.path = self.path
        self._compaction = None
        # Renamed: from here on the new file is the log, and a failure to
        # make the rename durable stops the writer like a failed sync.
        await shardio.to_thread.run_sync(sync_directory, self.directory)
        self._unwritten = b""
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
