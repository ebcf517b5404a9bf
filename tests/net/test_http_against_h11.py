"""shardio_net.http against h11, the parser whose design it follows.

Both parsers get the same bytes, fed in the same random pieces (each piece only
when the parser asks for more), and are driven the way a server drives them:
every complete request is answered with the same response, the next cycle
starts when the last one allows it, and the run ends at an error, at the
client's close, or after a cycle that closes the connection. What each run
let the server observe is a *trace*: the requests (method, target, version,
fields, whether the client waits for 100 Continue), the body (consecutive
``Data`` merged: the two split bodies at different places, which no server may
rely on), the end of each message with its trailers, whether the connection
must close after each response, and the error with its status. h11 signals
refusal with its ``error_status_hint``, shardio with ``status_code``.

The streams are drawn from a grammar of requests: pipelined, with
``Content-Length`` and chunked bodies (chunk extensions, trailers), HTTP/1.0
and 1.1, keep-alive and ``Connection: close``, heads padded up to the size
limit, and a catalogue of flaws -- malformed request lines, field lines,
framing fields and chunks, oversize heads, trailers and chunk lines, a stream
cut short. The traces must be equal up to the first request that shows one of
the documented :data:`DIFFERENCES`; from that request on, each parser must
behave as the difference says (so a difference that goes away, on either
side, fails the test too, and is taken out of the list and the docs).

The limit: h11 has one, ``max_incomplete_event_size``, which bounds the buffer
while an event (a head, a chunk-size line, a trailer section) is incomplete;
shardio bounds the head and the trailer section themselves
(``max_header_size``) and each line (``max_line_length``). Both are given the
same number, and shardio's field count has no counterpart in h11 (set high
here). A flaw-free head is never larger than the limit, where the two agree.

On the way, every step shardio takes is checked against its transition table
(``_checked_http``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import attrs
import h11
import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardio_net import http

from ._checked_http import next_event, send

# ---------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------

#: One thing a server observed: ("request", method, target, version, fields,
#: waits for 100 Continue), ("data", bytes), ("end", trailers),
#: ("respond", must close), ("closed",) or ("error", status).
Step: TypeAlias = tuple[Any, ...]
Trace: TypeAlias = list[Step]


def pieces(stream: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        yield stream[start:end]


def append_data(trace: Trace, data: bytes) -> None:
    if trace and trace[-1][0] == "data":
        trace[-1] = ("data", trace[-1][1] + data)
    else:
        trace.append(("data", data))


#: The body of every response, and its length.
BODY = b"ok"
LENGTH = [(b"content-length", b"%d" % len(BODY))]


def status_for(method: bytes) -> int:
    """The status every request is answered with: 200, or 405 for CONNECT
    (which h11 would otherwise take as a switch to a tunnel)."""
    return 405 if method == b"CONNECT" else 200


def h11_trace(stream: bytes, cuts: list[int], limit: int) -> Trace:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limit)
    chunks = pieces(stream, cuts)
    trace: Trace = []
    method = b""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            trace.append(("error", error.error_status_hint))
            return trace
        if event is h11.NEED_DATA:
            conn.receive_data(next(chunks, b""))
        elif isinstance(event, h11.Request):
            method = bytes(event.method)
            fields = [(bytes(name), bytes(value)) for name, value in event.headers]
            trace.append(
                (
                    "request",
                    method,
                    bytes(event.target),
                    bytes(event.http_version),
                    fields,
                    conn.they_are_waiting_for_100_continue,
                )
            )
        elif isinstance(event, h11.Data):
            append_data(trace, bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            trace.append(("end", [(bytes(n), bytes(v)) for n, v in event.headers]))
            conn.send(h11.Response(status_code=status_for(method), headers=LENGTH))
            if method != b"HEAD":  # h11 refuses a body for HEAD; shardio drops it
                conn.send(h11.Data(data=BODY))
            conn.send(h11.EndOfMessage())
            must_close = conn.our_state is h11.MUST_CLOSE
            trace.append(("respond", must_close))
            if must_close:
                return trace
            conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed):
            trace.append(("closed",))
            return trace
        else:
            raise AssertionError(f"h11 gave {event!r}")


def shardio_trace(stream: bytes, cuts: list[int], limit: int) -> Trace:
    conn = http.ServerConnection(
        max_header_size=limit, max_line_length=limit, max_header_count=10**6
    )
    chunks = pieces(stream, cuts)
    trace: Trace = []
    while True:
        try:
            event = next_event(conn)
        except http.RemoteProtocolError as error:
            trace.append(("error", error.status_code))
            return trace
        if event is http.NEED_DATA:
            conn.receive_data(next(chunks, b""))
        elif isinstance(event, http.Request):
            trace.append(
                (
                    "request",
                    event.method,
                    event.target,
                    event.http_version,
                    as_h11_gives(event.headers),
                    conn.client_is_waiting_for_100_continue,
                )
            )
        elif isinstance(event, http.Data):
            append_data(trace, event.data)
        elif isinstance(event, http.EndOfMessage):
            trace.append(("end", event.trailers))
            assert conn.request is not None
            send(conn, http.Response(status_for(conn.request.method), LENGTH))
            send(conn, http.Data(BODY))
            send(conn, http.EndOfMessage())
            trace.append(("respond", conn.must_close))
            if conn.must_close:
                return trace
        elif isinstance(event, http.ConnectionClosed):
            trace.append(("closed",))
            return trace
        else:
            raise AssertionError(f"shardio gave {event!r} after a cycle that did not close")


def as_h11_gives(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """shardio's fields as h11 reports the same ones. A difference by
    design: h11 rewrites the framing fields (one Content-Length field with
    one value instead of repeated equal ones, a lowercased
    Transfer-Encoding); shardio gives every field as sent."""
    out = []
    seen_length = False
    for name, value in fields:
        if name == b"content-length":
            if seen_length:
                continue
            seen_length = True
            value = value.split(b",")[0].strip()
        elif name == b"transfer-encoding":
            value = value.lower()
        out.append((name, value))
    return out


def cycles(trace: Trace) -> list[Trace]:
    """The trace cut after each response: one piece per request."""
    out: list[Trace] = [[]]
    for step in trace:
        out[-1].append(step)
        if step[0] == "respond":
            out.append([])
    return [cycle for cycle in out if cycle]


# ---------------------------------------------------------------------------
# The differences by design
# ---------------------------------------------------------------------------


def completes(cycle: Trace) -> bool:
    """The request was parsed to its end."""
    return any(step[0] == "end" for step in cycle)


def refuses(cycle: Trace, *statuses: int) -> bool:
    """The request was refused (possibly after its head was reported) with
    one of these statuses."""
    return (
        not completes(cycle)
        and bool(cycle)
        and cycle[-1][:1] == ("error",)
        and (cycle[-1][1] in statuses)
    )


Check: TypeAlias = Callable[[Trace, Trace], bool]


@attrs.frozen
class Difference:
    """A way h11 and shardio differ on purpose: what each does with a request
    that shows it, and why. ``check(h11_cycle, shardio_cycle)`` says whether
    the two cycles of that request behave so."""

    h11: str
    shardio: str
    why: str
    check: Check


def h11_accepts_shardio_refuses(status: int) -> Check:
    return lambda h, s: completes(h) and refuses(s, status)


def h11_refuses_shardio_accepts(status: int) -> Check:
    return lambda h, s: refuses(h, status) and completes(s)


def both_close_differently(h: Trace, s: Trace) -> bool:
    return h[:-1] == s[:-1] and h[-1] == ("respond", True) and s[-1] == ("respond", False)


def over_the_limit(shardio_statuses: tuple[int, ...]) -> Check:
    # h11 bounds only what is buffered while the event is incomplete: it
    # refuses when some piece left more than the limit waiting, and accepts
    # the same bytes arriving in one piece.
    return lambda h, s: refuses(s, *shardio_statuses) and (completes(h) or refuses(h, 431))


DIFFERENCES = {
    "empty line before the request line": Difference(
        h11="refuses it (400: no request line)",
        shardio="skips it and parses the request",
        why="RFC 9112 section 2.2: a server SHOULD ignore at least one empty line "
        "received before the request line",
        check=h11_refuses_shardio_accepts(400),
    ),
    "bare LF line ends": Difference(
        h11="accepts LF as a line end",
        shardio="refuses it (400), as soon as a head line ends in a bare LF",
        why="RFC 9112 section 2.2 lets a recipient accept a bare LF; shardio does not, "
        "so that a front end and shardio cannot disagree on where a head ends",
        check=h11_accepts_shardio_refuses(400),
    ),
    "obsolete line folding": Difference(
        h11="joins the folded line to the field's value",
        shardio="refuses it (400)",
        why="RFC 9112 section 5.2: a server MUST either reject obs-fold with 400 or "
        "replace it with spaces; rejecting leaves no two readings of a field",
        check=h11_accepts_shardio_refuses(400),
    ),
    "control byte in a field value": Difference(
        h11="accepts control bytes other than NUL, CR, LF, VT and FF (and DEL)",
        shardio="refuses them (400)",
        why="RFC 9110 section 5.5 allows only HTAB, SP, visible ASCII and bytes above "
        "0x7F in a field value; h11 is lenient for cookies seen in the wild",
        check=h11_accepts_shardio_refuses(400),
    ),
    "HTTP version other than 1.x": Difference(
        h11="parses HTTP/0.9, 2.0, 3.0 ... heads as HTTP/1.1 messages",
        shardio="refuses them with 505 (HTTP Version Not Supported)",
        why="shardio speaks only HTTP/1.x; 505 says so",
        check=h11_accepts_shardio_refuses(505),
    ),
    "Transfer-Encoding and Content-Length": Difference(
        h11="frames the body by Transfer-Encoding",
        shardio="refuses the request (400)",
        why="RFC 9112 section 6.1 allows either; refusing closes the door to request "
        "smuggling through a front end that reads Content-Length",
        check=h11_accepts_shardio_refuses(400),
    ),
    "Transfer-Encoding in HTTP/1.0": Difference(
        h11="reads a chunked body",
        shardio="refuses the request (400)",
        why="HTTP/1.0 has no transfer codings (RFC 9112 section 6.1: the message "
        "must be treated as faulty), so a front end may frame it otherwise",
        check=h11_accepts_shardio_refuses(400),
    ),
    "HTTP/1.0 keep-alive": Difference(
        h11="closes after every HTTP/1.0 cycle",
        shardio="keeps the connection open when the request asks for keep-alive",
        why="h11 does not implement HTTP/1.0 keep-alive; shardio answers it with "
        "'Connection: keep-alive' as HTTP/1.0 clients expect",
        check=both_close_differently,
    ),
    "Content-Length of more than 18 digits": Difference(
        h11="accepts up to 20 digits and waits for that body (here: refused at the "
        "end of the stream, 400), refuses more (400)",
        shardio="refuses the head at once with 413 (Content Too Large)",
        why="no body of an exabyte will come; 413 is the status for it",
        check=lambda h, s: refuses(h, 400) and refuses(s, 413),
    ),
    "chunk size of more than 16 hex digits": Difference(
        h11="accepts up to 20 digits and waits for that chunk (here: refused at the end "
        "of the stream, 400), refuses more (400)",
        shardio="refuses the chunk at once with 413",
        why="a chunk size of more than 16 hex digits does not fit in 64 bits",
        check=lambda h, s: refuses(h, 400) and refuses(s, 413),
    ),
    "whitespace before a chunk extension": Difference(
        h11="refuses '5 ;name=value' (400)",
        shardio="accepts it",
        why="RFC 9112 section 7.1.1 allows BWS before the ';' of a chunk extension",
        check=h11_refuses_shardio_accepts(400),
    ),
    "control byte in a chunk extension": Difference(
        h11="accepts any byte but CR and LF in a chunk extension",
        shardio="refuses control bytes there (400), as in a field value",
        why="a chunk extension is tokens and quoted strings (RFC 9112 section 7.1.1)",
        check=h11_accepts_shardio_refuses(400),
    ),
    "empty element in Transfer-Encoding": Difference(
        h11="refuses 'chunked,' as an unsupported coding (501)",
        shardio="reads it as chunked",
        why="RFC 9110 section 5.6.1: a recipient MUST ignore empty list elements",
        check=h11_refuses_shardio_accepts(501),
    ),
    "head over the limit": Difference(
        h11="refuses it (431) only if a piece left more than the limit buffered",
        shardio="refuses it (431; 414 if the request line alone is over the limit) "
        "however it arrives",
        why="a limit on the head itself does not depend on how the bytes were split",
        check=over_the_limit((431, 414)),
    ),
    "trailer section over the limit": Difference(
        h11="refuses it (431) only if a piece left more than the limit buffered",
        shardio="refuses it (431) however it arrives",
        why="as for the head",
        check=over_the_limit((431,)),
    ),
    "chunk-size line over the limit": Difference(
        h11="refuses it (431) only if a piece left more than the limit buffered",
        shardio="refuses it with 400: a chunk-size line is not a header field",
        why="431 is Request Header Fields Too Large",
        check=over_the_limit((400,)),
    ),
}


# ---------------------------------------------------------------------------
# The grammar
# ---------------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHAR, min_size=1, max_size=10).map(str.encode)
methods = st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"])
targets = st.binary(max_size=24).map(lambda raw: b"/" + bytes(b for b in raw if 0x21 <= b <= 0x7E))
# Field values both accept: HTAB, SP, visible ASCII, bytes above 0x7F.
values = st.lists(
    st.sampled_from(b" \t") | st.integers(0x21, 0x7E) | st.integers(0x80, 0xFF), max_size=24
).map(bytes)
own_fields = st.lists(st.tuples(tokens.map(lambda t: b"X-" + t), values), max_size=4)
trailer_fields = st.lists(st.tuples(tokens.map(lambda t: b"T-" + t), values), max_size=2)
hosts = st.sampled_from([b"example.org", b"127.0.0.1:8080", b""])
connections = st.sampled_from([None, None, None, None, b"close", b"keep-alive", b"Keep-Alive, x"])
length_formats = st.sampled_from([b"%d", b"%d", b"0%d"])
chunked_values = st.sampled_from([b"chunked", b"Chunked", b" chunked "])
size_formats = st.sampled_from([b"%x", b"%X", b"0%x"])
last_sizes = st.sampled_from([b"0", b"000"])
extensions = st.sampled_from([b"", b"", b";a", b";name=value", b';q="quoted; string"'])
FRAMING_FIELDS = (b"content-length:", b"transfer-encoding:")


@attrs.define
class Draft:
    """One request before it is put on the wire; flaws edit it."""

    method: bytes
    target: bytes
    version: bytes
    fields: list[bytes]  # field lines, without their line ends
    body: bytes
    chunked: bool = False
    chunks: list[list[bytes]] = attrs.Factory(list)  # [size, extension, data]; last is empty
    trailers: list[bytes] = attrs.Factory(list)
    before: bytes = b""
    request_line: bytes | None = None  # replaces the one made of the parts
    line_ends: dict[int, bytes] = attrs.Factory(dict)  # head line index -> its end
    after_chunk: bytes = b"\r\n"
    difference: str | None = None

    def head_lines(self) -> list[bytes]:
        line = self.request_line
        if line is None:
            line = b"%s %s HTTP/%s" % (self.method, self.target, self.version)
        return [line, *self.fields, b""]

    def head_size(self) -> int:
        return sum(len(line) + 2 for line in self.head_lines())

    def wire(self) -> bytes:
        lines = self.head_lines()
        head = b"".join(line + self.line_ends.get(i, b"\r\n") for i, line in enumerate(lines))
        if not self.chunked:
            return self.before + head + self.body
        body = b"".join(
            size + extension + b"\r\n" + data + (self.after_chunk if data else b"")
            for size, extension, data in self.chunks
        )
        body += b"".join(line + b"\r\n" for line in self.trailers) + b"\r\n"
        return self.before + head + body

    def drop_fields(self, *prefixes: bytes) -> None:
        self.fields = [field for field in self.fields if not field.lower().startswith(prefixes)]

    def make_http11(self) -> None:
        self.version = b"1.1"
        if not any(field.lower().startswith(b"host:") for field in self.fields):
            self.fields.append(b"Host: example.org")

    def frame_by_length(self, draw: st.DrawFn) -> None:
        self.drop_fields(*FRAMING_FIELDS)
        self.chunked = False
        length = draw(length_formats) % len(self.body)
        self.fields.append(
            b"Content-Length: " + draw(st.sampled_from([length, length + b", " + length]))
        )
        if draw(st.booleans()):
            self.fields.append(b"content-length: " + length)

    def frame_by_chunks(self, draw: st.DrawFn) -> None:
        """Chunked, with at least one chunk of data (an HTTP/1.1 request)."""
        self.make_http11()
        self.drop_fields(*FRAMING_FIELDS)
        self.fields.append(b"Transfer-Encoding: " + draw(chunked_values))
        self.chunked = True
        self.body = self.body or b"x"
        cuts = sorted(draw(st.lists(st.integers(1, len(self.body)), max_size=3)))
        self.chunks = [
            [draw(size_formats) % (end - start), draw(extensions), self.body[start:end]]
            for start, end in itertools.pairwise([0, *cuts, len(self.body)])
            if end > start
        ]
        self.chunks.append([draw(last_sizes), draw(extensions), b""])
        self.trailers = [b"%s: %s" % field for field in draw(trailer_fields)]

    def own_field(self, draw: st.DrawFn) -> int:
        """The index of one of the request's own fields (not one that frames it)."""
        own = [i for i, field in enumerate(self.fields) if field.startswith(b"X-")]
        if not own:
            self.fields.append(b"X-Added: v")
            own = [len(self.fields) - 1]
        return draw(st.sampled_from(own))


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    """A valid request, keep-alive or not, with or without a body."""
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.1", b"1.0"]))
    fields = [b"%s: %s" % field for field in draw(own_fields)]
    if version == b"1.1" or draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), b"Host: " + draw(hosts))
    connection = draw(connections)
    if connection is not None:
        fields.append(b"Connection: " + connection)
    if draw(st.booleans()):
        fields.append(b"Expect: 100-continue")
    method = draw(methods | tokens.map(bytes.upper))
    draft = Draft(method, draw(targets), version, fields, draw(st.binary(max_size=60)))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if framing == "length":
        draft.frame_by_length(draw)
    elif framing == "chunked" and version == b"1.1":
        draft.frame_by_chunks(draw)
    else:
        draft.body = b""
    if version == b"1.0" and connection in (b"keep-alive", b"Keep-Alive, x"):
        draft.difference = "HTTP/1.0 keep-alive"
    return draft


# Flaws: an edit changes a draft, drawing what it needs. A flaw both parsers
# must refuse alike takes away any difference the draft showed (the request
# is refused before it matters); a flaw that shows a documented difference
# names it.
Edit: TypeAlias = Callable[[st.DrawFn, Draft, int], None]
FLAWS: dict[str, Edit] = {}


def register(name: str, edit: Edit, difference: str | None) -> None:
    def apply(draw: st.DrawFn, draft: Draft, limit: int) -> None:
        edit(draw, draft, limit)
        draft.difference = difference

    FLAWS[name] = apply


def flaw(edit: Edit) -> Edit:
    """A flaw both parsers refuse, with the same status."""
    register(edit.__name__, edit, None)
    return edit


def insert(draw: st.DrawFn, into: bytes, byte: int, first: int = 0) -> bytes:
    at = draw(st.integers(min(first, len(into)), len(into)))
    return into[:at] + bytes([byte]) + into[at:]


@flaw
def method_with_a_separator(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    byte = draw(st.sampled_from(b'()<>@,;:\\"/[]?={}\x00\x01\x7f\x80'))
    draft.method = insert(draw, draft.method, byte)


@flaw
def empty_method(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.method = b""


@flaw
def target_with_a_control_byte(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    byte = draw(st.sampled_from(b"\x00\x01\t\x1f\x7f\x80\xff"))
    draft.target = insert(draw, draft.target, byte)


@flaw
def extra_space_in_the_request_line(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    line = b"%s %s HTTP/%s" % (draft.method, draft.target, draft.version)
    draft.request_line = draw(
        st.sampled_from(
            [line.replace(b" ", b"  ", 1), line + b" ", b" " + line, line.replace(b" ", b"\t", 1)]
        )
    )


@flaw
def malformed_version(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.version = draw(st.sampled_from([b"1.x", b"1", b"11", b"1.1x", b"1.10", b"a.1", b"-1.1"]))
    if draw(st.booleans()):
        draft.request_line = b"%s %s http/1.1" % (draft.method, draft.target)


@flaw
def field_name_with_a_separator(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    i = draft.own_field(draw)
    name, _, value = draft.fields[i].partition(b":")
    byte = draw(st.sampled_from(b'()<>@,;\\"/[]?={} \t\x00\x7f\x80'))
    # Not first: a field line starting with SP or HTAB is a folded line.
    draft.fields[i] = insert(draw, name, byte, first=1) + b":" + value


@flaw
def space_before_the_colon(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    i = draft.own_field(draw)
    draft.fields[i] = draft.fields[i].replace(b":", draw(st.sampled_from([b" :", b"\t:"])), 1)


@flaw
def field_line_without_a_colon(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.fields.insert(draw(st.integers(0, len(draft.fields))), draw(tokens))


@flaw
def empty_field_name(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.fields.insert(draw(st.integers(0, len(draft.fields))), b": " + draw(values))


@flaw
def forbidden_byte_in_a_value(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    # NUL, VT, FF, and a CR that does not end the line.
    i = draft.own_field(draw)
    draft.fields[i] += b"a" + bytes([draw(st.sampled_from(b"\x00\x0b\x0c\r"))]) + b"b"


@flaw
def no_host_or_two(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.make_http11()
    draft.drop_fields(b"host:")
    if draw(st.booleans()):
        draft.fields += [b"Host: a", b"host: b"]


@flaw
def bad_content_length(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_length(draw)
    draft.drop_fields(b"content-length:")
    value = draw(st.sampled_from([b"1, 2", b"-1", b"1a", b"", b"+1", b"0x1", b"1 1", b"1,"]))
    draft.fields.append(b"Content-Length: " + value)
    if draw(st.booleans()):
        draft.fields.append(b"Content-Length: %d" % (len(draft.body) + 1))


@flaw
def unsupported_transfer_coding(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.make_http11()
    draft.drop_fields(*FRAMING_FIELDS)
    codings = [b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked, chunked"]
    draft.fields.append(b"Transfer-Encoding: " + draw(st.sampled_from(codings)))


@flaw
def bad_chunk_size(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    chunk = draw(st.sampled_from(draft.chunks))
    chunk[0] = draw(st.sampled_from([b"zz", b"", b"-1", b"0x5", b"g", b" 5"]))


@flaw
def chunk_data_without_its_crlf(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    draft.after_chunk = draw(st.sampled_from([b"XX", b"\n\r", b"\rX", b"  "]))


# The flaws that show a documented difference, registered under its name.


def empty_line_before_the_request_line(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.before = b"\r\n"


def bare_lf_line_ends(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    lines = len(draft.head_lines())
    for i in draw(st.sets(st.integers(0, lines - 1), min_size=1)):
        draft.line_ends[i] = b"\n"


def obsolete_line_folding(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    i = draft.own_field(draw)
    draft.fields.insert(i + 1, draw(st.sampled_from([b" ", b"\t", b"  "])) + b"folded")


def control_byte_in_a_field_value(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    i = draft.own_field(draw)
    draft.fields[i] += b"a" + bytes([draw(st.sampled_from(b"\x01\x08\x0e\x1b\x1f\x7f"))]) + b"b"


def other_version(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.version = draw(st.sampled_from([b"0.9", b"2.0", b"3.0", b"9.9"]))
    draft.drop_fields(*FRAMING_FIELDS)
    draft.chunked = False
    draft.body = b""


def transfer_encoding_and_content_length(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    draft.fields.insert(draw(st.integers(0, len(draft.fields))), b"Content-Length: 1")


def transfer_encoding_in_http10(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    draft.version = b"1.0"


def http10_keep_alive(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.version = b"1.0"
    draft.drop_fields(b"connection:")
    if draft.chunked:
        draft.frame_by_length(draw)
    draft.fields.append(b"Connection: " + draw(st.sampled_from([b"keep-alive", b"Keep-Alive"])))


def huge_content_length(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_length(draw)
    draft.drop_fields(b"content-length:")
    draft.fields.append(b"Content-Length: 1" + b"0" * draw(st.integers(18, 22)))


def huge_chunk_size(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    draft.chunks[0][0] = b"1" + b"0" * draw(st.integers(16, 22))


def whitespace_before_a_chunk_extension(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    chunk = draw(st.sampled_from(draft.chunks))
    chunk[1] = draw(st.sampled_from([b" ", b"\t", b" \t"])) + b";name=value"


def control_byte_in_a_chunk_extension(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    chunk = draw(st.sampled_from(draft.chunks))
    chunk[1] = b";a=" + bytes([draw(st.sampled_from(b"\x00\x01\x1f\x7f"))])


def empty_element_in_transfer_encoding(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    draft.drop_fields(b"transfer-encoding:")
    value = draw(st.sampled_from([b"chunked,", b", chunked", b"chunked, ,"]))
    draft.fields.append(b"Transfer-Encoding: " + value)


def head_over_the_limit(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    excess = draw(st.integers(1, 100))
    if draw(st.booleans()):
        draft.target += b"t" * (limit - draft.head_size() + excess)
    else:
        draft.fields.append(b"X-Pad: " + b"p" * max(0, limit - draft.head_size() - 9 + excess))


def trailer_section_over_the_limit(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    size = sum(len(line) + 2 for line in draft.trailers) + 2
    excess = draw(st.integers(1, 100))
    draft.trailers.append(b"T-Pad: " + b"p" * max(0, limit - size - 9 + excess))


def chunk_size_line_over_the_limit(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    draft.frame_by_chunks(draw)
    chunk = draw(st.sampled_from(draft.chunks))
    chunk[1] = b";" + b"e" * (limit + draw(st.integers(0, 100)))


for _name, _edit in [
    ("empty line before the request line", empty_line_before_the_request_line),
    ("bare LF line ends", bare_lf_line_ends),
    ("obsolete line folding", obsolete_line_folding),
    ("control byte in a field value", control_byte_in_a_field_value),
    ("HTTP version other than 1.x", other_version),
    ("Transfer-Encoding and Content-Length", transfer_encoding_and_content_length),
    ("Transfer-Encoding in HTTP/1.0", transfer_encoding_in_http10),
    ("HTTP/1.0 keep-alive", http10_keep_alive),
    ("Content-Length of more than 18 digits", huge_content_length),
    ("chunk size of more than 16 hex digits", huge_chunk_size),
    ("whitespace before a chunk extension", whitespace_before_a_chunk_extension),
    ("control byte in a chunk extension", control_byte_in_a_chunk_extension),
    ("empty element in Transfer-Encoding", empty_element_in_transfer_encoding),
    ("head over the limit", head_over_the_limit),
    ("trailer section over the limit", trailer_section_over_the_limit),
    ("chunk-size line over the limit", chunk_size_line_over_the_limit),
]:
    register(_name, _edit, _name)


def padded_to_the_limit(draw: st.DrawFn, draft: Draft, limit: int) -> None:
    """Not a flaw: a head of exactly the limit, or a little under it."""
    room = limit - draft.head_size() - 9 - draw(st.integers(0, 3))
    if room >= 0:
        draft.fields.append(b"X-Pad: " + b"p" * room)


FLAWS["padded to the limit"] = padded_to_the_limit  # keeps the draft's difference


@st.composite
def streams(draw: st.DrawFn, flaw: str | None = None) -> tuple[bytes, int, int | None, str | None]:
    """Pipelined requests on one connection and the limit; then the index
    of the first request that shows a documented difference or is a
    difference cut short, and the difference (``None`` when cut short). The
    traces must be equal up to that request, or in full if there is none.

    With ``flaw``, one of the requests has that flaw and the others none;
    without, each request may have any."""
    limit = draw(st.integers(400, 1200))
    count = draw(st.integers(1, 4))
    flawed = draw(st.integers(0, count - 1))
    requests = []
    for index in range(count):
        draft = draw(drafts())
        if flaw is None and draw(st.integers(0, 2)) == 0:
            FLAWS[draw(st.sampled_from(sorted(FLAWS)))](draw, draft, limit)
        elif flaw is not None and index == flawed:
            FLAWS[flaw](draw, draft, limit)
        requests.append(draft)
    wires = [draft.wire() for draft in requests]
    stream = b"".join(wires)
    if draw(st.integers(0, 4)) == 0:  # the client stops in the middle of a request
        stream = stream[: draw(st.integers(0, len(stream)))]
    ends = list(itertools.accumulate(len(wire) for wire in wires))
    for index, draft in enumerate(requests):
        if draft.difference is not None:
            shown = ends[index] <= len(stream)
            return stream, limit, index, draft.difference if shown else None
        if ends[index] > len(stream):
            break  # a flaw-free request cut short: both refuse it alike
    return stream, limit, None, None


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


def compare(drawn: tuple[bytes, int, int | None, str | None], cuts: list[int]) -> None:
    stream, limit, index, difference = drawn
    hypothesis.event(difference or ("cut short" if index is not None else "no difference"))
    h11_cycles = cycles(h11_trace(stream, cuts, limit))
    shardio_cycles = cycles(shardio_trace(stream, cuts, limit))
    if index is None:
        assert shardio_cycles == h11_cycles
        return
    assert shardio_cycles[:index] == h11_cycles[:index]
    if len(h11_cycles) <= index:  # an earlier cycle closed the connection
        assert len(shardio_cycles) == len(h11_cycles)
    elif difference is not None:
        described = DIFFERENCES[difference]
        assert described.check(h11_cycles[index], shardio_cycles[index]), (
            f"{difference}: h11 {described.h11}, shardio {described.shardio}; "
            f"got h11 {h11_cycles[index]}, shardio {shardio_cycles[index]}"
        )


SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
cut_points = st.lists(st.integers(min_value=0), max_size=12)


@settings(SETTINGS, max_examples=200)
@given(streams(), cut_points)
def test_shardio_and_h11_observe_the_same_requests_except_where_they_differ_by_design(
    drawn: tuple[bytes, int, int | None, str | None], cuts: list[int]
) -> None:
    compare(drawn, cuts)


@pytest.mark.parametrize("flaw", sorted(FLAWS))
@settings(SETTINGS, max_examples=20)
@given(data=st.data(), cuts=cut_points)
def test_shardio_and_h11_agree_on_each_flaw_or_differ_as_documented(
    flaw: str, data: st.DataObject, cuts: list[int]
) -> None:
    compare(data.draw(streams(flaw)), cuts)


#: One stream that shows each difference.
EXAMPLES: list[tuple[str, bytes]] = [
    ("empty line before the request line", b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n"),
    ("bare LF line ends", b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
    ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
    ("control byte in a field value", b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n"),
    ("HTTP version other than 1.x", b"GET / HTTP/2.0\r\n\r\n"),
    (
        "Transfer-Encoding and Content-Length",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3"
        b"\r\n\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding in HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("HTTP/1.0 keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    (
        "Content-Length of more than 18 digits",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1" + b"0" * 19 + b"\r\n\r\n",
    ),
    (
        "chunk size of more than 16 hex digits",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1" + b"0" * 16 + b"\r\n",
    ),
    (
        "whitespace before a chunk extension",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2 ;a=b\r\nhi\r\n0\r\n\r\n",
    ),
    (
        "control byte in a chunk extension",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2;a=\x01\r\nhi\r\n0\r\n\r\n",
    ),
    (
        "empty element in Transfer-Encoding",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
    ),
    ("head over the limit", b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
    (
        "trailer section over the limit",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        b"T: " + b"t" * 600 + b"\r\n\r\n",
    ),
    (
        "chunk-size line over the limit",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2;" + b"e" * 600 + b"\r\nhi\r\n0\r\n\r\n",
    ),
]


@pytest.mark.parametrize(("difference", "stream"), EXAMPLES)
def test_each_documented_difference_is_still_there(difference: str, stream: bytes) -> None:
    """One example of each difference, in one piece and a byte at a time: if
    either parser changes its mind, the list (and the docs) must change."""
    described = DIFFERENCES[difference]
    for cuts in ([], list(range(len(stream)))):
        h11_run = h11_trace(stream, cuts, 500)
        shardio_run = shardio_trace(stream, cuts, 500)
        assert described.check(cycles(h11_run)[0], cycles(shardio_run)[0]), (h11_run, shardio_run)


def test_every_difference_has_an_example_and_is_drawn() -> None:
    assert {difference for difference, _ in EXAMPLES} == set(DIFFERENCES)
    assert set(DIFFERENCES) <= set(FLAWS)
