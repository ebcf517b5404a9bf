"""An HTTP/1.1 server on every shard: keep-alive, pipelining, and a sans-io parser.

Run it from the repository root::

    .venv/bin/python -m examples.httpd --smp 2 --port 8080
    .venv/bin/python -m examples.httpd --smp 2 --port 8080 --balance least-connections

then ``curl -i http://localhost:8080/`` (or load it with ``wrk``); Ctrl-C
stops it. With ``--port 0`` the kernel picks a free port; the first line
printed says which. The routes:

* ``GET /`` (or ``HEAD /``): ``Hello, World!``, a fixed response with a
  ``Content-Length``;
* ``GET /shard``: which shard served the request (one connection is always
  served by the same shard);
* any other path is 404, any other method on these paths 405.

Every shard listens on the port (see ``examples/echo.py`` for how the
connections are spread), and each connection is a loop around a
:class:`shardio_net.http.ServerConnection`, the sans-io HTTP/1.1 state
machine: bytes in, events out; events in, bytes out. The parser enforces the
limits on what a client may send (a header section of at most
``--max-header-size`` bytes, else 431; anything malformed, 400) and the
server answers with that status and closes.

Where speed matters, the loop avoids work: bytes arrive with
``receive_into`` straight into the parser's own :class:`ReceiveBuffer`, and
the responses to every request that arrived together (a pipelined burst)
leave in one vectored ``send_all``. A client that resets the connection, or
stays silent for ``--idle-timeout`` seconds between requests, is simply
dropped.
"""

from __future__ import annotations

import argparse
import functools
from typing import Literal

import shardio
import shardio_net
import shardio_net.native
from shardio_net import http

#: The body of ``GET /``.
HELLO = b"Hello, World!"


def respond(conn: http.ServerConnection, request: http.Request) -> bytes:
    """The bytes of the response to ``request`` (whose body, if any, has
    been received): status line, header fields and body."""
    path = request.target.partition(b"?")[0]
    if path != b"/" and path != b"/shard":
        return simple_response(conn, 404, b"not found\n")
    if request.method != b"GET" and request.method != b"HEAD":
        return simple_response(conn, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
    if path == b"/":
        return simple_response(conn, 200, HELLO)
    return simple_response(conn, 200, b"served by shard %d\n" % shardio.current_shard())


def simple_response(
    conn: http.ServerConnection,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A complete plain-text response with ``body`` (dropped for ``HEAD``)."""
    fields = [(b"content-length", b"%d" % len(body)), (b"content-type", b"text/plain")]
    if headers:
        fields += headers
    head = conn.send(http.Response(status, fields))
    return head + conn.send(http.Data(body)) + conn.send(http.EndOfMessage())


async def serve_http(
    stream: shardio_net.SocketStream,
    *,
    max_header_size: int = 16384,
    idle_timeout: float = 60.0,
) -> None:
    """Serve HTTP/1.1 requests on ``stream`` until the client closes, asks to
    close, breaks the protocol, resets the connection or stays idle for
    ``idle_timeout`` seconds."""
    conn = http.ServerConnection(max_header_size=max_header_size)
    buffer = conn.buffer
    # Responses ready to go: every request already received is answered
    # before waiting for more, and the answers are sent together.
    ready: list[bytes] = []
    try:
        while True:
            try:
                event = conn.next_event()
            except http.RemoteProtocolError as error:
                message = b"%s\n" % str(error).encode()
                ready.append(simple_response(conn, error.status_code, message))
                await stream.send_all(ready)
                await linger(stream)
                return
            if event is http.NEED_DATA:
                if ready:
                    # One send for the whole burst: a single response goes
                    # out with send(), several with one vectored sendmsg().
                    await stream.send_all(ready[0] if len(ready) == 1 else ready)
                    ready.clear()
                with shardio.move_on_after(idle_timeout) as idle:
                    received = await buffer.receive_from(stream)
                if idle.cancelled_caught:
                    return
                if not received:
                    conn.receive_data(b"")  # end-of-file
            elif isinstance(event, http.EndOfMessage):
                assert conn.request is not None
                ready.append(respond(conn, conn.request))
            elif isinstance(event, (http.Request, http.Data)):
                continue  # respond once the whole request (body included) is in
            else:  # PAUSED after a closing cycle, or ConnectionClosed
                if ready:
                    await stream.send_all(ready)
                if buffer:  # requests sent after the one that closed
                    await linger(stream)
                return
    except shardio.BrokenResourceError:
        return  # the client reset the connection: nobody is left to answer


async def linger(stream: shardio_net.SocketStream, timeout: float = 2.0) -> None:
    """Close our side, then read and drop what the client still sends, for at
    most ``timeout`` seconds, before the connection is closed.

    Closing a socket with unread data in it makes the kernel reset the
    connection, and a reset can destroy the response the client has not read
    yet -- the error response, after a request the server refused to read to
    the end (``lingering_close`` in Apache and nginx).
    """
    await stream.send_eof()
    scratch = bytearray(4096)
    with shardio.move_on_after(timeout):
        while await stream.receive_into(scratch):
            pass


async def main(
    network: argparse.Namespace,
    port: int,
    host: str | None,
    balance: Literal["reuseport", "least-connections"],
    max_header_size: int,
    idle_timeout: float,
) -> None:
    handler = functools.partial(
        serve_http, max_header_size=max_header_size, idle_timeout=idle_timeout
    )
    stack = await shardio_net.native.start_stack(network)
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(
            shardio_net.serve_tcp, handler, port, host=host, shards="all", balance=balance
        )
        addresses = await nursery.start(serve)
        where = ", ".join(
            f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}" for a in addresses
        )
        print(
            f"httpd on {shardio.shard_count()} shard(s), {stack}, listening on {where}",
            flush=True,
        )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.httpd", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smp", type=int, default=None, help="shards (default: one per CPU)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    parser.add_argument("--host", default=None, help="local address (default: all, IPv4 and IPv6)")
    parser.add_argument(
        "--balance",
        choices=["reuseport", "least-connections"],
        default="reuseport",
        help="how connections are spread over the shards",
    )
    parser.add_argument(
        "--max-header-size",
        type=int,
        default=16384,
        help="most bytes in a request line and header section (more: 431)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="seconds a keep-alive connection may wait for its next request",
    )
    shardio_net.native.add_stack_arguments(parser)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_arguments()
    try:
        shardio.run(
            main,
            arguments,
            arguments.port,
            arguments.host,
            arguments.balance,
            arguments.max_header_size,
            arguments.idle_timeout,
            shards=arguments.smp,
        )
    except KeyboardInterrupt:
        print("stopped", flush=True)
