"""TCP streams and listeners: data, half-close, errors, one task at a time."""

from __future__ import annotations

import errno
import functools
import pickle
import socket

import pytest

import shardio
import shardio_net
from shardio.testing import wait_all_tasks_blocked
from shardio_net import SocketListener, SocketStream

from ._pairs import clog, reset_on_close, tcp_pair


async def echo(stream: SocketStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def receive_exactly(stream: SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some()
        assert chunk, f"end-of-file after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_echo_round_trip_through_serve_tcp(host: str) -> None:
    async with shardio.open_nursery() as nursery:
        [address] = await nursery.start(
            functools.partial(shardio_net.serve_tcp, echo, 0, host=host)
        )
        async with await shardio_net.open_tcp_stream(host, address[1]) as client:
            for message in (b"hello", b"x" * 100_000, b"!"):
                await client.send_all(message)
                assert await receive_exactly(client, len(message)) == message
            assert client.socket.family == (socket.AF_INET6 if ":" in host else socket.AF_INET)
        nursery.cancel_scope.cancel()


async def test_receive_some_returns_what_has_arrived_up_to_max_bytes() -> None:
    client, server = await tcp_pair()
    async with client, server:
        await client.send_all(b"abcdefgh")
        await wait_all_tasks_blocked(0.01)
        assert await server.receive_some(3) == b"abc"
        assert await server.receive_some(100) == b"defgh"
        with pytest.raises(ValueError):
            await server.receive_some(0)


async def test_several_megabytes_both_ways_at_once() -> None:
    client, server = await tcp_pair()
    up = bytes(range(256)) * 16384  # 4 MiB
    down = bytes(reversed(range(256))) * 12288  # 3 MiB
    received: dict[str, bytes] = {}

    async def send(stream: SocketStream, data: bytes) -> None:
        await stream.send_all(data)
        await stream.send_eof()

    async def receive(stream: SocketStream, name: str) -> None:
        data = bytearray()
        async for chunk in stream:
            data += chunk
        received[name] = bytes(data)

    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(send, client, up)
        nursery.start_soon(send, server, down)
        nursery.start_soon(receive, server, "up")
        nursery.start_soon(receive, client, "down")
    assert received == {"up": up, "down": down}


async def test_send_eof_ends_one_direction_and_keeps_the_other() -> None:
    client, server = await tcp_pair()
    async with client, server:
        await client.send_all(b"request")
        await client.send_eof()
        await client.send_eof()  # a second one does nothing
        assert await receive_exactly(server, 7) == b"request"
        assert await server.receive_some() == b""
        assert await server.receive_some() == b""
        await server.send_all(b"reply")
        assert await receive_exactly(client, 5) == b"reply"
        with pytest.raises(shardio.ClosedResourceError):
            await client.send_all(b"more")


async def test_two_receivers_at_once_get_busy_resource_error() -> None:
    client, server = await tcp_pair()
    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(server.receive_some)
        await wait_all_tasks_blocked()
        with pytest.raises(shardio.BusyResourceError):
            await server.receive_some()
        with pytest.raises(shardio.BusyResourceError):
            await server.receive_into(bytearray(10))
        await client.send_all(b"x")  # lets the first receiver finish


async def test_two_senders_at_once_get_busy_resource_error() -> None:
    client, server = await tcp_pair()
    clog(client)
    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"blocked")
        await wait_all_tasks_blocked()
        with pytest.raises(shardio.BusyResourceError):
            await client.send_all(b"second")
        with pytest.raises(shardio.BusyResourceError):
            await client.send_eof()
        with pytest.raises(shardio.BusyResourceError):
            await client.wait_send_all_might_not_block()
        nursery.cancel_scope.cancel()


async def test_every_operation_after_aclose_raises_closed_resource_error() -> None:
    client, server = await tcp_pair()
    await client.aclose()
    await client.aclose()  # closing twice is fine
    with pytest.raises(shardio.ClosedResourceError):
        await client.send_all(b"x")
    with pytest.raises(shardio.ClosedResourceError):
        await client.send_all(b"")
    with pytest.raises(shardio.ClosedResourceError):
        await client.receive_some()
    with pytest.raises(shardio.ClosedResourceError):
        await client.receive_into(bytearray(1))
    with pytest.raises(shardio.ClosedResourceError):
        await client.send_eof()
    with pytest.raises(shardio.ClosedResourceError):
        await client.wait_send_all_might_not_block()
    assert await server.receive_some() == b""
    await server.aclose()


async def test_aclose_wakes_a_blocked_receiver_with_closed_resource_error() -> None:
    client, server = await tcp_pair()

    async def close_soon() -> None:
        await wait_all_tasks_blocked()
        await server.aclose()

    async with client, shardio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(shardio.ClosedResourceError):
            await server.receive_some()


async def test_peer_reset_gives_broken_resource_error() -> None:
    client, server = await tcp_pair()
    reset_on_close(server)
    await server.aclose()
    with pytest.raises(shardio.BrokenResourceError) as info:
        await client.receive_some()
    assert isinstance(info.value.__cause__, ConnectionResetError)
    with pytest.raises(shardio.BrokenResourceError):
        await client.send_all(b"x")
    await client.aclose()


async def test_sending_to_a_closed_peer_ends_in_broken_resource_error() -> None:
    client, server = await tcp_pair()
    await server.aclose()
    with pytest.raises(shardio.BrokenResourceError):
        # The first sends may be taken before the peer's reset comes back.
        for _ in range(100):
            await client.send_all(b"x" * 1000)
            await shardio.sleep(0.001)
    await client.aclose()


async def test_cancelled_receive_loses_no_data() -> None:
    client, server = await tcp_pair()
    async with client, server:
        with shardio.move_on_after(0.01):
            await server.receive_some()
        await client.send_all(b"kept")
        with shardio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(shardio.Cancelled):
                await server.receive_some()
        assert await server.receive_some() == b"kept"


async def test_tcp_nodelay_is_on_and_socket_options_can_be_changed() -> None:
    client, server = await tcp_pair()
    async with client, server:
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        assert not client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        linger = client.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
        assert linger == bytes(8)
        with pytest.raises(TypeError):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, None)  # type: ignore[call-overload]
        assert client.socket.getpeername() == server.socket.getsockname()


async def test_a_stream_refuses_to_travel_to_another_shard() -> None:
    client, server = await tcp_pair()
    async with client, server:
        with pytest.raises(TypeError, match="belongs to the shard"):
            pickle.dumps(client)


async def test_socket_stream_checks_its_socket() -> None:
    with pytest.raises(TypeError):
        SocketStream("not a socket")  # type: ignore[arg-type]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(ValueError):
        SocketStream(udp)
    with socket.socket() as unbound, pytest.raises(ValueError, match="listening"):
        SocketListener(unbound)


async def test_listener_accept_is_one_task_at_a_time_and_close_wakes_it() -> None:
    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    async with shardio.open_nursery() as nursery:

        async def accept_until_closed() -> None:
            with pytest.raises(shardio.ClosedResourceError):
                await listener.accept()

        nursery.start_soon(accept_until_closed)
        await wait_all_tasks_blocked()
        with pytest.raises(shardio.BusyResourceError):
            await listener.accept()
        await listener.aclose()
    with pytest.raises(shardio.ClosedResourceError):
        await listener.accept()


async def test_port_zero_gives_every_family_the_same_port() -> None:
    listeners = await shardio_net.open_tcp_listeners(0)
    try:
        addresses = [listener.socket.getsockname() for listener in listeners]
        assert {address[0] for address in addresses} == {"0.0.0.0", "::"}
        assert len({address[1] for address in addresses}) == 1
        port = addresses[0][1]
        for host in ("127.0.0.1", "::1"):
            stream = await shardio_net.open_tcp_stream(host, port)
            await stream.aclose()
    finally:
        for listener in listeners:
            await listener.aclose()


async def test_open_tcp_listeners_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        await shardio_net.open_tcp_listeners("80")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await shardio_net.open_tcp_listeners(0, host="127.0.0.1", backlog="many")  # type: ignore[arg-type]


async def test_a_taken_port_is_an_error_without_reuse_port() -> None:
    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1", reuse_port=False)
    async with listener:
        port = listener.socket.getsockname()[1]
        with pytest.raises(OSError) as info:
            await shardio_net.open_tcp_listeners(port, host="127.0.0.1", reuse_port=False)
        assert info.value.errno == errno.EADDRINUSE
