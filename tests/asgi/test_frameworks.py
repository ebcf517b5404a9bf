"""Starlette and FastAPI served by shardio_net.asgi, unchanged: routing,
streaming responses, request bodies, background tasks, WebSocket echo and
lifespan state. They need AnyIO's "shardio" backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from ._util import in_thread, serving

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("anyio._backends._shardio") is None,
    reason="waits for AnyIO's shardio backend (issue 16: anyio.run(..., backend='shardio'))",
)

STARLETTE = "tests.asgi._framework_apps:starlette_app"
FASTAPI = "tests.asgi._framework_apps:fastapi_app"


async def test_starlette_routes_requests_and_sees_its_lifespan_state(tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_bytes(b"a file's bytes\n" * 5000)
    async with serving(STARLETTE, lifespan="on") as port:

        def requests() -> list[Any]:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                return [
                    client.get("/").text,
                    client.get("/items/42").text,
                    client.get("/items/nope").status_code,
                    client.post("/upload", content=(b"x" * 1000 for _ in range(300))).text,
                    client.get("/stream").text,
                    client.get("/file", params={"path": str(tmp_path / "page.txt")}).content,
                ]

        answers = await in_thread(requests)
    assert answers == [
        "hello from shard 0",
        "item 42",
        404,
        "300000 bytes",
        "0\n1\n2\n3\n4\n",
        b"a file's bytes\n" * 5000,
    ]


async def test_starlette_websocket_echo() -> None:
    async with serving(STARLETTE) as port:

        def talk() -> list[str | bytes]:
            with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                replies = []
                for word in ("one", "two"):
                    ws.send(word)
                    replies.append(ws.recv())
                return replies

        assert await in_thread(talk) == ["ONE", "TWO"]


@pytest.mark.shardio(shards=2)
async def test_fastapi_on_two_shards_validates_bodies_and_runs_background_tasks() -> None:
    async with serving(FASTAPI, shards="all") as port:

        def requests() -> list[Any]:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                answers = [
                    client.post("/items", json={"name": "pen", "price": 2.5}).json(),
                    client.post("/items", json={"name": "pen"}).status_code,
                    client.get("/items/7", params={"q": "blue"}).json()["q"],
                    client.post("/background").json(),
                    # The same connection, so the same shard: its task ran.
                    client.get("/background/done").json(),
                ]
            return answers

        answers = await in_thread(requests)
    assert answers == [
        {"name": "pen", "price_with_tax": 3.0},
        422,
        "blue",
        {"queued": "yes"},
        ["done after the response"],
    ]


async def test_fastapi_websocket_echo() -> None:
    async with serving(FASTAPI) as port:

        def talk() -> str | bytes:
            with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                ws.send('{"a": 1}')
                return ws.recv()

        assert await in_thread(talk) == '{"echo":{"a":1},"shard":0}'


@pytest.mark.shardio(shards=2)
async def test_a_fastapi_application_given_as_an_object_is_served_on_two_shards() -> None:
    """The other shard finds it under its module's name: a FastAPI application
    does not pickle."""
    from . import _framework_apps

    async with serving(_framework_apps.fastapi_app, shards="all") as port:

        def shards_seen() -> set[int]:
            seen: set[int] = set()
            for _ in range(400):
                response = httpx.get(
                    f"http://127.0.0.1:{port}/items/1", headers={"connection": "close"}
                )
                seen.add(response.json()["shard"])
                if len(seen) == 2:
                    break
            return seen

        assert await in_thread(shards_seen) == {0, 1}
