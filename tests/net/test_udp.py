"""UDP sockets: datagrams both ways, into buffers, one task at a time, closing."""

from __future__ import annotations

import pickle
import socket

import pytest

import shardio
import shardio_net
from shardio.testing import wait_all_tasks_blocked


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_datagrams_round_trip(host: str) -> None:
    async with (
        await shardio_net.open_udp_socket(host) as a,
        await shardio_net.open_udp_socket(host) as b,
    ):
        assert await a.sendto(b"ping", b.getsockname()) == 4
        data, sender = await b.recvfrom()
        assert (data, sender) == (b"ping", a.getsockname())
        await b.sendto(b"pong", sender)
        assert await a.recvfrom() == (b"pong", b.getsockname())


async def test_recvfrom_into_fills_the_callers_buffer_and_max_bytes_cuts() -> None:
    async with (
        await shardio_net.open_udp_socket("127.0.0.1") as a,
        await shardio_net.open_udp_socket("127.0.0.1") as b,
    ):
        buffer = bytearray(16)
        await a.sendto(b"0123456789", b.getsockname())
        count, sender = await b.recvfrom_into(memoryview(buffer)[2:], 5)
        assert (count, bytes(buffer[2:7]), sender) == (5, b"01234", a.getsockname())
        await a.sendto(b"abcdef", b.getsockname())
        assert (await b.recvfrom(3))[0] == b"abc"  # the rest of the datagram is gone
        with pytest.raises(ValueError):
            await b.recvfrom(0)


async def test_a_connected_socket_sends_to_its_peer_and_resolves_names() -> None:
    async with (
        await shardio_net.open_udp_socket("127.0.0.1") as a,
        await shardio_net.open_udp_socket("127.0.0.1") as b,
    ):
        await a.connect(("localhost", b.getsockname()[1]))
        await a.send(b"hello")
        assert await b.recvfrom() == (b"hello", a.getsockname())
        await b.sendto(b"by name", ("localhost", a.getsockname()[1]))
        assert (await a.recvfrom())[0] == b"by name"


async def test_two_receivers_at_once_get_busy_resource_error() -> None:
    async with (
        await shardio_net.open_udp_socket("127.0.0.1") as a,
        shardio.open_nursery() as nursery,
    ):
        nursery.start_soon(a.recvfrom)
        await wait_all_tasks_blocked()
        with pytest.raises(shardio.BusyResourceError):
            await a.recvfrom()
        with pytest.raises(shardio.BusyResourceError):
            await a.recvfrom_into(bytearray(4))
        nursery.cancel_scope.cancel()


async def test_close_wakes_a_blocked_receiver_and_later_calls_raise_closed() -> None:
    udp = await shardio_net.open_udp_socket("127.0.0.1")
    address = udp.getsockname()

    async def close_soon() -> None:
        await wait_all_tasks_blocked()
        udp.close()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(shardio.ClosedResourceError):
            await udp.recvfrom()
    with pytest.raises(shardio.ClosedResourceError):
        await udp.sendto(b"x", address)
    with pytest.raises(shardio.ClosedResourceError):
        await udp.recvfrom()
    await udp.aclose()  # closing again is fine


async def test_a_connected_socket_hears_that_nobody_listens() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        silent = probe.getsockname()
    async with await shardio_net.open_udp_socket("127.0.0.1") as udp:
        await udp.connect(silent)
        await udp.send(b"hello?")
        with pytest.raises(ConnectionRefusedError):
            await udp.recvfrom()


async def test_wildcard_and_reuse_port_binding() -> None:
    first = await shardio_net.open_udp_socket(port=0, reuse_port=True)
    port = first.getsockname()[1]
    assert first.getsockname()[0] == "0.0.0.0"
    second = await shardio_net.open_udp_socket("127.0.0.1", port, reuse_port=True)
    six = await shardio_net.open_udp_socket(family=socket.AF_INET6)
    assert six.getsockname()[0] == "::"
    with pytest.raises(TypeError, match="belongs to the shard"):
        pickle.dumps(first)
    for udp in (first, second, six):
        await udp.aclose()
