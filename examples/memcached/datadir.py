"""The data directory (``--data-dir``): which files hold the logs, and who
may use them.

Its contents::

    MANIFEST                    how many shards wrote the logs
    shard-K-of-N.log            shard K's log (see :mod:`.log`)
    shard-K-of-N.log.compact    a compaction under way (removed at start)
    shard-K-of-N.log.damaged-T  a damaged log as it was found, kept aside at
                                time T when the server salvaged it (never
                                removed by the server: see :mod:`.log`)
    LOCK                        held (``flock``) by the server using it

Keys are spread over shards by hash modulo the shard count, so the logs
are only meaningful together with the count that wrote them: that is what
``MANIFEST`` records. A server started with the same count opens its
shard's log. One started with another count *reshards*: each new shard
reads every old log, keeps the keys it now owns, and writes them to a new
log; only when every new log is durable does ``MANIFEST`` switch to the new
count (written to a temporary file, synced, renamed over the old one, and
the directory synced), and then the old logs are removed. A crash at any
point leaves either the old manifest with the old logs intact, or the new
manifest with the new logs complete; files of the other layout are left
over, and removed at the next start.

Two servers on one directory would each believe they own its logs; the
``LOCK`` file's ``flock`` makes the second one fail at start instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from pathlib import Path

import attrs

import shardio

__all__ = [
    "DataDirectory",
    "DataDirectoryError",
    "compact_path",
    "keep_damaged",
    "log_path",
]

MANIFEST = "MANIFEST"
_MANIFEST_LINE = re.compile(r"shardio-memcached shards=(\d+)\n")
_LOG_NAME = re.compile(r"shard-(\d+)-of-(\d+)\.log(\.compact)?")


class DataDirectoryError(RuntimeError):
    """The data directory cannot be used (locked, damaged, or ambiguous)."""


def log_path(directory: Path, shard: int, shards: int) -> Path:
    """The log of ``shard`` in a layout of ``shards`` shards."""
    return directory / f"shard-{shard}-of-{shards}.log"


def compact_path(directory: Path, shard: int, shards: int) -> Path:
    """Where a compaction of that log writes the new log before the switch."""
    return directory / f"shard-{shard}-of-{shards}.log.compact"


def keep_damaged(path: Path) -> Path:
    """Keep the file at ``path`` as it is under a second name,
    ``<name>.damaged-<UTC time>``, durably (blocking; run it in a thread);
    the new name. A hard link: no copy to make, or to run out of space
    making, and the bytes are the very ones found."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    attempt = 0
    while True:
        kept = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            os.link(path, kept)
        except FileExistsError:
            attempt += 1
            continue
        sync_directory(path.parent)
        return kept


def sync_directory(directory: Path) -> None:
    """fsync ``directory``: makes the creation, renaming and removal of its
    entries durable (blocking; run it in a thread)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target`` atomically, and sync the directory
    (blocking; run it in a thread)."""
    os.replace(source, target)
    sync_directory(target.parent)


def _layouts(directory: Path) -> dict[int, set[int]]:
    """Shard counts of the log files present -> the shards that have one."""
    found: dict[int, set[int]] = {}
    for entry in directory.iterdir():
        match = _LOG_NAME.fullmatch(entry.name)
        if match and not match.group(3):
            found.setdefault(int(match.group(2)), set()).add(int(match.group(1)))
    return found


@attrs.define(eq=False, slots=True)
class DataDirectory:
    """A data directory opened (and locked) by a server of ``shards`` shards.

    ``previous`` is the shard count its logs were written with (None for a
    new directory): the shards read the logs of that layout. Open it with
    :meth:`open` on the shard that runs the server, before the shards open
    their logs; call :meth:`commit` once they all have; :meth:`close` at
    the end releases the lock.
    """

    path: Path
    shards: int
    previous: int | None
    _lock: int

    @classmethod
    def open(cls, path: str | os.PathLike[str], shards: int) -> DataDirectory:
        """Create ``path`` if needed, lock it, read its manifest, and remove
        what an interrupted compaction left. Raises
        :class:`DataDirectoryError` if another server holds it."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise DataDirectoryError(
                f"{directory} is in use by another server (its LOCK file is locked)"
            ) from None
        try:
            previous = cls._read_manifest(directory)
            for entry in directory.iterdir():
                match = _LOG_NAME.fullmatch(entry.name)
                if match and match.group(3):
                    entry.unlink()
        except BaseException:
            os.close(lock)
            raise
        return cls(directory, shards, previous, lock)

    @staticmethod
    def _read_manifest(directory: Path) -> int | None:
        try:
            text = (directory / MANIFEST).read_text()
        except FileNotFoundError:
            layouts = _layouts(directory)
            if not layouts:
                return None
            if len(layouts) == 1:
                # The manifest is written after the first logs: a server
                # stopped in between left logs of one layout only.
                return next(iter(layouts))
            raise DataDirectoryError(
                f"{directory} has logs for {sorted(layouts)} shards and no {MANIFEST}"
            ) from None
        match = _MANIFEST_LINE.fullmatch(text)
        if match is None or int(match.group(1)) < 1:
            raise DataDirectoryError(f"{directory / MANIFEST} is damaged: {text[:80]!r}")
        return int(match.group(1))

    async def commit(self) -> None:
        """Every shard has opened its log: record the layout in the manifest
        (if it changed) and remove the logs of any other layout."""
        await shardio.to_thread.run_sync(self._commit)

    def _commit(self) -> None:
        if self.previous != self.shards:
            temporary = self.path / (MANIFEST + ".new")
            with open(temporary, "w") as manifest:
                manifest.write(f"shardio-memcached shards={self.shards}\n")
                manifest.flush()
                os.fsync(manifest.fileno())
            replace_durably(temporary, self.path / MANIFEST)
            self.previous = self.shards
        stale = [
            self.path / f"shard-{shard}-of-{count}.log"
            for count, shards in _layouts(self.path).items()
            if count != self.shards
            for shard in shards
        ]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if stale:
            sync_directory(self.path)

    def close(self) -> None:
        """Release the lock."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
