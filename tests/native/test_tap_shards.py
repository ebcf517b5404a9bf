"""Native stacks on every shard, each on its own queue of one multi-queue TAP.

The kernel, in a network namespace the test makes, connects to a
``serve_tcp(shards="all")`` running on the shards' native stacks: every
connection is served exactly once, by the shard that owns it, whichever
queue the kernel's frames come out of; and each shard's own connections to
a kernel server get their replies back.
"""

from __future__ import annotations

import functools
import socket
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

import shardio
import shardio_net
from shardio_net.native import installed, start_tap_stacks

from ._netns import KERNEL_ADDRESS, STACK_ADDRESS, configure_kernel_side, network_namespace

pytestmark = pytest.mark.requires_program("ip", apt="iproute2")

SERVED: list[int] = []
PORT = 7000
CONNECTIONS = 300

_CLIENTS = textwrap.dedent(
    """
    import socket, sys
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as sock:
            sock.sendall(b"hello %d" % i)
            return sock.recv(100)

    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(one, range(int(sys.argv[3]))))
    assert replies == [b"HELLO %d" % i for i in range(int(sys.argv[3]))], replies[:5]
    print("ok", len(replies))
    """
)


@pytest.fixture(autouse=True)
def netns() -> Iterator[None]:
    with network_namespace():
        yield


async def _shout(stream: shardio_net.SocketStream) -> None:
    SERVED.append(shardio.current_shard())
    await stream.send_all((await stream.receive_some()).upper())


def _served() -> int:
    return len(SERVED)


def _statistics() -> tuple[int, int]:
    stack = installed()
    assert stack is not None
    figures = stack.statistics()
    return figures.forwarded, figures.injected


async def _kernel_clients() -> str:
    # run_process spawns from the run's own thread, which is in the namespace
    # (a thread pool's worker may not be: unshare moved one thread only).
    with shardio.fail_after(120):
        proc = await shardio.run_process(
            [sys.executable, "-c", _CLIENTS, STACK_ADDRESS, str(PORT), str(CONNECTIONS)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


async def _serve_on_every_shard() -> list[int]:
    await start_tap_stacks("tap0", STACK_ADDRESS)
    configure_kernel_side("tap0")  # in this thread: the one in the namespace
    async with shardio.open_nursery() as nursery:
        await nursery.start(functools.partial(shardio_net.serve_tcp, _shout, PORT, shards="all"))
        assert await _kernel_clients() == f"ok {CONNECTIONS}"
        nursery.cancel_scope.cancel()
    return [await shardio.run_on(shard, _served) for shard in range(shardio.shard_count())]


def test_kernel_connections_are_served_once_each_by_the_shards_native_stacks() -> None:
    served = shardio.run(_serve_on_every_shard, shards=2, cpus=False)
    assert sum(served) == CONNECTIONS
    # The flows are spread: both shards own some of them.
    assert all(count > 0 for count in served), served


def _echo_server(listener: socket.socket) -> None:
    # The kernel's side, in a thread of its own: blocking calls here must not
    # stop the shard whose native stack is the client.
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # the listener was closed: the test is over
        with conn:
            conn.sendall(conn.recv(100).upper())


async def _connect_from(port: int) -> bytes:
    stream = await shardio_net.open_tcp_stream(KERNEL_ADDRESS, port)
    await stream.send_all(b"from shard %d" % shardio.current_shard())
    reply = await stream.receive_some()
    await stream.aclose()
    return reply


async def _clients_on_every_shard() -> list[bytes]:
    await start_tap_stacks("tap0", STACK_ADDRESS)
    configure_kernel_side("tap0")  # in this thread: the one in the namespace
    listener = socket.create_server((KERNEL_ADDRESS, 0))
    port = listener.getsockname()[1]
    server = threading.Thread(target=_echo_server, args=(listener,), daemon=True)
    server.start()  # from this thread: it is in the namespace too
    replies = []
    try:
        with shardio.fail_after(120):
            for _ in range(5):
                for shard in range(shardio.shard_count()):
                    replies.append(await shardio.run_on(shard, _connect_from, port))
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    return replies


def test_every_shard_connects_to_a_kernel_server_and_gets_its_replies() -> None:
    replies = shardio.run(_clients_on_every_shard, shards=2, cpus=False)
    assert replies == [b"FROM SHARD %d" % (i % 2) for i in range(10)]
