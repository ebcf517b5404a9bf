"""A1's applications: "Hello, World!" as a raw ASGI callable and as a Starlette
application (one route, a PlainTextResponse), the same bytes from both."""

from __future__ import annotations

from typing import Any

HELLO = b"Hello, World!"


async def raw(scope: Any, receive: Any, send: Any) -> None:
    """The raw ASGI application: a fixed response with a Content-Length."""
    if scope["type"] == "lifespan":  # answered: hypercorn insists on it
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO})


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse(HELLO)

    return Starlette(routes=[Route("/", hello)])


def __getattr__(name: str) -> Any:
    # The Starlette application is built only when a server asks for it, so
    # that a server of the raw one never imports Starlette.
    if name == "starlette":
        app = _starlette()
        globals()["starlette"] = app
        return app
    raise AttributeError(name)
