"""serve_tcp / serve_listeners: handlers, failures, leaks, and serving on every shard."""

from __future__ import annotations

import errno
import functools
import logging
from collections import Counter
from typing import Any

import pytest

import shardio
import shardio_net
from shardio import lowlevel
from shardio.abc import AsyncResource, Listener
from shardio.testing import wait_all_tasks_blocked
from shardio_net import SocketStream

from ._pairs import open_fds


async def report_shard(stream: SocketStream) -> None:
    """Say which shard serves this connection, then wait for the client to leave."""
    await stream.send_all(b"%d" % shardio.current_shard())
    while await stream.receive_some():
        pass


async def connect_and_ask(port: int, host: str = "127.0.0.1") -> tuple[SocketStream, int]:
    stream = await shardio_net.open_tcp_stream(host, port)
    return stream, int(await stream.receive_some())


async def fussy_echo(stream: SocketStream) -> None:
    async for chunk in stream:
        if chunk == b"boom":
            raise ValueError("the client said boom")
        await stream.send_all(b"ok:" + chunk)


async def test_a_handler_exception_is_logged_and_closes_only_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(shardio_net.serve_tcp, fussy_echo, 0, host="127.0.0.1")
        )
        good = await shardio_net.open_tcp_stream("127.0.0.1", address[1])
        bad = await shardio_net.open_tcp_stream("127.0.0.1", address[1])
        async with good, bad:
            await bad.send_all(b"boom")
            assert await bad.receive_some() == b""
            await good.send_all(b"still here")
            assert await good.receive_some() == b"ok:still here"
        nursery.cancel_scope.cancel()
    [record] = [r for r in caplog.records if r.name == "shardio_net.serve"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


async def test_connections_leave_no_task_and_no_file_descriptor_behind() -> None:
    async def served_connection(port: int) -> None:
        async with await shardio_net.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"ping")
            assert await stream.receive_some() == b"ok:ping"

    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(shardio_net.serve_tcp, fussy_echo, 0, host="127.0.0.1")
        )
        await served_connection(address[1])  # warm up: lazily made objects
        await wait_all_tasks_blocked(0.01)
        fds, tasks = open_fds(), lowlevel.current_statistics().tasks_living
        for _ in range(10):
            async with shardio.open_nursery() as clients:
                for _ in range(30):
                    clients.start_soon(served_connection, address[1])
        await wait_all_tasks_blocked(0.01)
        assert lowlevel.current_statistics().tasks_living == tasks
        assert open_fds() == fds
        nursery.cancel_scope.cancel()


class _Connection(AsyncResource):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


class _ListenerOutOfFds(Listener[_Connection]):
    """Fails its first accept with EMFILE, then gives one connection."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = [OSError(errno.EMFILE, "Too many open files"), _Connection()]
        self.closed = False

    async def accept(self) -> _Connection:
        await lowlevel.checkpoint()
        if not self.outcomes:
            await shardio.sleep_forever()
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, OSError):
            raise outcome
        assert isinstance(outcome, _Connection)
        return outcome

    async def aclose(self) -> None:
        self.closed = True


async def test_running_out_of_file_descriptors_is_logged_and_ridden_out(
    caplog: pytest.LogCaptureFixture, autojump_clock: object
) -> None:
    listener = _ListenerOutOfFds()
    handled: list[_Connection] = []

    async def handler(connection: _Connection) -> None:
        handled.append(connection)

    async with shardio.open_nursery() as nursery:
        started = await nursery.start(shardio_net.serve_listeners, handler, [listener])
        assert started == [listener]
        start = shardio.current_time()
        while not handled:
            await shardio.sleep(0.01)
        assert shardio.current_time() - start >= 0.1
        nursery.cancel_scope.cancel()
    assert handled[0].closed
    assert listener.closed
    assert any("EMFILE" in record.getMessage() for record in caplog.records)


@pytest.mark.shardio(shards=2)
async def test_serving_on_all_shards_spreads_connections_and_stops_everywhere() -> None:
    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(
                shardio_net.serve_tcp, report_shard, 0, host="127.0.0.1", shards="all"
            )
        )
        port = address[1]
        streams = []
        shards = []
        for _ in range(40):
            stream, shard = await connect_and_ask(port)
            streams.append(stream)
            shards.append(shard)
        for stream in streams:
            await stream.aclose()
        nursery.cancel_scope.cancel()
    assert set(shards) == {0, 1}
    with pytest.raises(OSError):
        await shardio_net.open_tcp_stream("127.0.0.1", port)


@pytest.mark.shardio(shards=2)
async def test_port_zero_is_picked_once_for_every_shard_and_family() -> None:
    async with shardio.open_nursery() as nursery:
        addresses = await nursery.start(
            functools.partial(shardio_net.serve_tcp, report_shard, 0, shards="all")
        )
        assert {address[0] for address in addresses} == {"0.0.0.0", "::"}
        [port] = {address[1] for address in addresses}
        for host in ("127.0.0.1", "::1"):
            shards = set()
            for _ in range(30):
                stream, shard = await connect_and_ask(port, host)
                shards.add(shard)
                await stream.aclose()
            assert shards == {0, 1}, host
        nursery.cancel_scope.cancel()


@pytest.mark.shardio(shards=2)
async def test_least_connections_gives_each_connection_to_the_least_busy_shard() -> None:
    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(
                shardio_net.serve_tcp,
                report_shard,
                0,
                host="127.0.0.1",
                shards="all",
                balance="least-connections",
            )
        )
        port = address[1]
        held = [await connect_and_ask(port) for _ in range(10)]
        assert Counter(shard for _, shard in held) == {0: 5, 1: 5}
        # Shard 1's connections end: the next ones all go there.
        for stream, shard in held:
            if shard == 1:
                await stream.aclose()
        await shardio.sleep(0.2)  # the ends are reported to the accepting shard
        more = [await connect_and_ask(port) for _ in range(4)]
        assert [shard for _, shard in more] == [1, 1, 1, 1]
        for stream, _ in held + more:
            await stream.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.shardio(shards=2)
async def test_serve_tcp_checks_its_arguments() -> None:
    serve = functools.partial(shardio_net.serve_tcp, report_shard, 0, host="127.0.0.1")
    async with shardio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="balance"):
            await nursery.start(functools.partial(serve, balance="random"))
        with pytest.raises(ValueError, match="range"):
            await nursery.start(functools.partial(serve, shards=[0, 2]))
        with pytest.raises(ValueError, match="repeat"):
            await nursery.start(functools.partial(serve, shards=[1, 1]))
        with pytest.raises(ValueError, match="handler_nursery"):
            await nursery.start(functools.partial(serve, shards="all", handler_nursery=nursery))
