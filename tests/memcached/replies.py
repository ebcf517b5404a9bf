"""What a reply to each request may look like, by memcached's protocol
(its ``doc/protocol.txt``), written apart from the server's code: the
fuzzers check that the bytes a connection gets back are one well-formed
reply per request, in request order -- what a client relies on to read
them -- and the differential fuzzer reads memcached's replies one at a
time with it.

The model knows the *shape* of each reply, not the server's state: a
``get`` gets ``VALUE`` blocks for some of its keys, in the order asked,
each with as many bytes of data as it says, then ``END``; a ``set`` gets
one of the lines a storage command can get; a command with ``noreply``
gets nothing, and a meta command with ``q`` may get nothing. Where a reply
may be empty, several ways to cut the bytes may fit: :func:`split_replies`
accepts the bytes if any does.
"""

from __future__ import annotations

import base64
import itertools
import re

from examples.memcached import protocol as p

__all__ = ["reply_ends", "split_replies"]

_FLAGS = rb"(?: [^ \r\n]+)*"
"""A meta reply's return flags."""

_STORE_LINES = {
    "set": rb"STORED",
    "add": rb"STORED|NOT_STORED",
    "replace": rb"STORED|NOT_STORED",
    "append": rb"STORED|NOT_STORED",
    "prepend": rb"STORED|NOT_STORED",
    "cas": rb"STORED|EXISTS|NOT_FOUND",
}
_NO_MEMORY_STORING = rb"SERVER_ERROR out of memory storing object"
_OPAQUE_TOO_LONG = rb"CLIENT_ERROR opaque token too long"

_STATS_FIXED = {
    b"reset": rb"RESET",
    b"detail": rb"CLIENT_ERROR usage: stats detail on\|off\|dump",
    b"cachedump": rb"CLIENT_ERROR stats cachedump not allowed",
}
_STATS_REPORTS = (b"", b"settings", b"items", b"slabs", b"shards", b"sizes")
_STAT_LINE = re.compile(rb"STAT [^ \r\n]+ [^ \r\n]+")


def _line_end(data: bytes, start: int, pattern: bytes) -> int | None:
    """Where the line at ``start`` ends (after its CRLF) if it matches ``pattern``."""
    end = data.find(b"\r\n", start)
    if end < 0 or not re.fullmatch(pattern, data[start:end]):
        return None
    return end + 2


def _block_end(data: bytes, start: int, size: int) -> int | None:
    """Where ``size`` bytes of data and their CRLF end, if they are there."""
    end = start + size
    if data[end : end + 2] != b"\r\n":
        return None
    return end + 2


def _values_end(request: p.Retrieve, data: bytes, start: int) -> int | None:
    """``VALUE`` blocks for some of the keys, in the order asked, then ``END``."""
    wanted = iter(request.keys)
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return None
        line = data[position:line_end]
        if line == b"END":
            return line_end + 2
        fields = line.split(b" ")
        if len(fields) != (5 if request.with_cas else 4) or fields[0] != b"VALUE":
            return None
        if not all(field.isdigit() for field in fields[2:]):
            return None
        if not any(key == fields[1] for key in wanted):  # consumes keys up to it
            return None
        end = _block_end(data, line_end + 2, int(fields[3]))
        if end is None:
            return None
        position = end


def _meta_value_end(data: bytes, start: int, codes: bytes, value: bytes) -> int | None:
    """``VA <size> <flags>`` and the data (``value`` matches it), or a
    ``codes`` line with flags."""
    line_end = data.find(b"\r\n", start)
    if line_end < 0:
        return None
    line = data[start:line_end]
    head = re.fullmatch(rb"VA (\d+)" + _FLAGS, line)
    if head is None:
        return _line_end(data, start, rb"(?:" + codes + rb")" + _FLAGS)
    end = _block_end(data, line_end + 2, int(head.group(1)))
    if end is None or not re.fullmatch(value, data[line_end + 2 : end - 2]):
        return None
    return end


def _one_reply_end(request: p.Request, data: bytes, start: int) -> int | None:
    """Where a non-empty reply to ``request`` at ``start`` ends, or None."""
    if isinstance(request, p.Retrieve):
        if request.key_error:
            return _line_end(data, start, re.escape(p.BAD_FORMAT))
        return _values_end(request, data, start)
    if isinstance(request, p.Store):
        return _line_end(data, start, _STORE_LINES[request.verb] + rb"|" + _NO_MEMORY_STORING)
    if isinstance(request, p.StoreTooLarge):
        return _line_end(data, start, rb"SERVER_ERROR object too large for cache")
    if isinstance(request, p.Delete):
        return _line_end(data, start, rb"DELETED|NOT_FOUND")
    if isinstance(request, p.Arithmetic):
        return _line_end(
            data,
            start,
            rb"\d+|NOT_FOUND|SERVER_ERROR out of memory"
            rb"|CLIENT_ERROR cannot increment or decrement non-numeric value",
        )
    if isinstance(request, p.Touch):
        return _line_end(data, start, rb"TOUCHED|NOT_FOUND")
    if isinstance(request, (p.FlushAll, p.Verbosity, p.CacheMemlimit)):
        return _line_end(data, start, rb"OK")
    if isinstance(request, p.Stats):
        return _stats_end(request, data, start)
    if isinstance(request, p.Version):
        return _line_end(data, start, rb"VERSION \d+\.\d+\.\d+")
    if isinstance(request, p.Invalid):
        return _line_end(data, start, re.escape(request.line))
    if isinstance(request, p.MetaNoop):
        return _line_end(data, start, rb"MN")
    if isinstance(request, p.MetaDebug):
        key = base64.b64encode(request.key) if request.key_binary else request.key
        return _line_end(
            data,
            start,
            rb"EN|ME "
            + re.escape(key)
            + rb" exp=-?\d+ la=\d+ cas=\d+ fetch=(?:yes|no) cls=\d+ size=\d+",
        )
    if isinstance(request, p.MetaGet):
        return _meta_value_end(data, start, rb"EN|HD|" + _OPAQUE_TOO_LONG, rb"(?s:.*)")
    if isinstance(request, p.MetaSet):
        return _line_end(data, start, rb"(?:HD|NS|EX|NF)" + _FLAGS + rb"|" + _NO_MEMORY_STORING)
    if isinstance(request, p.MetaDelete):
        return _line_end(data, start, rb"(?:HD|NF|EX)" + _FLAGS + rb"|" + _OPAQUE_TOO_LONG)
    if isinstance(request, p.MetaArithmetic):
        return _meta_value_end(
            data,
            start,
            rb"HD|NF|EX|"
            + _OPAQUE_TOO_LONG
            + rb"|SERVER_ERROR .*"
            + rb"|CLIENT_ERROR cannot increment or decrement non-numeric value",
            rb"\d+",
        )
    return None  # quit and close: never a reply


def _stats_end(request: p.Stats, data: bytes, start: int) -> int | None:
    kind = request.args[0] if request.args else b""
    if kind in _STATS_FIXED:
        return _line_end(data, start, _STATS_FIXED[kind])
    if kind not in _STATS_REPORTS:
        return _line_end(data, start, rb"ERROR")
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return None
        line = data[position:line_end]
        if line == b"END":
            return line_end + 2
        if not _STAT_LINE.fullmatch(line):
            return None
        position = line_end + 2


def _may_be_silent(request: p.Request) -> bool:
    """Whether ``request`` may get no reply at all."""
    if isinstance(request, (p.Quit, p.Close)):
        return True
    if isinstance(request, (p.MetaGet, p.MetaSet, p.MetaDelete, p.MetaArithmetic)):
        return request.flags.no_reply
    return False


def _silenced(request: p.Request) -> bool:
    """Whether ``request`` must get no reply (``noreply``)."""
    if isinstance(
        request,
        (
            p.Store,
            p.StoreTooLarge,
            p.Delete,
            p.Arithmetic,
            p.Touch,
            p.FlushAll,
            p.Verbosity,
            p.CacheMemlimit,
            p.Invalid,
        ),
    ):
        return request.noreply
    return False


def reply_ends(request: p.Request, data: bytes, start: int) -> set[int]:
    """Every offset where a reply to ``request`` starting at ``start`` in
    ``data`` may end (``start`` itself when it may get none)."""
    if _silenced(request):
        return {start}
    ends = {start} if _may_be_silent(request) else set()
    end = _one_reply_end(request, data, start)
    if end is not None:
        ends.add(end)
    return ends


def split_replies(requests: list[p.Request], data: bytes) -> list[bytes]:
    """``data`` cut into one reply per request, in order (b"" for a request
    that got none). AssertionError, naming the first request no cut gets
    past and the bytes there, if the data is not such a sequence."""
    # reached[i]: the offsets where the replies to requests[:i] may end,
    # each with the offset its last reply started at.
    reached: list[dict[int, int]] = [{0: 0}]
    for index, request in enumerate(requests):
        step = {end: start for start in reached[-1] for end in reply_ends(request, data, start)}
        if not step:
            starts = sorted(reached[-1])
            raise AssertionError(
                f"no well-formed reply to request {index} ({request!r}) at offsets {starts}: "
                f"{data[starts[0] : starts[0] + 200]!r}"
            )
        reached.append(step)
    if len(data) not in reached[-1]:
        raise AssertionError(
            f"bytes left after the replies to all {len(requests)} requests: "
            f"{data[max(reached[-1]) : max(reached[-1]) + 200]!r}"
        )
    cuts = [len(data)]
    for step in reversed(reached[1:]):
        cuts.append(step[cuts[-1]])
    cuts.reverse()
    return [data[start:end] for start, end in itertools.pairwise(cuts)]
