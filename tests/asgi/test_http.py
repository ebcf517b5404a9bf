"""shardio_net.asgi over HTTP/1.1, with real clients: httpx's sync client and raw
sockets, each in a thread, against a server in the test's run."""

from __future__ import annotations

import json
import os
import select
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

import shardio
from shardio_net.asgi import ClientDisconnected, Receive, Scope, Send

from . import _apps
from ._util import connect, in_thread, read_responses, read_until_close, serving


async def test_a_request_gets_the_application_s_response_with_its_scope() -> None:
    async with serving(_apps.echo) as port:

        def get() -> httpx.Response:
            return httpx.get(f"http://127.0.0.1:{port}/a%20b/c?x=1&y=2", headers={"x-t": "v"})

        response = await in_thread(get)
    assert response.status_code == 200
    report = response.json()
    assert report["method"] == "GET"
    assert report["path"] == "/a b/c"
    assert report["raw_path"] == "/a%20b/c"
    assert report["query_string"] == "x=1&y=2"
    assert report["http_version"] == "1.1"
    assert ["x-t", "v"] in report["headers"]
    assert report["client"][0] == "127.0.0.1"
    assert report["extensions"] == ["http.response.pathsend", "http.response.zerocopysend"]
    assert response.headers["content-length"] == str(len(response.content))
    assert "date" in response.headers


async def test_one_connection_serves_many_requests_with_keep_alive() -> None:
    async with serving(_apps.echo) as port:

        def get_many() -> set[tuple[str, int]]:
            peers = set()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for number in range(20):
                    response = client.post("/n", content=b"x" * number)
                    assert response.json()["body_length"] == number
                    peers.add(tuple(response.json()["client"]))
            return peers

        peers = await in_thread(get_many)
    assert len(peers) == 1  # the same client port: one connection


async def test_pipelined_requests_are_answered_in_order() -> None:
    requests = b"".join(
        b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (n, n, b"b" * n)
        for n in range(10)
    )

    async with serving(_apps.echo) as port:

        def pipeline() -> list[Any]:
            with connect(port) as sock:
                sock.sendall(requests)
                return read_responses(sock, 10)

        responses = await in_thread(pipeline)
    assert [json.loads(body)["path"] for _, _, body in responses] == [f"/{n}" for n in range(10)]
    assert [json.loads(body)["body_length"] for _, _, body in responses] == list(range(10))


async def test_a_chunked_request_body_arrives_whole() -> None:
    async with serving(_apps.echo) as port:

        def post() -> httpx.Response:
            def parts() -> Any:
                for _ in range(100):
                    yield b"0123456789" * 100

            return httpx.post(f"http://127.0.0.1:{port}/", content=parts())

        response = await in_thread(post)
    assert response.json()["body_length"] == 100_000


async def streamed(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"14")] if scope["path"] == "/fixed" else []
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for part in (b"first", b"", b"second", b"end"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_a_response_in_parts_is_chunked_or_fixed_length_as_its_headers_say() -> None:
    async with serving(streamed) as port:

        def get_both() -> list[Any]:
            with connect(port) as sock:
                sock.sendall(
                    b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                return read_responses(sock, 2)

        (_, chunked_headers, chunked), (_, fixed_headers, fixed) = await in_thread(get_both)
    assert chunked_headers["transfer-encoding"] == "chunked"
    assert chunked == b"firstsecondend"
    assert fixed_headers["content-length"] == "14"
    assert fixed == b"firstsecondend"


async def test_a_head_request_gets_headers_and_no_body() -> None:
    async with serving(_apps.hello) as port:

        def head_then_get() -> list[Any]:
            with connect(port) as sock:
                sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
                # A HEAD response's Content-Length announces no body here.
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(4096)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                rest = data.partition(b"\r\n\r\n")[2]
                assert rest == b""
                return read_responses(sock, 1)

        [(status, _, body)] = await in_thread(head_then_get)
    assert (status, body) == (200, b"Hello, World!")


async def test_expect_100_continue_gets_100_when_the_body_is_asked_for() -> None:
    async with serving(_apps.echo) as port:

        def expect() -> list[Any]:
            with connect(port) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n"
                )
                [interim] = read_responses(sock, 1)  # before any body byte is sent
                sock.sendall(b"hello")
                return [interim, *read_responses(sock, 1)]

        (interim, _, _), (status, _, body) = await in_thread(expect)
    assert interim == 100
    assert status == 200
    assert json.loads(body)["body_length"] == 5


async def refuses_early(scope: Scope, receive: Receive, send: Send) -> None:
    await _apps.respond(send, 413, b"too big for me")


async def test_expect_100_continue_gets_no_100_when_the_application_answers_first() -> None:
    async with serving(refuses_early) as port:

        def expect() -> tuple[list[Any], bytes]:
            with connect(port) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                    b"Expect: 100-continue\r\n\r\n"
                )
                responses = read_responses(sock, 1)
                return responses, read_until_close(sock)

        [(status, headers, body)], rest = await in_thread(expect)
    assert (status, body, rest) == (413, b"too big for me", b"")
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + b"a" * 2000, 413),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=["header-too-large", "body-too-large", "no-host", "http-2", "target-too-long", "bad-chunk"],
)
async def test_requests_the_parser_refuses_get_its_status_and_the_connection_closes(
    request_bytes: bytes, status: int
) -> None:
    async with serving(_apps.echo, max_body_size=1000) as port:

        def send() -> tuple[list[Any], bytes]:
            with connect(port) as sock:
                sock.sendall(request_bytes)
                responses = read_responses(sock, 1)
                return responses, read_until_close(sock)

        [(got, headers, _)], rest = await in_thread(send)
    assert got == status
    assert headers["connection"] == "close"
    assert rest == b""


async def test_requests_over_the_concurrency_limit_get_503() -> None:
    release = shardio.Event()
    entered = shardio.Event()

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        await release.wait()
        await _apps.respond(send, 200, b"held")

    async with serving(held, limit_concurrency=1) as port, shardio.open_nursery() as nursery:
        first: list[httpx.Response] = []

        async def hold() -> None:
            first.append(await in_thread(httpx.get, f"http://127.0.0.1:{port}/"))

        nursery.start_soon(hold)
        await entered.wait()
        second = await in_thread(httpx.get, f"http://127.0.0.1:{port}/")
        release.set()
    assert second.status_code == 503
    assert first[0].status_code == 200


async def test_an_application_that_raises_gives_500_and_the_server_goes_on() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/raise":
            raise ValueError("boom")
        if scope["path"] == "/nothing":
            return
        await _apps.respond(send, 200, b"fine")

    async with serving(broken) as port:

        def get_all() -> list[int]:
            return [
                httpx.get(f"http://127.0.0.1:{port}{p}").status_code
                for p in ("/raise", "/nothing", "/")
            ]

        statuses = await in_thread(get_all)
    assert statuses == [500, 500, 200]


async def test_an_application_holding_back_the_body_stops_the_client_and_then_gets_it_all() -> None:
    """Backpressure: the server reads a request body only as the application
    asks, so a client sending a large body stalls (its kernel buffers fill)
    until the application reads; then every byte arrives."""
    size = 64 * 1024 * 1024
    go = shardio.Event()
    first_read = shardio.Event()

    async def slow_reader(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        first = await receive()
        first_read.set()
        await go.wait()
        total = len(first["body"])
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _apps.respond(send, 200, b"%d" % total)

    def upload(port: int, stalled: list[int]) -> bytes:
        sock = connect(port)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        sock.setblocking(False)
        chunk = b"z" * 65536
        sent = 0
        while sent < size:
            try:
                sent += sock.send(chunk[: size - sent])
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], 2.0)
                if not writable and not stalled:
                    stalled.append(sent)  # nobody reads: tell the test, then wait
                    select.select([], [sock], [], None)
        sock.setblocking(True)
        [(_, _, body)] = read_responses(sock, 1)
        sock.close()
        return body

    async with serving(slow_reader) as port:
        stalled: list[int] = []
        async with shardio.open_nursery() as nursery:
            result: list[bytes] = []

            async def client() -> None:
                result.append(await in_thread(upload, port, stalled))

            nursery.start_soon(client)
            await first_read.wait()
            while not stalled:
                await shardio.sleep(0.1)
            go.set()
    assert stalled[0] < size // 2  # the server stopped reading, far from the end
    assert result == [b"%d" % size]


async def test_a_client_vanishing_mid_body_gives_the_application_a_disconnect() -> None:
    seen: list[str] = []
    done = shardio.Event()

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ok":
            await _apps.respond(send, 200, b"ok")
            return
        try:
            while True:
                message = await receive()
                seen.append(message["type"])
                if message["type"] == "http.disconnect":
                    break
            try:
                await _apps.respond(send, 200, b"late")
            except ClientDisconnected:
                seen.append("ClientDisconnected")
        finally:
            done.set()

    async with serving(reader) as port:

        def vanish() -> None:
            with connect(port) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
                sock.sendall(b"a" * 1000)

        await in_thread(vanish)
        await done.wait()
        after = await in_thread(httpx.get, f"http://127.0.0.1:{port}/ok")
    assert seen[-2:] == ["http.disconnect", "ClientDisconnected"]
    assert "http.request" in seen
    assert after.text == "ok"  # the server goes on


async def test_a_slow_client_trickling_its_request_is_served() -> None:
    async with serving(_apps.echo) as port:

        def trickle() -> list[Any]:
            with connect(port) as sock:
                for byte in b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc":
                    sock.send(bytes([byte]))
                return read_responses(sock, 1)

        [(status, _, body)] = await in_thread(trickle)
    assert status == 200
    assert json.loads(body)["body_length"] == 3


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with serving(_apps.hello, timeout_keep_alive=0.2) as port:

        def idle() -> tuple[list[Any], bytes]:
            with connect(port) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                responses = read_responses(sock, 1)
                return responses, read_until_close(sock)  # the server closes it

        [(status, _, _)], rest = await in_thread(idle)
    assert (status, rest) == (200, b"")


async def test_a_streaming_application_waiting_for_disconnect_gets_it_when_the_client_leaves() -> (
    None
):
    """As Starlette's StreamingResponse does: one task streams, another waits
    in receive() for http.disconnect."""
    streaming = shardio.Event()
    outcome: list[str] = []

    async def stream_forever(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with shardio.open_nursery() as nursery:

            async def watch() -> None:
                await receive()  # the (empty) body
                message = await receive()
                outcome.append(message["type"])
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                streaming.set()
                await shardio.sleep(0.01)

    async with serving(stream_forever) as port:

        def read_some_then_leave() -> bytes:
            with connect(port) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                return sock.recv(100)

        first = await in_thread(read_some_then_leave)
        while not outcome:
            await shardio.sleep(0.01)
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert outcome == ["http.disconnect"]


async def test_root_path_prefixes_the_path() -> None:
    async with serving(_apps.echo, root_path="/api") as port:
        response = await in_thread(httpx.get, f"http://127.0.0.1:{port}/items")
    report = response.json()
    assert (report["root_path"], report["path"], report["raw_path"]) == (
        "/api",
        "/api/items",
        "/api/items",
    )


async def test_access_log_has_one_line_per_response(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="shardio_net.asgi.access")
    async with serving(_apps.hello, access_log=True) as port:
        await in_thread(httpx.get, f"http://127.0.0.1:{port}/x?y")
    [record] = [r for r in caplog.records if r.name == "shardio_net.asgi.access"]
    assert record.getMessage().endswith('"GET /x?y HTTP/1.1" 200')


def files_app(directory: Path) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = directory / scope["path"].lstrip("/")
        size = path.stat().st_size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % size)],
            }
        )
        if scope["query_string"] == b"zerocopy":
            with path.open("rb") as file:
                await send({"type": "http.response.zerocopysend", "file": file})
        else:
            await send({"type": "http.response.pathsend", "path": str(path)})

    return app


@pytest.mark.parametrize("size", [0, 1000, 3 * 1024 * 1024 + 17])
@pytest.mark.parametrize("how", ["pathsend", "zerocopy"])
async def test_files_sent_with_pathsend_and_zerocopysend_arrive_intact(
    tmp_path: Path, size: int, how: str
) -> None:
    content = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(content)
    query = "?zerocopy" if how == "zerocopy" else ""
    async with serving(files_app(tmp_path)) as port:

        def get_twice() -> list[bytes]:
            with httpx.Client() as client:
                return [client.get(f"http://127.0.0.1:{port}/f.bin{query}").content for _ in "ab"]

        bodies = await in_thread(get_twice)
    assert bodies == [content, content]


async def test_a_large_body_is_sent_beside_its_head_without_a_copy() -> None:
    """A memoryview body reaches the socket as it is: the client gets exactly
    its bytes (here 8 MiB of a bytearray the application owns)."""
    payload = bytearray(os.urandom(8 * 1024 * 1024))

    async def big(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": memoryview(payload)})

    async with serving(big) as port:
        response = await in_thread(httpx.get, f"http://127.0.0.1:{port}/")
    assert response.headers["content-length"] == str(len(payload))
    assert response.content == bytes(payload)


def test_the_parser_returns_a_length_framed_body_as_given() -> None:
    from shardio_net import http

    conn = http.ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(conn.next_event(), http.Request)
    conn.send(http.Response(200, [(b"content-length", b"4")]))
    view = memoryview(bytearray(b"abcd"))
    assert conn.send(http.Data(view)) is view  # type: ignore[arg-type]


async def test_a_request_on_a_closed_socket_does_not_stop_the_server() -> None:
    async with serving(_apps.hello) as port:

        def reset() -> None:
            sock = connect(port)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.close()  # a reset

        await in_thread(reset)
        response = await in_thread(httpx.get, f"http://127.0.0.1:{port}/")
    assert response.text == "Hello, World!"


async def test_httpx_in_the_same_run_through_shardio_net_s_transport() -> None:
    from shardio_net.http_client import AsyncHTTPTransport

    async with (
        serving(_apps.echo, shards=None) as port,
        httpx.AsyncClient(
            transport=AsyncHTTPTransport(), base_url=f"http://127.0.0.1:{port}"
        ) as client,
    ):
        responses = [await client.post("/in-run", content=b"x" * n) for n in (0, 10, 100000)]
    assert [r.json()["body_length"] for r in responses] == [0, 10, 100000]
    assert len({tuple(r.json()["client"]) for r in responses}) == 1  # one kept-alive connection
