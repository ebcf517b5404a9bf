"""A1's parser comparison: shardio_net.asgi with httptools parsing the requests.

:class:`HttptoolsConnection` is a :class:`shardio_net.http.ServerConnection`
whose *request* side is httptools' C parser (llhttp, what uvicorn uses)
instead of shardio_net's own: it feeds the connection's buffer to
``HttpRequestParser`` and turns its callbacks (``on_url``, ``on_header``,
``on_headers_complete``, ``on_body``, ``on_message_complete``) into the same
events, moving the cycle's states as the parser's own request path does. The
response side -- framing, keep-alive, the next cycle -- is the parent's,
unchanged, so the server around it does exactly the same work and the two
runs differ only in the request parser. :func:`install` makes
``shardio_net.asgi`` build its connections with it, in the benchmark's
server process only.

It is a measuring instrument, not a parser to ship: it reaches into the
parent's private state (the two sides' states and ``_end_request``), and it
keeps none of the parser's limits (header size, field count), as uvicorn's
httptools protocol keeps none.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import httptools

import shardio_net._http as _http
import shardio_net.asgi._http_connection as _http_connection
from shardio_net.http import NEED_DATA, PAUSED, Data, Request, ServerConnection


class HttptoolsConnection(ServerConnection):  # type: ignore[misc]
    """ServerConnection with httptools parsing the requests."""

    __slots__ = ("_events", "_headers", "_parser", "_url")

    def __init__(self, **limits: Any) -> None:
        super().__init__(**limits)
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Any] = deque()
        self._headers: list[tuple[bytes, bytes]] = []
        self._url = b""

    # -- httptools' callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._events.append(
            (
                Request(
                    parser.get_method(),
                    self._url,
                    self._headers,
                    parser.get_http_version().encode(),
                ),
                parser.should_keep_alive(),
            )
        )

    def on_body(self, body: bytes) -> None:
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._events.append(None)  # the end of the message

    # -- the events -----------------------------------------------------------

    def next_event(self) -> Any:
        side = self._request_side
        if side is _http._DONE:
            return PAUSED
        events = self._events
        if not events:
            buffer = self.buffer
            if buffer:
                try:
                    self._parser.feed_data(buffer.peek())
                except httptools.HttpParserError as error:
                    raise _http.RemoteProtocolError(str(error)) from None
                buffer.clear()
            if not events:
                if self._eof:
                    if side is _http._IDLE:
                        return self._closed()
                    raise _http.RemoteProtocolError("the client closed the connection")
                return NEED_DATA
        event = events.popleft()
        if event is None:
            return self._end_request([])
        if type(event) is tuple:
            request, keep_alive = event
            self.request = request
            self.keep_alive = keep_alive
            self._request_body = _http._BODY_LENGTH  # the end comes as an event
            self._request_side = _http._SEND_BODY
            self._response_side = _http._SEND_RESPONSE
            return request
        return event


def install() -> None:
    """Make shardio_net.asgi parse requests with httptools in this process."""
    _http_connection.ServerConnection = HttptoolsConnection  # type: ignore[attr-defined]
