"""The interface's IPv4: what it delivers and drops, how it routes and frames
what it sends, fragmentation on send, its statistics and configuration."""

from __future__ import annotations

import pytest

from shardio_net.native.iface import (
    InterfaceConfig,
    TcpIngress,
    UdpIngress,
)
from shardio_net.native.wire.ethernet import BROADCAST, ETHERTYPE_IPV4
from shardio_net.native.wire.ipv4 import PROTOCOL_TCP, PROTOCOL_UDP, parse_address
from shardio_net.native.wire.tcp import ACK, SYN, TcpSegment

from ._iface import (
    FAR,
    GATEWAY,
    MAC_GATEWAY,
    MAC_OTHER,
    MAC_PEER,
    MAC_US,
    OTHER,
    PEER,
    SUBNET_BROADCAST,
    US,
    arp_reply,
    drain,
    interface,
    resolved,
    sent,
    tcp_frame,
    udp_frame,
)

SYN_SEGMENT = TcpSegment(40000, 80, 1000, 0, SYN, 65535, mss=1460)


# -- receiving ---------------------------------------------------------------


def test_a_tcp_segment_for_us_is_delivered_with_its_payload_a_view_of_the_frame():
    iface = interface()
    frame = tcp_frame(TcpSegment(40000, 80, 1000, 5, ACK, 512), b"hello")

    packet = iface.receive(frame, 0.0)

    assert isinstance(packet, TcpIngress)
    assert (packet.src, packet.dst) == (PEER, US)
    assert (packet.segment.src_port, packet.segment.dst_port) == (40000, 80)
    assert packet.segment.flags == ACK
    assert bytes(packet.segment.payload) == b"hello"
    assert packet.segment.payload.obj is frame.obj
    assert packet.ip.protocol == PROTOCOL_TCP
    assert iface.statistics().dropped == {}


def test_a_udp_datagram_for_us_is_delivered():
    iface = interface()

    packet = iface.receive(udp_frame(b"data"), 0.0)

    assert isinstance(packet, UdpIngress)
    assert (packet.src, packet.dst) == (PEER, US)
    assert (packet.datagram.src_port, packet.datagram.dst_port) == (5000, 7)
    assert bytes(packet.datagram.payload) == b"data"


@pytest.mark.parametrize("dst", [0xFFFFFFFF, SUBNET_BROADCAST])
def test_a_udp_datagram_to_a_broadcast_address_is_delivered_with_that_address(dst):
    iface = interface()

    packet = iface.receive(udp_frame(b"all", dst=dst, dst_mac=BROADCAST), 0.0)

    assert isinstance(packet, UdpIngress)
    assert packet.dst == dst


def test_tcp_to_a_broadcast_address_is_dropped():
    iface = interface()

    frame = tcp_frame(SYN_SEGMENT, dst=SUBNET_BROADCAST, dst_mac=BROADCAST)
    assert iface.receive(frame, 0.0) is None

    assert iface.statistics().dropped == {"tcp: not sent to our address alone": 1}


def test_tcp_in_a_broadcast_frame_is_dropped_as_linux_does():
    iface = interface()

    assert iface.receive(tcp_frame(SYN_SEGMENT, dst_mac=BROADCAST), 0.0) is None

    assert iface.statistics().dropped == {"tcp: not sent to our address alone": 1}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (udp_frame(b"x", dst_mac=MAC_OTHER), "ethernet: for another host"),
        (
            udp_frame(b"x", dst_mac=b"\x01\x00\x5e\x00\x00\x01"),
            "ethernet: multicast destination (no groups joined)",
        ),
        (udp_frame(b"x", src_mac=b"\x03" + MAC_PEER[1:]), "ethernet: group address as source"),
        (udp_frame(b"x", dst=OTHER), "ipv4: not our address"),
        (udp_frame(b"x", src=0), "ipv4: martian source"),
        (udp_frame(b"x", src=US), "ipv4: martian source"),
        (udp_frame(b"x", src=0x7F000001), "ipv4: martian source"),
        (udp_frame(b"x", src=0xE0000001), "ipv4: martian source"),
        (udp_frame(b"x", src=SUBNET_BROADCAST), "ipv4: martian source"),
        (memoryview(b"\x02" * 10), "ethernet: frame shorter than 14 bytes"),
        (
            memoryview(MAC_US + MAC_PEER + b"\x86\xdd" + b"\x00" * 40),
            "ethernet: IPv6 is not supported",
        ),
        (
            memoryview(MAC_US + MAC_PEER + b"\x88\xb5" + b"\x00" * 40),
            "ethernet: unsupported EtherType",
        ),
        (
            memoryview(MAC_US + MAC_PEER + b"\x81\x00" + b"\x00" * 40),
            "ethernet: VLAN-tagged frame (802.1Q), VLANs are not supported",
        ),
        (
            memoryview(MAC_US + MAC_PEER + b"\x00\x40" + b"\x00" * 40),
            "ethernet: IEEE 802.3 length field, not an EtherType",
        ),
    ],
)
def test_frames_not_for_us_are_dropped_and_counted_by_reason(frame, reason):
    iface = interface()

    assert iface.receive(frame, 0.0) is None

    assert drain(iface) == []
    assert iface.statistics().dropped == {reason: 1}


def test_a_datagram_with_ttl_0_is_still_delivered_as_rfc_1122_says():
    iface = interface()

    assert isinstance(iface.receive(udp_frame(b"x", ttl=0), 0.0), UdpIngress)


def test_a_datagram_with_options_is_delivered_past_them():
    iface = interface()
    frame = udp_frame(b"opt", options=memoryview(b"\x01\x01\x01\x00"))

    packet = iface.receive(frame, 0.0)

    assert isinstance(packet, UdpIngress)
    assert bytes(packet.datagram.payload) == b"opt"


def test_a_bad_checksum_is_counted_under_the_parsers_reason():
    iface = interface()
    frame = bytearray(udp_frame(b"data"))
    frame[-1] ^= 0xFF

    assert iface.receive(memoryview(bytes(frame)), 0.0) is None

    assert iface.statistics().dropped == {"udp: bad checksum": 1}


def test_checksums_are_not_verified_when_configured_off():
    iface = interface(verify_checksums=False)
    frame = bytearray(udp_frame(b"data"))
    frame[-1] ^= 0xFF

    packet = iface.receive(memoryview(bytes(frame)), 0.0)

    assert isinstance(packet, UdpIngress)


# -- sending -----------------------------------------------------------------


def test_a_datagram_to_a_resolved_neighbour_is_framed_with_both_headers_and_its_parts():
    iface = resolved(interface())
    payload = memoryview(b"the payload")

    assert iface.send_ip(PEER, PROTOCOL_UDP, [b"head", payload], 1.0)

    [parts] = iface.frames()
    assert parts[1:] == [b"head", payload]
    assert parts[2] is payload
    [frame] = sent([parts])
    assert frame.ethernet.dst == MAC_PEER
    assert frame.ethernet.src == MAC_US
    assert frame.ethernet.ethertype == ETHERTYPE_IPV4
    ip = frame.ip
    assert (ip.src, ip.dst, ip.protocol, ip.ttl) == (US, PEER, PROTOCOL_UDP, 64)
    assert ip.dont_fragment
    assert bytes(ip.payload) == b"headthe payload"


def test_each_datagram_gets_the_next_ident():
    iface = resolved(interface())
    for _ in range(3):
        iface.send_ip(PEER, PROTOCOL_UDP, [b"x"], 1.0)

    idents = [frame.ip.ident for frame in drain(iface)]

    assert idents == [idents[0], idents[0] + 1, idents[0] + 2]


def test_the_ttl_is_the_configured_one_unless_given():
    iface = resolved(interface(ttl=17))
    iface.send_ip(PEER, PROTOCOL_UDP, [b"x"], 1.0)
    iface.send_ip(PEER, PROTOCOL_UDP, [b"x"], 1.0, ttl=1)

    assert [frame.ip.ttl for frame in drain(iface)] == [17, 1]
    with pytest.raises(ValueError, match="ttl must be from 1 to 255"):
        iface.send_ip(PEER, PROTOCOL_UDP, [b"x"], 1.0, ttl=0)


def test_an_off_link_destination_goes_to_the_gateways_mac():
    iface = resolved(interface(), MAC_GATEWAY, GATEWAY)

    assert iface.send_ip(FAR, PROTOCOL_UDP, [b"x"], 1.0)

    [frame] = drain(iface)
    assert frame.ethernet.dst == MAC_GATEWAY
    assert frame.ip.dst == FAR


def test_an_on_link_destination_is_not_sent_to_the_gateway():
    iface = resolved(interface(), MAC_GATEWAY, GATEWAY)

    iface.send_ip(PEER, PROTOCOL_UDP, [b"x"], 1.0)

    [request] = drain(iface)
    assert request.arp.target_ip == PEER


@pytest.mark.parametrize("dst", [0xFFFFFFFF, SUBNET_BROADCAST])
def test_a_broadcast_destination_needs_no_arp(dst):
    iface = interface()

    assert iface.send_ip(dst, PROTOCOL_UDP, [b"x"], 0.0)

    [frame] = drain(iface)
    assert frame.ethernet.dst == BROADCAST
    assert frame.ip.dst == dst


@pytest.mark.parametrize(
    ("dst", "reason"),
    [
        (FAR, "route: no route (off the subnet, no gateway)"),
        (US, "route: our own address (no loopback)"),
        (0x7F000001, "route: loopback destination (no loopback)"),
        (0xE0000001, "route: multicast destination (no groups)"),
        (0, "route: destination in 0.0.0.0/8"),
    ],
)
def test_no_route_is_false_and_counted(dst, reason):
    iface = interface(gateway=None)

    assert not iface.send_ip(dst, PROTOCOL_UDP, [b"x"], 0.0)

    assert drain(iface) == []
    assert iface.statistics().dropped == {reason: 1}


def test_a_datagram_over_the_mtu_with_dont_fragment_is_refused():
    iface = resolved(interface(mtu=576))

    assert not iface.send_ip(PEER, PROTOCOL_TCP, [bytes(557)], 1.0)
    assert iface.send_ip(PEER, PROTOCOL_TCP, [bytes(556)], 1.0)

    assert len(drain(iface)) == 1
    assert iface.statistics().dropped == {"ipv4: datagram over the MTU with don't-fragment set": 1}


def test_a_large_datagram_is_sent_in_fragments_cut_from_the_parts_without_copying():
    iface = resolved(interface(mtu=576))
    data = bytes(range(256)) * 8  # 2048 bytes in three parts
    header = b"header"
    parts = [header, memoryview(data)[:1000], memoryview(data)[1000:]]

    assert iface.send_ip(PEER, PROTOCOL_UDP, parts, 1.0, dont_fragment=False)

    frames = iface.frames()
    fragments = sent(frames)
    assert [len(fragment.raw) for fragment in fragments] == [14 + 20 + 552] * 3 + [14 + 20 + 398]
    assert [fragment.ip.fragment_offset for fragment in fragments] == [0, 552, 1104, 1656]
    assert [fragment.ip.more_fragments for fragment in fragments] == [True, True, True, False]
    assert len({fragment.ip.ident for fragment in fragments}) == 1
    assert not any(fragment.ip.dont_fragment for fragment in fragments)
    assert b"".join(bytes(f.ip.payload) for f in fragments) == b"header" + data
    # Every part after the headers is a view of one of the caller's buffers.
    assert all(part.obj is data or part.obj is header for frame in frames for part in frame[1:])
    assert iface.statistics().fragments_sent == 4


def test_fragments_to_an_unresolved_neighbour_wait_and_go_in_order():
    iface = interface(mtu=576)

    iface.send_ip(PEER, PROTOCOL_UDP, [bytes(1500)], 0.0, dont_fragment=False)
    drain(iface)
    iface.receive(arp_reply(MAC_PEER, PEER), 0.1)

    assert [f.ip.fragment_offset for f in drain(iface)] == [0, 552, 1104]


# -- statistics and configuration --------------------------------------------


def test_statistics_count_frames_and_bytes_both_ways():
    iface = resolved(interface())  # one request in, one reply out
    iface.receive(udp_frame(b"data"), 1.0)
    iface.send_ip(PEER, PROTOCOL_UDP, [b"12345"], 1.0)
    drain(iface)

    stats = iface.statistics()

    assert stats.frames_received == 2
    assert stats.bytes_received == 42 + len(udp_frame(b"data"))
    assert stats.frames_sent == 2
    assert stats.bytes_sent == 42 + 14 + 20 + 5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mac": b"\x01" * 6}, "group"),
        ({"mac": b"\x02" * 5}, "must be 6 bytes"),
        ({"address": "10.0.0.1"}, "IPv4 address as an int"),
        ({"address": parse_address("10.0.0.0")}, "network or broadcast address"),
        ({"address": parse_address("10.0.0.255")}, "network or broadcast address"),
        ({"address": parse_address("127.0.0.1")}, "not a unicast host address"),
        ({"gateway": parse_address("10.0.1.1")}, "not in the interface's subnet"),
        ({"gateway": US}, "must be another host"),
        ({"prefix_length": 33}, "prefix_length must be an integer from 0 to 32"),
        ({"mtu": 67}, "mtu must be an integer from 68 to 65535"),
        ({"arp_retry_interval": 0}, "positive, finite number of seconds"),
        ({"icmp_error_rate": -1}, "errors a second"),
    ],
)
def test_a_bad_config_says_what_is_wrong(settings, message):
    arguments = {"mac": MAC_US, "address": US, "gateway": GATEWAY} | settings

    with pytest.raises(ValueError, match=message):
        InterfaceConfig(**arguments)


def test_a_slash_31_has_no_broadcast_and_both_addresses_are_hosts():
    config = InterfaceConfig(mac=MAC_US, address=parse_address("10.0.0.0"), prefix_length=31)

    assert config.broadcast is None
    iface = interface(address=parse_address("10.0.0.0"), prefix_length=31, gateway=None)
    iface.send_ip(parse_address("10.0.0.1"), PROTOCOL_UDP, [b"x"], 0.0)
    [request] = drain(iface)
    assert request.arp.target_ip == parse_address("10.0.0.1")


def test_a_datagram_no_ipv4_header_can_describe_is_a_value_error():
    iface = resolved(interface())

    with pytest.raises(ValueError, match="at most 65515 bytes after its header, not 65516"):
        iface.send_ip(PEER, PROTOCOL_UDP, [bytes(65516)], 1.0, dont_fragment=False)
    assert iface.send_ip(PEER, PROTOCOL_UDP, [bytes(65515)], 1.0, dont_fragment=False)

    fragments = sent(iface.frames())
    assert fragments[-1].ip.fragment_offset + len(fragments[-1].ip.payload) == 65515
