"""Transfers stay intact with 3 % of the frames lost each way over a TAP.

This kernel has no netem, so the loss is the stack's own: each shard's
queue of ``tap0`` is wrapped in two :class:`FaultInjector` s (the frames the
kernel sends us, and the frames we send it), passed to ``start_tap_stacks``
as its ``device_wrapper``. An injector must see the checksums to be
trusted, so the TAP is opened without checksum offload, LRO or TSO: every
frame is one MTU-sized segment, and a lost frame is one lost segment.

The kernel's side is a child process (started from the run's thread, in
the test's namespace) of Python sockets echoing through ``serve_tcp`` on
both shards' native stacks and checking sha256 of what comes back.
"""

from __future__ import annotations

import functools
import sys
import textwrap
from collections.abc import Iterator

import pytest

import shardio
import shardio_net
from shardio_net.native import installed, start_tap_stacks
from shardio_net.native.phy import FaultInjector, FaultStatistics
from shardio_net.native.phy.device import Device
from shardio_net.native.phy.tap import TapDevice

from ._netns import STACK_ADDRESS, configure_kernel_side, network_namespace

pytestmark = pytest.mark.requires_program("ip", apt="iproute2")

LOSS = 0.03
PORT = 7000
CONNECTIONS = 4
SIZE = 4 << 20  # per connection, each way

_CLIENTS = textwrap.dedent(
    """
    import hashlib, random, socket, sys, threading
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        payload = random.Random(i).randbytes(int(sys.argv[3]))
        digest = hashlib.sha256()
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as sock:
            def send():
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            sender = threading.Thread(target=send)
            sender.start()
            while data := sock.recv(1 << 20):
                digest.update(data)
            sender.join()
        return digest.digest() == hashlib.sha256(payload).digest()

    count = int(sys.argv[4])
    with ThreadPoolExecutor(count) as pool:
        intact = list(pool.map(one, range(count)))
    print("intact", sum(intact), "of", count)
    """
)


@pytest.fixture(autouse=True)
def netns() -> Iterator[None]:
    with network_namespace():
        yield


def _lossy(tap: TapDevice) -> Device:
    """This shard's queue, losing ``LOSS`` of the frames each way (seeded
    per shard and per direction, so no two injectors lose alike)."""
    shard = shardio.current_shard()
    incoming = FaultInjector(tap, loss=LOSS, seed=2 * shard)
    return FaultInjector(incoming, direction="transmit", loss=LOSS, seed=2 * shard + 1)


def _faults() -> tuple[FaultStatistics, FaultStatistics]:
    """This shard's injectors' figures: the frames in, the frames out."""
    stack = installed()
    assert stack is not None
    outgoing = stack.device
    assert isinstance(outgoing, FaultInjector)
    incoming = outgoing.inner
    assert isinstance(incoming, FaultInjector)
    return incoming.statistics(), outgoing.statistics()


async def _echo(stream: shardio_net.SocketStream) -> None:
    buffer = bytearray(65536)
    while count := await stream.receive_into(buffer):
        await stream.send_all(memoryview(buffer)[:count])


async def _echo_through_loss() -> tuple[str, list[tuple[FaultStatistics, FaultStatistics]]]:
    await start_tap_stacks(
        "tap0",
        STACK_ADDRESS,
        checksum_offload=False,
        lro=False,
        tso=False,
        device_wrapper=_lossy,
    )
    configure_kernel_side("tap0")  # in this thread: the one in the namespace
    async with shardio.open_nursery() as nursery:
        await nursery.start(functools.partial(shardio_net.serve_tcp, _echo, PORT, shards="all"))
        with shardio.fail_after(120):  # a bound on a hang, not a timing assertion
            clients = await shardio.run_process(
                [
                    sys.executable,
                    "-c",
                    _CLIENTS,
                    STACK_ADDRESS,
                    *map(str, (PORT, SIZE, CONNECTIONS)),
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        nursery.cancel_scope.cancel()
    assert clients.returncode == 0, clients.stderr.decode()
    faults = [await shardio.run_on(shard, _faults) for shard in range(shardio.shard_count())]
    return clients.stdout.decode().strip(), faults


def test_echoes_arrive_intact_with_3_percent_of_frames_lost_each_way() -> None:
    report, faults = shardio.run(_echo_through_loss, shards=2, cpus=False)
    assert report == f"intact {CONNECTIONS} of {CONNECTIONS}"
    incoming = [pair[0] for pair in faults]
    outgoing = [pair[1] for pair in faults]
    # Loss happened both ways, at about the rate asked for.
    for direction in (incoming, outgoing):
        frames = sum(figures.frames_in for figures in direction)
        lost = sum(figures.lost for figures in direction)
        assert frames > SIZE * CONNECTIONS // 1500
        assert 0.01 * frames < lost < 0.06 * frames
