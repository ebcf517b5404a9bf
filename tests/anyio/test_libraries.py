"""Libraries of the Python async ecosystem on shardio: httpx (through
``shardio_net.http_client.AsyncHTTPTransport``), httpcore's network backend,
Starlette's and FastAPI's test clients (through AnyIO).

The HTTP server these clients talk to is a small h11 server on shardio_net,
defined here: it counts connections, streams a body in steps the test
controls, and can hold a request unanswered.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import h11
import httpcore
import httpx
import pytest
import sniffio
import trustme

import shardio
import shardio_net
from shardio.testing import MockClock
from shardio_net.http_client import AsyncHTTPTransport, NetworkBackend

# ---------------------------------------------------------------------------
# A test server
# ---------------------------------------------------------------------------


class Server:
    """An HTTP/1.1 server on shardio_net with keep-alive, for one run.

    ``GET /hello`` answers ``hello``; ``POST /echo`` the request body;
    ``GET /stream`` three chunks, each sent once ``steps`` lets it through
    (a memory channel the test feeds); ``GET /hang`` never answers.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.step_send, self.steps = shardio.open_memory_channel[None](0)

    async def handle(self, stream: shardio_net.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        while True:
            request, body = await self._read_request(conn, stream)
            if request is None:
                return
            target = request.target.decode()
            if target == "/hang":
                await shardio.sleep_forever()
            if target == "/stream":
                await stream.send_all(
                    conn.send(
                        h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")])
                    )
                )
                for i in range(3):
                    await self.steps.receive()
                    await stream.send_all(conn.send(h11.Data(data=f"chunk{i};".encode())))
                await stream.send_all(conn.send(h11.EndOfMessage()))
            else:
                reply = b"hello" if target == "/hello" else body
                headers = [("Content-Length", str(len(reply))), ("Content-Type", "text/plain")]
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=reply)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, stream: shardio_net.SocketStream
    ) -> tuple[h11.Request | None, bytes]:
        request = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some()
                except shardio.BrokenResourceError:
                    return None, b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            else:  # ConnectionClosed
                return None, b""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def serve(server: Server, ca: trustme.CA | None = None) -> Callable[..., Awaitable[Any]]:
    """``nursery.start(serve(server))``: the server on a free port of
    127.0.0.1, plain or (with ``ca``) TLS; returns the port."""

    async def run(*, task_status: shardio.TaskStatus[int]) -> None:
        listeners: list[Any] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        if ca is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
            listeners = [
                shardio_net.TLSListener(lst, context, https_compatible=True) for lst in listeners
            ]
        async with shardio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(shardio_net.serve_listeners, server.handle, listeners)
            )
            task_status.started(port)

    return run


def with_server(
    test: Callable[[Server, int], Awaitable[Any]], ca: trustme.CA | None = None, **run_kwargs: Any
) -> Any:
    """Run ``test(server, port)`` in a shardio run, with the server up."""

    async def main() -> Any:
        server = Server()
        async with shardio.open_nursery() as nursery:
            port = await nursery.start(serve(server, ca))
            try:
                return await test(server, port)
            finally:
                nursery.cancel_scope.cancel()

    return shardio.run(main, **run_kwargs)


# ---------------------------------------------------------------------------
# httpx
# ---------------------------------------------------------------------------


def test_httpx_client_in_a_shardio_task_reuses_its_connection() -> None:
    async def test(server: Server, port: int) -> tuple[str, str, int, str]:
        async with httpx.AsyncClient(transport=AsyncHTTPTransport()) as client:
            first = await client.get(f"http://127.0.0.1:{port}/hello")
            second = await client.post(f"http://127.0.0.1:{port}/echo", content=b"ping " * 1000)
        return first.text, second.text[:10], server.connections, first.http_version

    hello, echoed, connections, version = with_server(test)
    assert (hello, echoed) == ("hello", "ping ping ")
    assert connections == 1
    assert version == "HTTP/1.1"


def test_httpx_over_tls_trusts_the_given_ca_and_refuses_an_unknown_one(ca: trustme.CA) -> None:
    async def test(server: Server, port: int) -> tuple[str, str]:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with httpx.AsyncClient(transport=AsyncHTTPTransport(verify=trusting)) as client:
            text = (await client.get(f"https://localhost:{port}/hello")).text
        async with httpx.AsyncClient(transport=AsyncHTTPTransport()) as client:
            try:
                await client.get(f"https://localhost:{port}/hello")
            except httpx.ConnectError as exc:
                refusal = type(exc.__cause__.__cause__).__name__  # type: ignore[union-attr]
            else:
                refusal = "none"
        return text, refusal

    assert with_server(test, ca) == ("hello", "SSLCertVerificationError")


def test_httpx_streams_the_response_body_as_the_server_sends_it() -> None:
    async def test(server: Server, port: int) -> list[bytes]:
        received = []
        async with (
            httpx.AsyncClient(transport=AsyncHTTPTransport()) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/stream") as response,
        ):
            await server.step_send.send(None)  # the server may send chunk 0 only
            async for chunk in response.aiter_raw():
                received.append(chunk)
                if len(received) < 3:
                    await server.step_send.send(None)
        return received

    assert with_server(test) == [b"chunk0;", b"chunk1;", b"chunk2;"]


def test_httpx_read_timeout_is_httpx_read_timeout() -> None:
    async def test(server: Server, port: int) -> str:
        async with httpx.AsyncClient(transport=AsyncHTTPTransport(), timeout=30) as client:
            try:
                await client.get(f"http://127.0.0.1:{port}/hang")
            except httpx.ReadTimeout:
                return f"ReadTimeout after {shardio.current_time():.0f}s"
        return "answered"

    assert with_server(test, clock=MockClock(autojump_threshold=0)) == "ReadTimeout after 30s"


def test_httpx_connection_refused_is_httpx_connect_error() -> None:
    async def main() -> str:
        listener = (await shardio_net.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        await listener.aclose()  # nobody listens there any more
        async with httpx.AsyncClient(transport=AsyncHTTPTransport()) as client:
            try:
                await client.get(f"http://127.0.0.1:{port}/")
            except httpx.ConnectError:
                return "ConnectError"
        return "connected"

    assert shardio.run(main) == "ConnectError"


# ---------------------------------------------------------------------------
# httpcore's network backend
# ---------------------------------------------------------------------------


async def raw_get(stream: httpcore.AsyncNetworkStream, path: str) -> bytes:
    await stream.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    reply = b""
    while not reply.endswith(b"hello"):
        reply += await stream.read(65536, timeout=10)
    return reply


def test_httpcore_network_backend_connects_and_starts_tls(ca: trustme.CA) -> None:
    async def test(server: Server, port: int) -> tuple[bytes, str, bool]:
        backend = NetworkBackend()
        plain = await backend.connect_tcp("127.0.0.1", port, timeout=10)
        await plain.aclose()
        stream = await backend.connect_tcp("localhost", port, timeout=10)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        tls = await stream.start_tls(context, server_hostname="localhost", timeout=10)
        try:
            reply = await raw_get(tls, "/hello")
            version = tls.get_extra_info("ssl_object").version()
            readable = tls.get_extra_info("is_readable")
        finally:
            await tls.aclose()
        return reply.split(b"\r\n")[0], version, readable

    status, version, readable = with_server(test, ca)
    assert status == b"HTTP/1.1 200 "
    assert version.startswith("TLSv1")
    assert readable is False


def test_httpcore_network_backend_errors_are_httpcore_errors() -> None:
    async def main() -> list[str]:
        backend = NetworkBackend()
        seen = []
        listener = (await shardio_net.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        stream = await backend.connect_tcp("127.0.0.1", port)
        try:
            await stream.read(10, timeout=5)
        except httpcore.ReadTimeout:
            seen.append("ReadTimeout")
        await stream.aclose()
        await listener.aclose()
        try:
            await backend.connect_tcp("127.0.0.1", port)
        except httpcore.ConnectError:
            seen.append("ConnectError")
        return seen

    assert shardio.run(main, clock=MockClock(autojump_threshold=0)) == [
        "ReadTimeout",
        "ConnectError",
    ]


# ---------------------------------------------------------------------------
# Starlette and FastAPI, through AnyIO
# ---------------------------------------------------------------------------


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def numbers(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(5):
                await anyio.sleep(0)
                yield f"{i}:{sniffio.current_async_library()}\n".encode()

        return StreamingResponse(body(), media_type="text/plain")

    async def where(request: Request) -> JSONResponse:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)
        return JSONResponse(
            {"library": sniffio.current_async_library(), "shard": shardio.current_shard()}
        )

    return Starlette(routes=[Route("/numbers", numbers), Route("/where", where)])


# Starlette's TestClient asks for httpx2 (its fork of httpx) and warns when it
# finds httpx; which httpx it uses says nothing about shardio.
IGNORE_HTTPX2_WARNING = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)


@IGNORE_HTTPX2_WARNING
def test_starlette_test_client_on_shardio_streams_a_response() -> None:
    from starlette.testclient import TestClient

    with TestClient(starlette_app(), backend="shardio") as client:
        assert client.get("/where").json() == {"library": "shardio", "shard": 0}
        with client.stream("GET", "/numbers") as response:
            lines = list(response.iter_lines())
    assert lines == [f"{i}:shardio" for i in range(5)]


@IGNORE_HTTPX2_WARNING
def test_fastapi_app_runs_on_shardio() -> None:
    from fastapi import Depends, FastAPI
    from starlette.testclient import TestClient

    app = FastAPI()

    async def current_library() -> str:
        await anyio.sleep(0)
        return sniffio.current_async_library()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, library: str = Depends(current_library)) -> dict[str, Any]:
        return {"item_id": item_id, "library": library}

    @app.post("/items")
    def create_item(item: dict[str, int]) -> dict[str, int]:
        # A sync endpoint: FastAPI runs it in a worker thread (anyio.to_thread).
        return {key: value * 2 for key, value in item.items()}

    with TestClient(app, backend="shardio") as client:
        got = client.get("/items/7").json()
        doubled = client.post("/items", json={"a": 1}).json()
    assert got == {"item_id": 7, "library": "shardio"}
    assert doubled == {"a": 2}


def test_httpx_asgi_transport_calls_a_starlette_app_inside_a_shardio_task() -> None:
    async def main() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=starlette_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/where")
        return dict(response.json())

    assert shardio.run(main) == {"library": "shardio", "shard": 0}


def test_every_name_of_shardio_net_http_client_is_in_the_reference() -> None:
    import pathlib

    import shardio_net.http_client

    reference = pathlib.Path(__file__).parents[2] / "docs" / "reference" / "anyio.md"
    text = reference.read_text()
    assert [name for name in shardio_net.http_client.__all__ if f"`{name}`" not in text] == []
