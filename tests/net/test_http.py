"""shardio_net.http: the sans-io HTTP/1.1 server state machine, with no sockets.

The connections here are driven through ``_checked_http``, which checks every
step they take against the parser's transition table."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardio_net import _http
from shardio_net.http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    ServerConnection,
)

from ._checked_http import next_event, send, states


def events(conn: ServerConnection) -> list[Event]:
    """Every event available now, up to and including NEED_DATA or PAUSED."""
    out: list[Event] = []
    while True:
        event = next_event(conn)
        out.append(event)
        if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
            return out


def respond(conn: ServerConnection, body: bytes = b"ok") -> bytes:
    length = str(len(body)).encode()
    return (
        send(conn, Response(200, [(b"content-length", length)]))
        + send(conn, Data(body))
        + send(conn, EndOfMessage())
    )


def connection_with(data: bytes, **limits: int) -> ServerConnection:
    conn = ServerConnection(**limits)
    conn.receive_data(data)
    return conn


GET = b"GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n"

# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


def test_a_get_request_is_a_request_then_the_end_of_the_message() -> None:
    conn = connection_with(GET)
    assert events(conn) == [
        Request(b"GET", b"/index.html", [(b"host", b"example.org")], b"1.1"),
        EndOfMessage(),
        PAUSED,
    ]
    assert conn.request is not None and conn.request.target == b"/index.html"


def test_header_names_are_lowercased_and_values_stripped_in_order() -> None:
    conn = connection_with(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Thing:   spaced out \t\r\nx-thing: two\r\nEmpty:\r\n\r\n"
    )
    request = next_event(conn)
    assert isinstance(request, Request)
    assert request.headers == [
        (b"host", b"a"),
        (b"x-thing", b"spaced out"),
        (b"x-thing", b"two"),
        (b"empty", b""),
    ]
    assert request.header(b"x-thing") == b"spaced out"
    assert request.header(b"missing") is None


def test_a_content_length_body_arrives_as_data_as_it_comes_in() -> None:
    conn = connection_with(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123")
    assert events(conn)[1:] == [Data(b"0123"), NEED_DATA]
    conn.receive_data(b"456789GET")  # the end of the body, and the next request
    assert events(conn) == [Data(b"456789"), EndOfMessage(), PAUSED]


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    conn = connection_with(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n"
        b"Checksum: abc\r\n\r\n"
    )
    assert events(conn)[1:] == [
        Data(b"hello"),
        Data(b" "),
        Data(b"0123456789"),
        EndOfMessage([(b"checksum", b"abc")]),
        PAUSED,
    ]


def test_empty_lines_before_a_request_are_ignored() -> None:
    conn = connection_with(b"\r\n\r\n" + GET)
    assert isinstance(next_event(conn), Request)


def test_pipelined_requests_wait_for_each_response_in_turn() -> None:
    conn = connection_with(GET.replace(b"index", b"one") + GET.replace(b"index", b"two"))
    first = events(conn)
    assert [type(event) for event in first] == [Request, EndOfMessage, type(PAUSED)]
    assert isinstance(first[0], Request) and first[0].target == b"/one.html"
    respond(conn)
    second = events(conn)
    assert isinstance(second[0], Request) and second[0].target == b"/two.html"
    respond(conn)
    assert events(conn) == [NEED_DATA]
    assert not conn.must_close


def test_a_client_closing_between_requests_is_connection_closed() -> None:
    conn = connection_with(GET)
    events(conn)
    respond(conn)
    conn.receive_data(b"")
    assert next_event(conn) == ConnectionClosed()
    assert next_event(conn) == ConnectionClosed()
    with pytest.raises(RuntimeError, match="after end-of-file"):
        conn.receive_data(b"more")


@pytest.mark.parametrize(
    "partial",
    [b"GET / HT", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"],
    ids=["mid-head", "mid-body"],
)
def test_a_client_closing_mid_request_is_a_protocol_error(partial: bytes) -> None:
    conn = connection_with(partial)
    events(conn)
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed the connection mid"):
        events(conn)


def test_expect_100_continue_is_reported_until_a_response_or_body() -> None:
    conn = connection_with(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    next_event(conn)
    assert conn.client_is_waiting_for_100_continue
    assert send(conn, InformationalResponse(100)) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.client_is_waiting_for_100_continue
    conn.receive_data(b"hi")
    assert events(conn) == [Data(b"hi"), EndOfMessage(), PAUSED]


def test_feeding_the_buffer_directly_is_the_same_as_receive_data() -> None:
    conn = ServerConnection()
    view = conn.buffer.reserve(len(GET))
    view[: len(GET)] = GET
    conn.buffer.commit(len(GET))
    assert isinstance(next_event(conn), Request)


# ---------------------------------------------------------------------------
# Keep-alive
# ---------------------------------------------------------------------------


def test_http11_keeps_the_connection_alive_by_default() -> None:
    conn = connection_with(GET)
    events(conn)
    assert b"connection" not in respond(conn).lower()
    assert conn.keep_alive and not conn.must_close


def test_connection_close_from_the_client_ends_the_connection_after_the_response() -> None:
    conn = connection_with(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
    events(conn)
    assert b"connection: close\r\n" in respond(conn)
    assert conn.must_close
    assert next_event(conn) is PAUSED  # the pipelined GET is never parsed


def test_connection_close_from_the_server_ends_the_connection() -> None:
    conn = connection_with(GET)
    events(conn)
    wire = send(conn, Response(200, [(b"Connection", b"close"), (b"Content-Length", b"0")]))
    send(conn, EndOfMessage())
    assert wire.count(b"close") == 1
    assert conn.must_close


def test_http10_closes_by_default_and_keeps_alive_when_asked() -> None:
    conn = connection_with(b"GET / HTTP/1.0\r\n\r\n")
    events(conn)
    assert b"connection: close\r\n" in respond(conn)
    assert conn.must_close

    conn = connection_with(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    events(conn)
    assert b"connection: keep-alive\r\n" in respond(conn)
    assert not conn.must_close
    assert next_event(conn) is NEED_DATA


def test_a_response_sent_before_the_request_body_arrived_closes_the_connection() -> None:
    conn = connection_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
    next_event(conn)
    wire = send(conn, Response(413, [(b"content-length", b"0")]))
    send(conn, EndOfMessage())
    assert wire.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"connection: close\r\n" in wire
    assert conn.must_close


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


def test_a_response_with_content_length_is_sent_as_is() -> None:
    conn = connection_with(GET)
    events(conn)
    assert respond(conn, b"hello") == (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")


def test_a_response_without_framing_is_chunked_for_http11() -> None:
    conn = connection_with(GET)
    events(conn)
    wire = send(conn, Response(200, [(b"content-type", b"text/plain")]))
    wire += send(conn, Data(b"hello")) + send(conn, Data(b"")) + send(conn, Data(b" world!"))
    wire += send(conn, EndOfMessage())
    assert wire == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n"
    )


def test_a_response_without_framing_is_delimited_by_closing_for_http10() -> None:
    conn = connection_with(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    events(conn)
    wire = send(conn, Response(200, [(b"Transfer-Encoding", b"chunked")]))
    wire += send(conn, Data(b"raw")) + send(conn, EndOfMessage())
    assert wire == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nraw"
    assert conn.must_close


def test_head_responses_drop_the_body_so_get_handlers_serve_head() -> None:
    conn = connection_with(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    events(conn)
    assert respond(conn, b"the body") == b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n"
    assert next_event(conn) is NEED_DATA  # and the connection goes on


def test_204_and_304_have_no_body() -> None:
    conn = connection_with(GET)
    events(conn)
    with pytest.raises(LocalProtocolError, match="204"):
        send(conn, Response(204, [(b"content-length", b"0")]))
    assert send(conn, Response(304)) == b"HTTP/1.1 304 Not Modified\r\n\r\n"
    with pytest.raises(LocalProtocolError, match="cannot have a body"):
        send(conn, Data(b"x"))
    assert send(conn, EndOfMessage()) == b""


def test_the_reason_phrase_defaults_to_the_standard_one() -> None:
    conn = connection_with(GET)
    events(conn)
    assert send(conn, Response(599, [(b"content-length", b"0")])).startswith(b"HTTP/1.1 599 \r\n")
    conn = connection_with(GET)
    events(conn)
    assert send(conn, Response(200, reason=b"Fine")).startswith(b"HTTP/1.1 200 Fine\r\n")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-injected", b"a\r\nset-cookie: evil")],
        [(b"bad name", b"x")],
        [(b"x", b"nul\x00")],
    ],
)
def test_header_injection_through_a_response_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    conn = connection_with(GET)
    events(conn)
    with pytest.raises(LocalProtocolError, match="invalid"):
        send(conn, Response(200, headers))


def test_a_refused_response_changes_nothing() -> None:
    conn = connection_with(GET)
    events(conn)
    with pytest.raises(LocalProtocolError, match="invalid"):
        send(conn, Response(200, [(b"connection", b"close"), (b"x", b"bad\r\nvalue")]))
    assert conn.keep_alive
    wire = send(conn, Response(200, [(b"content-length", b"0")]))
    send(conn, EndOfMessage())
    assert b"connection" not in wire
    assert not conn.must_close


def test_body_size_must_match_the_content_length() -> None:
    conn = connection_with(GET)
    events(conn)
    send(conn, Response(200, [(b"content-length", b"3")]))
    with pytest.raises(LocalProtocolError, match="more body"):
        send(conn, Data(b"four"))
    send(conn, Data(b"ab"))
    with pytest.raises(LocalProtocolError, match="1 bytes short"):
        send(conn, EndOfMessage())


def test_events_out_of_order_are_local_protocol_errors() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError, match="no request"):
        send(conn, Response(200))
    conn.receive_data(GET)
    events(conn)
    with pytest.raises(LocalProtocolError, match="after a Response"):
        send(conn, Data(b"x"))
    with pytest.raises(LocalProtocolError, match="after a Response"):
        send(conn, EndOfMessage())
    with pytest.raises(LocalProtocolError, match="1xx"):
        send(conn, InformationalResponse(101))
    send(conn, Response(200))
    with pytest.raises(LocalProtocolError, match="already sent"):
        send(conn, Response(200))


# ---------------------------------------------------------------------------
# Bad requests and limits
# ---------------------------------------------------------------------------

H = b"Host: a\r\n"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GET /\r\n\r\n", 400, "malformed request line"),
        (b"G(T / HTTP/1.1\r\n\r\n", 400, "invalid method"),
        (b"GET /\x01 HTTP/1.1\r\n\r\n", 400, "malformed request line|invalid request target"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, "unsupported HTTP version"),
        (b"GET / HTTP/1.1x\r\n\r\n", 400, "invalid HTTP version"),
        (b"GET / HTTP/1.1\r\nHost\r\n\r\n", 400, "without a colon"),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "invalid header field name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, "line folding"),
        (b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", 400, "invalid byte"),
        (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "invalid byte"),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "exactly one Host"),
        (b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400, "exactly one Host"),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400,
            "both",
        ),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "coding"),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1, 2\r\n\r\n", 400, "conflicting"),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400, "invalid Content"),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + b"9" * 19 + b"\r\n\r\n", 413, "large"),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "invalid chunk size",
        ),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            400,
            "not followed by CRLF",
        ),
        (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"f" * 17
            + b"\r\n",
            413,
            "too large",
        ),
    ],
)
def test_malformed_requests_raise_with_the_status_to_answer(
    data: bytes, status: int, message: str
) -> None:
    conn = connection_with(data)
    with pytest.raises(RemoteProtocolError, match=message) as caught:
        events(conn)
    assert caught.value.status_code == status


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
        (b"GET /" + b"a" * 100, 414),  # no line end yet, already too long
        (b"GET / HTTP/1.1\r\n" + H + b"X: " + b"v" * 100 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X%d: v\r\n" % i for i in range(10)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: vvvvvvvv\r\n" % i for i in range(30)), 431),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1" + b" " * 100,
            400,
        ),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1001\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"200\r\n"
            + b"x" * 512
            + b"\r\n200\r\n",
            413,
        ),
        (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
            + b"".join(b"T-%d: vvvvvvvv\r\n" % i for i in range(30)),
            431,
        ),
    ],
    ids=[
        "long request line",
        "long partial request line",
        "long header line",
        "too many headers",
        "header section too large",
        "long chunk-size line",
        "content-length over the body limit",
        "chunks over the body limit",
        "trailer section too large",
    ],
)
def test_limits_give_clear_errors(data: bytes, status: int) -> None:
    conn = connection_with(
        data, max_line_length=64, max_header_count=8, max_header_size=256, max_body_size=1000
    )
    with pytest.raises(RemoteProtocolError) as caught:
        events(conn)
    assert caught.value.status_code == status


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", "invalid byte"),  # a CR before the CRLF
        (b"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", "invalid byte"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n", "invalid byte"),
        (b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        (b"GET@ / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method"),
        (b"GET / HTTP/1.1\r\nHo@st: a\r\n\r\n", "invalid header field name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", "invalid header field name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n", "line folding"),
        (b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", "invalid HTTP version"),
    ],
)
def test_every_byte_of_a_head_is_checked(data: bytes, message: str) -> None:
    conn = connection_with(data)
    with pytest.raises(RemoteProtocolError, match=message) as caught:
        next_event(conn)
    assert caught.value.status_code == 400


def test_field_values_may_hold_tabs_and_bytes_above_ascii() -> None:
    conn = connection_with(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xff\x80\r\n\r\n")
    request = next_event(conn)
    assert isinstance(request, Request)
    assert request.headers == [(b"host", b"a"), (b"x", b"a\tb \xff\x80")]


def test_a_head_longer_than_the_line_limit_is_fine_when_every_line_is_short() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(5))
    conn = connection_with(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", max_line_length=16)
    request = next_event(conn)
    assert isinstance(request, Request) and len(request.headers) == 6


def test_an_http10_request_with_only_a_host_field_closes_by_default() -> None:
    conn = connection_with(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
    assert [type(event) for event in events(conn)] == [Request, EndOfMessage, type(PAUSED)]
    assert not conn.keep_alive
    assert b"connection: close\r\n" in respond(conn)
    assert conn.must_close

    conn = connection_with(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n")
    events(conn)
    assert b"connection: keep-alive\r\n" in respond(conn)
    assert not conn.must_close


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([(b"", b"x")], "field name b''"),
        ([(b"x", b"ok"), (b"y(", b"x")], "field name b'y\\('"),
        ([(b"x", b"del\x7f")], "value of header b'x'"),
        ([(b"x", b"ok"), (b"y", b"bare\rcr")], "value of header b'y'"),
        ([(b"x", b"bare\nlf"), (b"y z", b"x")], "value of header b'x'"),  # the first error
    ],
)
def test_a_response_field_error_names_the_first_bad_field(
    headers: list[tuple[bytes, bytes]], message: str
) -> None:
    conn = connection_with(GET)
    events(conn)
    with pytest.raises(LocalProtocolError, match=message):
        send(conn, Response(200, [(b"content-length", b"0"), *headers]))


def test_response_field_values_may_hold_tabs_and_bytes_above_ascii() -> None:
    conn = connection_with(GET)
    events(conn)
    wire = send(conn, Response(200, [(b"Content-Length", b"0"), (b"X", b"a\tb \xff")]))
    assert wire == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: a\tb \xff\r\n\r\n"


def test_after_a_protocol_error_the_error_response_can_be_sent_then_the_connection_closes() -> None:
    conn = connection_with(b"BROKEN\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as caught:
        next_event(conn)
    with pytest.raises(RemoteProtocolError):
        next_event(conn)  # the connection stays failed
    wire = send(conn, Response(caught.value.status_code, [(b"content-length", b"0")]))
    send(conn, EndOfMessage())
    assert wire == b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    assert conn.must_close


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",  # the last field line ends in LF
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
    ],
    ids=["head, LF CRLF", "trailers, LF CRLF", "trailers, LF"],
)
def test_a_head_or_trailer_section_with_bare_lf_line_ends_is_refused_without_waiting(
    data: bytes,
) -> None:
    # A client that ends its lines in LF may end its head with LF CRLF: no
    # CRLF CRLF will ever come, so waiting for one (until the limit, or the
    # client's close) would only leave it hanging.
    conn = connection_with(data)
    with pytest.raises(RemoteProtocolError, match="bare LF") as caught:
        events(conn)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost:a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\nU: b\r\n\r\n",
    ],
)
def test_a_bare_lf_inside_a_complete_head_or_trailer_section_is_named(data: bytes) -> None:
    conn = connection_with(data)
    with pytest.raises(RemoteProtocolError, match="bare LF"):
        events(conn)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"X: " + b"v" * 300 + b"\r\n\r\n",
        b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(9)),
    ],
    ids=["head too large", "too many fields"],
)
def test_a_request_line_over_its_limit_is_414_however_the_head_arrives(head: bytes) -> None:
    for pieces in ([head + b"\r\n"], [bytes([byte]) for byte in head + b"\r\n"]):
        conn = ServerConnection(max_line_length=64, max_header_count=8, max_header_size=256)
        with pytest.raises(RemoteProtocolError, match="request line is too long") as caught:
            for piece in pieces:
                conn.receive_data(piece)
                events(conn)
        assert caught.value.status_code == 414


def test_a_request_line_of_exactly_the_limit_is_accepted_when_it_arrives_up_to_its_cr() -> None:
    line = b"GET /" + b"a" * 50 + b" HTTP/1.1"
    conn = ServerConnection(max_line_length=len(line))
    conn.receive_data(line + b"\r")
    assert events(conn) == [NEED_DATA]
    conn.receive_data(b"\nHost: a\r\n\r\n")
    assert [type(event) for event in events(conn)] == [Request, EndOfMessage, type(PAUSED)]


def test_a_chunk_size_line_of_exactly_the_limit_is_accepted_when_it_arrives_up_to_its_cr() -> None:
    line = b"2;" + b"e" * 62
    conn = connection_with(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + line + b"\r",
        max_line_length=len(line),
    )
    assert isinstance(next_event(conn), Request)
    assert events(conn) == [NEED_DATA]
    conn.receive_data(b"\nhi\r\n0\r\n\r\n")
    assert events(conn) == [Data(b"hi"), EndOfMessage(), PAUSED]


def test_a_header_section_trickling_in_a_byte_at_a_time_is_searched_in_linear_time() -> None:
    # Each search for the blank line resumes where the last one stopped (three
    # bytes back, for a CRLF CRLF cut in two): every byte is looked at a
    # bounded number of times however the head is split -- linear, not
    # quadratic, in its size.
    fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(80))
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n"
    conn = ServerConnection(max_header_size=len(data))
    for i in range(len(data) - 1):
        conn.receive_data(data[i : i + 1])
        assert conn.next_event() is NEED_DATA
        assert conn._header_search >= i + 1 - 3
    conn.receive_data(data[-1:])
    assert isinstance(conn.next_event(), Request)


# ---------------------------------------------------------------------------
# The transition table
# ---------------------------------------------------------------------------


def connection_where_the_server_is(state: _http._State) -> ServerConnection:
    """A connection whose server's side is in ``state``."""
    if state is _http._IDLE:
        return ServerConnection()
    conn = connection_with(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    events(conn)
    if state is not _http._SEND_RESPONSE:
        send(conn, Response(200))  # chunked: any Data, and EndOfMessage, fit
        if state is _http._DONE:
            send(conn, EndOfMessage())  # and the connection is closing: it stays DONE
    assert states(conn)[1] is state
    return conn


@pytest.mark.parametrize("state", list(_http._SERVER_TRANSITIONS), ids=lambda state: state.name)
@pytest.mark.parametrize(
    "event",
    [InformationalResponse(100), Response(200), Data(b"x"), EndOfMessage()],
    ids=lambda event: type(event).__name__,
)
def test_the_server_may_send_exactly_what_its_table_allows(
    state: _http._State, event: InformationalResponse | Response | Data | EndOfMessage
) -> None:
    conn = connection_where_the_server_is(state)
    if type(event) in _http._SERVER_TRANSITIONS[state]:
        send(conn, event)  # and the step is the table's
    else:
        with pytest.raises(LocalProtocolError, match=r"no request|already sent|after a Response"):
            send(conn, event)


def test_a_step_the_table_does_not_have_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hot paths move without the table: were the table to lose an entry
    # they take, the checked drivers would say so.
    conn = connection_with(GET)
    events(conn)
    monkeypatch.setitem(_http._SERVER_TRANSITIONS, _http._SEND_RESPONSE, {})
    with pytest.raises(AssertionError, match=r"Response in .* not in the table"):
        send(conn, Response(200))


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).map(str.encode)
field_value = st.binary(max_size=30).map(
    lambda value: bytes(b for b in value if b >= 0x20 and b != 0x7F).strip(b" ")
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """One valid request on the wire, and the events it must give (with its
    body as one Data event, if any)."""
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS"]))
    target = b"/" + draw(token)
    fields = draw(st.lists(st.tuples(token.map(lambda t: b"x-" + t), field_value), max_size=6))
    body = draw(st.binary(max_size=200))
    chunked = draw(st.booleans())
    headers = [(b"host", b"example.org"), *fields]
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        wire_body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    else:
        headers.append((b"content-length", b"%d" % len(body)))
        wire_body = body
    head = b"%b %b HTTP/1.1\r\n" % (method, target)
    head += b"".join(b"%b: %b\r\n" % field for field in headers) + b"\r\n"
    expected: list[Event] = [Request(method, target, headers, b"1.1")]
    if body:
        expected.append(Data(body))
    expected.append(EndOfMessage())
    return head + wire_body, expected


def chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        yield data[start:end]


def serve(conn: ServerConnection, chunks: Iterator[bytes]) -> list[Event]:
    """Drive a connection as a server would: feed a chunk only when asked,
    respond to each request, stop at the end. Returns the events, with
    consecutive Data merged. Checks the buffer's bound on the way."""
    bound = max(conn.max_header_size, conn.max_line_length) + 4
    seen: list[Event] = []
    in_request = False  # between a Request and its EndOfMessage
    while True:
        event = next_event(conn)
        if event is NEED_DATA:
            assert len(conn.buffer) <= bound, "the buffer grew past the limits"
            conn.receive_data(next(chunks, b""))
            continue
        if event is PAUSED:
            assert conn.must_close
            return seen
        # Whatever the bytes and however they were split, the events keep
        # the order of a cycle, resuming after each NEED_DATA where they were.
        if in_request:
            assert isinstance(event, Data | EndOfMessage), f"{event!r} inside a request"
        else:
            assert isinstance(event, Request | ConnectionClosed), f"{event!r} between requests"
        in_request = isinstance(event, Request | Data)
        if isinstance(event, Data) and seen and isinstance(seen[-1], Data):
            seen[-1] = Data(seen[-1].data + event.data)
        else:
            seen.append(event)
        if isinstance(event, EndOfMessage):
            respond(conn)
        if isinstance(event, ConnectionClosed):
            return seen


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(min_value=0)))
def test_any_chunking_of_pipelined_requests_gives_the_same_events(
    sent: list[tuple[bytes, list[Event]]], cuts: list[int]
) -> None:
    stream = b"".join(wire for wire, _ in sent)
    expected = [event for _, request_events in sent for event in request_events]
    assert serve(ServerConnection(), iter([stream])) == [*expected, ConnectionClosed()]
    assert serve(ServerConnection(), chunked(stream, cuts)) == [*expected, ConnectionClosed()]


LIMITS = {"max_header_size": 300, "max_line_length": 80, "max_header_count": 8}
STATUS_CODES = {400, 413, 414, 431, 501, 505}


def check_hostile(stream: bytes, cuts: list[int]) -> None:
    conn = ServerConnection(**LIMITS)
    try:
        serve(conn, chunked(stream, cuts))
    except RemoteProtocolError as error:
        assert error.status_code in STATUS_CODES
        assert conn.must_close


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0), max_size=20))
def test_random_bytes_never_crash_and_never_grow_the_buffer_past_the_limits(
    stream: bytes, cuts: list[int]
) -> None:
    check_hostile(stream, cuts)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(requests(), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=3)), max_size=6),
    st.lists(st.integers(min_value=0), max_size=20),
)
def test_mutated_requests_never_crash_and_never_grow_the_buffer_past_the_limits(
    sent: list[tuple[bytes, list[Event]]], mutations: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = bytearray(b"".join(wire for wire, _ in sent))
    for position, replacement in mutations:
        position %= len(stream) + 1
        stream[position : position + len(replacement) // 2] = replacement
    check_hostile(bytes(stream), cuts)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([b"X: v\r\n", b"\r\n", b"a", b"5\r\nhello\r\n", b"\r"]))
def test_an_endless_stream_of_anything_ends_in_an_error_or_bounded_buffer(unit: bytes) -> None:
    conn = ServerConnection(**LIMITS)
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.receive_data(head)
    try:
        for _ in range(2000):
            event = next_event(conn)
            if event is NEED_DATA:
                assert len(conn.buffer) <= LIMITS["max_header_size"] + 4
                conn.receive_data(unit * 7)
    except RemoteProtocolError as error:
        assert error.status_code in STATUS_CODES
