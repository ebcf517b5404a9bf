"""WebSockets: an HTTP/1.1 connection upgraded, served to an ASGI application.

The handshake (RFC 6455 4.2) is done here, on the request the HTTP parser
already read: the key and version are checked (400, or 426 with the
version we speak), the application is called with a ``websocket`` scope
and receives ``websocket.connect``; it answers with ``websocket.accept``
(``101 Switching Protocols``, with the accept token, its subprotocol and
the negotiated permessage-deflate), ``websocket.close`` (403), or an HTTP
response of its own (the ``websocket.http.response`` extension). From the
101 on, the bytes belong to wsproto's frame protocol: a sans-io
``wsproto.connection.Connection``, fed what the socket brings (starting
with whatever the client sent right behind its handshake), whose events
become the application's messages.

* ``receive()`` reads only when the application asks (backpressure, as for
  HTTP bodies), answers pings with pongs, joins a fragmented message, and
  refuses one over ``ws_max_size`` bytes with close code 1009. A close frame
  from the client is answered and becomes ``websocket.disconnect`` with its
  code; end-of-file or a reset is code 1006.
* ``send()`` of ``websocket.close`` sends the close frame; once the
  application returns, the connection waits briefly for the client's own
  close frame (so that the client, not we, ends TCP, as RFC 6455 7.1.1
  wants) and closes.
* Graceful shutdown: the application's pending ``receive()`` is woken with
  ``websocket.disconnect``, code 1012 (service restart), and the client is
  sent that close frame; the connection then has the shutdown's deadline,
  as any busy connection.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

import shardio
from shardio_net.http import Data, EndOfMessage, Request, Response

from ._http_connection import (
    ERROR_LOGGER,
    ClientDisconnected,
    HttpConnection,
    simple_response,
    split_target,
)

if TYPE_CHECKING:
    from ._app import Message as ASGIMessage

__all__ = ["WebSocketSession", "serve_websocket"]

_CLOSE_WAIT_SECONDS = 1.0
_SERVICE_RESTART = 1012
_ABNORMAL_CLOSURE = 1006
_MESSAGE_TOO_BIG = 1009


async def serve_websocket(connection: HttpConnection, request: Request) -> None:
    """Serve the WebSocket that ``request`` asks for on ``connection``."""
    key = request.header(b"sec-websocket-key")
    version = request.header(b"sec-websocket-version")
    if version != b"13":
        head = connection.conn.send(
            Response(
                426,
                [
                    (b"sec-websocket-version", b"13"),
                    (b"content-length", b"0"),
                    (b"connection", b"close"),
                ],
            )
        )
        await connection.stream.send_all(head + connection.conn.send(EndOfMessage()))
        return
    if not key:
        body = b"a WebSocket handshake needs a Sec-WebSocket-Key\n"
        await connection.stream.send_all(
            simple_response(connection.conn, 400, body, connection.server)
        )
        return
    session = WebSocketSession(connection, request, key)
    connection.websocket = session
    await session.run()


class WebSocketSession:
    """One WebSocket: the ``receive`` and ``send`` an application is called with."""

    __slots__ = (
        "accepted",
        "closed",
        "connect_sent",
        "connection",
        "disconnect_code",
        "http_response",
        "key",
        "reading",
        "request",
        "shutting_down",
        "socket_open",
        "ws",
    )

    def __init__(self, connection: HttpConnection, request: Request, key: bytes) -> None:
        self.connection = connection
        self.request = request
        self.key = key
        self.ws: Connection | None = None
        self.accepted = False
        self.connect_sent = False
        #: The application sent (or was sent) a close: no more messages.
        self.closed = False
        #: The application answered with an HTTP response instead (started).
        self.http_response = False
        self.disconnect_code: int | None = None
        self.shutting_down = False
        self.socket_open = True
        self.reading: shardio.CancelScope | None = None

    def begin_shutdown(self, deadline: float) -> None:
        self.shutting_down = True
        self.connection.scope.deadline = deadline
        if self.reading is not None:
            self.reading.cancel()

    def scope(self) -> dict[str, Any]:
        connection = self.connection
        server = connection.server
        request = self.request
        raw_path, query = split_target(request.target)
        path = urllib.parse.unquote(raw_path.decode("ascii"))
        root_path = server.config.root_path
        protocols = request.header(b"sec-websocket-protocol")
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version.decode("ascii"),
            "scheme": "ws",
            "server": connection.server_address,
            "client": connection.client,
            "root_path": root_path,
            "path": root_path + path,
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": query,
            "headers": request.headers,
            "subprotocols": [
                part.strip() for part in protocols.decode("latin-1").split(",") if part.strip()
            ]
            if protocols
            else [],
            "state": server.state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    async def run(self) -> None:
        connection = self.connection
        try:
            await connection.server.app(self.scope(), self.receive, self.send)
        except Exception:
            if self.disconnect_code is None:
                ERROR_LOGGER.exception("Exception in ASGI application (WebSocket)")
            if not self.accepted and not self.http_response:
                await self._reject(500)
            elif self.accepted and not self.closed:
                await self._close(1011, "")
            return
        if not self.accepted and not self.http_response:
            ERROR_LOGGER.error("ASGI callable returned without accepting the WebSocket")
            await self._reject(500)
        elif self.accepted and not self.closed and self.disconnect_code is None:
            await self._close(1000, "")
        await self._wait_for_close()

    # -- receive ------------------------------------------------------------

    async def receive(self) -> ASGIMessage:
        """The application's ``receive``."""
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        if self.disconnect_code is not None:
            return {"type": "websocket.disconnect", "code": self.disconnect_code, "reason": ""}
        if not self.accepted:
            # Waiting for a client that cannot talk yet: only its leaving.
            await self._wait_for_eof()
            return self._disconnected(_ABNORMAL_CLOSURE, "")
        ws = self.ws
        assert isinstance(ws, Connection)
        pieces: list[Any] = []
        size = 0
        limit = self.connection.server.config.ws_max_size
        while True:
            if self.shutting_down:
                await self._close(_SERVICE_RESTART, "")
                return self._disconnected(_SERVICE_RESTART, "")
            for event in ws.events():
                if isinstance(event, Message):
                    pieces.append(event.data)
                    size += len(event.data)
                    if size > limit:
                        await self._close(_MESSAGE_TOO_BIG, "message too big")
                        return self._disconnected(_MESSAGE_TOO_BIG, "message too big")
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            return {"type": "websocket.receive", "text": "".join(pieces)}
                        return {"type": "websocket.receive", "bytes": b"".join(pieces)}
                elif isinstance(event, Ping):
                    await self._send_frame(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        await self._send_frame(ws.send(event.response()))
                    self.closed = True
                    return self._disconnected(event.code, event.reason or "")
            data = await self._read()
            if data is None:
                if self.shutting_down:
                    continue
                return self._disconnected(_ABNORMAL_CLOSURE, "")
            try:
                ws.receive_data(data)
            except RemoteProtocolError as error:
                code = getattr(error.event_hint, "code", 1002)
                await self._close(code, "")
                return self._disconnected(code, str(error))

    async def _read(self) -> bytes | None:
        """Bytes from the socket; ``None`` at end-of-file, a reset, or when
        the shutdown woke us."""
        if not self.socket_open:
            return None
        data: bytes | bytearray | None = None
        with shardio.CancelScope() as self.reading:
            try:
                data = await self.connection.stream.receive_some(65536)
            except (shardio.BrokenResourceError, shardio.ClosedResourceError):
                data = b""
            if not data:
                self.socket_open = False
                data = None
        self.reading = None
        return None if data is None else bytes(data)

    async def _wait_for_eof(self) -> None:
        while await self._read() is not None:
            pass

    def _disconnected(self, code: int, reason: str) -> ASGIMessage:
        self.disconnect_code = code
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    # -- send -----------------------------------------------------------------

    async def send(self, message: ASGIMessage) -> None:
        """The application's ``send``."""
        kind = message["type"]
        if self.disconnect_code is not None and kind != "websocket.close":
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.send":
            if not self.accepted or self.closed:
                raise RuntimeError("websocket.send before websocket.accept, or after a close")
            ws = self.ws
            assert isinstance(ws, Connection)
            text = message.get("text")
            if text is not None:
                frame = ws.send(TextMessage(data=text))
            else:
                frame = ws.send(BytesMessage(data=message.get("bytes") or b""))
            await self._send_frame(frame)
        elif kind == "websocket.accept":
            if self.accepted or self.closed or self.http_response:
                raise RuntimeError("websocket.accept after the handshake was answered")
            await self._accept(message)
        elif kind == "websocket.close":
            if self.closed:
                return
            if not self.accepted:
                self.closed = True
                if not self.http_response:
                    await self._reject(403)
                return
            await self._close(message.get("code") or 1000, message.get("reason") or "")
        elif kind == "websocket.http.response.start":
            if self.accepted or self.closed or self.http_response:
                raise RuntimeError("websocket.http.response.start after the handshake was answered")
            self.http_response = True
            conn = self.connection.conn
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            await self._send_frame(conn.send(Response(message["status"], headers)))
        elif kind == "websocket.http.response.body":
            if not self.http_response:
                raise RuntimeError("websocket.http.response.body before its start")
            conn = self.connection.conn
            data = conn.send(Data(bytes(message.get("body", b""))))
            if not message.get("more_body", False):
                data += conn.send(EndOfMessage())
                self.closed = True
            await self._send_frame(data)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on a WebSocket")

    async def _accept(self, message: ASGIMessage) -> None:
        request = self.request
        headers: list[tuple[bytes, bytes]] = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", generate_accept_token(self.key)),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
        extensions: list[Extension] = []
        offered = request.header(b"sec-websocket-extensions")
        if offered and self.connection.server.config.ws_per_message_deflate:
            deflate = PerMessageDeflate()
            offers = [part.strip() for part in offered.decode("latin-1").split(",")]
            accepted = server_extensions_handshake(offers, [deflate])
            if accepted is not None:
                headers.append((b"sec-websocket-extensions", accepted))
                extensions.append(deflate)
        headers.extend((bytes(name), bytes(value)) for name, value in message.get("headers", ()))
        head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
            b"%s: %s\r\n" % (name, value) for name, value in headers
        )
        buffer = self.connection.conn.buffer
        trailing = buffer.take_bytes(len(buffer))
        self.ws = Connection(ConnectionType.SERVER, extensions, trailing_data=trailing)
        self.accepted = True
        await self._send_frame(head + b"\r\n")

    async def _reject(self, status: int) -> None:
        conn = self.connection.conn
        body = b"the WebSocket was refused\n" if status == 403 else b"Internal Server Error\n"
        self.http_response = True
        try:
            await self.connection.stream.send_all(
                simple_response(conn, status, body, self.connection.server)
            )
        except (shardio.BrokenResourceError, shardio.ClosedResourceError):
            pass

    async def _close(self, code: int, reason: str) -> None:
        ws = self.ws
        self.closed = True
        if not isinstance(ws, Connection):
            return
        try:
            frame = ws.send(CloseConnection(code=code, reason=reason))
        except LocalProtocolError:
            return  # closed already
        try:
            await self._send_frame(frame)
        except ClientDisconnected:
            pass

    async def _wait_for_close(self) -> None:
        """After our close frame, give the client a moment to answer it."""
        ws = self.ws
        if not isinstance(ws, Connection) or ws.state is not ConnectionState.LOCAL_CLOSING:
            return
        with shardio.move_on_after(_CLOSE_WAIT_SECONDS):
            while ws.state is ConnectionState.LOCAL_CLOSING:
                for event in ws.events():
                    if isinstance(event, CloseConnection):
                        return
                data = await self._read()
                if data is None:
                    return
                try:
                    ws.receive_data(data)
                except RemoteProtocolError:
                    return

    async def _send_frame(self, data: bytes) -> None:
        try:
            await self.connection.stream.send_all(data)
        except (shardio.BrokenResourceError, shardio.ClosedResourceError) as exc:
            self.socket_open = False
            if self.disconnect_code is None:
                self.disconnect_code = _ABNORMAL_CLOSURE
            raise ClientDisconnected("the client has gone away") from exc
