"""One HTTP/1.1 connection, served to an ASGI application.

The connection is a loop around :class:`shardio_net.http.ServerConnection`
(the sans-io parser: bytes in, events out; events in, bytes out), run in
the task ``serve_tcp`` gave the connection. For each request it calls the
application *in that same task* -- no task per request -- with a fresh
:class:`HttpCycle` whose ``receive`` and ``send`` are the application's two
callables. The rules the cycle keeps:

* **Backpressure on request bodies.** Nothing is read from the socket
  unless the application asks for it: ``receive()`` parses what is already
  buffered, and reads once from the socket only when that is not enough. An
  application that stops calling ``receive()`` stops the client, through
  TCP's flow control, once the kernel's buffers fill. Every piece of body
  already buffered is handed over in one message, so a small body is one
  ``http.request`` with ``more_body=False``.
* **100-continue.** A client that sent ``Expect: 100-continue`` gets
  ``100 Continue`` when the application first asks for the body, and not at
  all if it answers first (RFC 9110 10.1.1); the response then closes the
  connection, since the body was never read.
* **Disconnects.** Once the body is in, ``receive()`` waits for the client
  to go: it reads from the socket (buffering any pipelined request, up to
  the header-size limit) until end-of-file or a reset, and returns
  ``http.disconnect`` then, or as soon as the response is complete.
  ``send()`` after the client went raises :class:`ClientDisconnected` (an
  ``OSError``, as ASGI 2.4 asks).
* **Responses.** ``http.response.start`` is held until the first body
  message, so a response whose whole body comes in one message is sent
  with one ``send_all`` (head and body), and given a ``Content-Length`` if
  it has none; a response in several messages without one is chunked (or,
  to an HTTP/1.0 client, ended by closing). A body of at least
  ``VECTORED_THRESHOLD`` bytes is not joined to its head but sent with it
  in one vectored ``send_all``, without a copy. Files (``pathsend``,
  ``zerocopysend``) are in :mod:`._files`.
* **The last message skips the checkpoint.** ``send_all`` is a checkpoint:
  it yields to the scheduler even when the socket took every byte. For the
  last message of a response that is the wrong moment: every connection's
  application is suspended there with its whole stack of frames alive
  (Starlette's middleware, its request and response objects), 64 of them
  with wrk's 64 connections, enough live allocations that the garbage
  collector ran every 23 requests of a Starlette application (and its
  full collections, which walk every object of the process, now and
  then), against once in 3000 with an asyncio server, whose
  ``transport.write`` never yields. So on a kernel socket the last bytes go
  straight into ``socket.send``; what it does not take goes through
  ``send_all``; and the connection yields after the application returns,
  before it reads the next request. (Measured with A1's Starlette
  application: collections from 1893 to 18 per 44,000 requests; together,
  the server's CPU time per request from 52 to 39 us.)
* **Errors.** What the parser refuses gets its status (400, 413, 414, 431,
  501, 505) and the connection closes; a request over
  ``limit_concurrency`` on this shard gets 503 without reaching the
  application; an application that raises, or returns without a response,
  gives 500 if nothing was sent yet, and otherwise the connection is closed
  under the partial response. A connection that must close after a request
  whose body was not read to the end *lingers*: it half-closes, reads and
  drops what the client still sends for a moment, then closes -- closing
  with unread data would make the kernel reset the connection, which can
  destroy the response before the client reads it.

The connection loop, ``receive`` and ``send`` are the hot paths of the
server, and are written for speed (type checks with ``is``, the common
message first, no helper calls on the way of a small response).
"""

from __future__ import annotations

import logging
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

import shardio
import shardio_net
from shardio.lowlevel import cancel_shielded_checkpoint
from shardio_net.http import (
    NEED_DATA,
    Data,
    EndOfMessage,
    InformationalResponse,
    RemoteProtocolError,
    Request,
    Response,
    ServerConnection,
)

from ._files import VECTORED_THRESHOLD, FileBody, file_body
from ._shard import ShardServer

if TYPE_CHECKING:
    from shardio.abc import HalfCloseableStream

    from ._app import Message
    from ._websocket import WebSocketSession

__all__ = ["VECTORED_THRESHOLD", "ClientDisconnected", "HttpConnection", "HttpCycle"]


#: Exceptions from applications are logged here.
ERROR_LOGGER = logging.getLogger("shardio_net.asgi.error")
#: One line per response, when access logging is on.
ACCESS_LOGGER = logging.getLogger("shardio_net.asgi.access")

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_HTTP_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
_LINGER_SECONDS = 2.0
_END = EndOfMessage()  # frozen: one serves every response
_MSG_NOSIGNAL = socket.MSG_NOSIGNAL  # a closed peer is EPIPE, never SIGPIPE


class ClientDisconnected(OSError):
    """``send()`` was called after the client went away (or after the
    server stopped waiting for it)."""


def stream_addresses(
    stream: HalfCloseableStream,
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """The server's and the client's address of a connection, as ASGI wants
    them (``None`` where there is no such thing, as on a Unix socket)."""
    sock: Any = getattr(stream, "socket", stream)
    addresses: list[tuple[str, int] | None] = []
    for name in ("getsockname", "getpeername"):
        try:
            address = getattr(sock, name)()
        except (AttributeError, OSError):
            address = None
        addresses.append((str(address[0]), int(address[1])) if isinstance(address, tuple) else None)
    return addresses[0], addresses[1]


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """A request target's raw path and query string (origin form, or the
    path of the absolute form a proxy sends; ``*`` for ``OPTIONS *``)."""
    if target[:1] != b"/" and target != b"*":
        parts = urllib.parse.urlsplit(target)
        target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
    raw_path, _, query = target.partition(b"?")
    return raw_path, query


def is_websocket_upgrade(request: Request) -> bool:
    """Whether ``request`` asks to become a WebSocket (RFC 6455 4.1)."""
    upgrade = request.header(b"upgrade")
    if upgrade is None or b"websocket" not in upgrade.lower():
        return False
    connection = request.header(b"connection") or b""
    return b"upgrade" in connection.lower() and request.method == b"GET"


class HttpConnection:
    """One connection's loop: parse a request, run a cycle, repeat."""

    __slots__ = (
        "busy",
        "client",
        "conn",
        "idle_ticks",
        "scope",
        "served",
        "served_at_tick",
        "server",
        "server_address",
        "socket",
        "stream",
        "websocket",
    )

    def __init__(self, server: ShardServer, stream: HalfCloseableStream) -> None:
        self.server = server
        self.stream = stream
        config = server.config
        self.conn = ServerConnection(
            max_header_size=config.max_header_size,
            max_header_count=config.max_header_count,
            max_body_size=config.max_body_size,
        )
        self.server_address, self.client = stream_addresses(stream)
        #: The kernel socket under a SocketStream (for the last message of
        #: a response, sent without a checkpoint); None on other streams.
        self.socket: socket.socket | None = (
            stream.socket if type(stream) is shardio_net.SocketStream else None
        )
        self.scope = shardio.CancelScope(shield=True)
        self.busy = False
        self.served = 0
        self.served_at_tick = 0
        self.idle_ticks = 0
        #: The WebSocket session this connection became, if it did.
        self.websocket: WebSocketSession | None = None

    def tick(self) -> None:
        # The keep-alive timeout: called by the shard's server every half
        # timeout; idle with no request since two calls ago is idle for at
        # least the whole timeout (and at most one and a half).
        if self.busy or self.served != self.served_at_tick:
            self.served_at_tick = self.served
            self.idle_ticks = 0
        else:
            self.idle_ticks += 1
            if self.idle_ticks >= 2:
                self.scope.cancel()

    def begin_shutdown(self, deadline: float) -> None:
        if self.websocket is not None:
            self.websocket.begin_shutdown(deadline)
        elif self.busy:
            self.scope.deadline = deadline
        else:
            self.scope.cancel()

    async def run(self) -> None:
        """Serve requests until the connection is finished, then return (the
        caller closes the stream)."""
        server = self.server
        server.add(self)
        try:
            with self.scope:
                await self._serve()
        except (shardio.BrokenResourceError, shardio.ClosedResourceError):
            pass  # the client reset the connection: nobody is left to answer
        finally:
            server.discard(self)

    async def _serve(self) -> None:
        # Hot path: once per request.
        server = self.server
        conn = self.conn
        buffer = conn.buffer
        stream = self.stream
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as error:
                await self._refuse(error.status_code, str(error))
                return
            if event is NEED_DATA:
                if server.stopping:
                    return
                received = await buffer.receive_from(stream)
                if not received:
                    conn.receive_data(b"")
            elif type(event) is Request:
                self.busy = True
                self.served += 1
                if server.stopping:
                    self.scope.deadline = server.shutdown_deadline
                if is_websocket_upgrade(event):
                    await self._websocket(event)
                    return
                cycle = HttpCycle(self, event)
                await cycle.run()
                if cycle.sent_directly:
                    # The checkpoint the send skipped, now that the
                    # application is done: the other connections' turns
                    # (and the client's next request) come before our
                    # next receive.
                    await cancel_shielded_checkpoint()
                if cycle.closing:
                    if not cycle.body_done or buffer:
                        await self._linger()
                    return
                self.busy = False
            elif type(event) is Data or type(event) is EndOfMessage:
                continue  # cannot happen between cycles; kept for the parser's contract
            else:  # ConnectionClosed, or PAUSED after a cycle that closes
                return

    async def _websocket(self, request: Request) -> None:
        try:
            from ._websocket import serve_websocket
        except ImportError:  # wsproto comes with the "asgi" extra
            await self._refuse(501, "WebSockets need wsproto: pip install 'shardio[asgi]'")
            return
        await serve_websocket(self, request)

    async def _refuse(self, status: int, message: str) -> None:
        """Answer a request the parser refused, and close (lingering)."""
        body = message.encode("utf-8", "replace") + b"\n"
        await self.stream.send_all(simple_response(self.conn, status, body, self.server))
        await self._linger()

    async def _linger(self) -> None:
        """Half-close, and read and drop what the client still sends for a
        moment, so that closing does not reset the connection under the
        response it has not read yet (Apache's and nginx's lingering close)."""
        stream = self.stream
        await stream.send_eof()
        scratch = bytearray(4096)
        receive_into = getattr(stream, "receive_into", None)
        with shardio.move_on_after(_LINGER_SECONDS):
            if receive_into is not None:
                while await receive_into(scratch):
                    pass
            else:
                while await stream.receive_some(4096):
                    pass


def simple_response(conn: ServerConnection, status: int, body: bytes, server: ShardServer) -> bytes:
    """A complete plain-text response that closes the connection."""
    head = conn.send(
        Response(
            status,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
                server.date_header(),
            ],
        )
    )
    return head + conn.send(Data(body)) + conn.send(_END)


class HttpCycle:
    """One request and its response: the ``receive`` and ``send`` an
    application is called with."""

    __slots__ = (
        "body_delivered",
        "body_done",
        "closing",
        "conn",
        "connection",
        "disconnected",
        "error",
        "head_sent",
        "pending",
        "request",
        "response_complete",
        "response_headers",
        "response_started",
        "sent_directly",
        "status",
        "waiting",
    )

    def __init__(self, connection: HttpConnection, request: Request) -> None:
        self.connection = connection
        self.conn = connection.conn
        self.request = request
        self.body_done = False
        self.body_delivered = False
        self.pending: list[bytes] = []
        self.disconnected = False
        self.response_started = False
        self.head_sent = False
        self.response_complete = False
        self.sent_directly = False
        self.closing = False
        self.status = 0
        self.response_headers: Any = ()
        self.error: RemoteProtocolError | None = None
        self.waiting: shardio.CancelScope | None = None

    def scope(self) -> dict[str, Any]:
        """The request's ASGI scope."""
        connection = self.connection
        server = connection.server
        request = self.request
        raw_path, query = split_target(request.target)
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root_path = server.config.root_path
        if root_path:
            path = root_path + path
            raw_path = root_path.encode("ascii") + raw_path
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": _HTTP_VERSIONS.get(request.http_version, "1.1"),
            "server": connection.server_address,
            "client": connection.client,
            "scheme": "http",
            "method": request.method.decode("ascii"),
            "root_path": root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": request.headers,
            "state": server.state.copy(),
            "extensions": {"http.response.pathsend": {}, "http.response.zerocopysend": {}},
        }

    async def run(self) -> None:
        """Call the application for this request, and make sure it gets a
        complete response (or the connection closes)."""
        connection = self.connection
        server = connection.server
        limit = server.config.limit_concurrency
        if limit is not None and server.requests_in_flight >= limit:
            await self._answer(503, b"Service Unavailable\n")
            return
        server.requests_in_flight += 1
        self._gather()
        try:
            await server.app(self.scope(), self.receive, self.send)
        except Exception as exc:
            if isinstance(exc, ClientDisconnected) or self.disconnected:
                ERROR_LOGGER.debug("the client went away during %r", self.request, exc_info=True)
            else:
                ERROR_LOGGER.exception("Exception in ASGI application")
            self._after_failure()
        except shardio.Cancelled:
            # The graceful shutdown's deadline, or the client's idle timeout:
            # whatever was sent stays, the connection closes.
            self.closing = True
            raise
        else:
            if not self.response_complete:
                if self.response_started:
                    ERROR_LOGGER.error("ASGI callable returned without completing the response")
                elif not self.disconnected:
                    ERROR_LOGGER.error("ASGI callable returned without starting a response")
                self._after_failure()
        finally:
            server.requests_in_flight -= 1
        if self.closing and not self.response_complete and not self.head_sent:
            await self._answer_failure()
        if self.conn.must_close:
            self.closing = True

    def _after_failure(self) -> None:
        self.closing = True

    async def _answer_failure(self) -> None:
        if self.disconnected and self.error is None:
            return  # nobody to answer
        if self.error is not None:
            await self._answer(self.error.status_code, str(self.error).encode() + b"\n")
        else:
            await self._answer(500, b"Internal Server Error\n")

    async def _answer(self, status: int, body: bytes) -> None:
        connection = self.connection
        data = simple_response(self.conn, status, body, connection.server)
        self.head_sent = self.response_complete = True
        self.closing = True
        try:
            await connection.stream.send_all(data)
        except (shardio.BrokenResourceError, shardio.ClosedResourceError):
            pass
        self._log(status)

    def _log(self, status: int) -> None:
        if not self.connection.server.config.access_log:
            return
        request = self.request
        client = self.connection.client
        ACCESS_LOGGER.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{client[0]}:{client[1]}" if client else "-",
            request.method.decode("ascii"),
            request.target.decode("ascii"),
            request.http_version.decode("ascii"),
            status,
        )

    # -- receive ------------------------------------------------------------

    def _gather(self) -> None:
        """Take the body events the buffered bytes already make, without
        I/O: the pieces into ``pending``, ``body_done`` at the end. A body
        the client botched fails the cycle (``error``)."""
        conn = self.conn
        pending = self.pending
        try:
            while True:
                event = conn.next_event()
                if type(event) is Data:
                    pending.append(event.data)
                elif type(event) is EndOfMessage:
                    self.body_done = True
                    return
                else:  # NEED_DATA
                    return
        except RemoteProtocolError as error:
            self.error = error
            self.disconnected = True
            self.closing = True

    async def receive(self) -> Message:
        """The application's ``receive``: the request body, then
        ``http.disconnect``."""
        # Hot path: a request without a body was gathered before the
        # application was called, and is one message now.
        if self.body_delivered or self.disconnected:
            return await self._wait_for_disconnect()
        conn = self.conn
        if conn.client_is_waiting_for_100_continue and not self.response_started:
            await self.connection.stream.send_all(conn.send(InformationalResponse(100)))
        pending = self.pending
        while True:
            if not self.body_done:
                self._gather()
                if self.disconnected:
                    return {"type": "http.disconnect"}
            if self.body_done:
                self.body_delivered = True
                body = b"".join(pending) if pending else b""
                pending.clear()
                return {"type": "http.request", "body": body, "more_body": False}
            if pending:
                body = b"".join(pending)
                pending.clear()
                return {"type": "http.request", "body": body, "more_body": True}
            try:
                received = await conn.buffer.receive_from(self.connection.stream)
            except (shardio.BrokenResourceError, shardio.ClosedResourceError):
                self.disconnected = True
                self.closing = True
                return {"type": "http.disconnect"}
            if not received:
                conn.receive_data(b"")

    async def _wait_for_disconnect(self) -> Message:
        if not (self.response_complete or self.disconnected):
            connection = self.connection
            buffer = self.conn.buffer
            limit = connection.server.config.max_header_size
            with shardio.CancelScope() as self.waiting:
                try:
                    while len(buffer) < limit:
                        if not await buffer.receive_from(connection.stream):
                            self.conn.receive_data(b"")
                            self.disconnected = True
                            break
                    else:
                        await shardio.sleep_forever()  # enough buffered: wait for the response
                except (shardio.BrokenResourceError, shardio.ClosedResourceError):
                    self.disconnected = True
            self.waiting = None
        return {"type": "http.disconnect"}

    # -- send -----------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """The application's ``send``."""
        # Hot path: one start and one small body per request, most often;
        # that body is framed, ended and sent with its head here, in one
        # send_all, with nothing between.
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected an 'http.response.start' message first, not {kind!r}")
            self.response_started = True
            self.status = message["status"]
            self.response_headers = message.get("headers", ())
            return
        if kind == "http.response.body" and not (self.response_complete or self.disconnected):
            body = message.get("body", b"")
            if (
                type(body) is bytes
                and len(body) < VECTORED_THRESHOLD
                and not message.get("more_body", False)
            ):
                conn = self.conn
                head = b"" if self.head_sent else self._head(len(body))
                data = head + conn.send(Data(body)) + conn.send(_END)
                self._complete()
                sock = self.connection.socket
                if sock is not None:
                    # The response's last bytes, straight into the socket if
                    # it takes them all: no checkpoint, so the application's
                    # frames unwind now instead of waiting behind every
                    # other connection's turn (as transport.write in
                    # asyncio servers). Otherwise send_all sends the rest.
                    try:
                        sent = sock.send(data, _MSG_NOSIGNAL)
                    except BlockingIOError:
                        sent = 0
                    except OSError as exc:
                        self.disconnected = True
                        self.closing = True
                        raise ClientDisconnected("the client has gone away") from exc
                    if sent == len(data):
                        self.sent_directly = True
                        return
                    data = data[sent:]
                try:
                    await self.connection.stream.send_all(data)
                except (shardio.BrokenResourceError, shardio.ClosedResourceError) as exc:
                    self.disconnected = True
                    self.closing = True
                    raise ClientDisconnected("the client has gone away") from exc
                return
        await self._send_other(kind, message)

    async def _send_other(self, kind: str, message: Message) -> None:
        if self.response_complete:
            raise RuntimeError(f"the response is already complete: cannot send {kind!r}")
        if self.disconnected:
            raise ClientDisconnected("the client has gone away")
        if kind == "http.response.body":
            body = message.get("body", b"")
            if not message.get("more_body", False):
                await self._send_last(body)
            elif body or not self.head_sent:
                await self._send_pieces(self._body_pieces(body, None))
        elif kind == "http.response.pathsend":
            await self._send_file(await file_body(message, "path"))
        elif kind == "http.response.zerocopysend":
            await self._send_file(await file_body(message, "file"), message.get("more_body", False))
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} during a response")

    def _head(self, length: int | None) -> bytes:
        """The response's head; ``length``: the whole body's size, known
        when it comes in one message (a ``Content-Length`` is added then,
        if the application gave none)."""
        headers = list(self.response_headers)
        if length is not None and self.status not in (204, 304):
            for name, _ in headers:
                lowered = name.lower()
                if lowered == b"content-length" or lowered == b"transfer-encoding":
                    break
            else:
                if self.request.method != b"HEAD" or length:
                    headers.append((b"content-length", b"%d" % length))
        server = self.connection.server
        headers.append(server.date_header())
        if server.stopping:
            headers.append((b"connection", b"close"))
        head = self.conn.send(Response(self.status, headers))
        self.head_sent = True
        return head

    def _body_pieces(self, body: Any, length: int | None) -> list[Any]:
        """The head (if not sent yet) and the framed body, as pieces for one
        ``send_all``; small ones joined."""
        conn = self.conn
        if type(body) is not bytes and not isinstance(body, (bytearray, memoryview)):
            raise TypeError(f"an ASGI body must be bytes, not {type(body).__name__}")
        head = b"" if self.head_sent else self._head(length)
        if len(body) < VECTORED_THRESHOLD:
            return [head + conn.send(Data(bytes(body)))]
        view = memoryview(body).cast("B")
        data = conn.send(Data(view))  # type: ignore[arg-type]  # framed, not copied
        if len(data) < VECTORED_THRESHOLD:  # a HEAD response's, dropped
            return [head + data]
        return [head, data] if head else [data]

    async def _send_last(self, body: Any) -> None:
        pieces = self._body_pieces(body, None if self.head_sent else len(body))
        end = self.conn.send(_END)
        if end:
            pieces.append(end)
        self._complete()
        await self._send_pieces(pieces)

    def _complete(self) -> None:
        self.response_complete = True
        waiting = self.waiting
        if waiting is not None:
            waiting.cancel()
        if self.connection.server.config.access_log:
            self._log(self.status)

    async def _send_pieces(self, pieces: list[Any]) -> None:
        stream: Any = self.connection.stream  # shardio_net's streams take a list: vectored
        try:
            await stream.send_all(pieces[0] if len(pieces) == 1 else pieces)
        except (shardio.BrokenResourceError, shardio.ClosedResourceError) as exc:
            self.disconnected = True
            self.closing = True
            raise ClientDisconnected("the client has gone away") from exc

    async def _send_file(self, file: FileBody, more_body: bool = False) -> None:
        with file:
            pieces = self._body_pieces(
                file.view, None if self.head_sent or more_body else file.size
            )
            if not more_body:
                end = self.conn.send(_END)
                if end:
                    pieces.append(end)
                self._complete()
            await self._send_pieces(pieces)
