"""The on-disk format of a shard's log: framed, checksummed records.

A log is a sequence of records, each framed as::

    length: u32 (little endian)   bytes of the body
    crc:    u32                   CRC-32 of the four length bytes and the body
    body:   type (u8), then the fields of that type

and nothing else: no block structure, a record may straddle any boundary.
The writer pads each write with zero bytes up to the device's alignment
(O_DIRECT writes whole blocks), so the records end at the first zero length:
no record is empty, as its body holds at least its type.

Reading back (:class:`LogReader`, sans-io: fed chunks of any size) stops at
the first frame that is incomplete, longer than any record can be, or whose
CRC does not match. Everything before it is the log; everything from it on
is a write that a crash cut short (a *torn* record) or padding. The reader
tells the two apart -- padding is all zeros -- and reports where the valid
records end, which is where the file is truncated and appending resumes.

The CRC covers the length, so a length field torn into a plausible value
still fails the check. It cannot tell a torn record from one damaged later on
the disk, in the middle of the log; both end the log there.

Times are absolute Unix seconds, so that a record means the same thing to a
process started later (the cache counts in seconds since its own start).
The record types are the changes a shard's cache goes through; each states
the resulting state of one key (so replaying a record twice changes nothing):

* :class:`Header` -- first in every log file: format version, which
  shard of how many wrote it, and the CAS counter then;
* :class:`Put` -- the key now holds this item (value, flags, absolute
  expiry or 0, CAS value, store time, stale and binary-key bits);
* :class:`Delete` -- the key holds nothing (deleted or evicted);
* :class:`Touch` -- the key's item now expires at this time;
* :class:`Flush` -- ``flush_all``: items stored up to ``oldest_live`` (or
  with a CAS below ``oldest_cas``) are invalid from ``oldest_live`` on.

:class:`Delete` and :class:`Flush` carry the cache's CAS counter, so that
recovery never hands out a CAS value a client may still hold.
"""

from __future__ import annotations

import struct
import zlib
from typing import TypeAlias

import attrs

__all__ = [
    "FORMAT_VERSION",
    "FRAME_SIZE",
    "CorruptRecord",
    "Delete",
    "Flush",
    "Header",
    "LogEnd",
    "LogReader",
    "Put",
    "Record",
    "Touch",
    "encode",
    "encode_put",
]

FORMAT_VERSION = 1
MAGIC = b"shardio-memcached-log"

_FRAME = struct.Struct("<II")
FRAME_SIZE = _FRAME.size
"""Bytes of framing before each record's body."""

_HEADER = struct.Struct(f"<B{len(MAGIC)}sHHHQ")
_PUT = struct.Struct("<BQqqIBB")
_DELETE = struct.Struct("<BQB")
_TOUCH = struct.Struct("<BqB")
_FLUSH = struct.Struct("<BqQq")

_TYPE_HEADER = 1
_TYPE_PUT = 2
_TYPE_DELETE = 3
_TYPE_TOUCH = 4
_TYPE_FLUSH = 5

_STALE = 1
_KEY_BINARY = 2


@attrs.frozen
class Header:
    """The first record of a log file: who wrote it, in which format, and
    the CAS counter when the file was started."""

    shard: int
    shards: int
    cas_high: int = 0
    version: int = FORMAT_VERSION


@attrs.frozen
class Put:
    """``key`` now holds this item. ``exptime`` is absolute (0: never),
    ``time`` the absolute time it was stored."""

    key: bytes
    value: bytes
    flags: int
    exptime: int
    cas: int
    time: int
    stale: bool = False
    key_binary: bool = False


@attrs.frozen
class Delete:
    """``key`` holds nothing now. ``cas_high``: the CAS counter then."""

    key: bytes
    cas_high: int


@attrs.frozen
class Touch:
    """``key``'s item now expires at ``exptime`` (absolute; 0: never)."""

    key: bytes
    exptime: int


@attrs.frozen
class Flush:
    """``flush_all`` issued at ``issued``: items stored at or before
    ``oldest_live`` (or with a nonzero CAS below ``oldest_cas``) are invalid
    once ``oldest_live`` has passed. ``oldest_cas`` is also the counter then."""

    oldest_live: int
    oldest_cas: int
    issued: int


Record: TypeAlias = Header | Put | Delete | Touch | Flush


def _frame(out: bytearray, body: bytes) -> int:
    length = len(body)
    prefix = length.to_bytes(4, "little")
    out += prefix
    out += zlib.crc32(body, zlib.crc32(prefix)).to_bytes(4, "little")
    out += body
    return FRAME_SIZE + length


def encode_put(
    out: bytearray,
    key: bytes,
    value: bytes,
    flags: int,
    exptime: int,
    cas: int,
    time: int,
    stale: bool = False,
    key_binary: bool = False,
) -> int:
    """Append a :class:`Put` to ``out`` without building the record object
    (the hot path: one per store); the bytes appended."""
    bits = (_STALE if stale else 0) | (_KEY_BINARY if key_binary else 0)
    head = _PUT.pack(_TYPE_PUT, cas, time, exptime, flags, bits, len(key))
    return _frame(out, b"".join((head, key, value)))


def encode(out: bytearray, record: Record) -> int:
    """Append ``record``, framed, to ``out``; the bytes appended."""
    if isinstance(record, Put):
        return encode_put(
            out,
            record.key,
            record.value,
            record.flags,
            record.exptime,
            record.cas,
            record.time,
            record.stale,
            record.key_binary,
        )
    if isinstance(record, Delete):
        body = _DELETE.pack(_TYPE_DELETE, record.cas_high, len(record.key)) + record.key
    elif isinstance(record, Touch):
        body = _TOUCH.pack(_TYPE_TOUCH, record.exptime, len(record.key)) + record.key
    elif isinstance(record, Flush):
        body = _FLUSH.pack(_TYPE_FLUSH, record.oldest_live, record.oldest_cas, record.issued)
    else:
        body = _HEADER.pack(
            _TYPE_HEADER, MAGIC, record.version, record.shard, record.shards, record.cas_high
        )
    return _frame(out, body)


class CorruptRecord(ValueError):
    """A frame whose CRC matched but whose body is not a valid record: a
    bug or a foreign file, never a torn write."""


def decode(body: bytes) -> Record:
    """The record in a frame's ``body`` (its CRC already checked)."""
    kind = body[0]
    try:
        if kind == _TYPE_PUT:
            _, cas, time, exptime, flags, bits, nkey = _PUT.unpack_from(body)
            start = _PUT.size
            key = body[start : start + nkey]
            return Put(
                key,
                body[start + nkey :],
                flags,
                exptime,
                cas,
                time,
                bool(bits & _STALE),
                bool(bits & _KEY_BINARY),
            )
        if kind == _TYPE_DELETE:
            _, cas_high, nkey = _DELETE.unpack_from(body)
            return Delete(body[_DELETE.size : _DELETE.size + nkey], cas_high)
        if kind == _TYPE_TOUCH:
            _, exptime, nkey = _TOUCH.unpack_from(body)
            return Touch(body[_TOUCH.size : _TOUCH.size + nkey], exptime)
        if kind == _TYPE_FLUSH:
            _, oldest_live, oldest_cas, issued = _FLUSH.unpack(body)
            return Flush(oldest_live, oldest_cas, issued)
        if kind == _TYPE_HEADER:
            _, magic, version, shard, shards, cas_high = _HEADER.unpack(body)
            if magic != MAGIC:
                raise CorruptRecord("not a shardio memcached log")
            return Header(shard, shards, cas_high, version)
    except struct.error as error:
        raise CorruptRecord(f"record of type {kind}: {error}") from None
    raise CorruptRecord(f"unknown record type {kind}")


@attrs.frozen
class LogEnd:
    """Where a log's valid records end, and what follows them.

    ``valid_end``: bytes from the start of the log to the end of its last
    valid record. ``torn``: bytes from there to the last nonzero byte -- a
    record cut short (or damaged) and anything after it; 0 when only zero
    padding follows (a clean end). ``records``: how many valid records.
    """

    valid_end: int
    torn: int
    records: int


@attrs.define(eq=False, slots=True)
class LogReader:
    """Bytes of a log in, records out (sans-io, like the protocol parser).

    ``feed`` takes the file's bytes in order, in chunks of any size, and
    returns the records they complete; :meth:`finish` says where the valid
    records ended. ``max_record`` bounds a record's body (a larger length is
    taken as torn), and so the bytes buffered between calls.
    """

    max_record: int
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _consumed: int = attrs.field(default=0, init=False)
    _ended: bool = attrs.field(default=False, init=False)
    _tail_seen: int = attrs.field(default=0, init=False)
    _torn: int = attrs.field(default=0, init=False)
    _records: int = attrs.field(default=0, init=False)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Record]:
        """The next bytes of the log; the records they complete."""
        if self._ended:
            self._scan_tail(data)
            return []
        buffer = self._buffer
        buffer += data
        out: list[Record] = []
        position = 0
        while len(buffer) - position >= FRAME_SIZE:
            length, crc = _FRAME.unpack_from(buffer, position)
            if length == 0 or length > self.max_record:
                self._end(position)
                break
            end = position + FRAME_SIZE + length
            if end > len(buffer):
                break
            body = bytes(buffer[position + FRAME_SIZE : end])
            if zlib.crc32(body, zlib.crc32(buffer[position : position + 4])) != crc:
                self._end(position)
                break
            out.append(decode(body))
            position = end
        if not self._ended:
            self._consumed += position
            del buffer[:position]
        self._records += len(out)
        return out

    def _end(self, position: int) -> None:
        """The valid records end at ``position`` in the buffer."""
        self._consumed += position
        self._ended = True
        rest = bytes(self._buffer[position:])
        self._buffer.clear()
        self._scan_tail(rest)

    def _scan_tail(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes after the valid records: find the last one that is not zero."""
        nonzero = len(bytes(data).rstrip(b"\0"))
        if nonzero:
            self._torn = self._tail_seen + nonzero
        self._tail_seen += len(data)

    def finish(self) -> LogEnd:
        """The end of the log: call after feeding every byte of the file."""
        if not self._ended:
            self._end(0)
        return LogEnd(self._consumed, self._torn, self._records)
