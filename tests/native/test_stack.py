"""The native stack end to end: two stacks on a simulated link, under a MockClock.

Streams keep the stream contract, bulk transfers survive a bad network
intact, connections fail the way a user expects, and a seed reproduces a
run byte for byte.
"""

from __future__ import annotations

import errno
import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

import shardio
from shardio.testing import MockClock, check_half_closeable_stream, wait_all_tasks_blocked
from shardio_net.native import (
    NativeStack,
    NativeStream,
    TcpConfig,
    simulated_pair,
)


async def _connected_pair(a: NativeStack, b: NativeStack) -> tuple[NativeStream, NativeStream]:
    [listener] = await b.open_tcp_listeners(0)
    port = listener.port
    client = await a.open_tcp_stream("10.0.0.2", port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def _clog(stream: NativeStream) -> None:
    # Fill the send path until the stack takes no more: the peer's receive
    # window and this side's send buffer are full, so the next send_all
    # blocks until the peer reads.
    chunk = b"x" * 1024
    while True:
        while stream._tcp.send_space:
            stream._tcp.send([memoryview(chunk)])
            stream._stack._touch(stream)
        await wait_all_tasks_blocked()
        if not stream._tcp.send_space:
            return


async def test_native_streams_keep_the_half_closeable_stream_contract(
    autojump_clock: MockClock,
) -> None:
    a, b = simulated_pair(delay=0.001)

    async def make() -> tuple[NativeStream, NativeStream]:
        return await _connected_pair(a, b)

    await check_half_closeable_stream(make, None)


async def test_native_streams_keep_the_contract_when_clogged(autojump_clock: MockClock) -> None:
    small = TcpConfig(send_buffer=8192, receive_buffer=8192)
    a, b = simulated_pair(delay=0.001, tcp=small)

    async def make() -> tuple[NativeStream, NativeStream]:
        return await _connected_pair(a, b)

    async def make_clogged() -> tuple[NativeStream, NativeStream]:
        left, right = await make()
        await _clog(left)
        await _clog(right)
        return left, right

    await check_half_closeable_stream(make, make_clogged)


async def test_native_streams_keep_the_contract_on_a_lossy_link(autojump_clock: MockClock) -> None:
    a, b = simulated_pair(delay=0.002, loss=0.05, duplicate=0.01, reorder=0.05, seed=7)

    async def make() -> tuple[NativeStream, NativeStream]:
        return await _connected_pair(a, b)

    await check_half_closeable_stream(make, None)


async def _pump_both_ways(size: int, client: NativeStream, server: NativeStream) -> tuple[str, str]:
    rng = random.Random(size)
    payload_a = rng.randbytes(size)
    payload_b = rng.randbytes(size)
    digests: dict[str, str] = {}

    async def send(stream: NativeStream, data: bytes) -> None:
        view = memoryview(data)
        for offset in range(0, len(data), 1 << 20):
            await stream.send_all(view[offset : offset + (1 << 20)])
        await stream.send_eof()

    async def receive(stream: NativeStream, name: str) -> None:
        digest = hashlib.sha256()
        while True:
            views = await stream.receive_views()
            if not views:
                break
            for view in views:
                digest.update(view)
        digests[name] = digest.hexdigest()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(send, client, payload_a)
        nursery.start_soon(send, server, payload_b)
        nursery.start_soon(receive, server, "at server")
        nursery.start_soon(receive, client, "at client")
    assert digests == {
        "at server": hashlib.sha256(payload_a).hexdigest(),
        "at client": hashlib.sha256(payload_b).hexdigest(),
    }
    return digests["at server"], digests["at client"]


async def test_16_mib_each_way_arrives_intact_through_loss_duplication_reordering_corruption(
    autojump_clock: MockClock,
) -> None:
    a, b = simulated_pair(
        delay=0.005,
        loss=0.05,
        duplicate=0.01,
        reorder=0.05,
        corrupt=0.001,
        rate=50e6,
        seed=3,
    )
    client, server = await _connected_pair(a, b)
    start = shardio.current_time()
    with shardio.fail_after(600):  # simulated seconds: a bound, not a timing
        await _pump_both_ways(16 << 20, client, server)
    elapsed = shardio.current_time() - start
    assert elapsed < 600
    assert client.statistics().retransmits > 0
    assert a.statistics().interface.dropped  # the corrupted frames were counted


async def test_two_hundred_connections_at_once(autojump_clock: MockClock) -> None:
    a, b = simulated_pair(delay=0.001)
    echoed: list[bytes] = []

    async def echo(stream: NativeStream) -> None:
        await stream.send_all(await stream.receive_some())

    async def client(index: int) -> None:
        stream = await a.open_tcp_stream("10.0.0.2", 8080)
        await stream.send_all(b"client %d" % index)
        echoed.append(await stream.receive_some())
        await stream.aclose()

    async with shardio.open_nursery() as servers:
        await servers.start(b.serve_tcp, echo, 8080)
        async with shardio.open_nursery() as clients:
            for index in range(200):
                clients.start_soon(client, index)
        servers.cancel_scope.cancel()
    assert sorted(echoed) == sorted(b"client %d" % i for i in range(200))


async def test_connecting_to_a_closed_port_is_refused(autojump_clock: MockClock) -> None:
    a, b = simulated_pair()
    with pytest.raises(ConnectionRefusedError):
        await a.open_tcp_stream("10.0.0.2", 9)
    assert b.statistics().tcp_closed_port == 1


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback destination"),
        ("10.0.0.1", "our own address"),
        ("192.0.2.7", "no route"),
    ],
)
async def test_connecting_where_no_route_leads_fails_at_once_saying_why(
    autojump_clock: MockClock, host: str, reason: str
) -> None:
    a, _ = simulated_pair()  # no gateway: 10.0.0.0/24 only
    start = shardio.current_time()
    with pytest.raises(OSError) as info:
        await a.open_tcp_stream(host, 80)
    assert info.value.errno == errno.ENETUNREACH
    assert reason in str(info.value) and "no loopback" in str(info.value)
    # Refused before any SYN: no retries into a drop, no time spent.
    assert shardio.current_time() == start
    assert a.statistics().interface.dropped == {}


async def test_a_peer_that_vanishes_ends_the_connection_with_a_timeout(
    autojump_clock: MockClock,
) -> None:
    quick = TcpConfig(retries=4, min_rto=0.2)
    a, b = simulated_pair(delay=0.001, tcp=quick)
    client, _ = await _connected_pair(a, b)
    a.device.loss = 1.0  # type: ignore[attr-defined]  # from now on, a hears nothing
    start = shardio.current_time()
    await client.send_all(b"anyone there?")
    with pytest.raises(shardio.BrokenResourceError) as info:
        await client.receive_some()
    assert isinstance(info.value.__cause__, TimeoutError)
    assert "retr" in str(info.value.__cause__)
    # Four RTO doublings from 200 ms, not hours: the limit ended it.
    assert shardio.current_time() - start < 30


async def _capture_run(path: Path, seed: int) -> None:
    a, b = simulated_pair(delay=0.001, loss=0.02, seed=seed)
    capture = a.capture(path)
    client, server = await _connected_pair(a, b)
    await client.send_all(b"hello " * 1000)
    await client.send_eof()
    received = b""
    while chunk := await server.receive_some():
        received += chunk
    await server.aclose()
    await client.aclose()
    await wait_all_tasks_blocked()
    capture.stop()
    # The stack runs on without the capture.
    client, server = await _connected_pair(a, b)
    await client.send_all(b"after")
    assert await server.receive_some() == b"after"
    assert received == b"hello " * 1000


def test_the_same_seed_gives_the_same_capture_byte_for_byte(tmp_path: Path) -> None:
    for name in ("one", "two"):
        shardio.run(_capture_run, tmp_path / name, 11, clock=MockClock(autojump_threshold=0))
    shardio.run(_capture_run, tmp_path / "other", 12, clock=MockClock(autojump_threshold=0))
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()
    assert (tmp_path / "one").read_bytes() != (tmp_path / "other").read_bytes()


@pytest.mark.skipif(
    shutil.which("tcpdump") is None, reason="needs tcpdump (apt-get install tcpdump)"
)
def test_tcpdump_reads_a_capture_and_sees_the_handshake(tmp_path: Path) -> None:
    path = tmp_path / "handshake.pcap"
    shardio.run(_capture_run, path, 1, clock=MockClock(autojump_threshold=0))
    out = subprocess.run(
        ["tcpdump", "-nn", "-r", str(path), "tcp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "Flags [S]" in out[0]
    assert "Flags [S.]" in out[1]
    assert "Flags [.]" in out[2]


async def _goodput(congestion_control: str) -> float:
    config = TcpConfig(congestion_control=congestion_control)  # type: ignore[arg-type]
    a, b = simulated_pair(delay=0.02, loss=0.01, rate=10e6, seed=5, tcp=config)
    client, server = await _connected_pair(a, b)
    size = 8 << 20
    start = shardio.current_time()
    await _pump_both_ways(size, client, server)
    return size / (shardio.current_time() - start)


def test_cubic_reaches_at_least_newreno_goodput_under_the_same_loss() -> None:
    cubic = shardio.run(_goodput, "cubic", clock=MockClock(autojump_threshold=0))
    newreno = shardio.run(_goodput, "newreno", clock=MockClock(autojump_threshold=0))
    assert cubic >= newreno * 0.95


async def test_udp_round_trip(autojump_clock: MockClock) -> None:
    a, b = simulated_pair(delay=0.001)
    server = await b.open_udp_socket(port=5353)
    client = await a.open_udp_socket()
    await client.sendto(b"ping", ("10.0.0.2", 5353))
    data, source = await server.recvfrom()
    assert (data, source) == (b"ping", ("10.0.0.1", client.port))
    await server.sendto(b"pong" * 1000, source)  # larger than the MTU: fragments
    data, _ = await client.recvfrom(65536)
    assert data == b"pong" * 1000


async def test_shardio_net_functions_use_the_installed_native_stack(
    autojump_clock: MockClock,
) -> None:
    import shardio_net
    from shardio_net.native import install, installed

    a, b = simulated_pair(delay=0.001)
    assert installed() is None

    async def shout(stream: NativeStream) -> None:
        await stream.send_all((await stream.receive_some()).upper())

    async with shardio.open_nursery() as nursery:
        install(b)
        [address] = await nursery.start(shardio_net.serve_tcp, shout, 0)
        assert address[0] == "10.0.0.2"
        install(a)
        stream = await shardio_net.open_tcp_stream("10.0.0.2", address[1])
        assert isinstance(stream, NativeStream)
        await stream.send_all(b"over the native stack")
        assert await stream.receive_some() == b"OVER THE NATIVE STACK"
        await stream.aclose()
        # From the stack's own address (or any): served; from another: refused.
        for mine in ("10.0.0.1", "0.0.0.0"):
            stream = await shardio_net.open_tcp_stream("10.0.0.2", address[1], local_address=mine)
            await stream.aclose()
        for other in ("10.0.0.9", "::"):
            with pytest.raises(OSError) as info:
                await shardio_net.open_tcp_stream("10.0.0.2", address[1], local_address=other)
            assert info.value.errno == errno.EADDRNOTAVAIL
            assert "own IPv4 address only (10.0.0.1)" in str(info.value)
        install(None)
        assert installed() is None
        nursery.cancel_scope.cancel()
