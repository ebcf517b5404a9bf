"""Starlette and FastAPI applications the framework tests serve (importable on
every shard). They run on AnyIO's "shardio" backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import BackgroundTasks, FastAPI, WebSocket
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

import shardio

#: What background tasks did, per shard (read through /background/done).
BACKGROUND: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    yield {"started_on": shardio.current_shard(), "greeting": "hello"}


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.state.greeting} from shard {request.state.started_on}")


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def upload(request: Request) -> PlainTextResponse:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return PlainTextResponse(f"{total} bytes")


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            await anyio.sleep(0)
            yield b"%d\n" % number

    return StreamingResponse(numbers(), media_type="text/plain")


async def file(request: Request) -> FileResponse:
    return FileResponse(request.query_params["path"])


async def echo_socket(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


starlette_app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/items/{item_id:int}", item),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/file", file),
        WebSocketRoute("/ws", echo_socket),
    ],
    lifespan=lifespan,
)

fastapi_app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.post("/items")
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2)}


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "shard": shardio.current_shard()}


async def _note(what: str) -> None:
    await anyio.sleep(0)
    BACKGROUND.append(what)


@fastapi_app.post("/background")
async def background(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(_note, "done after the response")
    return {"queued": "yes"}


@fastapi_app.get("/background/done")
async def background_done() -> list[str]:
    return BACKGROUND


@fastapi_app.websocket("/ws")
async def fastapi_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        data = await websocket.receive_json()
        await websocket.send_json({"echo": data, "shard": shardio.current_shard()})
