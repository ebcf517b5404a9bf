"""ASGI applications the tests serve (importable, so every shard can load them)."""

from __future__ import annotations

import json
import os
from typing import Any

import shardio
from shardio_net.asgi import Message, Receive, Scope, Send


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def respond(send: Send, status: int, body: bytes, headers: Any = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Hello, World! with a Content-Length, as A1's raw application."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, World!"})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it saw: the scope's request fields, the body's length
    and digest-free bytes, the shard."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    report = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode(),
        "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode(),
        "http_version": scope["http_version"],
        "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
        "body_length": len(body),
        "body_head": body[:64].decode("latin-1"),
        "shard": shardio.current_shard(),
        "state": sorted(scope.get("state", {})),
        "client": list(scope["client"]) if scope["client"] else None,
        "extensions": sorted(scope.get("extensions", {})),
    }
    await respond(send, 200, json.dumps(report).encode(), [(b"content-type", b"application/json")])


def say(line: str) -> None:
    """One line on stderr in one write: the shards share the pipe, and a
    write this small is never interleaved with another."""
    os.write(2, (line + "\n").encode())


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    """``/slow?S``: says it started (one line on stderr, for the Ctrl-C test),
    sleeps S seconds, then streams a 3-part body; ``/`` answers at once.
    Lifespan: startup and shutdown say so on stderr."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                say(f"lifespan shutdown on shard {shardio.current_shard()}")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] != "/slow":
        await respond(send, 200, b"fast")
        return
    say(f"started {scope['query_string'].decode()}")
    await shardio.sleep(float(os.environ.get("SLOW_SECONDS", "1.0")))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def make_echo() -> Any:
    """A factory, for --factory."""
    return echo


async def startup_fails(scope: Scope, receive: Receive, send: Send) -> None:
    message: Message = await receive()
    assert message["type"] == "lifespan.startup"
    await send({"type": "lifespan.startup.failed", "message": "no database here"})
