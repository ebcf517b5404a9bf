"""The text layer of :func:`~shardio_disk.open_file`: CPython's
``TextIOWrapper`` (``Modules/_io/textio.c``), ported to coroutines over a
:class:`~shardio_disk.BufferedFile`.

Decoding and newline translation are the :mod:`codecs` incremental
decoders and :class:`io.IncrementalNewlineDecoder` themselves; what is
ported is the state around them, kept as in C so that results match a file
from :func:`open` exactly:

- reads take chunks of 8192 bytes from the buffer's ``read1`` (more for a
  large ``read(n)``, by the bytes-per-character ratio of the last chunk);
- ``tell()`` returns C's opaque cookie (position, decoder flags, bytes to
  feed, characters to skip, need-EOF, packed in C's byte layout), found by
  replaying the decoder from the last *snapshot* (the point before the
  current chunk where the decoder held no bytes); ``seek(cookie)`` goes back
  to that point and replays the decoder;
- writes are encoded at once (errors surface in ``write``) and kept until
  8192 bytes are pending, a newline needs a flush (line buffering), or a
  read, seek or tell comes;
- no BOM in the middle of a file: the encoder is told the stream has begun
  unless the position is 0.
"""

from __future__ import annotations

import codecs
import io
import operator
import os
import struct
from typing import Any

import attrs

from ._buffered import BufferedFile, _index
from ._iobase import AsyncFile, UnsupportedOperation, _Guard, _Interrupted

#: How many bytes a read asks the buffer for (TextIOWrapper._CHUNK_SIZE).
CHUNK_SIZE = 8192

# The cookie's layout in C: start_pos (off_t), dec_flags, bytes_to_feed,
# chars_to_skip (int each), need_eof (char), little-endian, read unsigned.
_COOKIE = struct.Struct("<qiiib")


@attrs.define
class _Cookie:
    start_pos: int = 0
    dec_flags: int = 0
    bytes_to_feed: int = 0
    chars_to_skip: int = 0
    need_eof: int = 0

    def build(self) -> int:
        packed = _COOKIE.pack(
            self.start_pos, self.dec_flags, self.bytes_to_feed, self.chars_to_skip, self.need_eof
        )
        return int.from_bytes(packed, "little")

    @classmethod
    def parse(cls, value: int) -> _Cookie:
        if value < 0:
            raise OverflowError("can't convert negative int to unsigned")
        try:
            packed = value.to_bytes(_COOKIE.size, "little")
        except OverflowError:
            raise OverflowError("int too big to convert") from None
        return cls(*_COOKIE.unpack(packed))


@attrs.define(eq=False, slots=True, repr=False)
class TextFile(AsyncFile[str]):
    """A text file: what ``open_file(path)``, ``open_file(path, "w")``...
    return, the counterpart of :class:`io.TextIOWrapper`.

    ``encoding``, ``errors`` and ``newline`` work as with :func:`open`:
    universal newlines on input when ``newline`` is None (``\\r`` and
    ``\\r\\n`` read as ``\\n``), ``\\n`` written as ``newline`` when it is one
    of ``"\\r"``, ``"\\r\\n"``. ``tell()`` returns an opaque cookie that only
    ``seek()`` understands (as :meth:`io.TextIOBase.tell`).
    """

    #: The binary file underneath.
    buffer: BufferedFile
    _guard: _Guard
    #: The encoding's name, as given (or the locale's).
    encoding: str
    #: The error handler name (``"strict"`` unless given).
    errors: str
    _newline: str | None
    #: Whether a write containing a newline flushes (``buffering=1``, or a terminal).
    line_buffering: bool
    #: The mode :func:`~shardio_disk.open_file` was given.
    mode: str
    _decoder: Any = attrs.field(default=None, init=False)
    _encoder: Any = attrs.field(default=None, init=False)
    _readuniversal: bool = attrs.field(init=False)
    _readtranslate: bool = attrs.field(init=False)
    _writetranslate: bool = attrs.field(init=False)
    _writenl: str | None = attrs.field(init=False)
    _seekable: bool = attrs.field(init=False)
    _telling: bool = attrs.field(init=False)
    _decoded_chars: str = attrs.field(default="", init=False)
    _decoded_chars_used: int = attrs.field(default=0, init=False)
    _pending: list[bytes] = attrs.field(factory=list, init=False)
    _pending_count: int = attrs.field(default=0, init=False)
    # (dec_flags, next_input): the decoder's flags at the last point where it
    # held no bytes, and the input from there on. tell() replays it.
    _snapshot: tuple[int, bytes] | None = attrs.field(default=None, init=False)
    _b2cratio: float = attrs.field(default=0.0, init=False)

    def __attrs_post_init__(self) -> None:
        newline = self._newline
        codec_info = codecs.lookup(self.encoding)
        if not codec_info._is_text_encoding:
            raise LookupError(
                f"{self.encoding!r} is not a text encoding; "
                "use codecs.open() to handle arbitrary codecs"
            )
        self._readuniversal = not newline
        self._readtranslate = newline is None
        self._writetranslate = newline != ""
        self._writenl = newline if newline and newline != "\n" else None
        if self.buffer.readable():
            decoder = codec_info.incrementaldecoder(self.errors)
            if self._readuniversal:
                self._decoder = io.IncrementalNewlineDecoder(decoder, self._readtranslate)
            else:
                self._decoder = decoder
        if self.buffer.writable():
            self._encoder = codec_info.incrementalencoder(self.errors)
        self._seekable = self._telling = self.buffer.seekable()

    async def _start(self) -> None:
        """The part of the constructor that asks the file where it is: no BOM
        in the middle of a file."""
        if self._seekable and self._encoder is not None and await self.buffer._tell() != 0:
            self._encoder.setstate(0)

    def __repr__(self) -> str:
        return (
            f"<shardio_disk.TextFile name={self.name!r} mode={self.mode!r} "
            f"encoding={self.encoding!r}>"
        )

    # -- state --------------------------------------------------------------------

    @property
    def name(self) -> str | bytes:
        """The path the file was opened with."""
        return self.buffer.name

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return self.buffer.closed

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        """The newlines met so far when reading with universal newlines
        (``"\\n"``, ``"\\r\\n"``, a tuple of several), or None."""
        if self._decoder is None:
            return None
        return getattr(self._decoder, "newlines", None)

    def _check_closed(self) -> None:
        if self.buffer.closed:
            raise ValueError("I/O operation on closed file.")

    def fileno(self) -> int:
        """The file descriptor."""
        return self.buffer.fileno()

    def isatty(self) -> bool:
        """True if the file is a terminal."""
        return self.buffer.isatty()

    def readable(self) -> bool:
        """True if the file can be read."""
        return self.buffer.readable()

    def writable(self) -> bool:
        """True if the file can be written."""
        return self.buffer.writable()

    def seekable(self) -> bool:
        """True if the file supports ``seek`` and ``tell``."""
        return self.buffer.seekable()

    # -- decoded characters ------------------------------------------------------------

    def _set_decoded_chars(self, chars: str) -> None:
        self._decoded_chars = chars
        self._decoded_chars_used = 0

    def _get_decoded_chars(self, n: int = -1) -> str:
        used = self._decoded_chars_used
        avail = len(self._decoded_chars) - used
        if n < 0 or n > avail:
            n = avail
        self._decoded_chars_used = used + n
        return self._decoded_chars[used : used + n]

    async def _read_chunk(self, size_hint: int) -> bool:
        """Read and decode the next chunk into the decoded characters; False
        at the end of the file. The whole chunk goes to the decoder, which
        may keep some of it for later."""
        if self._decoder is None:
            raise UnsupportedOperation("not readable")
        if self._telling:
            # Snapshot a point where the decoder held no bytes: len(dec_buffer)
            # bytes back, with the flags dec_flags.
            dec_buffer, dec_flags = self._decoder.getstate()
        if size_hint > 0:
            size_hint = int(max(self._b2cratio, 1.0) * size_hint)
        input_chunk = await self.buffer._read1(max(CHUNK_SIZE, size_hint))
        eof = not input_chunk
        decoded = self._decoder.decode(input_chunk, eof)
        self._set_decoded_chars(decoded)
        self._b2cratio = len(input_chunk) / len(decoded) if decoded else 0.0
        if decoded:
            eof = False
        if self._telling:
            self._snapshot = (dec_flags, dec_buffer + input_chunk)
        return not eof

    async def _writeflush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending = []
        self._pending_count = 0
        await self.buffer._write(data)

    # -- the operations, with the lock held -------------------------------------------

    async def _write(self, text: Any) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._check_closed()
        encoder = self._encoder
        if encoder is None:
            raise UnsupportedOperation("not writable")
        length = len(text)
        haslf = False
        if (self._writetranslate and self._writenl is not None) or self.line_buffering:
            haslf = "\n" in text
        if haslf and self._writetranslate and self._writenl is not None:
            text = text.replace("\n", self._writenl)
        needflush = self.line_buffering and (haslf or "\r" in text)
        data = encoder.encode(text)
        if self._pending_count + len(data) > CHUNK_SIZE:
            await self._writeflush()
        self._pending.append(data)
        self._pending_count += len(data)
        if self._pending_count >= CHUNK_SIZE or needflush:
            await self._writeflush()
        if needflush:
            await self.buffer._flush()
        self._set_decoded_chars("")
        self._snapshot = None
        if self._decoder is not None:
            self._decoder.reset()
        return length

    async def _read(self, size: int | None = -1) -> str:
        n = -1 if size is None else _index(size)
        self._check_closed()
        decoder = self._decoder
        if decoder is None:
            raise UnsupportedOperation("not readable")
        await self._writeflush()
        if n < 0:
            data = await self.buffer._read()
            decoded: str = decoder.decode(data, True)
            result = self._get_decoded_chars(-1) + decoded
            self._set_decoded_chars("")
            self._snapshot = None
            return result
        result = self._get_decoded_chars(n)
        remaining = n - len(result)
        chunks: list[str] = []
        try:
            while remaining > 0:
                if not await self._read_chunk(remaining):
                    break
                if result:
                    chunks.append(result)
                result = self._get_decoded_chars(remaining)
                remaining -= len(result)
        except _Interrupted:
            # Consume nothing: the characters taken so far are read again.
            chunks.append(result)
            self._set_decoded_chars("".join(chunks))
            raise
        if chunks:
            chunks.append(result)
            return "".join(chunks)
        return result

    async def _readline(self, size: int = -1) -> str:
        limit = operator.index(size)
        self._check_closed()
        await self._writeflush()
        chunked = 0
        chunks: list[str] = []
        remaining: str | None = None
        line: str | None = None
        start = endpos = offset_to_buffer = 0
        try:
            while True:
                # First, get some data if necessary.
                more = True
                while not self._decoded_chars:
                    more = await self._read_chunk(0)
                    if not more:
                        break
                if not more:
                    # End of file.
                    self._set_decoded_chars("")
                    self._snapshot = None
                    start = endpos = offset_to_buffer = 0
                    line = None
                    break
                if remaining is None:
                    line = self._decoded_chars
                    start = self._decoded_chars_used
                    offset_to_buffer = 0
                else:
                    line = remaining + self._decoded_chars
                    start = 0
                    offset_to_buffer = len(remaining)
                    remaining = None
                found, consumed = self._find_line_ending(line, start)
                if found >= 0:
                    endpos = start + found
                    if limit >= 0 and endpos - start + chunked >= limit:
                        endpos = start + limit - chunked
                    break
                # No line ending: everything up to `consumed` can be put aside.
                endpos = start + consumed
                if limit >= 0 and endpos - start + chunked >= limit:
                    endpos = start + limit - chunked
                    break
                if endpos > start:
                    chunks.append(line[start:endpos])
                    chunked += endpos - start
                if endpos < len(line):
                    remaining = line[endpos:]
                line = None
                self._set_decoded_chars("")
        except _Interrupted:
            # Consume nothing: put back what this call took.
            self._set_decoded_chars("".join(chunks) + (remaining or ""))
            raise
        if line is not None:
            # The line ends in the current decoded characters.
            self._decoded_chars_used = endpos - offset_to_buffer
            line = line[start:endpos]
        if remaining is not None:
            chunks.append(remaining)
        if chunks:
            if line is not None:
                chunks.append(line)
            return "".join(chunks)
        return line or ""

    def _find_line_ending(self, line: str, start: int) -> tuple[int, int]:
        """Where the first line ending after ``start`` ends (relative to
        ``start``), or -1 and how many characters may be put aside."""
        if self._readtranslate:
            pos = line.find("\n", start)
            if pos >= 0:
                return pos - start + 1, 0
            return -1, len(line) - start
        if self._readuniversal:
            # Any of \r, \r\n, \n; the decoder never splits a \r\n.
            nl = line.find("\n", start)
            cr = line.find("\r", start)
            if cr == -1 or (0 <= nl < cr):
                if nl == -1:
                    return -1, len(line) - start
                return nl - start + 1, 0
            if nl == cr + 1:
                return cr - start + 2, 0
            return cr - start + 1, 0
        readnl = self._newline
        assert readnl
        pos = line.find(readnl, start)
        if pos >= 0:
            return pos - start + len(readnl), 0
        if len(readnl) == 1:
            return -1, len(line) - start
        # A "\r\n" may be split: keep a trailing "\r" for the next chunk.
        tail = line.find(readnl[0], max(start, len(line) - len(readnl) + 1))
        return -1, (tail if tail >= 0 else len(line)) - start

    async def _next_line(self) -> str:
        # __next__: no telling while iterating; telling resumes at the end.
        self._telling = False
        line = await self._readline(-1)
        if not line:
            self._snapshot = None
            self._telling = self._seekable
        return line

    async def _flush(self) -> None:
        self._check_closed()
        self._telling = self._seekable
        await self._writeflush()
        await self.buffer._flush()

    def _decoder_setstate(self, cookie: _Cookie) -> None:
        # At the start of the stream reset the decoder rather than setting
        # its state: some (UTF-16) expect a BOM there, with flags not 0.
        if cookie.start_pos == 0 and cookie.dec_flags == 0:
            self._decoder.reset()
        else:
            self._decoder.setstate((b"", cookie.dec_flags))

    def _encoder_reset(self, start_of_stream: bool) -> None:
        # At the start the next write begins with a BOM (for the codecs that
        # have one); anywhere else it must not.
        if start_of_stream:
            self._encoder.reset()
        else:
            self._encoder.setstate(0)

    async def _tell(self) -> int:
        self._check_closed()
        if not self._seekable:
            raise UnsupportedOperation("underlying stream is not seekable")
        if not self._telling:
            raise OSError("telling position disabled by next() call")
        await self._writeflush()
        await self._flush()
        position = await self.buffer._tell()
        decoder = self._decoder
        if decoder is None or self._snapshot is None:
            return position
        cookie = _Cookie(start_pos=position)
        # Skip back to the snapshot point (see _read_chunk).
        cookie.dec_flags, next_input = self._snapshot
        cookie.start_pos -= len(next_input)
        # How many decoded characters have been used up since the snapshot?
        if self._decoded_chars_used == 0:
            return cookie.build()
        chars_to_skip = self._decoded_chars_used
        saved_state = decoder.getstate()
        try:
            # Fast search for a start point close to the position: one
            # decode call for fixed-width codecs, a few for the others.
            skip_bytes = int(self._b2cratio * chars_to_skip)
            skip_back = 1
            while skip_bytes > 0:
                self._decoder_setstate(cookie)
                decoded = len(decoder.decode(next_input[:skip_bytes]))
                if decoded <= chars_to_skip:
                    dec_buffer, dec_flags = decoder.getstate()
                    if not dec_buffer:
                        # Before the position, nothing buffered: a start point.
                        cookie.dec_flags = dec_flags
                        chars_to_skip -= decoded
                        break
                    # Back by what the decoder holds; restart the heuristic.
                    skip_bytes -= len(dec_buffer)
                    skip_back = 1
                else:
                    # Too far: back a little, then more.
                    skip_bytes -= skip_back
                    skip_back *= 2
            if skip_bytes <= 0:
                skip_bytes = 0
                self._decoder_setstate(cookie)
            cookie.start_pos += skip_bytes
            cookie.chars_to_skip = chars_to_skip
            if chars_to_skip == 0:
                return cookie.build()
            # Feed the decoder a byte at a time until it has produced
            # chars_to_skip characters, noting the last safe start point
            # (where it held no bytes) on the way.
            chars_decoded = 0
            index = skip_bytes
            end = len(next_input)
            while index < end:
                chars_decoded += len(decoder.decode(next_input[index : index + 1]))
                cookie.bytes_to_feed += 1
                dec_buffer, dec_flags = decoder.getstate()
                if not dec_buffer and chars_decoded <= chars_to_skip:
                    cookie.start_pos += cookie.bytes_to_feed
                    chars_to_skip -= chars_decoded
                    cookie.dec_flags = dec_flags
                    cookie.bytes_to_feed = 0
                    chars_decoded = 0
                if chars_decoded >= chars_to_skip:
                    break
                index += 1
            if index == end:
                # Not enough characters: they need the end of the input.
                chars_decoded += len(decoder.decode(b"", True))
                cookie.need_eof = 1
                if chars_decoded < chars_to_skip:
                    raise OSError("can't reconstruct logical file position")
            cookie.chars_to_skip = chars_to_skip
            return cookie.build()
        finally:
            decoder.setstate(saved_state)

    async def _seek(self, cookie_value: int, whence: int = os.SEEK_SET) -> int:
        self._check_closed()
        if not self._seekable:
            raise UnsupportedOperation("underlying stream is not seekable")
        if whence == os.SEEK_CUR:
            if cookie_value != 0:
                raise UnsupportedOperation("can't do nonzero cur-relative seeks")
            # Seeking to the current position syncs the buffer with it.
            cookie_value = await self._tell()
        elif whence == os.SEEK_END:
            if cookie_value != 0:
                raise UnsupportedOperation("can't do nonzero end-relative seeks")
            await self._flush()
            self._set_decoded_chars("")
            self._snapshot = None
            if self._decoder is not None:
                self._decoder.reset()
            position = await self.buffer._seek(0, os.SEEK_END)
            if self._encoder is not None:
                self._encoder_reset(position == 0)
            return position
        elif whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if cookie_value < 0:
            raise ValueError(f"negative seek position {cookie_value!r}")
        await self._flush()
        # Go back to the safe start point and replay read(chars_to_skip).
        cookie = _Cookie.parse(int(cookie_value))
        await self.buffer._seek(cookie.start_pos)
        self._set_decoded_chars("")
        self._snapshot = None
        if self._decoder is not None:
            self._decoder_setstate(cookie)
        if cookie.chars_to_skip:
            # As _read_chunk: feed the decoder and keep a snapshot.
            input_chunk = await self.buffer._read(cookie.bytes_to_feed)
            self._snapshot = (cookie.dec_flags, input_chunk)
            decoded = self._decoder.decode(input_chunk, bool(cookie.need_eof))
            self._set_decoded_chars(decoded)
            if len(decoded) < cookie.chars_to_skip:
                raise OSError("can't restore logical file position")
            self._decoded_chars_used = cookie.chars_to_skip
        else:
            self._snapshot = (cookie.dec_flags, b"")
        # Reset the encoder too (for the BOM).
        if self._encoder is not None:
            self._encoder_reset(cookie.start_pos == 0 and cookie.dec_flags == 0)
        return cookie_value

    async def _truncate(self, pos: int | None = None) -> int:
        await self._flush()
        return await self.buffer._truncate(pos)

    async def _close(self) -> None:
        if self.closed:
            return
        try:
            await self._flush()
        finally:
            await self.buffer._close()

    # -- the public methods -----------------------------------------------------------

    async def read(self, size: int | None = -1) -> str:
        """Read ``size`` characters, fewer only at the end of the file;
        everything to the end if ``size`` is negative or None."""
        return await self._guard.run(self._read, size)

    async def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        """Go to ``cookie``, a value from :meth:`tell` (or 0), or to the end
        with ``seek(0, 2)``; return the new position's cookie."""
        return await self._guard.run(self._seek, cookie, whence)

    async def tell(self) -> int:
        """An opaque cookie for the current position, for :meth:`seek`."""
        return await self._guard.run(self._tell)

    async def truncate(self, pos: int | None = None) -> int:
        """Write out what is pending, then resize the file to ``pos`` bytes
        (default: the buffer's position); return the new size."""
        return await self._guard.run(self._truncate, pos)

    async def flush(self) -> None:
        """Write out the pending text and the buffer."""
        await self._guard.run(self._flush)
