"""HTTP/1.1, server side, as a pure state machine (no I/O): :class:`ServerConnection`.

The connection is fed the bytes a client sent (:meth:`~ServerConnection.receive_data`)
and hands back *events* (:meth:`~ServerConnection.next_event`): a
:class:`Request` (the request line and header fields), :class:`Data` (pieces
of the body), :class:`EndOfMessage`, or :class:`ConnectionClosed`. Going the
other way, :meth:`~ServerConnection.send` turns the server's events
(:class:`Response`, :class:`InformationalResponse`, :class:`Data`,
:class:`EndOfMessage`) into the bytes to write. What reads and writes the
bytes -- a :class:`~shardio_net.SocketStream`, a TLS stream, a test -- is
the caller's business, so every rule below is tested without a socket. (The
design is h11's; the code is not.)

One request-response exchange is a *cycle*. The request side goes from
waiting for a request, through its body, to done; the response side from
waiting, through its body, to done. When both are done, the connection
either starts the next cycle by itself (keep-alive) or is finished and
:attr:`~ServerConnection.must_close` is true. A client may send its next
requests before the first response (pipelining): they wait in the buffer,
and :meth:`~ServerConnection.next_event` says :data:`PAUSED` until the
current response is complete.

The states and what moves them are one table, as in h11's ``_state.py``:
``_CLIENT_TRANSITIONS`` for the client's side (its events, as
:meth:`~ServerConnection.next_event` reports them) and
``_SERVER_TRANSITIONS`` for the server's (its events, as
:meth:`~ServerConnection.send` takes them)::

    client: IDLE --Request--> SEND_BODY --EndOfMessage--> DONE
            SEND_BODY --Data--> SEND_BODY
            IDLE --ConnectionClosed--> CLOSED (and again: stays)
            IDLE or SEND_BODY --RemoteProtocolError--> ERROR (and again: stays)
    server: IDLE --the client's Request, or its error--> SEND_RESPONSE
            SEND_RESPONSE --InformationalResponse--> SEND_RESPONSE
            SEND_RESPONSE --Response--> SEND_BODY --EndOfMessage--> DONE
            SEND_BODY --Data--> SEND_BODY
    both:   DONE and DONE, with keep-alive --> IDLE and IDLE (the next cycle)

Everything else -- keep-alive, framing, limits -- decides *whether* an
event happens, never where it leads; an event the server's table does not
have is a :class:`LocalProtocolError`. :func:`_next_states` reads the
tables, and the rare transitions (a close, an error, an interim response)
go through it. The hot paths -- a request head, the end of a request
without a body, a response's head, body and end -- do not look it up: each
makes its one transition with the state constants, and says which. They are
specialisations of the table, and the tests hold them to it: every step of
the connections that ``tests/net/test_http*.py`` drive is checked against
:func:`_next_states` (``tests/net/_checked_http.py``).

Framing, as RFC 9112 wants it:

* A request body is delimited by ``Content-Length`` or by
  ``Transfer-Encoding: chunked`` (and no other coding: 501); a request with
  both is refused (400), as is an HTTP/1.0 request with
  ``Transfer-Encoding``: that is how request-smuggling attacks start.
  Without either, a request has no body. HTTP/1.1 requests must carry
  exactly one ``Host``.
* A response to ``HEAD``, or with status 204 or 304, has no body (``Data``
  sent for a ``HEAD`` is dropped, so one handler serves ``GET`` and
  ``HEAD``). Otherwise the response's own ``Content-Length`` or
  ``Transfer-Encoding: chunked`` frames it; a response with neither is sent
  chunked to an HTTP/1.1 client and delimited by closing the connection for
  an HTTP/1.0 one.
* Keep-alive is the default for HTTP/1.1 and opt-in (``Connection:
  keep-alive``) for HTTP/1.0. ``Connection: close`` on either side ends the
  connection after the cycle, and so does a response sent before the
  request was completely received (the rest of its body would have to be
  read and thrown away). The response then carries ``Connection: close``.

Hostile input is bounded: the request line and header section together may
hold at most ``max_header_size`` bytes, a line at most ``max_line_length``,
there may be at most ``max_header_count`` fields, and optionally a body at
most ``max_body_size`` bytes. Bodies are never buffered (each ``Data`` event
hands over what has arrived), so while the caller feeds data only when
asked (:data:`NEED_DATA`), the buffer never holds much more than one header
section. Input that breaks a rule raises :class:`RemoteProtocolError`,
whose ``status_code`` is the response the client deserves (400, 413, 414,
431, 501 or 505); the caller may still send that response, after which the
connection must close.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from http import HTTPStatus
from typing import TypeAlias, final

import attrs

from ._receive_buffer import ReceiveBuffer

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "InformationalResponse",
    "LocalProtocolError",
    "Pause",
    "RemoteProtocolError",
    "Request",
    "Response",
    "ServerConnection",
]

Headers: TypeAlias = Sequence[tuple[bytes, bytes]]


def _byte_class(members: bytes) -> bytes:
    """A translate() table that maps the bytes in ``members`` to 1 and every
    other byte to 0."""
    return bytes(byte in members for byte in range(256))


# Byte classes, as translate() tables: `0 in value.translate(CLASS)` is true
# when some byte of value is outside the class. One C-level pass and a
# memchr(), no regular expression to backtrack, and (unlike a deletion
# table) nothing for translate() to build on every call.
_DIGITS = _byte_class(b"0123456789")
_HEX_DIGITS = _byte_class(b"0123456789abcdefABCDEF")
_TOKEN = _byte_class(
    b"!#$%&'*+-.^_`|~0123456789" + bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B))
)
_TARGET = _byte_class(bytes(range(0x21, 0x7F)))  # visible ASCII
_FIELD_VALUE = _byte_class(b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)))
_CHUNK_EXTENSION = _FIELD_VALUE
_OWS = b" \t"

# The fields that frame a message or decide the connection's fate: parsing
# and sending collect them in their one pass over the fields.
_REQUEST_FRAMING = frozenset(
    [b"host", b"connection", b"content-length", b"transfer-encoding", b"expect"]
)
_RESPONSE_FRAMING = frozenset([b"connection", b"content-length", b"transfer-encoding"])

# Content-Length values longer than this are refused as too large (413):
# 18 digits is about an exabyte, and keeps the integer small.
_MAX_LENGTH_DIGITS = 18
# A chunk size of more than 16 hex digits cannot fit in 64 bits.
_MAX_CHUNK_SIZE_DIGITS = 16


# ---------------------------------------------------------------------------
# Errors and events
# ---------------------------------------------------------------------------


class RemoteProtocolError(Exception):
    """The client broke the protocol. ``status_code`` is the response it
    deserves (400, 413, 414, 431, 501 or 505); after it, the connection can
    only send that response and close."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        #: The HTTP status of the error response to send.
        self.status_code = status_code


class LocalProtocolError(Exception):
    """The server's own events broke the protocol (a body longer than its
    ``Content-Length``, a response with no request, a forbidden byte in a
    header, ...): a bug in the caller, not something the client did."""


class Pause(enum.Enum):
    """What :meth:`ServerConnection.next_event` returns when it has no event."""

    #: More bytes from the client are needed: receive some and feed them.
    NEED_DATA = "need data"
    #: Nothing more will be parsed until the current response is complete;
    #: if it is, the connection is finished (see ``must_close``).
    PAUSED = "paused"


NEED_DATA = Pause.NEED_DATA
PAUSED = Pause.PAUSED


@attrs.frozen
class Request:
    """A request line and its header fields.

    ``method``, ``target`` and ``http_version`` (``b"1.1"`` or ``b"1.0"``)
    are as sent; ``headers`` are ``(name, value)`` pairs in order, names
    lowercased, values stripped of surrounding whitespace.
    """

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes = b"1.1"

    def header(self, name: bytes) -> bytes | None:
        """The value of the first field called ``name`` (lowercase), or ``None``."""
        for field_name, value in self.headers:
            if field_name == name:
                return value
        return None


@attrs.frozen
class InformationalResponse:
    """A 1xx interim response (such as 100 Continue), sent before the
    :class:`Response`. 101 (Switching Protocols) is not supported."""

    status_code: int
    headers: Headers = ()
    reason: bytes = b""


@attrs.frozen
class Response:
    """A final response's status line and header fields (the body follows
    as :class:`Data`, and :class:`EndOfMessage` ends it).

    ``reason`` defaults to the standard phrase for the status code.
    """

    status_code: int
    headers: Headers = ()
    reason: bytes = b""


@attrs.frozen
class Data:
    """A piece of a message body."""

    data: bytes


@attrs.frozen
class EndOfMessage:
    """The end of a message; ``trailers`` are the fields after a chunked
    body (lowercased names), if any."""

    trailers: list[tuple[bytes, bytes]] = attrs.field(factory=list)


@attrs.frozen
class ConnectionClosed:
    """The client closed the connection, cleanly, between requests."""


#: What :meth:`ServerConnection.next_event` returns.
Event: TypeAlias = Request | Data | EndOfMessage | ConnectionClosed | Pause


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------


def _is_token(value: bytes) -> bool:
    return bool(value) and 0 not in value.translate(_TOKEN)


_BARE_LF = "lines must end with CRLF, not a bare LF"


def _parse_field(line: bytes, status_code: int) -> tuple[bytes, bytes]:
    """One ``name: value`` line (no CRLF) as a lowercased name and a value
    without surrounding whitespace."""
    if b"\n" in line:
        raise RemoteProtocolError(_BARE_LF, status_code)
    name, colon, value = line.partition(b":")
    if not colon:
        if line[:1] in (b" ", b"\t"):
            raise RemoteProtocolError("obsolete line folding in a header field", status_code)
        raise RemoteProtocolError(f"header line without a colon: {line[:40]!r}", status_code)
    if not _is_token(name):
        raise RemoteProtocolError(f"invalid header field name: {name[:40]!r}", status_code)
    if 0 in value.translate(_FIELD_VALUE):
        raise RemoteProtocolError(f"invalid byte in the value of {name[:40]!r}", status_code)
    return name.lower(), value.strip(_OWS)


def _request_line_too_long() -> RemoteProtocolError:
    return RemoteProtocolError("the request line is too long", 414)


def _ends_with_bare_lf(buffer: ReceiveBuffer, start: int) -> bool:
    """Whether an unfinished head (or trailer section), searched from
    ``start`` for CRLF CRLF in vain, holds the end of a head whose lines end
    in a bare LF: LF LF, or LF CRLF (that CRLF would be the blank line)."""
    return buffer.find(b"\n\n", start) >= 0 or buffer.find(b"\n\r\n", start) >= 0


def _field_error(line: bytes) -> RemoteProtocolError:
    """The error for a header line that is not ``name: value``."""
    try:
        _parse_field(line, 400)
    except RemoteProtocolError as error:
        return error
    raise AssertionError(f"{line!r} is a valid field")  # pragma: no cover


def _elements(values: list[bytes] | None) -> list[bytes]:
    """The lowercased elements of comma-separated field values."""
    if not values:
        return []
    return [
        element.strip(_OWS).lower()
        for value in values
        for element in value.split(b",")
        if element.strip(_OWS)
    ]


def _http_version(version: bytes) -> bytes:
    """The version of a request line's ``HTTP/x.y`` other than ``HTTP/1.1``
    (which the caller checks first): ``b"1.0"``, say."""
    if (
        len(version) != 8
        or not version.startswith(b"HTTP/")
        or version[6:7] != b"."
        or 0 in version[5:6].translate(_DIGITS)
        or 0 in version[7:8].translate(_DIGITS)
    ):
        raise RemoteProtocolError(f"invalid HTTP version: {version[:20]!r}")
    if version[5:6] != b"1":
        raise RemoteProtocolError(f"unsupported HTTP version: {version!r}", 505)
    return version[5:]


class _State(enum.Enum):
    """Where one side of the connection is in the current cycle."""

    IDLE = "idle"  # no message yet
    SEND_RESPONSE = "send response"  # the server's side: something to answer
    SEND_BODY = "send body"  # the message's head is through; its body follows
    DONE = "done"  # the message is complete
    CLOSED = "closed"  # the client's side: it closed cleanly between requests
    ERROR = "error"  # the client's side: it broke the protocol


class _Body(enum.Enum):
    NONE = "none"  # no body (or one the peer must not see: HEAD, 204, 304)
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until close"


class _Chunk(enum.Enum):
    SIZE = "size line"
    DATA = "data"
    DATA_END = "CRLF after data"
    TRAILERS = "trailers"


# The states as module constants: the hot paths test them often, and in
# Python 3.11 every `_State.IDLE` is a descriptor lookup costing tens of
# nanoseconds, where a global costs a few.
_IDLE, _SEND_RESPONSE, _SEND_BODY, _DONE, _CLOSED, _ERROR = _State
_BODY_NONE, _BODY_LENGTH, _BODY_CHUNKED, _BODY_UNTIL_CLOSE = _Body
_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_DATA_END, _CHUNK_TRAILERS = _Chunk

# ---------------------------------------------------------------------------
# The transitions
# ---------------------------------------------------------------------------

#: The client's side: state -> {event it sent: next state}. ``next_event``
#: reports the events; a ``RemoteProtocolError`` is the event of a client
#: that broke the protocol (raised again, in ERROR, on every later call).
#: In DONE, ``next_event`` is PAUSED until the next cycle.
_CLIENT_TRANSITIONS: dict[_State, dict[type, _State]] = {
    _IDLE: {Request: _SEND_BODY, ConnectionClosed: _CLOSED, RemoteProtocolError: _ERROR},
    _SEND_BODY: {Data: _SEND_BODY, EndOfMessage: _DONE, RemoteProtocolError: _ERROR},
    _DONE: {},
    _CLOSED: {ConnectionClosed: _CLOSED},
    _ERROR: {RemoteProtocolError: _ERROR},
}

#: The server's side: state -> {event: next state}, for the events ``send``
#: takes, and for the client's events that give the server something to
#: answer (:data:`_SEEN_BY_SERVER`): a request, or an error, which deserves
#: its error response.
_SERVER_TRANSITIONS: dict[_State, dict[type, _State]] = {
    _IDLE: {Request: _SEND_RESPONSE, RemoteProtocolError: _SEND_RESPONSE},
    _SEND_RESPONSE: {InformationalResponse: _SEND_RESPONSE, Response: _SEND_BODY},
    _SEND_BODY: {Data: _SEND_BODY, EndOfMessage: _DONE},
    _DONE: {},
}

#: The client's events the server's side sees; the others leave it alone,
#: and so do these where its table has no entry for them.
_SEEN_BY_SERVER = (Request, RemoteProtocolError)

_States: TypeAlias = tuple[_State, _State]


def _next_states(
    states: _States, keep_alive: bool, event_type: type, by_client: bool
) -> _States | None:
    """The (client, server) states after an event of the client
    (``by_client``) or of the server, by the tables, or ``None`` if they do
    not allow it. ``keep_alive`` is the connection's after the event: when
    both sides are DONE and it holds, the next cycle starts (both IDLE)."""
    client, server = states
    if by_client:
        client_next = _CLIENT_TRANSITIONS[client].get(event_type)
        if client_next is None:
            return None
        client = client_next
        if event_type in _SEEN_BY_SERVER:
            server = _SERVER_TRANSITIONS[server].get(event_type, server)
    else:
        server_next = _SERVER_TRANSITIONS[server].get(event_type)
        if server_next is None:
            return None
        server = server_next
    if client is _DONE and server is _DONE and keep_alive:
        return _IDLE, _IDLE
    return client, server


def _refusal(state: _State, event_type: type) -> LocalProtocolError:
    """The error for a server event that the server's state does not allow."""
    if event_type is Response or event_type is InformationalResponse:
        if state is _IDLE:
            return LocalProtocolError("there is no request to respond to")
        return LocalProtocolError("a response was already sent in this cycle")
    if state is _DONE:
        return LocalProtocolError(
            f"{event_type.__name__} can only be sent after a Response, and this "
            f"cycle's response is complete"
        )
    return LocalProtocolError(f"{event_type.__name__} can only be sent after a Response")


# ---------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------


@final
class ServerConnection:
    """The server side of one HTTP/1.1 connection, as a state machine.

    Feed it what the client sent with :meth:`receive_data`, and take
    events out with :meth:`next_event` until it returns :data:`NEED_DATA`
    (feed more) or :data:`PAUSED` (respond first, or close). Respond with
    :meth:`send`, which returns the bytes to write::

        conn = ServerConnection()
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, Request):
                ...                      # then Data..., EndOfMessage follow
            elif isinstance(event, EndOfMessage):
                await stream.send_all(
                    conn.send(Response(200, [(b"content-length", b"2")]))
                    + conn.send(Data(b"ok"))
                    + conn.send(EndOfMessage())
                )
            else:                        # ConnectionClosed, or PAUSED: finished
                break

    To receive without a copy, fill :attr:`buffer` directly
    (``await conn.buffer.receive_from(stream)``, then
    ``conn.receive_data(b"")`` if that returned 0).
    """

    __slots__ = (
        "_body_left",
        "_chunk",
        "_chunked_total",
        "_eof",
        "_error",
        "_header_search",
        "_request_body",
        "_request_side",
        "_response_body",
        "_response_left",
        "_response_side",
        "buffer",
        "client_is_waiting_for_100_continue",
        "keep_alive",
        "max_body_size",
        "max_header_count",
        "max_header_size",
        "max_line_length",
        "request",
    )

    def __init__(
        self,
        *,
        max_header_size: int = 16384,
        max_header_count: int = 100,
        max_line_length: int = 8192,
        max_body_size: int | None = None,
    ) -> None:
        #: Most bytes in a request line plus header section (or trailer
        #: section); more is 431 (Request Header Fields Too Large).
        self.max_header_size = max_header_size
        #: Most header (or trailer) fields in a request; more is 431.
        self.max_header_count = max_header_count
        #: Longest line: a longer request line is 414 (URI Too Long), a
        #: longer header line 431, a longer chunk-size line 400.
        self.max_line_length = max_line_length
        #: Largest request body, or ``None`` for no limit; more is 413.
        self.max_body_size = max_body_size
        #: The bytes received and not parsed yet.
        self.buffer = ReceiveBuffer()
        #: The request of the current cycle, once its head has been parsed.
        self.request: Request | None = None
        #: Whether the connection will go on to another cycle after this one.
        self.keep_alive = True
        #: Whether the client sent ``Expect: 100-continue`` and is waiting
        #: for a response (any, even interim) before it sends the body.
        self.client_is_waiting_for_100_continue = False
        self._request_side = _IDLE  # the client's state
        self._response_side = _IDLE  # the server's state
        self._request_body = _BODY_NONE
        self._response_body = _BODY_NONE
        self._body_left = 0
        self._response_left = 0
        self._chunk = _CHUNK_SIZE
        self._chunked_total = 0
        self._eof = False
        self._error: RemoteProtocolError | None = None
        # How far the search for the end of the header section got.
        self._header_search = 0

    def __repr__(self) -> str:
        return (
            f"<shardio_net.http.ServerConnection request {self._request_side.value}, "
            f"response {self._response_side.value}, keep_alive={self.keep_alive}>"
        )

    @property
    def must_close(self) -> bool:
        """Whether the connection is finished: the cycle is complete (or the
        client broke the protocol) and there will be no other."""
        finished = self._response_side is _DONE or self._request_side is _ERROR
        return finished and not self.keep_alive

    # -- receiving ------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the client; ``b""`` means the client
        closed its side of the connection (end-of-file).

        Raises :class:`RuntimeError` for data after end-of-file.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("received data after end-of-file")
        self.buffer.append(data)

    def next_event(self) -> Event:
        """The next event the received bytes make, or :data:`NEED_DATA`, or
        :data:`PAUSED`.

        Raises :class:`RemoteProtocolError` if the client broke the protocol
        (and again on every later call).
        """
        # Hot path (several calls per request): the dispatch on the client's
        # state is inlined, and so is the end of a request without a body.
        side = self._request_side
        try:
            if side is _IDLE:
                return self._next_request()
            if side is _SEND_BODY:
                if self._request_body is _BODY_NONE:
                    return self._end_request([])
                return self._next_body_event()
        except RemoteProtocolError as error:
            self._fail(error)
            raise
        if side is _DONE:
            return PAUSED  # the next request waits until this cycle is over
        if side is _CLOSED:
            return self._closed()
        assert self._error is not None  # ERROR, which stays ERROR
        raise self._error

    def _move(self, event_type: type, *, by_client: bool) -> None:
        """Take the transition of an event (of the client, or of the server)
        from the tables: for the rare events; the hot paths make theirs
        directly. A server event the tables do not allow is refused."""
        states = _next_states(
            (self._request_side, self._response_side), self.keep_alive, event_type, by_client
        )
        if states is None:
            if by_client:
                raise AssertionError(f"{event_type.__name__} in {self!r}")  # pragma: no cover
            raise _refusal(self._response_side, event_type)
        self._request_side, self._response_side = states
        if states[0] is _IDLE and states[1] is _IDLE:
            self._start_next_cycle()

    def _fail(self, error: RemoteProtocolError) -> None:
        self._error = error
        self.keep_alive = False
        self._move(RemoteProtocolError, by_client=True)

    def _closed(self) -> ConnectionClosed:
        self._move(ConnectionClosed, by_client=True)
        return ConnectionClosed()

    def _next_request(self) -> Event:
        # Hot path (one per request), written for speed: parsing the head
        # and framing the request happen here, in one function. A few
        # C-level passes over the whole head check every byte of every line
        # at once, the loop over the fields only splits and lowercases, and
        # the helpers below run only for rarer requests (not HTTP/1.1, or
        # with fields that frame a body or ask for something).
        buffer = self.buffer
        if not buffer:
            return self._incomplete_head()  # nothing to search (between requests)
        # Empty lines before a request line are to be ignored (RFC 9112 2.2).
        while buffer.startswith(b"\r\n"):
            buffer.skip(2)
        end = buffer.find(b"\r\n\r\n", self._header_search)
        if end < 0:
            return self._incomplete_head()
        self._header_search = 0
        # The limits, before the work they bound. Whichever is found first,
        # a request line over its limit is 414, however the head arrived.
        max_line_length = self.max_line_length
        if end + 4 > self.max_header_size:
            if buffer.find(b"\r\n") > max_line_length:
                raise _request_line_too_long()
            raise RemoteProtocolError("the request's header section is too large", 431)
        # The head and the blank line that ends it, split into lines; the
        # last two are the empty pieces around that blank line's CRLF.
        lines = buffer.take_bytes(end + 4).split(b"\r\n")
        del lines[-2:]
        fields = len(lines) - 1
        # No line is longer than the whole head (`end` bytes), so most heads
        # need no look at each line's length.
        if end > max_line_length and len(lines[0]) > max_line_length:
            raise _request_line_too_long()
        if fields > self.max_header_count:
            raise RemoteProtocolError("too many header fields", 431)
        if end > max_line_length and max(map(len, lines)) > max_line_length:
            raise RemoteProtocolError("a header line is too long", 431)
        # Every byte of every line at once: a forbidden one (a control
        # byte, a CR or LF that does not end a line) is found and named
        # below, once the request line is known to be sound.
        forbidden_byte = 0 in b"".join(lines).translate(_FIELD_VALUE)
        if forbidden_byte and any(b"\n" in line for line in lines):
            raise RemoteProtocolError(_BARE_LF)

        # The request line: method, target and version, one space apart.
        request_line = lines[0]
        parts = request_line.split(b" ")
        if len(parts) != 3:
            raise RemoteProtocolError(f"malformed request line: {request_line[:60]!r}")
        method, target, version = parts
        if not method or 0 in method.translate(_TOKEN):
            raise RemoteProtocolError(f"invalid method: {method[:20]!r}")
        if not target or 0 in target.translate(_TARGET):
            raise RemoteProtocolError("invalid request target")
        http_version = b"1.1" if version == b"HTTP/1.1" else _http_version(version)

        # The header fields.
        if forbidden_byte:
            for line in lines[1:]:
                _parse_field(line, 400)
        headers = []
        framing: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or 0 in name.translate(_TOKEN):
                raise _field_error(line)
            name = name.lower()
            value = value.strip(_OWS)
            headers.append((name, value))
            if name in _REQUEST_FRAMING:
                framing.setdefault(name, []).append(value)
        request = Request(method, target, headers, http_version)

        # Framing: keep-alive, 100-continue and how the body is delimited.
        http_11 = http_version != b"1.0"
        hosts = framing.get(b"host")
        if http_11 and (hosts is None or len(hosts) != 1):
            raise RemoteProtocolError("an HTTP/1.1 request needs exactly one Host field")
        if len(framing) == (0 if hosts is None else 1):
            # No framing field but Host: the defaults, and no body.
            self.keep_alive = http_11
            self.client_is_waiting_for_100_continue = False
            self._request_body = _BODY_NONE
        else:
            self._frame_request(framing, http_11)
        self.request = request
        # The table's transition on a Request, on both sides.
        self._request_side = _SEND_BODY
        self._response_side = _SEND_RESPONSE
        return request

    def _incomplete_head(self) -> Event:
        buffer = self.buffer
        size = len(buffer)
        if size:
            if _ends_with_bare_lf(buffer, self._header_search):
                # Not a valid head, and the CRLF CRLF we wait for may never come.
                raise RemoteProtocolError(_BARE_LF)
            first_line_end = buffer.find(b"\r\n")
        else:
            first_line_end = -1  # nothing to search
        # An unfinished line's last byte may be the CR of its CRLF.
        if (first_line_end < 0 and size > self.max_line_length + 1) or (
            first_line_end > self.max_line_length
        ):
            raise _request_line_too_long()
        if size > self.max_header_size:
            raise RemoteProtocolError("the request's header section is too large", 431)
        if self._eof:
            if size:
                raise RemoteProtocolError("the client closed the connection mid-request")
            return self._closed()
        self._header_search = max(0, size - 3)
        return NEED_DATA

    def _frame_request(self, framing: dict[bytes, list[bytes]], http_11: bool) -> None:
        """Keep-alive, 100-continue and the body's framing, from the request's
        framing fields (Host already checked)."""
        connection = _elements(framing.get(b"connection"))
        self.keep_alive = b"close" not in connection and (http_11 or b"keep-alive" in connection)
        self.client_is_waiting_for_100_continue = http_11 and b"100-continue" in _elements(
            framing.get(b"expect")
        )
        codings = _elements(framing.get(b"transfer-encoding"))
        lengths = framing.get(b"content-length")
        if codings:
            if lengths:
                raise RemoteProtocolError("both Transfer-Encoding and Content-Length")
            if not http_11:
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if codings != [b"chunked"]:
                raise RemoteProtocolError("unsupported transfer coding", 501)
            self._request_body = _BODY_CHUNKED
            self._chunk = _CHUNK_SIZE
            self._body_left = 0
            self._chunked_total = 0
        elif lengths:
            self._request_body = _BODY_LENGTH
            self._body_left = self._content_length(lengths)
        else:
            self._request_body = _BODY_NONE

    def _content_length(self, values: list[bytes]) -> int:
        elements = {element.strip(_OWS) for value in values for element in value.split(b",")}
        if len(elements) != 1:
            raise RemoteProtocolError("conflicting Content-Length values")
        [length] = elements
        if not length or 0 in length.translate(_DIGITS):
            raise RemoteProtocolError(f"invalid Content-Length: {length[:20]!r}")
        if len(length) > _MAX_LENGTH_DIGITS:
            raise RemoteProtocolError("the request body is too large", 413)
        size = int(length)
        self._check_body_size(size)
        return size

    def _check_body_size(self, size: int) -> None:
        if self.max_body_size is not None and size > self.max_body_size:
            raise RemoteProtocolError("the request body is too large", 413)

    def _next_body_event(self) -> Event:
        body = self._request_body
        if body is _BODY_NONE:
            return self._end_request([])
        if body is _BODY_LENGTH:
            if not self._body_left:
                return self._end_request([])
            return self._body_data(self._body_left) or self._body_need_data()
        return self._next_chunked_event()

    def _body_data(self, most: int) -> Data | None:
        count = min(most, len(self.buffer))
        if not count:
            return None
        self._body_left -= count
        self.client_is_waiting_for_100_continue = False
        return Data(self.buffer.take_bytes(count))

    def _body_need_data(self) -> Pause:
        if self._eof:
            raise RemoteProtocolError("the client closed the connection mid-body")
        return NEED_DATA

    def _next_chunked_event(self) -> Event:
        buffer = self.buffer
        while True:
            state = self._chunk
            if state is _CHUNK_DATA:
                data = self._body_data(self._body_left)
                if data is None:
                    return self._body_need_data()
                if not self._body_left:
                    self._chunk = _CHUNK_DATA_END
                return data
            if state is _CHUNK_DATA_END:
                if len(buffer) < 2:
                    return self._body_need_data()
                if not buffer.startswith(b"\r\n"):
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                buffer.skip(2)
                self._chunk = _CHUNK_SIZE
            elif state is _CHUNK_SIZE:
                line = buffer.take_until(b"\r\n")
                if line is None:
                    # An unfinished line's last byte may be the CR of its CRLF.
                    if len(buffer) > self.max_line_length + 1:
                        raise RemoteProtocolError("a chunk-size line is too long")
                    return self._body_need_data()
                if len(line) > self.max_line_length:
                    raise RemoteProtocolError("a chunk-size line is too long")
                size = self._parse_chunk_size(bytes(line))
                self._chunked_total += size
                self._check_body_size(self._chunked_total)
                if size:
                    self._body_left = size
                    self._chunk = _CHUNK_DATA
                else:
                    self._chunk = _CHUNK_TRAILERS
                    self._header_search = 0
            else:
                return self._trailers()

    def _parse_chunk_size(self, line: bytes) -> int:
        digits, _, extension = line.partition(b";")
        digits = digits.rstrip(_OWS)
        if not digits or 0 in digits.translate(_HEX_DIGITS):
            raise RemoteProtocolError(f"invalid chunk size: {line[:20]!r}")
        if len(digits) > _MAX_CHUNK_SIZE_DIGITS:
            raise RemoteProtocolError("a chunk is too large", 413)
        if 0 in extension.translate(_CHUNK_EXTENSION):
            raise RemoteProtocolError("invalid byte in a chunk extension")
        return int(digits, 16)

    def _trailers(self) -> Event:
        buffer = self.buffer
        if buffer.startswith(b"\r\n"):
            buffer.skip(2)
            return self._end_request([])
        end = buffer.find(b"\r\n\r\n", self._header_search)
        if end < 0:
            if buffer.startswith(b"\n") or _ends_with_bare_lf(buffer, self._header_search):
                raise RemoteProtocolError(_BARE_LF)
            if len(buffer) > self.max_header_size:
                raise RemoteProtocolError("the trailer section is too large", 431)
            self._header_search = max(0, len(buffer) - 3)
            return self._body_need_data()
        if end + 4 > self.max_header_size:
            raise RemoteProtocolError("the trailer section is too large", 431)
        lines = bytes(buffer.take(end + 4)[:end]).split(b"\r\n")
        if len(lines) > self.max_header_count:
            raise RemoteProtocolError("too many trailer fields", 431)
        trailers = []
        for line in lines:
            if len(line) > self.max_line_length:
                raise RemoteProtocolError("a trailer line is too long", 431)
            trailers.append(_parse_field(line, 400))
        return self._end_request(trailers)

    def _end_request(self, trailers: list[tuple[bytes, bytes]]) -> EndOfMessage:
        # The table's transition on the client's EndOfMessage.
        self._request_side = _DONE
        self._header_search = 0
        if self._response_side is _DONE and self.keep_alive:  # the response went first
            self._start_next_cycle()
        return EndOfMessage(trailers)

    # -- sending --------------------------------------------------------------

    def send(self, event: InformationalResponse | Response | Data | EndOfMessage) -> bytes:
        """The bytes that send ``event`` to the client.

        Raises :class:`LocalProtocolError` if ``event`` does not fit the
        state of the exchange (see the module docs for the framing rules).
        The :class:`Data` of a body framed by ``Content-Length`` or by the
        close comes back as given, not copied: a memoryview of a large
        buffer stays one, for a vectored ``send_all``.
        """
        if isinstance(event, Data):
            return self._send_data(event.data)
        if isinstance(event, EndOfMessage):
            return self._send_end()
        if isinstance(event, Response):
            return self._send_response(event)
        if isinstance(event, InformationalResponse):
            return self._send_informational(event)
        raise LocalProtocolError(f"cannot send {event!r}")

    def _send_informational(self, event: InformationalResponse) -> bytes:
        # Refused unless in SEND_RESPONSE, where it stays.
        self._move(InformationalResponse, by_client=False)
        if not 100 <= event.status_code < 200 or event.status_code == 101:
            raise LocalProtocolError(
                f"an informational response needs a 1xx status other than 101, "
                f"not {event.status_code}"
            )
        head = _head(event.status_code, event.reason, event.headers)
        self.client_is_waiting_for_100_continue = False
        return head

    def _send_response(self, event: Response) -> bytes:
        # Hot path (one per request): one pass over the fields finds those
        # that frame the body, and the framing fields a response does not
        # have cost nothing more. Nothing changes until the response is
        # known to be valid.
        if self._response_side is not _SEND_RESPONSE:
            raise _refusal(self._response_side, Response)
        request = self.request
        status = event.status_code
        if not 200 <= status < 1000:
            raise LocalProtocolError(f"a final response needs a status of 200-999, not {status}")
        headers = list(event.headers)
        framing: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            lowered = name.lower()
            if lowered in _RESPONSE_FRAMING:
                framing.setdefault(lowered, []).append(value)
        http_10 = request is not None and request.http_version == b"1.0"
        # Responding before the whole request arrived: what is left of it
        # would have to be read and discarded. Close instead.
        keep_alive = self.keep_alive and self._request_side is _DONE
        values = framing.get(b"connection")
        connection = _elements(values) if values else []
        if b"close" in connection:
            keep_alive = False
        lengths = framing.get(b"content-length")
        values = framing.get(b"transfer-encoding")
        codings = _elements(values) if values else []
        if status in (204, 304) or (request is not None and request.method == b"HEAD"):
            if status == 204 and (lengths or codings):
                raise LocalProtocolError("a 204 response cannot have a body or body framing")
            body = _BODY_NONE
        elif lengths:
            if codings:
                raise LocalProtocolError("both Content-Length and Transfer-Encoding")
            if len(lengths) != 1 or not lengths[0] or 0 in lengths[0].translate(_DIGITS):
                raise LocalProtocolError(f"invalid Content-Length: {lengths!r}")
            body = _BODY_LENGTH
            self._response_left = int(lengths[0])
        elif codings and codings != [b"chunked"]:
            raise LocalProtocolError("only the chunked transfer coding is supported")
        elif http_10:
            # An HTTP/1.0 client does not know chunked: end the body by closing.
            headers = [field for field in headers if field[0].lower() != b"transfer-encoding"]
            body = _BODY_UNTIL_CLOSE
            keep_alive = False
        else:
            body = _BODY_CHUNKED
            if not codings:
                headers.append((b"transfer-encoding", b"chunked"))
        if not keep_alive:
            if b"close" not in connection:
                headers.append((b"connection", b"close"))
        elif http_10 and b"keep-alive" not in connection:
            headers.append((b"connection", b"keep-alive"))
        head = _head(status, event.reason, headers)
        self.keep_alive = keep_alive
        self._response_body = body
        self._response_side = _SEND_BODY  # the table's transition on a Response
        self.client_is_waiting_for_100_continue = False
        return head

    def _send_data(self, data: bytes) -> bytes:
        if self._response_side is not _SEND_BODY:  # the table: Data stays in SEND_BODY
            raise _refusal(self._response_side, Data)
        body = self._response_body
        if body is _BODY_NONE:
            request = self.request
            if request is not None and request.method == b"HEAD":
                return b""  # a HEAD response has no body: drop it
            if data:
                raise LocalProtocolError("this response cannot have a body")
            return b""
        if body is _BODY_LENGTH:
            if len(data) > self._response_left:
                raise LocalProtocolError("more body than the response's Content-Length")
            self._response_left -= len(data)
            return data
        if body is _BODY_CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    def _send_end(self) -> bytes:
        if self._response_side is not _SEND_BODY:
            raise _refusal(self._response_side, EndOfMessage)
        body = self._response_body
        if body is _BODY_LENGTH and self._response_left:
            raise LocalProtocolError(
                f"the response body is {self._response_left} bytes short of its Content-Length"
            )
        # The table's transition on the server's EndOfMessage, and the next
        # cycle if both sides are done.
        self._response_side = _DONE
        if self._request_side is _DONE and self.keep_alive:
            self._start_next_cycle()
        return b"0\r\n\r\n" if body is _BODY_CHUNKED else b""

    # -- cycles ---------------------------------------------------------------

    def _start_next_cycle(self) -> None:
        """The table's one transition of both sides: DONE and DONE, with
        keep-alive, go to IDLE and IDLE."""
        self._request_side = _IDLE
        self._response_side = _IDLE
        self.request = None
        self._request_body = self._response_body = _BODY_NONE


def _status_line(status_code: int, reason: bytes) -> bytes:
    if not reason:
        try:
            reason = HTTPStatus(status_code).phrase.encode("ascii")
        except ValueError:
            reason = b""
    elif 0 in reason.translate(_FIELD_VALUE):
        raise LocalProtocolError(f"invalid byte in the reason phrase {reason!r}")
    return b"HTTP/1.1 %d %b\r\n" % (status_code, reason)


# Status lines with the standard reason phrase, made once each.
_STATUS_LINES: dict[int, bytes] = {}


def _head(status_code: int, reason: bytes, headers: Headers) -> bytes:
    """A status line and header section, checked for bytes that would let a
    header value smuggle in another header or a body."""
    if reason:
        status_line = _status_line(status_code, reason)
    else:
        status_line = _STATUS_LINES.get(status_code) or _STATUS_LINES.setdefault(
            status_code, _status_line(status_code, b"")
        )
    # Hot path: the section is assembled as a list of pieces, whose slices
    # are the names and the values; two C-level passes check every name and
    # every value at once.
    pieces = [status_line]
    for name, value in headers:
        pieces += (name, b": ", value, b"\r\n")
    names = pieces[1::4]
    if (
        not all(names)
        or 0 in b"".join(names).translate(_TOKEN)
        or 0 in b"".join(pieces[3::4]).translate(_FIELD_VALUE)
    ):
        _check_fields(headers)
    pieces.append(b"\r\n")
    return b"".join(pieces)


def _check_fields(headers: Headers) -> None:
    """Raise the error for the first invalid name or value in ``headers``."""
    for name, value in headers:
        if not _is_token(name):
            raise LocalProtocolError(f"invalid header field name {name!r}")
        if 0 in value.translate(_FIELD_VALUE):
            raise LocalProtocolError(f"invalid byte in the value of header {name!r}")
    raise AssertionError(f"{headers!r} are valid fields")  # pragma: no cover
