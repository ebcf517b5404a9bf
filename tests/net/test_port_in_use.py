"""A port another server listens on is EADDRINUSE; only one serve_tcp's shards share it.

The other server runs in a real second process (shardio on one shard or on
two, or Trio), or is a plain socket of this process, with and without
``SO_REUSEPORT``.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import pytest

import shardio
import shardio_net
from shardio_net import SocketStream

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Each prints its port once it listens on 127.0.0.1, then serves until killed;
# every connection is answered with b"holder".
HOLDERS = {
    "shardio on one shard": """
        import functools, shardio, shardio_net

        async def hello(stream):
            await stream.send_all(b"holder")

        async def main():
            async with shardio.open_nursery() as nursery:
                [address] = await nursery.start(functools.partial(
                    shardio_net.serve_tcp, hello, 0, host="127.0.0.1"))
                print(address[1], flush=True)

        shardio.run(main)
    """,
    "shardio on two shards": """
        import functools, shardio, shardio_net

        async def hello(stream):
            await stream.send_all(b"holder")

        async def main():
            async with shardio.open_nursery() as nursery:
                [address] = await nursery.start(functools.partial(
                    shardio_net.serve_tcp, hello, 0, host="127.0.0.1", shards="all"))
                print(address[1], flush=True)

        shardio.run(main, shards=2, cpus=False)  # this test pins us to one CPU
    """,
    "trio": """
        import functools, trio

        async def hello(stream):
            await stream.send_all(b"holder")

        async def main():
            async with trio.open_nursery() as nursery:
                [listener] = await nursery.start(functools.partial(
                    trio.serve_tcp, hello, 0, host="127.0.0.1"))
                print(listener.socket.getsockname()[1], flush=True)

        trio.run(main)
    """,
}


async def ignore(stream: SocketStream) -> None:
    pass


@asynccontextmanager
async def holder_process(name: str) -> AsyncIterator[int]:
    """Run the server ``HOLDERS[name]`` in a child process; yield its port."""
    command = [sys.executable, "-c", textwrap.dedent(HOLDERS[name])]
    proc = await shardio.to_thread.run_sync(
        functools.partial(subprocess.Popen, command, stdout=subprocess.PIPE, cwd=ROOT)
    )
    stdout = proc.stdout
    assert stdout is not None
    try:
        line = await shardio.to_thread.run_sync(stdout.readline)
        assert line.strip().isdigit(), line
        yield int(line)
    finally:
        proc.kill()
        await shardio.to_thread.run_sync(proc.wait)
        stdout.close()


async def serve_port_expecting_eaddrinuse(
    port: int,
    shards: Literal["all"] | None,
    balance: Literal["reuseport", "least-connections"] = "reuseport",
) -> None:
    """``serve_tcp`` on ``port`` must raise ``OSError(EADDRINUSE)`` itself."""
    serve = functools.partial(
        shardio_net.serve_tcp, ignore, port, host="127.0.0.1", shards=shards, balance=balance
    )
    async with shardio.open_nursery() as nursery:
        with pytest.raises(OSError) as info:
            await nursery.start(serve)
        assert info.value.errno == errno.EADDRINUSE
        nursery.cancel_scope.cancel()


async def answers(port: int, connections: int) -> set[bytes]:
    """What the server on ``port`` says on each of several new connections."""
    seen = set()
    for _ in range(connections):
        async with await shardio_net.open_tcp_stream("127.0.0.1", port) as stream:
            seen.add(await stream.receive_some())
    return seen


@pytest.mark.shardio(shards=2)
@pytest.mark.parametrize("holder", sorted(HOLDERS))
@pytest.mark.parametrize("shards", [None, "all"])
async def test_serving_a_port_another_process_serves_is_eaddrinuse_and_takes_nothing(
    holder: str, shards: Literal["all"] | None
) -> None:
    async with holder_process(holder) as port:
        await serve_port_expecting_eaddrinuse(port, shards)
        assert await answers(port, 20) == {b"holder"}


@pytest.mark.shardio(shards=2)
@pytest.mark.parametrize("reuse_port", [False, True])
@pytest.mark.parametrize(
    ("shards", "balance"),
    [(None, "reuseport"), ("all", "reuseport"), ("all", "least-connections")],
)
async def test_serving_a_port_a_plain_socket_listens_on_is_eaddrinuse(
    reuse_port: bool,
    shards: Literal["all"] | None,
    balance: Literal["reuseport", "least-connections"],
) -> None:
    with socket.socket() as holder:
        if reuse_port:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        await serve_port_expecting_eaddrinuse(holder.getsockname()[1], shards, balance)


def bind_with_reuse_port(port: int) -> None:
    with socket.socket() as intruder:
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        intruder.bind(("127.0.0.1", port))
        intruder.listen()


async def test_nothing_can_join_the_port_of_a_server_on_one_shard() -> None:
    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(shardio_net.serve_tcp, ignore, 0, host="127.0.0.1")
        )
        with pytest.raises(OSError) as info:
            bind_with_reuse_port(address[1])
        assert info.value.errno == errno.EADDRINUSE
        nursery.cancel_scope.cancel()


@pytest.mark.shardio(shards=2)
async def test_two_serve_tcp_of_one_run_do_not_share_a_port() -> None:
    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(shardio_net.serve_tcp, ignore, 0, host="127.0.0.1", shards="all")
        )
        await serve_port_expecting_eaddrinuse(address[1], "all")
        nursery.cancel_scope.cancel()


async def test_open_tcp_listeners_does_not_join_listeners_that_let_others_join() -> None:
    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1", reuse_port=True)
    async with listener:
        port = listener.socket.getsockname()[1]
        with pytest.raises(OSError) as info:
            await shardio_net.open_tcp_listeners(port, host="127.0.0.1", reuse_port=True)
        assert info.value.errno == errno.EADDRINUSE
        # What reuse_port=True is for: a socket that asks to share joins.
        bind_with_reuse_port(port)
