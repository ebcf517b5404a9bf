"""The on-disk format of a shard's log: framed, checksummed records.

A log is a sequence of records, each framed as::

    length: u32 (little endian)   bytes of the body
    crc:    u32                   CRC-32 of the four length bytes and the body
    body:   type (u8), then the fields of that type

and nothing else: no block structure, a record may straddle any boundary.
The writer pads each write with zero bytes up to the device's alignment
(O_DIRECT writes whole blocks), so the records end at the first zero length:
no record is empty, as its body holds at least its type.

Reading back
------------
:class:`LogReader` (sans-io: fed chunks of any size) takes the frames one
after another. A frame is *valid* when its length is between 1 and the
largest record, its body is all there and its CRC matches (the CRC covers
the length, so a length damaged into a plausible value still fails). At the
first frame that is not valid, what the bytes from there on are depends on
what follows them:

* zeros only: the end of the log (the padding of the last write);
* nonzero bytes and no valid record after them: the last write, torn by a
  crash -- or damage at the very end, which :mod:`.log` tells apart by size
  (a torn write is never longer than one write);
* valid records after them: *damage* in the middle of the log. A crash
  cannot do that -- each write was synced before the next one began, so
  only the last one can be torn -- and the records after the damage were
  acknowledged to clients: they must not be thrown away.

So at a frame that is not valid the reader *resynchronises*: it looks for
the next offset where a valid frame starts, byte by byte (the format has no
blocks or markers to jump to), carries on from there, and reports the bytes
it skipped as a :class:`Damage`. Taking bytes that were never a frame for
one would apply a record nobody wrote, so an offset is taken only if what
starts there passes every test a frame written by :func:`encode` passes:

1. a plausible header: a known record type (not a :class:`Header`, which
   only ever starts a log), the exact length its type and key length make
   (a put: at least that), no unknown flag bits;
2. the CRC, over the length and the body;
3. right after it, another frame that passes both, or the end of the log
   (zeros, or the end of the file).

Bytes that were not written as a frame pass the first test at about one
offset in 2^14 and the CRC at one in 2^32, and the frame after them must
pass both again: a false start is practically impossible. (What this cannot rule out
is a frame inside a value that is itself a copy of log records, and then
only if damage hit the header of exactly that record.) The price of the
third test: a record alone between two damaged stretches, with damage
right after it, is counted as damaged -- one CRC is not evidence enough.
Candidates are found with a regular expression over the type byte, so the
scan costs little per skipped byte. The bytes held between calls are the
frame being read -- while a candidate is checked, as many as the length it
claims -- and given the file's ``size``, a length that runs past the end is
rejected at once rather than waited for.

A frame whose CRC matches but whose body is not a valid record, in a log
being read in step, is :class:`CorruptRecord`: a bug or a foreign file,
never damage, which the CRC would have caught.

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

import re
import struct
import zlib
from typing import TypeAlias

import attrs

__all__ = [
    "FORMAT_VERSION",
    "FRAME_SIZE",
    "CorruptRecord",
    "Damage",
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
    """The record in a frame's ``body`` (its CRC already checked). Strict:
    anything :func:`encode` would not have written is :class:`CorruptRecord`."""
    kind = body[0]
    try:
        if kind == _TYPE_PUT:
            _, cas, time, exptime, flags, bits, nkey = _PUT.unpack_from(body)
            start = _PUT.size
            if bits & ~(_STALE | _KEY_BINARY) or len(body) < start + nkey:
                raise CorruptRecord(f"a put with flag bits {bits:#x} and a {nkey}-byte key")
            return Put(
                body[start : start + nkey],
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
            _check_length(body, _DELETE.size + nkey)
            return Delete(body[_DELETE.size :], cas_high)
        if kind == _TYPE_TOUCH:
            _, exptime, nkey = _TOUCH.unpack_from(body)
            _check_length(body, _TOUCH.size + nkey)
            return Touch(body[_TOUCH.size :], exptime)
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


def _check_length(body: bytes, expected: int) -> None:
    if len(body) != expected:
        raise CorruptRecord(f"record of type {body[0]}: {len(body)} bytes, not {expected}")


# The fixed part of each record type a resynchronising reader may start at
# (a Header only ever starts a log); its last byte is the key's length.
_FIXED = {_TYPE_PUT: _PUT.size, _TYPE_DELETE: _DELETE.size, _TYPE_TOUCH: _TOUCH.size}
_CANDIDATE_TYPE = re.compile(b"[%c-%c]" % (_TYPE_PUT, _TYPE_FLUSH))

# What a look at one frame finds: _NEED more bytes, _BAD (not a valid
# frame), or (as a positive number) the valid frame's size.
_NEED = 0
_BAD = -1


def _plausible(buffer: bytearray, body: int, length: int, available: int) -> int:
    """Whether the body of ``length`` bytes at ``body`` in ``buffer`` (of
    which ``available`` are there) could be one :func:`encode` wrote, from
    its fixed part alone: _BAD, _NEED, or 1."""
    if available < 1:
        return _NEED
    kind = buffer[body]
    if kind == _TYPE_FLUSH:
        return 1 if length == _FLUSH.size else _BAD
    fixed = _FIXED.get(kind)
    if fixed is None or length < fixed:
        return _BAD
    if available < fixed:
        return _NEED
    nkey = buffer[body + fixed - 1]
    if kind != _TYPE_PUT:
        return 1 if length == fixed + nkey else _BAD
    if buffer[body + fixed - 2] & ~(_STALE | _KEY_BINARY):
        return _BAD
    return 1 if length >= fixed + nkey else _BAD


@attrs.frozen
class Damage:
    """``length`` bytes of a log, from file offset ``offset``, that hold no
    valid record, with valid records after them."""

    offset: int
    length: int

    def __str__(self) -> str:
        return f"{self.length} bytes at offset {self.offset}"


@attrs.frozen
class LogEnd:
    """What a whole log held, besides its records.

    ``valid_end``: bytes from the start of the log to the end of its last
    valid record. ``torn``: bytes from there to the last nonzero byte -- a
    write cut short, or damage at the end -- 0 when only zero padding
    follows (a clean end). ``records``: how many valid records.
    ``damaged``: the stretches skipped to reach valid records after them.
    """

    valid_end: int
    torn: int
    records: int
    damaged: tuple[Damage, ...] = ()


@attrs.define(eq=False, slots=True)
class LogReader:
    """Bytes of a log in, records out (sans-io, like the protocol parser).

    ``feed`` takes the file's bytes in order, in chunks of any size, and
    returns the records they complete; :meth:`finish`, after the last byte,
    returns those only the end of the file completes and a :class:`LogEnd`.
    ``max_record`` bounds a record's body (a larger length is not a valid
    frame); ``size``, the file's size if known, lets the reader reject a
    length that runs past the end without waiting for bytes that never come.
    """

    max_record: int
    size: int | None = None
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _base: int = attrs.field(default=0, init=False)
    """File offset of ``_buffer[0]``."""
    _position: int = attrs.field(default=0, init=False)
    """File offset of the next frame (in step) or of the next offset to try."""
    _skipping_from: int | None = attrs.field(default=None, init=False)
    """While resynchronising: where the bytes being skipped began."""
    _fed: int = attrs.field(default=0, init=False)
    _nonzero_end: int = attrs.field(default=0, init=False)
    _valid_end: int = attrs.field(default=0, init=False)
    _records: int = attrs.field(default=0, init=False)
    _damaged: list[Damage] = attrs.field(factory=list, init=False)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Record]:
        """The next bytes of the log; the records they complete."""
        chunk = data if isinstance(data, bytes | bytearray) else bytes(data)
        nonzero = len(chunk.rstrip(b"\0"))
        if nonzero:
            self._nonzero_end = self._fed + nonzero
        self._fed += len(chunk)
        self._buffer += chunk
        return self._read(final=False)

    def finish(self) -> tuple[list[Record], LogEnd]:
        """The end of the file: the records it completes, and where the
        valid records ended. Call after feeding every byte of the file."""
        records = self._read(final=True)
        torn = max(0, self._nonzero_end - self._valid_end)
        return records, LogEnd(self._valid_end, torn, self._records, tuple(self._damaged))

    def _read(self, final: bool) -> list[Record]:
        out: list[Record] = []
        while True:
            skipping_from = self._skipping_from
            if skipping_from is None:
                size, record = self._frame(self._position, final, candidate=False)
                if size == _NEED:
                    break
                if size == _BAD:
                    self._skipping_from = self._position
                    self._position += 1
                    continue
                assert record is not None
                out.append(record)
                self._position += size
                self._valid_end = self._position
                continue
            candidate = self._next_candidate(final)
            if candidate is None:
                break
            size, _ = self._frame(candidate, final, candidate=True)
            if size > 0:
                followed = self._followed(candidate + size, final)
                if followed:
                    self._damaged.append(Damage(skipping_from, candidate - skipping_from))
                    self._skipping_from = None
                    self._position = candidate  # read in step from there
                    continue
                size = _NEED if followed is None else _BAD
            if size == _NEED:
                self._position = candidate
                break
            self._position = candidate + 1
        self._discard()
        self._records += len(out)
        return out

    def _frame(self, offset: int, final: bool, candidate: bool) -> tuple[int, Record | None]:
        """The frame at file ``offset``: (its size, its record) if valid,
        else (_NEED or _BAD, None). A ``candidate`` (a resynchronisation
        point) must also look like a frame :func:`encode` wrote."""
        buffer = self._buffer
        at = offset - self._base
        available = len(buffer) - at
        if available < FRAME_SIZE:
            return (_BAD if final else _NEED), None
        length, crc = _FRAME.unpack_from(buffer, at)
        if not 0 < length <= self.max_record:
            return _BAD, None
        if self.size is not None and offset + FRAME_SIZE + length > self.size:
            return _BAD, None
        if candidate:
            verdict = _plausible(buffer, at + FRAME_SIZE, length, available - FRAME_SIZE)
            if verdict <= 0:
                return (_BAD if final else verdict), None
        end = at + FRAME_SIZE + length
        if end > len(buffer):
            return (_BAD if final else _NEED), None
        body = bytes(buffer[at + FRAME_SIZE : end])
        if zlib.crc32(body, zlib.crc32(buffer[at : at + 4])) != crc:
            return _BAD, None
        try:
            record = decode(body)
        except CorruptRecord as error:
            if candidate:
                return _BAD, None
            raise CorruptRecord(f"at offset {offset}: {error}") from None
        return FRAME_SIZE + length, record

    def _followed(self, offset: int, final: bool) -> bool | None:
        """Whether a valid frame, or the end of the log, follows a candidate
        that ends at file ``offset`` (None: not known yet)."""
        if offset == self.size:
            return True
        at = offset - self._base
        length = self._buffer[at : at + 4]
        if length == b"\0\0\0\0":
            return True  # a zero length: the padding after the last record
        if final and len(length) < 4 and not length.strip(b"\0"):
            return True  # the end of the file, or zeros up to it
        size, _ = self._frame(offset, final, candidate=True)
        return None if size == _NEED else size > 0

    def _next_candidate(self, final: bool) -> int | None:
        """The next offset from ``_position`` whose type byte could start a
        frame; None if there is none in the bytes fed so far (then
        ``_position`` moves past the offsets ruled out)."""
        buffer = self._buffer
        at = self._position - self._base
        match = _CANDIDATE_TYPE.search(buffer, at + FRAME_SIZE)
        if match is not None:
            return self._base + match.start() - FRAME_SIZE
        self._position = self._base + (len(buffer) if final else max(at, len(buffer) - FRAME_SIZE))
        return None

    def _discard(self) -> None:
        """Drop the bytes before ``_position``: nothing looks back at them."""
        cut = self._position - self._base
        if cut > 0:
            del self._buffer[:cut]
            self._base = self._position
