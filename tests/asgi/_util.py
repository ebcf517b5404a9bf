"""Helpers for the ASGI server's tests: a server in the test's run, and clients
in threads (httpx's sync client, raw sockets), as a user's clients would be."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import shardio
from shardio_net.asgi import serve

T = TypeVar("T")


@asynccontextmanager
async def serving(app: Any, **settings: Any) -> AsyncIterator[int]:
    """Serve ``app`` on a free port of 127.0.0.1 for the block; yield the port."""
    settings.setdefault("shards", None)
    async with shardio.open_nursery() as nursery:
        addresses = await nursery.start(functools.partial(serve, app, port=0, **settings))
        yield addresses[0][1]
        nursery.cancel_scope.cancel()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking client in a thread, as a user's client would run."""
    return await shardio.to_thread.run_sync(fn, *args)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def read_until_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` responses (Content-Length or chunked bodies) from ``sock``."""
    buffer = b""
    responses = []

    def fill() -> None:
        nonlocal buffer
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"the connection closed after {len(responses)} responses")
        buffer += chunk

    while len(responses) < count:
        while b"\r\n\r\n" not in buffer:
            fill()
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if status in (100, 101):
            responses.append((status, headers, b""))
            continue
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(buffer) < length:
                fill()
            body, buffer = buffer[:length], buffer[length:]
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                while b"\r\n" not in buffer:
                    fill()
                size_line, _, buffer = buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(buffer) < size + 2:
                    fill()
                body += buffer[:size]
                buffer = buffer[size + 2 :]
                if not size:
                    break
        responses.append((status, headers, body))
    return responses
