"""shardio_net.asgi's WebSockets, with the ``websockets`` package's sync client
in a thread."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

import shardio
from shardio_net.asgi import Receive, Scope, Send

from ._util import in_thread, serving


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes text and bytes; ``/reject`` refuses, ``/deny`` answers 401 over
    HTTP, ``/close`` accepts and closes with 4001; chosen subprotocol: the
    first offered."""
    if scope["type"] != "websocket":
        return
    message = await receive()
    assert message["type"] == "websocket.connect"
    if scope["path"] == "/reject":
        await send({"type": "websocket.close"})
        return
    if scope["path"] == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    protocols = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": protocols[0] if protocols else None})
    if scope["path"] == "/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


async def test_text_and_bytes_messages_are_echoed() -> None:
    async with serving(echo) as port:

        def talk() -> list[Any]:
            with ws_connect(f"ws://127.0.0.1:{port}/chat", subprotocols=["one", "two"]) as ws:
                ws.send("hello")
                text = ws.recv()
                ws.send(b"\x01\x02\x03")
                data = ws.recv()
                big = "x" * 200_000
                ws.send(big)
                echoed = ws.recv()
                return [text, data, ws.subprotocol, echoed == "echo: " + big]

        assert await in_thread(talk) == ["echo: hello", b"\x03\x02\x01", "one", True]


async def test_permessage_deflate_is_negotiated_when_offered() -> None:
    async with serving(echo) as port:

        def talk() -> tuple[str, str]:
            with ws_connect(f"ws://127.0.0.1:{port}/") as ws:  # offers permessage-deflate
                ws.send("a" * 10000)
                reply = ws.recv()
                assert isinstance(reply, str)
                return ws.response.headers.get("sec-websocket-extensions", ""), reply

        extensions, reply = await in_thread(talk)
    assert extensions.startswith("permessage-deflate")
    assert reply == "echo: " + "a" * 10000


async def test_a_websocket_closed_by_the_application_reaches_the_client_with_its_code() -> None:
    async with serving(echo) as port:

        def talk() -> tuple[int | None, str | None]:
            with ws_connect(f"ws://127.0.0.1:{port}/close") as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv()
                assert closed.value.rcvd is not None
                return closed.value.rcvd.code, closed.value.rcvd.reason

        assert await in_thread(talk) == (4001, "bye")


async def test_a_refused_websocket_gets_403_and_a_denial_gets_its_own_response() -> None:
    async with serving(echo) as port:

        def try_path(path: str) -> tuple[int, bytes]:
            with pytest.raises(InvalidStatus) as refused:
                ws_connect(f"ws://127.0.0.1:{port}{path}")
            return refused.value.response.status_code, refused.value.response.body or b""

        assert (await in_thread(try_path, "/reject"))[0] == 403
        assert await in_thread(try_path, "/deny") == (401, b"who are you?")


async def test_a_message_over_ws_max_size_closes_with_1009() -> None:
    async with serving(echo, ws_max_size=1000) as port:

        def talk() -> int | None:
            with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
                ws.send("small")
                assert ws.recv() == "echo: small"
                ws.send("x" * 5000)
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv()
                assert closed.value.rcvd is not None
                return closed.value.rcvd.code

        assert await in_thread(talk) == 1009


async def test_the_client_closing_gives_the_application_its_close_code() -> None:
    codes: list[int] = []
    done = shardio.Event()

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        codes.append(message["code"])
        done.set()

    async with serving(recorder) as port:

        def talk() -> None:
            with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
                ws.close(code=4321)

        await in_thread(talk)
        await done.wait()
    assert codes == [4321]


async def test_a_request_without_the_websocket_version_gets_426() -> None:
    async with serving(echo) as port:
        response = await in_thread(
            lambda: httpx.get(
                f"http://127.0.0.1:{port}/",
                headers={"upgrade": "websocket", "connection": "upgrade", "sec-websocket-key": "x"},
            )
        )
    assert response.status_code == 426
    assert response.headers["sec-websocket-version"] == "13"


async def test_stopping_the_server_closes_websockets_with_1012() -> None:
    accepted = shardio.Event()
    codes: list[int] = []

    async def waiter(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        message = await receive()
        codes.append(message["code"])

    def talk(port: int) -> int | None:
        with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code

    async with shardio.open_nursery() as outer:
        client_code: list[int | None] = []
        async with serving(waiter) as port:

            async def client() -> None:
                client_code.append(await in_thread(talk, port))

            outer.start_soon(client)
            await accepted.wait()
        # Leaving serving() cancelled the server: graceful shutdown.
    assert codes == [1012]
    assert client_code == [1012]
