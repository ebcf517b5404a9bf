"""The interface's ICMP: echo, the errors it sends and when it must not, the
errors it hands up, the rate limit."""

from __future__ import annotations

import pytest

from shardio_net.native.iface import EchoReplyIngress, IcmpErrorIngress, UdpIngress
from shardio_net.native.wire.checksum import internet_checksum
from shardio_net.native.wire.ethernet import BROADCAST
from shardio_net.native.wire.icmpv4 import (
    CODE_FRAGMENTATION_NEEDED,
    CODE_PORT_UNREACHABLE,
    CODE_PROTOCOL_UNREACHABLE,
    CODE_TTL_EXCEEDED,
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    TIME_EXCEEDED,
    Icmpv4Message,
    icmpv4_header,
)
from shardio_net.native.wire.ipv4 import (
    PROTOCOL_ICMP,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    Ipv4Packet,
    ipv4_header,
)

from ._iface import (
    FAR,
    MAC_PEER,
    OTHER,
    PEER,
    SUBNET_BROADCAST,
    US,
    arp_reply,
    drain,
    echo_request_frame,
    interface,
    ip_frame,
    resolved,
    udp_frame,
    udp_payload,
)


def test_an_echo_request_is_answered_with_the_same_ident_seq_and_data():
    iface = resolved(interface())

    assert iface.receive(echo_request_frame(0x1234, 7, b"abcdefgh" * 8), 1.0) is None

    [reply] = drain(iface)
    assert reply.ethernet.dst == MAC_PEER
    assert (reply.ip.src, reply.ip.dst, reply.ip.protocol) == (US, PEER, PROTOCOL_ICMP)
    assert reply.icmp.type == ECHO_REPLY
    assert (reply.icmp.ident, reply.icmp.seq) == (0x1234, 7)
    assert bytes(reply.icmp.payload) == b"abcdefgh" * 8
    stats = iface.statistics()
    assert (stats.echo_requests_received, stats.echo_replies_sent) == (1, 1)


def test_an_echo_request_from_an_unknown_host_is_answered_after_arp():
    iface = interface()

    iface.receive(echo_request_frame(1, 1, b"x"), 0.0)
    [request] = drain(iface)
    assert request.arp.target_ip == PEER
    iface.receive(arp_reply(MAC_PEER, PEER), 0.1)
    [reply] = drain(iface)
    assert reply.icmp.type == ECHO_REPLY


@pytest.mark.parametrize("dst", [0xFFFFFFFF, SUBNET_BROADCAST])
def test_an_echo_request_to_a_broadcast_address_is_ignored_as_linux_does(dst):
    iface = resolved(interface())

    iface.receive(echo_request_frame(1, 1, b"x", dst=dst, dst_mac=BROADCAST), 1.0)

    assert drain(iface) == []
    assert iface.statistics().dropped == {
        "icmpv4: echo request to a broadcast address (ignored)": 1
    }


def test_send_echo_request_pings_and_the_reply_comes_back_as_an_echo_reply_ingress():
    iface = resolved(interface())

    assert iface.send_echo_request(PEER, 9, 3, b"payload", 1.0)
    [request] = drain(iface)
    assert request.icmp.type == ECHO_REQUEST
    assert (request.icmp.ident, request.icmp.seq) == (9, 3)
    reply_body = icmpv4_header(Icmpv4Message(ECHO_REPLY, 0, 9, 3), [b"payload"]) + b"payload"

    packet = iface.receive(ip_frame(reply_body, protocol=PROTOCOL_ICMP), 1.1)

    assert isinstance(packet, EchoReplyIngress)
    assert (packet.src, packet.ident, packet.seq) == (PEER, 9, 3)
    assert bytes(packet.data) == b"payload"
    assert iface.statistics().echo_replies_received == 1
    with pytest.raises(ValueError, match="16-bit"):
        iface.send_echo_request(PEER, 70000, 0, b"", 1.0)


def test_an_unknown_ip_protocol_is_answered_with_protocol_unreachable_quoting_it():
    iface = resolved(interface())
    frame = ip_frame(b"\x00" * 100, protocol=132)  # SCTP

    assert iface.receive(frame, 1.0) is None

    [error] = drain(iface)
    assert (error.ip.src, error.ip.dst) == (US, PEER)
    assert (error.icmp.type, error.icmp.code) == (
        DESTINATION_UNREACHABLE,
        CODE_PROTOCOL_UNREACHABLE,
    )
    assert bytes(error.icmp.payload) == bytes(frame[14:])  # header and all 100 bytes
    assert error.icmp.original.protocol == 132
    stats = iface.statistics()
    assert stats.icmp_errors_sent == 1
    assert stats.dropped == {"ipv4: unsupported protocol": 1}


def test_an_unknown_protocol_sent_to_a_broadcast_address_draws_no_error():
    iface = resolved(interface())

    iface.receive(ip_frame(b"\x00" * 8, protocol=132, dst=SUBNET_BROADCAST, dst_mac=BROADCAST), 1.0)

    assert drain(iface) == []
    assert iface.statistics().dropped == {
        "ipv4: unsupported protocol": 1,
        "icmpv4: no error about a datagram to a broadcast address": 1,
    }


def test_port_unreachable_is_sent_when_the_stack_asks_and_quotes_at_most_576_bytes():
    iface = resolved(interface())
    packet = iface.receive(udp_frame(bytes(1000)), 1.0)
    assert isinstance(packet, UdpIngress)

    assert iface.send_icmp_unreachable(packet.ip, CODE_PORT_UNREACHABLE, 1.0)

    [error] = drain(iface)
    assert (error.icmp.type, error.icmp.code) == (DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE)
    assert len(error.ip.payload) == 576 - 20
    assert bytes(error.icmp.payload) == bytes(udp_frame(bytes(1000))[14 : 14 + 548])


def test_port_unreachable_is_refused_for_a_broadcast_datagram():
    iface = resolved(interface())
    packet = iface.receive(udp_frame(b"x", dst=0xFFFFFFFF, dst_mac=BROADCAST), 1.0)

    assert not iface.send_icmp_unreachable(packet.ip, CODE_PORT_UNREACHABLE, 1.0)

    assert drain(iface) == []


def test_no_error_is_sent_about_an_icmp_error():
    iface = resolved(interface())
    about = Ipv4Packet(US, PEER, PROTOCOL_UDP)
    quoted = ipv4_header(about, 8) + bytes(8)
    body = icmpv4_header(Icmpv4Message(DESTINATION_UNREACHABLE, 3), [quoted]) + quoted
    error_packet = Ipv4Packet(PEER, US, PROTOCOL_ICMP, payload=memoryview(body))

    assert not iface.send_icmp_unreachable(error_packet, 2, 1.0)

    assert drain(iface) == []
    assert iface.statistics().dropped == {"icmpv4: no error about an ICMP error": 1}


def test_icmp_errors_are_rate_limited_by_a_token_bucket():
    iface = resolved(interface(icmp_error_rate=10.0, icmp_error_burst=3))
    packet = iface.receive(udp_frame(b"x"), 1.0)

    sent = [iface.send_icmp_unreachable(packet.ip, CODE_PORT_UNREACHABLE, 1.0) for _ in range(5)]
    later = iface.send_icmp_unreachable(packet.ip, CODE_PORT_UNREACHABLE, 1.1)

    assert sent == [True, True, True, False, False]
    assert later
    assert iface.statistics().dropped == {"icmpv4: error rate limited": 2}


def error_frame(kind: int, code: int, original: Ipv4Packet, quote: bytes, **kwargs) -> memoryview:
    quoted = ipv4_header(original, len(quote)) + quote
    message = Icmpv4Message(kind, code, next_hop_mtu=1400 if code == 4 else 0)
    body = icmpv4_header(message, [quoted]) + quoted
    return ip_frame(body, protocol=PROTOCOL_ICMP, **kwargs)


def test_an_error_about_our_udp_datagram_is_handed_up_with_its_ports():
    iface = interface()
    ours = Ipv4Packet(US, PEER, PROTOCOL_UDP)
    frame = error_frame(
        DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE, ours, udp_payload(US, PEER, 4000, 53, b"q")
    )

    packet = iface.receive(frame, 1.0)

    assert isinstance(packet, IcmpErrorIngress)
    assert (packet.src, packet.dst) == (PEER, US)
    assert (packet.type, packet.code) == (DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE)
    assert packet.protocol == PROTOCOL_UDP
    assert (packet.local_addr, packet.local_port) == (US, 4000)
    assert (packet.remote_addr, packet.remote_port) == (PEER, 53)
    assert iface.statistics().icmp_errors_received == 1


def test_fragmentation_needed_from_a_router_carries_the_next_hop_mtu():
    iface = interface()
    ours = Ipv4Packet(US, FAR, PROTOCOL_TCP, dont_fragment=True)
    quote = (4000).to_bytes(2, "big") + (443).to_bytes(2, "big") + bytes(16)

    packet = iface.receive(
        error_frame(
            DESTINATION_UNREACHABLE, CODE_FRAGMENTATION_NEEDED, ours, quote, src=0x0A0000FE
        ),
        1.0,
    )

    assert isinstance(packet, IcmpErrorIngress)
    assert packet.src == 0x0A0000FE
    assert packet.next_hop_mtu == 1400
    assert (packet.protocol, packet.local_port, packet.remote_addr, packet.remote_port) == (
        PROTOCOL_TCP,
        4000,
        FAR,
        443,
    )


def test_time_exceeded_about_our_tcp_segment_is_handed_up():
    iface = interface()
    ours = Ipv4Packet(US, FAR, PROTOCOL_TCP, ttl=1)

    packet = iface.receive(
        error_frame(TIME_EXCEEDED, CODE_TTL_EXCEEDED, ours, bytes(8), src=0x0A0000FE), 1.0
    )

    assert isinstance(packet, IcmpErrorIngress)
    assert (packet.type, packet.code) == (TIME_EXCEEDED, CODE_TTL_EXCEEDED)


@pytest.mark.parametrize(
    ("original", "reason"),
    [
        (Ipv4Packet(OTHER, PEER, PROTOCOL_UDP), "icmpv4: error about a datagram we did not send"),
        (Ipv4Packet(US, PEER, PROTOCOL_ICMP), "icmpv4: error about neither TCP nor UDP"),
        (
            Ipv4Packet(US, PEER, PROTOCOL_UDP, fragment_offset=8),
            "icmpv4: error quoting no ports",
        ),
    ],
)
def test_errors_not_about_our_tcp_or_udp_are_dropped(original, reason):
    iface = interface()

    frame = error_frame(DESTINATION_UNREACHABLE, 1, original, bytes(8))
    assert iface.receive(frame, 1.0) is None

    assert iface.statistics().dropped == {reason: 1}


def test_an_unsupported_icmp_type_is_counted_as_malformed():
    iface = interface()
    redirect = b"\x05\x01" + b"\x00" * 30
    body = bytearray(redirect)
    body[2:4] = internet_checksum([bytes(body)]).to_bytes(2, "big")

    assert iface.receive(ip_frame(bytes(body), protocol=PROTOCOL_ICMP), 1.0) is None

    assert iface.statistics().dropped == {"icmpv4: unsupported type": 1}
