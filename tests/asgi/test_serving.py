"""Serving on shards: lifespan on every shard, several shards serving, handlers
that call other shards, and graceful shutdown."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import pytest

import shardio
import shardio.testing
from shardio_net.asgi import LifespanFailure, Receive, Scope, Send, serve

from . import _apps
from ._util import connect, in_thread, read_responses, serving


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Startup puts the shard it ran on into the state; requests report the
    state and the shard serving them."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started_on"] = shardio.current_shard()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    report = b"%d %d" % (scope["state"]["started_on"], shardio.current_shard())
    await _apps.respond(send, 200, report)


def _get_until_both_shards(port: int) -> set[bytes]:
    seen: set[bytes] = set()
    for _ in range(400):  # new connections until both shards have answered
        seen.add(httpx.get(f"http://127.0.0.1:{port}/", headers={"connection": "close"}).content)
        if len(seen) == 2:
            break
    return seen


@pytest.mark.shardio(shards=2)
async def test_two_shards_serve_and_each_runs_its_own_lifespan() -> None:
    async with serving(lifespan_app, shards="all") as port:
        seen = await in_thread(_get_until_both_shards, port)
    assert seen == {b"0 0", b"1 1"}


@pytest.mark.shardio(shards=2)
async def test_an_application_named_by_import_string_is_loaded_on_every_shard() -> None:
    async with serving("tests.asgi.test_serving:lifespan_app", shards="all") as port:
        seen = await in_thread(_get_until_both_shards, port)
    assert seen == {b"0 0", b"1 1"}


async def test_a_failed_lifespan_startup_stops_serve_with_its_message() -> None:
    with pytest.raises(LifespanFailure, match="no database here"):
        await serve(_apps.startup_fails, port=0, shards=None)


async def test_lifespan_on_refuses_an_application_without_lifespan_support() -> None:
    with pytest.raises(LifespanFailure, match=r"AssertionError|returned without answering"):
        await serve(_apps.echo, port=0, shards=None, lifespan="on")


class Counter:
    """A sharded service: one count per shard."""

    def __init__(self) -> None:
        self.count = 0

    def increment(self) -> int:
        self.count += 1
        return shardio.current_shard()


def where_am_i() -> int:
    return shardio.current_shard()


def make_counter_app(counter: shardio.Sharded[Counter]) -> Any:
    """An application factory: handlers call another shard (run_on) and a
    sharded service (invoke_on, map_reduce)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/remote":
            body = b"%d" % await shardio.run_on(1, where_am_i)
        elif scope["path"] == "/count":
            shard = int(scope["query_string"])
            body = b"%d" % await counter.invoke_on(shard, Counter.increment)
        else:
            total = await counter.map_reduce(lambda c: c.count, lambda a, b: a + b, 0)
            body = b"%d" % total
        await _apps.respond(send, 200, body)

    return app


@pytest.mark.shardio(shards=2)
async def test_handlers_call_other_shards_and_a_sharded_service() -> None:
    async with shardio.sharded(Counter) as counter:
        factory = functools.partial(make_counter_app, counter)
        async with serving(factory, factory=True, shards="all") as port:

            def requests() -> list[bytes]:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                    answers = [client.get("/remote").content]
                    answers += [client.get(f"/count?{k % 2}").content for k in range(5)]
                    answers.append(client.get("/total").content)
                return answers

            answers = await in_thread(requests)
    assert answers == [b"1", b"0", b"1", b"0", b"1", b"0", b"5"]


async def test_stopping_lets_requests_in_flight_finish_and_then_runs_lifespan_shutdown() -> None:
    events: list[str] = []
    entered = shardio.Event()
    release = shardio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            events.append("lifespan shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        entered.set()
        await release.wait()
        events.append("request finished")
        await _apps.respond(send, 200, b"complete")

    def one_request(port: int) -> tuple[int, dict[str, str], bytes]:
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            [response] = read_responses(sock, 1)
            return response

    async with shardio.open_nursery() as outer:
        responses: list[Any] = []
        async with shardio.open_nursery() as server:
            port = (await server.start(functools.partial(serve, app, port=0, shards=None)))[0][1]

            async def client() -> None:
                responses.append(await in_thread(one_request, port))

            async def release_once_stopping() -> None:
                await shardio.testing.wait_all_tasks_blocked()
                events.append("released")
                release.set()

            outer.start_soon(client)
            await entered.wait()
            server.cancel_scope.cancel()  # as Ctrl-C would
            outer.start_soon(release_once_stopping)
    [(status, headers, body)] = responses
    assert (status, body) == (200, b"complete")
    assert headers["connection"] == "close"
    assert events == ["released", "request finished", "lifespan shutdown"]


async def test_a_request_still_running_at_the_graceful_timeout_is_cancelled() -> None:
    outcome: list[str] = []
    entered = shardio.Event()

    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        try:
            await shardio.sleep_forever()
        except shardio.Cancelled:
            outcome.append("cancelled")
            raise

    def one_request(port: int) -> bytes:
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(100)

    async with shardio.open_nursery() as outer:
        replies: list[bytes] = []
        async with serving(stuck, timeout_graceful_shutdown=0.2) as port:

            async def client() -> None:
                replies.append(await in_thread(one_request, port))

            outer.start_soon(client)
            await entered.wait()
    assert outcome == ["cancelled"]
    assert replies == [b""]  # closed, without a response


async def test_an_idle_connection_is_closed_at_once_when_stopping() -> None:
    def idle_client(port: int, ready: Any) -> bytes:
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_responses(sock, 1)
            shardio.from_thread.run_sync(ready.set)
            return sock.recv(100)  # b"" when the server closes

    ready = shardio.Event()
    async with shardio.open_nursery() as outer:
        results: list[bytes] = []
        async with serving(_apps.hello, timeout_keep_alive=3600) as port:

            async def client() -> None:
                results.append(await in_thread(idle_client, port, ready))

            outer.start_soon(client)
            await ready.wait()
    assert results == [b""]


async def test_the_native_stack_serves_when_one_is_installed() -> None:
    """serve() goes through serve_tcp, which routes to the shard's installed
    native stack: here one end of a simulated link, the client on the other."""
    from shardio_net.native import install, simulated_pair

    server_stack, client_stack = simulated_pair("10.0.0.1", "10.0.0.2")
    install(server_stack)
    try:
        async with shardio.open_nursery() as nursery:
            addresses = await nursery.start(
                functools.partial(serve, _apps.echo, host="10.0.0.1", port=8000, shards=None)
            )
            stream = await client_stack.open_tcp_stream("10.0.0.1", 8000)
            async with stream:
                await stream.send_all(
                    b"POST /native HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                    b"GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                received = b""
                while chunk := await stream.receive_some():
                    received += chunk
            nursery.cancel_scope.cancel()
    finally:
        install(None)
    assert addresses[0][:2] == ("10.0.0.1", 8000)
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert b'"path": "/native"' in received and b'"body_length": 5' in received
    assert b'"path": "/again"' in received
    assert b'"client": ["10.0.0.2"' in received
