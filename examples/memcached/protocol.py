"""The memcached ASCII protocol as a sans-io state machine (in the manner of h11).

:class:`Parser` turns bytes, fed in chunks of any size, into :data:`Request`
objects. No sockets and no store are involved, so everything here is tested
and fuzzed on plain bytes. The parser itself answers only what memcached
answers before running anything (a malformed command is an :class:`Invalid`
request carrying its error line); the replies of commands that run are
worded where they run, by :mod:`.commands` and :mod:`.meta`.

What memcached does, and so what this parser does
--------------------------------------------------
The reference is memcached 1.6's ``proto_text.c``; the quirks below are kept on
purpose, because real clients and test suites observe them.

* A command line ends at ``\\n``; one ``\\r`` before it is dropped (only when the
  line has at least one other byte). The line is cut at its first NUL byte
  (memcached tokenizes a C string). Tokens are separated by spaces only: a tab
  is part of a token.
* At most 24 tokens are looked at (23 real ones plus a terminal marker); a
  longer line makes every fixed-arity command fail its arity check with
  ``ERROR``. Retrieval commands (``get`` and friends) walk all their keys.
* Numbers are read the way ``strtol``/``strtoul`` read them: leading
  whitespace and a sign are accepted, and the number may be followed by
  whitespace and anything else (``"5\\tjunk"`` is 5). ``safe_strtol`` results are
  then truncated to 32 bits (``"4294967297"`` is 1), ``safe_strtoul`` results to
  32 unsigned bits, and a negative number that does not fit in a signed long is
  refused by the unsigned readers.
* ``noreply`` is recognised only as the last token, and from then on silences
  every reply of that command, error lines included.
* An unknown command is ``ERROR``. A line whose last token starts with
  ``HTTP/`` (a stray HTTP request) closes the connection silently.
* A line that has no ``\\n`` after 2048 buffered bytes closes the connection,
  unless it is a ``get``/``gets`` (large multigets are legal). memcached lets
  those grow without bound; here they are bounded by ``max_multiget_line``,
  past which the connection gets ``SERVER_ERROR out of memory reading
  request`` and is closed, as memcached does when it cannot grow its buffer.
  A complete line longer than memcached's 16 KiB read buffer (which memcached
  could never see whole) is treated the same way.
* A storage command reads exactly ``<bytes> + 2`` bytes of data; if they do not
  end with ``\\r\\n`` the reply is ``CLIENT_ERROR bad data chunk`` and parsing
  resumes right after those bytes. An item too large for ``item_size_max``
  (memcached's ``-I``, counting its item header as memcached does) is refused
  with ``SERVER_ERROR object too large for cache`` and its data is swallowed
  as it arrives, never buffered.

Memory is bounded: between calls to :meth:`Parser.feed` the parser keeps at
most one partial command line (at most ``max_multiget_line`` bytes) or one
partial data block (at most the item size limit plus 2); see
:attr:`Parser.buffered` and :meth:`Parser.buffer_limit`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Literal, TypeAlias

import attrs

__all__ = [
    "BAD_FORMAT",
    "ITEM_HEADER_SIZE",
    "KEY_MAX_LENGTH",
    "MAX_LINE_WITHOUT_NEWLINE",
    "META_MODES_SET",
    "MFLAG_MAX_OPAQUE_LENGTH",
    "READ_BUFFER_SIZE",
    "Arithmetic",
    "CacheMemlimit",
    "Close",
    "Delete",
    "FlushAll",
    "Invalid",
    "MetaArithmetic",
    "MetaDebug",
    "MetaDelete",
    "MetaFlags",
    "MetaGet",
    "MetaNoop",
    "MetaSet",
    "Parser",
    "Quit",
    "Request",
    "Retrieve",
    "Stats",
    "Store",
    "StoreTooLarge",
    "StoreVerb",
    "Touch",
    "Verbosity",
    "Version",
    "item_total_size",
    "iter_requests",
    "strtol32",
    "strtoul32",
    "strtoull",
]

KEY_MAX_LENGTH = 250
"""memcached's limit on key length (``KEY_MAX_LENGTH``)."""

MAX_LINE_WITHOUT_NEWLINE = 2048
"""Buffered bytes without a newline after which a non-multiget line closes
the connection (memcached's ``try_read_command_ascii``)."""

READ_BUFFER_SIZE = 16384
"""memcached's read buffer: the longest non-multiget line it can see whole."""

MAX_TOKENS = 24
"""memcached's ``MAX_TOKENS``: 23 real tokens and a terminal one."""

ITEM_HEADER_SIZE = 48
"""``sizeof(item)`` in a 64-bit memcached 1.6: counted in item sizes."""

CAS_SIZE = 8
MFLAG_MAX_OPT_LENGTH = 20
MFLAG_MAX_OPAQUE_LENGTH = 32
DEFAULT_MAX_MULTIGET_LINE = 1 << 20

_C_SPACE = b" \t\n\v\f\r"
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_ULONG_MAX = (1 << 64) - 1


def item_total_size(nkey: int, flags: int, nbytes: int) -> int:
    """memcached's ``ITEM_ntotal``: the bytes an item of ``nkey`` key bytes and
    ``nbytes`` value bytes (the trailing ``\\r\\n`` included) is accounted as,
    with its header, key terminator, client flags (stored only when nonzero)
    and CAS. This is what ``-I`` limits and what ``stats bytes`` adds up."""
    return ITEM_HEADER_SIZE + nkey + 1 + (4 if flags else 0) + nbytes + CAS_SIZE


# --------------------------------------------------------------------------
# Numbers, read as C's strto* family reads them.


def _c_digits(token: bytes) -> tuple[bool, int, int] | None:
    """Scan ``token`` like ``strtol``: optional whitespace, sign, decimal
    digits. Returns (negative, magnitude, end index), or None when no digit was
    found or when the digits are followed by something other than whitespace
    (memcached's ``safe_strto*`` check on ``endptr``)."""
    if token.isdigit():  # the usual case, answered in C
        return False, int(token), len(token)
    i = 0
    n = len(token)
    while i < n and token[i] in _C_SPACE:
        i += 1
    negative = False
    if i < n and token[i] in b"+-":
        negative = token[i] == 0x2D
        i += 1
    start = i
    while i < n and 0x30 <= token[i] <= 0x39:
        i += 1
    if i == start:
        return None
    if i < n and token[i] not in _C_SPACE:
        return None
    return negative, int(token[start:i]), i


def strtol32(token: bytes) -> int | None:
    """memcached's ``safe_strtol``: a ``long`` (range-checked at 64 bits), then
    stored in an ``int32_t`` -- so it wraps. None if it is not a number."""
    scanned = _c_digits(token)
    if scanned is None:
        return None
    negative, magnitude, _ = scanned
    value = -magnitude if negative else magnitude
    if not _LONG_MIN <= value <= _LONG_MAX:
        return None
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _strtoul64(token: bytes) -> int | None:
    scanned = _c_digits(token)
    if scanned is None:
        return None
    negative, magnitude, _ = scanned
    if magnitude > _ULONG_MAX:
        return None
    value = (-magnitude) & _ULONG_MAX if negative else magnitude
    if value > _LONG_MAX and b"-" in token:
        return None
    return value


def strtoul32(token: bytes) -> int | None:
    """memcached's ``safe_strtoul`` as its callers use it: an ``unsigned
    long`` (a negative one refused when it does not fit a signed long), stored
    in 32 bits."""
    value = _strtoul64(token)
    return None if value is None else value & 0xFFFFFFFF


def strtoull(token: bytes) -> int | None:
    """memcached's ``safe_strtoull``: an unsigned 64-bit number."""
    return _strtoul64(token)


# --------------------------------------------------------------------------
# Requests: what the parser produces. Exptimes are kept as the client sent
# them (after 32-bit truncation); the store turns them into deadlines.

StoreVerb: TypeAlias = Literal["set", "add", "replace", "append", "prepend", "cas"]


# Retrieve and Store are made for nearly every request: plain slotted classes
# are built three times faster than frozen ones (hot path). Treat them as
# immutable all the same.
@attrs.define(slots=True)
class Retrieve:
    """``get``/``gets``/``gat``/``gats`` (and the ancient ``bget``).

    ``keys`` are looked up in order. ``exptime`` is set for ``gat``/``gats``.
    When ``key_error`` is true a key longer than 250 bytes followed ``keys``:
    memcached has already looked the earlier keys up (their statistics and
    touches happen) but replies only ``CLIENT_ERROR bad command line format``.
    """

    keys: tuple[bytes, ...]
    with_cas: bool = False
    exptime: int | None = None
    key_error: bool = False


@attrs.define(slots=True)  # not frozen: see Retrieve
class Store:
    """``set``/``add``/``replace``/``append``/``prepend``/``cas`` with its
    data block. ``cas_unique`` is 0 except for ``cas``."""

    verb: StoreVerb
    key: bytes
    flags: int
    exptime: int
    value: bytes
    cas_unique: int = 0
    noreply: bool = False

    def __reduce__(self) -> tuple[type[Store], tuple[object, ...]]:
        # Sent to other shards on the hot path: by constructor arguments,
        # about twice as fast as attrs' default (state) pickling.
        return Store, (
            self.verb,
            self.key,
            self.flags,
            self.exptime,
            self.value,
            self.cas_unique,
            self.noreply,
        )


@attrs.frozen
class StoreTooLarge:
    """A storage command whose item exceeds the item size limit: the reply is
    ``SERVER_ERROR object too large for cache``, and for ``set`` memcached
    also deletes the key, so that no stale value survives a failed set. The
    data block is swallowed by the parser."""

    verb: StoreVerb
    key: bytes
    noreply: bool = False


@attrs.frozen
class Delete:
    """``delete <key> [0] [noreply]``."""

    key: bytes
    noreply: bool = False

    def __reduce__(self) -> tuple[type[Delete], tuple[object, ...]]:
        return Delete, (self.key, self.noreply)  # hot path: see Store


@attrs.frozen
class Arithmetic:
    """``incr``/``decr <key> <delta> [noreply]``."""

    key: bytes
    delta: int
    incr: bool
    noreply: bool = False

    def __reduce__(self) -> tuple[type[Arithmetic], tuple[object, ...]]:
        return Arithmetic, (self.key, self.delta, self.incr, self.noreply)  # see Store


@attrs.frozen
class Touch:
    """``touch <key> <exptime> [noreply]``."""

    key: bytes
    exptime: int
    noreply: bool = False

    def __reduce__(self) -> tuple[type[Touch], tuple[object, ...]]:
        return Touch, (self.key, self.exptime, self.noreply)  # hot path: see Store


@attrs.frozen
class FlushAll:
    """``flush_all [delay] [noreply]``."""

    exptime: int = 0
    noreply: bool = False


@attrs.frozen
class Stats:
    """``stats [args...]``: the tokens after ``stats``."""

    args: tuple[bytes, ...] = ()


@attrs.frozen
class Version:
    """``version``."""


@attrs.frozen
class Verbosity:
    """``verbosity <level> [noreply]``: replies OK (levels are accepted and
    remembered, as memcached does)."""

    level: int
    noreply: bool = False


@attrs.frozen
class CacheMemlimit:
    """``cache_memlimit <megabytes> [noreply]``: changes the memory limit."""

    megabytes: int
    noreply: bool = False


@attrs.frozen
class Quit:
    """``quit``: close the connection after the replies before it are sent."""


@attrs.frozen
class Close:
    """Close the connection without a reply (line too long, stray HTTP)."""

    reason: str


@attrs.frozen
class Invalid:
    """A reply line decided by the parser alone: ``ERROR``, a
    ``CLIENT_ERROR``/``SERVER_ERROR`` for a malformed command.

    ``noreply`` silences it, as memcached does once it has seen ``noreply``.
    ``counts`` names a statistic memcached bumps on this error anyway
    (``cmd_flush`` for a bad ``flush_all``, ``cmd_set`` for a bad data chunk).
    """

    line: bytes
    noreply: bool = False
    counts: str | None = None


@attrs.frozen
class MetaFlags:
    """The flags of a meta command, as parsed by ``_meta_flag_preparse``.

    ``tokens`` are all the flag tokens in order (their first byte is the flag),
    since replies echo ``O`` and ``k`` and list return flags in request order.
    """

    tokens: tuple[bytes, ...]
    key_binary: bool = False
    no_update: bool = False
    no_reply: bool = False
    value: bool = False
    vivify_exptime: int | None = None
    exptime: int | None = None
    recache_exptime: int | None = None
    client_flags: int = 0
    cas: int | None = None
    mode: int | None = None
    delta: int = 1
    initial: int = 0
    set_stale: bool = False


@attrs.frozen
class MetaGet:
    """``mg <key> <flags>*``."""

    key: bytes
    flags: MetaFlags


@attrs.frozen
class MetaSet:
    """``ms <key> <datalen> <flags>*`` with its data block."""

    key: bytes
    flags: MetaFlags
    value: bytes


@attrs.frozen
class MetaDelete:
    """``md <key> <flags>*``."""

    key: bytes
    flags: MetaFlags


@attrs.frozen
class MetaArithmetic:
    """``ma <key> <flags>*``."""

    key: bytes
    flags: MetaFlags


@attrs.frozen
class MetaNoop:
    """``mn``: replies ``MN``."""


@attrs.frozen
class MetaDebug:
    """``me <key> [b]``: one line of item internals."""

    key: bytes
    key_binary: bool = False


Request: TypeAlias = (
    Retrieve
    | Store
    | StoreTooLarge
    | Delete
    | Arithmetic
    | Touch
    | FlushAll
    | Stats
    | Version
    | Verbosity
    | CacheMemlimit
    | Quit
    | Close
    | Invalid
    | MetaGet
    | MetaSet
    | MetaDelete
    | MetaArithmetic
    | MetaNoop
    | MetaDebug
)

ERROR = b"ERROR"
BAD_FORMAT = b"CLIENT_ERROR bad command line format"
BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument"

_STORE_VERBS: dict[bytes, StoreVerb] = {
    b"set": "set",
    b"add": "add",
    b"replace": "replace",
    b"append": "append",
    b"prepend": "prepend",
}
META_MODES_SET: dict[int, StoreVerb] = {
    ord("E"): "add",
    ord("A"): "append",
    ord("P"): "prepend",
    ord("R"): "replace",
    ord("S"): "set",
}


def _tokenize(line: bytes) -> list[bytes]:
    """Every space-separated token of ``line`` (memcached skips empty ones)."""
    return [token for token in line.split(b" ") if token]


def _noreply(tokens: list[bytes], ntokens: int) -> bool:
    """memcached's ``set_noreply_maybe``: is the last real token ``noreply``?"""
    return tokens[ntokens - 2] == b"noreply"


def decode_binary_key(key: bytes) -> bytes | None:
    """A base64 key of the meta protocol's ``b`` flag, or None if invalid."""
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded or None


@attrs.define(eq=False, slots=True)
class _PendingData:
    """A command line that has been read and now waits for its data block."""

    size: int
    verb: StoreVerb = "set"
    key: bytes = b""
    flags: int = 0
    exptime: int = 0
    cas_unique: int = 0
    noreply: bool = False
    meta: MetaFlags | None = None


@attrs.define(eq=False, slots=True)
class Parser:
    """Bytes in, :data:`Request` objects out, for one connection.

    ``feed(data)`` accepts any chunk (possibly empty, possibly ending in the
    middle of a line or a data block) and returns every request completed by
    it, in order. After :class:`Quit` or :class:`Close` the parser is
    :attr:`closed` and ignores further input.

    ``item_size_max`` is memcached's ``-I``; ``max_multiget_line`` bounds a
    ``get`` line's length (memcached has no bound).
    """

    item_size_max: int = 1024 * 1024
    max_multiget_line: int = DEFAULT_MAX_MULTIGET_LINE
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _scanned: int = attrs.field(default=0, init=False)
    _pending: _PendingData | None = attrs.field(default=None, init=False)
    _swallow: int = attrs.field(default=0, init=False)
    closed: bool = attrs.field(default=False, init=False)

    @property
    def buffered(self) -> int:
        """Bytes held between calls to :meth:`feed`."""
        return len(self._buffer)

    def buffer_limit(self) -> int:
        """The most :attr:`buffered` can ever be after :meth:`feed` returns."""
        data_block = self.item_size_max + 2
        return max(self.max_multiget_line, READ_BUFFER_SIZE, data_block)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Request]:
        """Take the next bytes of the stream; return the requests they complete."""
        out: list[Request] = []
        if self.closed:
            return out
        if self._swallow:
            view = memoryview(data).cast("B")
            skipped = min(self._swallow, len(view))
            self._swallow -= skipped
            data = view[skipped:]
        buffer = self._buffer
        # Hot path: with nothing left over from the previous call (the usual
        # case), parse the new bytes where they are, without copying them
        # into the buffer first; only what is left over at the end is kept.
        source: bytes | bytearray
        if buffer:
            buffer += data
            source = buffer
        else:
            source = data if isinstance(data, bytes) else bytes(data)
        position = 0
        while not self.closed:
            pending = self._pending
            if self._swallow:
                # Discard straight from the source (the rest arrives later and
                # is dropped at the top of feed, never buffered).
                skipped = min(self._swallow, len(source) - position)
                self._swallow -= skipped
                position += skipped
                if self._swallow:
                    break
            elif pending is not None:
                if len(source) - position < pending.size:
                    break
                block = bytes(source[position : position + pending.size])
                position += pending.size
                self._pending = None
                out.append(self._complete_data(pending, block))
            else:
                newline = source.find(b"\n", max(position, self._scanned))
                if newline < 0:
                    self._scanned = len(source)
                    self._check_partial_line(source, position, out)
                    break
                line = bytes(source[position:newline])
                position = newline + 1
                self._scanned = position
                self._process_line(line, out)
        if self.closed:
            buffer.clear()
            self._scanned = 0
            return out
        if source is buffer:
            del buffer[:position]
        elif position < len(source):
            buffer += memoryview(source)[position:]
        self._scanned = max(0, self._scanned - position)
        return out

    # -- lines -------------------------------------------------------------

    def _check_partial_line(
        self, buffer: bytes | bytearray, position: int, out: list[Request]
    ) -> None:
        """memcached's rule for a line without a newline yet."""
        waiting = len(buffer) - position
        if waiting <= MAX_LINE_WITHOUT_NEWLINE:
            return
        if not self._is_multiget(buffer, position):
            self._close(out, "line too long")
        elif waiting > self.max_multiget_line:
            out.append(Invalid(b"SERVER_ERROR out of memory reading request"))
            self._close(out, "multiget line too long")

    @staticmethod
    def _is_multiget(buffer: bytes | bytearray, position: int) -> bool:
        start = position
        while start < len(buffer) and buffer[start] == 0x20:
            start += 1
        if start - position > 100:
            return False
        return buffer.startswith(b"get ", start) or buffer.startswith(b"gets ", start)

    def _close(self, out: list[Request], reason: str) -> None:
        out.append(Close(reason))
        self.closed = True

    def _process_line(self, line: bytes, out: list[Request]) -> None:
        if len(line) > READ_BUFFER_SIZE:
            if not self._is_multiget(line, 0):
                self._close(out, "line too long")
                return
            if len(line) > self.max_multiget_line:
                out.append(Invalid(b"SERVER_ERROR out of memory reading request"))
                self._close(out, "multiget line too long")
                return
        if len(line) > 1 and line[-1] == 0x0D:
            line = line[:-1]
        nul = line.find(b"\0")
        if nul >= 0:
            line = line[:nul]
        all_tokens = _tokenize(line)
        tokens = all_tokens[: MAX_TOKENS - 1]
        ntokens = len(tokens) + 1
        if ntokens < 2 or len(tokens[0]) < 2:
            out.append(Invalid(ERROR))
            return
        command = tokens[0]
        first = command[0]
        if first == 0x6D and len(command) == 2:  # "m?": meta commands
            request = self._meta(command[1], tokens, ntokens)
            if request is not None:
                out.append(request)
        elif first == 0x67:  # "g"
            if ntokens < 3:
                out.append(Invalid(ERROR))
            elif command in (b"get", b"gets", b"gat", b"gats"):
                out.append(_retrieve(command, all_tokens))
            else:
                out.append(Invalid(ERROR))
        elif command in _STORE_VERBS:
            if ntokens not in (6, 7):
                out.append(Invalid(ERROR))
            else:
                self._update(_STORE_VERBS[command], tokens, ntokens, out)
        elif command == b"cas":
            if ntokens not in (7, 8):
                out.append(Invalid(ERROR))
            else:
                self._update("cas", tokens, ntokens, out)
        elif command in (b"incr", b"decr"):
            out.append(_arithmetic(command == b"incr", tokens, ntokens))
        elif command == b"delete":
            out.append(_delete(tokens, ntokens))
        elif command == b"touch":
            out.append(_touch(tokens, ntokens))
        elif command == b"stats":
            out.append(Stats(tuple(all_tokens[1:])))
        elif command == b"bget":
            out.append(_retrieve(b"get", all_tokens) if ntokens >= 3 else Invalid(ERROR))
        elif command == b"flush_all":
            out.append(_flush_all(tokens, ntokens))
        elif command == b"version":
            out.append(Version())
        elif command == b"quit":
            out.append(Quit())
            self.closed = True
        elif command == b"verbosity":
            out.append(_verbosity(tokens, ntokens))
        elif command == b"cache_memlimit":
            out.append(_cache_memlimit(tokens, ntokens))
        elif command in _ADMIN:
            out.append(_ADMIN[command](tokens, ntokens))
        elif tokens[ntokens - 2].startswith(b"HTTP/"):
            self._close(out, "HTTP request")
        else:
            out.append(Invalid(ERROR))

    def _item_fits(self, nkey: int, flags: int, vlen: int) -> bool:
        return item_total_size(nkey, flags, vlen + 2) <= self.item_size_max

    def _update(
        self, verb: StoreVerb, tokens: list[bytes], ntokens: int, out: list[Request]
    ) -> None:
        """memcached's ``process_update_command``."""
        noreply = _noreply(tokens, ntokens)
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            out.append(Invalid(BAD_FORMAT, noreply))
            return
        flags = strtoul32(tokens[2])
        exptime = strtol32(tokens[3])
        vlen = strtol32(tokens[4])
        if flags is None or exptime is None or vlen is None:
            out.append(Invalid(BAD_FORMAT, noreply))
            return
        cas_unique = 0
        if verb == "cas":
            parsed = strtoull(tokens[5])
            if parsed is None:
                out.append(Invalid(BAD_FORMAT, noreply))
                return
            cas_unique = parsed
        if vlen < 0 or vlen > (1 << 31) - 3:
            out.append(Invalid(BAD_FORMAT, noreply))
            return
        if not self._item_fits(len(key), flags, vlen):
            out.append(StoreTooLarge(verb, key, noreply))
            self._swallow = vlen + 2
            return
        self._pending = _PendingData(
            vlen + 2, verb, key, flags, exptime, cas_unique, noreply, meta=None
        )

    def _complete_data(self, pending: _PendingData, block: bytes) -> Request:
        """memcached's ``complete_nread_ascii``."""
        if not block.endswith(b"\r\n"):
            noreply = pending.noreply and pending.meta is None
            return Invalid(b"CLIENT_ERROR bad data chunk", noreply, counts="cmd_set")
        value = block[:-2]
        if pending.meta is not None:
            return MetaSet(pending.key, pending.meta, value)
        return Store(
            pending.verb,
            pending.key,
            pending.flags,
            pending.exptime,
            value,
            pending.cas_unique,
            pending.noreply,
        )

    # -- meta commands -----------------------------------------------------

    def _meta(self, kind: int, tokens: list[bytes], ntokens: int) -> Request | None:
        """The meta commands; None when ``ms`` now waits for its data."""
        if kind == ord("n"):
            return MetaNoop()
        if kind == ord("e"):
            return _meta_debug(tokens, ntokens)
        if kind not in b"gsda":
            return Invalid(ERROR)
        if ntokens < 3:
            return Invalid(ERROR)
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            return Invalid(BAD_FORMAT)
        if kind == ord("s"):
            return self._meta_set(tokens, ntokens)
        if ntokens > MFLAG_MAX_OPT_LENGTH:
            if kind == ord("g"):
                return Invalid(b"CLIENT_ERROR options flags are too long")
            return Invalid(b"CLIENT_ERROR options flags too long")
        parsed = _meta_flags(tokens, 2)
        if isinstance(parsed, bytes):
            if kind == ord("g"):
                return Invalid(parsed)
            return Invalid(b"CLIENT_ERROR invalid or duplicate flag")
        flags, key = parsed
        if kind == ord("g"):
            return MetaGet(key, flags)
        if kind == ord("d"):
            return MetaDelete(key, flags)
        if flags.mode is not None and flags.mode not in b"I+D-":
            return Invalid(b"CLIENT_ERROR invalid mode for ma M token")
        return MetaArithmetic(key, flags)

    def _meta_set(self, tokens: list[bytes], ntokens: int) -> Request | None:
        """memcached's ``process_mset_command`` up to reading the data."""
        if ntokens == 3:
            return Invalid(BAD_FORMAT)
        if ntokens > MFLAG_MAX_OPT_LENGTH:
            return Invalid(b"CLIENT_ERROR options flags too long")
        vlen = strtol32(tokens[2])
        if vlen is None or vlen < 0 or vlen > (1 << 31) - 3:
            return Invalid(BAD_FORMAT)
        size = vlen + 2
        parsed = _meta_flags(tokens, 3)
        if isinstance(parsed, bytes):
            self._swallow = size
            return Invalid(parsed)
        flags, key = parsed
        error: bytes | None = None
        for token in flags.tokens:
            if token[0] == ord("O") and len(token) > MFLAG_MAX_OPAQUE_LENGTH:
                error = b"CLIENT_ERROR opaque token too long"
        if error is None and flags.mode is not None and flags.mode not in META_MODES_SET:
            error = b"CLIENT_ERROR invalid mode for ms M token"
        if error is None and not self._item_fits(len(key), flags.client_flags, vlen):
            self._swallow = size
            return StoreTooLarge("set", key, False)
        if error is not None:
            self._swallow = size
            return Invalid(error)
        self._pending = _PendingData(size, key=key, meta=flags)
        return None


def _retrieve(command: bytes, tokens: list[bytes]) -> Request:
    """memcached's ``process_get_command``, over every token of the line."""
    with_cas = command in (b"gets", b"gats")
    exptime: int | None = None
    keys_from = 1
    if command in (b"gat", b"gats"):
        exptime = strtol32(tokens[1])
        if exptime is None:
            return Invalid(BAD_EXPTIME)
        keys_from = 2
    keys: list[bytes] = []
    for key in tokens[keys_from:]:
        if len(key) > KEY_MAX_LENGTH:
            return Retrieve(tuple(keys), with_cas, exptime, key_error=True)
        keys.append(key)
    return Retrieve(tuple(keys), with_cas, exptime)


def _arithmetic(incr: bool, tokens: list[bytes], ntokens: int) -> Request:
    """memcached's ``process_arithmetic_command``."""
    if ntokens not in (4, 5):
        return Invalid(ERROR)
    noreply = _noreply(tokens, ntokens)
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    delta = strtoull(tokens[2])
    if delta is None:
        return Invalid(b"CLIENT_ERROR invalid numeric delta argument", noreply)
    return Arithmetic(key, delta, incr, noreply)


def _delete(tokens: list[bytes], ntokens: int) -> Request:
    """memcached's ``process_delete_command``."""
    if not 3 <= ntokens <= 5:
        return Invalid(ERROR)
    noreply = False
    if ntokens > 3:
        hold_is_zero = tokens[2] == b"0"
        noreply = _noreply(tokens, ntokens)
        valid = (ntokens == 4 and (hold_is_zero or noreply)) or (
            ntokens == 5 and hold_is_zero and noreply
        )
        if not valid:
            return Invalid(
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                noreply,
            )
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    return Delete(key, noreply)


def _touch(tokens: list[bytes], ntokens: int) -> Request:
    """memcached's ``process_touch_command``."""
    if ntokens not in (4, 5):
        return Invalid(ERROR)
    noreply = _noreply(tokens, ntokens)
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    exptime = strtol32(tokens[2])
    if exptime is None:
        return Invalid(BAD_EXPTIME, noreply)
    return Touch(key, exptime, noreply)


def _flush_all(tokens: list[bytes], ntokens: int) -> Request:
    """memcached's ``process_flush_all_command``: ``cmd_flush`` counts even a
    malformed one."""
    if not 2 <= ntokens <= 4:
        return Invalid(ERROR)
    noreply = _noreply(tokens, ntokens)
    exptime = 0
    if ntokens != (3 if noreply else 2):
        parsed = strtol32(tokens[1])
        if parsed is None:
            return Invalid(BAD_EXPTIME, noreply, counts="cmd_flush")
        exptime = parsed
    return FlushAll(exptime, noreply)


def _verbosity(tokens: list[bytes], ntokens: int) -> Request:
    if ntokens not in (3, 4):
        return Invalid(ERROR)
    noreply = _noreply(tokens, ntokens)
    level = strtoul32(tokens[1])
    if level is None:
        return Invalid(BAD_FORMAT, noreply)
    return Verbosity(level, noreply)


def _cache_memlimit(tokens: list[bytes], ntokens: int) -> Request:
    if ntokens not in (3, 4):
        return Invalid(ERROR)
    noreply = _noreply(tokens, ntokens)
    megabytes = strtoul32(tokens[1])
    if megabytes is None:
        return Invalid(ERROR, noreply)
    if megabytes < 8:
        return Invalid(b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m", noreply)
    if megabytes > 1000000000:
        return Invalid(b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes", noreply)
    return CacheMemlimit(megabytes, noreply)


def _shutdown(tokens: list[bytes], ntokens: int) -> Request:
    return Invalid(b"ERROR: shutdown not enabled")


def _slabs(tokens: list[bytes], ntokens: int) -> Request:
    """Slab administration: this store has no slabs, so it answers as a
    memcached started with ``-o no_slab_reassign,slab_automove=0`` would."""
    if ntokens == 5 and tokens[1] == b"reassign":
        return Invalid(b"CLIENT_ERROR slab reassignment disabled")
    if ntokens >= 4 and tokens[1] == b"automove":
        noreply = _noreply(tokens, ntokens)
        if tokens[2] == b"ratio":
            return Invalid(ERROR if ntokens < 5 else b"OK", noreply)
        level = strtoul32(tokens[2])
        if level is None:
            return Invalid(BAD_FORMAT, noreply)
        return Invalid(b"OK" if level <= 2 else ERROR, noreply)
    return Invalid(ERROR)


def _lru_crawler(tokens: list[bytes], ntokens: int) -> Request:
    """The LRU crawler: answered as memcached with ``-o no_lru_crawler``."""
    if ntokens == 4 and tokens[1] in (b"crawl", b"metadump"):
        return Invalid(b"CLIENT_ERROR lru crawler disabled")
    return Invalid(ERROR)


def _watch(tokens: list[bytes], ntokens: int) -> Request:
    """Log watchers: answered as memcached with watchers disabled."""
    return Invalid(b"CLIENT_ERROR watch commands not allowed", _noreply(tokens, ntokens))


_ADMIN = {
    b"shutdown": _shutdown,
    b"slabs": _slabs,
    b"lru_crawler": _lru_crawler,
    b"watch": _watch,
}


def _meta_debug(tokens: list[bytes], ntokens: int) -> Request:
    """memcached's ``process_meta_command`` (``me``)."""
    if ntokens < 3 or len(tokens[1]) > KEY_MAX_LENGTH:
        return Invalid(BAD_FORMAT)
    key = tokens[1]
    if ntokens >= 4 and tokens[2] == b"b":
        decoded = decode_binary_key(key)
        if decoded is None:
            return Invalid(BAD_FORMAT)
        return MetaDebug(decoded, key_binary=True)
    return MetaDebug(key)


def _meta_flags(tokens: list[bytes], start: int) -> tuple[MetaFlags, bytes] | bytes:
    """memcached's ``_meta_flag_preparse``: the flags and the (decoded) key, or
    the error line. As in memcached, parsing goes on after an error, and the
    last error message set wins (a bad ``F`` sets none of its own)."""
    seen: set[int] = set()
    key = tokens[1]
    has_error = False
    errstr = BAD_FORMAT
    bad_token = b"CLIENT_ERROR bad token in command line format"
    key_binary = no_update = no_reply = value = set_stale = False
    vivify_exptime: int | None = None
    exptime: int | None = None
    recache_exptime: int | None = None
    cas: int | None = None
    mode: int | None = None
    client_flags = initial = 0
    delta = 1
    for token in tokens[start:]:
        flag = token[0]
        if flag >= 127 or flag in seen:
            return b"CLIENT_ERROR duplicate flag"
        seen.add(flag)
        rest = token[1:]
        char = chr(flag)
        if char == "b":
            decoded = decode_binary_key(key)
            if decoded is None:
                has_error, errstr = True, b"CLIENT_ERROR error decoding key"
            else:
                key = decoded
            key_binary = True
        elif char in "NTR":
            number = strtol32(rest)
            if number is None:
                has_error, errstr = True, bad_token
            elif char == "N":
                vivify_exptime = number
            elif char == "T":
                exptime = number
            else:
                recache_exptime = number
        elif char in "OPLkstcfhl":
            pass
        elif char == "v":
            value = True
        elif char == "u":
            no_update = True
        elif char == "q":
            no_reply = True
        elif char == "F":
            parsed_flags = strtoul32(rest)
            if parsed_flags is None:
                has_error = True
            else:
                client_flags = parsed_flags
        elif char == "C":
            cas = strtoull(rest)
            if cas is None:
                has_error, errstr = True, bad_token
        elif char == "M":
            if len(token) != 2:
                has_error, errstr = True, b"CLIENT_ERROR incorrect length for M token"
            else:
                mode = token[1]
        elif char == "J":
            parsed_initial = strtoull(rest)
            if parsed_initial is None:
                has_error, errstr = True, b"CLIENT_ERROR invalid numeric initial value"
            else:
                initial = parsed_initial
        elif char == "D":
            parsed_delta = strtoull(rest)
            if parsed_delta is None:
                has_error, errstr = True, b"CLIENT_ERROR invalid numeric delta value"
            else:
                delta = parsed_delta
        elif char == "I":
            set_stale = True
        else:
            return b"CLIENT_ERROR invalid flag"
    if has_error:
        return errstr
    flags = MetaFlags(
        tokens=tuple(tokens[start:]),
        key_binary=key_binary,
        no_update=no_update,
        no_reply=no_reply,
        value=value,
        vivify_exptime=vivify_exptime,
        exptime=exptime,
        recache_exptime=recache_exptime,
        client_flags=client_flags,
        cas=cas,
        mode=mode,
        delta=delta,
        initial=initial,
        set_stale=set_stale,
    )
    return flags, key


def iter_requests(parser: Parser, chunks: Iterable[bytes]) -> list[Request]:
    """Feed every chunk to ``parser``; all the requests, in order (a helper
    for tests and tools)."""
    out: list[Request] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out
