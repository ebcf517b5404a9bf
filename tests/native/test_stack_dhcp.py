"""A stack with no address gets one by DHCP, keeps it and loses it, over a
simulated link under a MockClock; and ``configure`` by hand.

The server is a small scripted one on a second stack (10.0.0.1, UDP port
67): it offers 10.0.0.57/24 with itself as the gateway, acknowledges
requests for it, and can be told to fall silent or to refuse.
"""

from __future__ import annotations

import errno

import attrs
import pytest

import shardio
from shardio.testing import MockClock
from shardio_net.native import NativeStack
from shardio_net.native.dhcp import DhcpConfig, DhcpMessage, Lease, dhcp_message, parse_dhcp
from shardio_net.native.dhcp.message import ACK, BOOTREPLY, DISCOVER, NAK, OFFER, REQUEST
from shardio_net.native.phy.simulated import SimulatedLink
from shardio_net.native.wire.ipv4 import format_address, parse_address

SERVER = "10.0.0.1"
OFFERED = "10.0.0.57"
LEASE_TIME = 600


@attrs.define
class Server:
    """What the scripted server saw, and how it answers."""

    stack: NativeStack
    answer: bool = True
    refuse: bool = False
    #: Seconds before each answer, and the lease time it grants.
    delay: float = 0.0
    lease_time: int = LEASE_TIME
    #: (message type, ciaddr, where the datagram came from) of every request.
    seen: list[tuple[int, str, str]] = attrs.field(factory=list)

    async def serve(self) -> None:
        sock = await self.stack.open_udp_socket(port=67)
        while True:
            data, (source, _) = await sock.recvfrom(2048)
            request = parse_dhcp(data)
            self.seen.append((request.message_type, format_address(request.ciaddr), source))
            if not self.answer:
                continue
            if request.message_type == DISCOVER:
                kind = OFFER
            elif request.message_type == REQUEST:
                kind = NAK if self.refuse else ACK
            else:
                continue
            fields: dict[str, object] = {"server_id": parse_address(SERVER)}
            if kind != NAK:
                fields |= {
                    "yiaddr": parse_address(OFFERED),
                    "subnet_mask": 0xFFFFFF00,
                    "routers": (parse_address(SERVER),),
                    "lease_time": self.lease_time,
                }
            reply = DhcpMessage(BOOTREPLY, kind, request.xid, request.chaddr, **fields)
            # A renewal is answered to its sender; the rest by broadcast.
            destination = source if request.ciaddr and source != "0.0.0.0" else "255.255.255.255"
            await shardio.sleep(self.delay)
            await sock.sendto(dhcp_message(reply), (destination, 68))


async def _network(nursery: shardio.Nursery) -> tuple[NativeStack, Server]:
    link = SimulatedLink(latency=0.001)
    client = NativeStack(link.attach(), None, seed=1)
    server = Server(NativeStack(link.attach(), SERVER, seed=2))
    nursery.start_soon(server.serve)
    return client, server


async def _echo_once(stack: NativeStack, host: str, port: int) -> bytes:
    stream = await stack.open_tcp_stream(host, port)
    await stream.send_all(b"ping")
    await stream.send_eof()
    reply = b""
    while data := await stream.receive_some():
        reply += data
    await stream.aclose()
    return reply


async def _echo_server(stream: shardio.abc.HalfCloseableStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


async def test_a_stack_with_no_address_gets_one_by_dhcp_and_serves_on_it(
    autojump_clock: MockClock,
) -> None:
    async with shardio.open_nursery() as nursery:
        client, server = await _network(nursery)
        # A listener opened before the lease moves to the leased address.
        await nursery.start(client.serve_tcp, _echo_server, 7)
        lease = await client.dhcp(DhcpConfig(host_name="shard0"))
        assert (format_address(lease.address), lease.prefix_length) == (OFFERED, 24)
        assert lease.gateway == parse_address(SERVER) == lease.server
        assert format_address(client.address) == OFFERED
        assert client.lease == lease
        # DISCOVER and REQUEST both came from 0.0.0.0.
        assert server.seen == [(DISCOVER, "0.0.0.0", "0.0.0.0"), (REQUEST, "0.0.0.0", "0.0.0.0")]

        assert await _echo_once(server.stack, OFFERED, 7) == b"ping"
        await nursery.start(server.stack.serve_tcp, _echo_server, 9)
        assert await _echo_once(client, SERVER, 9) == b"ping"
        nursery.cancel_scope.cancel()


async def test_the_stack_renews_at_t1_from_its_address_and_keeps_its_connections(
    autojump_clock: MockClock,
) -> None:
    async with shardio.open_nursery() as nursery:
        client, server = await _network(nursery)
        first = await client.dhcp()
        [listener] = await server.stack.open_tcp_listeners(9)
        stream = await client.open_tcp_stream(SERVER, 9)
        peer = await listener.accept()
        await shardio.sleep_until(first.renew_at + 1)

        renewed = client.lease
        assert renewed is not None and renewed.acquired == first.renew_at
        assert renewed.address == first.address
        assert server.seen[-1] == (REQUEST, OFFERED, OFFERED)  # unicast, from the address
        await stream.send_all(b"still here")
        assert await peer.receive_some() == b"still here"
        nursery.cancel_scope.cancel()


async def test_a_lease_nobody_renews_expires_and_the_stack_gets_a_new_one_later(
    autojump_clock: MockClock,
) -> None:
    changes: list[Lease | None] = []

    async def on_change(lease: Lease | None) -> None:
        changes.append(lease)

    async with shardio.open_nursery() as nursery:
        client, server = await _network(nursery)
        first = await client.dhcp(on_change=on_change)
        [listener] = await server.stack.open_tcp_listeners(9)
        stream = await client.open_tcp_stream(SERVER, 9)
        await listener.accept()
        server.answer = False
        await shardio.sleep_until(first.expires_at + 1)

        assert client.address == 0 and client.lease is None
        assert changes == [first, None]
        with pytest.raises(shardio.BrokenResourceError):
            await stream.send_all(b"the address is gone")
        with pytest.raises(OSError, match="no address yet"):
            await client.open_tcp_stream(SERVER, 9)
        # Renewing and rebinding requests came from the address, naming it in ciaddr.
        requests = [(source, ciaddr) for kind, ciaddr, source in server.seen if kind == REQUEST]
        assert requests[1:] == [(OFFERED, OFFERED)] * (len(requests) - 1)
        assert len(requests) >= 3

        server.answer = True
        while len(changes) < 3:
            await shardio.sleep(10)
        assert changes[2] is not None and format_address(changes[2].address) == OFFERED
        assert format_address(client.address) == OFFERED
        nursery.cancel_scope.cancel()


async def test_a_nak_at_renewal_takes_the_address_away(autojump_clock: MockClock) -> None:
    async with shardio.open_nursery() as nursery:
        client, server = await _network(nursery)
        first = await client.dhcp()
        server.refuse = True
        await shardio.sleep_until(first.renew_at + 1)
        assert client.address == 0 and client.lease is None
        nursery.cancel_scope.cancel()


async def test_dhcp_returns_its_lease_even_if_it_was_lost_before_the_caller_woke(
    autojump_clock: MockClock,
) -> None:
    # The ACK comes after the lease it grants has ended (the lease counts from
    # the REQUEST): bound, then lost at once, before dhcp()'s caller runs.
    async with shardio.open_nursery() as nursery:
        client, server = await _network(nursery)
        server.delay, server.lease_time = 2.0, 1
        lease = await client.dhcp()
        assert format_address(lease.address) == OFFERED
        assert client.lease is None and client.address == 0
        nursery.cancel_scope.cancel()


async def test_dhcp_cancelled_before_a_lease_stops_its_client(autojump_clock: MockClock) -> None:
    link = SimulatedLink()
    stack = NativeStack(link.attach(), None)
    with shardio.move_on_after(30):
        await stack.dhcp()
    assert stack.lease is None and stack.address == 0
    # Port 68 is free again, and a client may start anew.
    sock = await stack.open_udp_socket(port=68)
    sock.close()
    with shardio.move_on_after(30):
        await stack.dhcp()


async def test_dhcp_refuses_a_stack_with_an_address_or_a_second_client(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink()
    with pytest.raises(RuntimeError, match="address=None"):
        await NativeStack(link.attach(), "10.0.0.5").dhcp()
    stack = NativeStack(link.attach(), None)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(stack.dhcp)
        await shardio.sleep(1)
        with pytest.raises(RuntimeError, match="already runs a DHCP client"):
            await stack.dhcp()
        nursery.cancel_scope.cancel()


async def test_a_stack_closed_while_dhcp_waits_says_so(autojump_clock: MockClock) -> None:
    stack = NativeStack(SimulatedLink().attach(), None)
    async with shardio.open_nursery() as nursery:

        async def close_soon() -> None:
            await shardio.sleep(5)
            stack.close()

        nursery.start_soon(close_soon)
        with pytest.raises(shardio.ClosedResourceError, match="closed before a DHCP lease"):
            await stack.dhcp()


async def test_a_stack_with_no_address_refuses_to_connect_saying_what_to_do() -> None:
    stack = NativeStack(SimulatedLink().attach(), None)
    with pytest.raises(OSError, match=r"await stack.dhcp\(\) or call stack.configure") as caught:
        await stack.open_tcp_stream("10.0.0.1", 80)
    assert caught.value.errno == errno.ENETUNREACH


async def test_configure_moves_the_stack_to_a_new_address_and_resets_the_old_connections(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink(latency=0.001)
    a = NativeStack(link.attach(), None, seed=1)
    b = NativeStack(link.attach(), "10.0.0.2", seed=2)
    a.configure("10.0.0.1", prefix_length=24)
    async with shardio.open_nursery() as nursery:
        await nursery.start(a.serve_tcp, _echo_server, 7)
        assert await _echo_once(b, "10.0.0.1", 7) == b"ping"
        [listener] = await b.open_tcp_listeners(9)
        stream = await a.open_tcp_stream("10.0.0.2", 9)
        peer = await listener.accept()

        a.configure("10.0.0.3", prefix_length=24)
        # The peer hears the reset of the connection of the old address...
        with pytest.raises(shardio.BrokenResourceError):
            await peer.receive_some()
        with pytest.raises(shardio.BrokenResourceError):
            await stream.send_all(b"x")
        # ...and the listener answers on the new one.
        assert await _echo_once(b, "10.0.0.3", 7) == b"ping"
        nursery.cancel_scope.cancel()


async def test_configure_refuses_an_impossible_address_and_changes_nothing() -> None:
    stack = NativeStack(SimulatedLink().attach(), "10.0.0.1")
    with pytest.raises(ValueError, match="not in the interface's subnet"):
        stack.configure("10.0.0.2", gateway="192.168.0.1")
    with pytest.raises(ValueError, match="no address"):
        stack.configure(None, gateway="10.0.0.254")
    assert format_address(stack.address) == "10.0.0.1"
