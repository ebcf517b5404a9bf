"""Hostile bytes: random bytes, and random mutations of valid packets, fed to
every parser and to the whole dispatch from an Ethernet frame down to TCP,
UDP and ICMP. Only ``Malformed`` may come out; whatever parses has its fields
in range and its views inside the input."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.arp import REQUEST, ArpPacket, arp_header, parse_arp
from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.ethernet import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    EthernetFrame,
    ethernet_header,
    parse_ethernet,
)
from shardio_net.native.wire.icmpv4 import (
    DESTINATION_UNREACHABLE,
    ECHO_REQUEST,
    Icmpv4Message,
    icmpv4_header,
    parse_icmpv4,
)
from shardio_net.native.wire.ipv4 import (
    PROTOCOL_ICMP,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    Ipv4Packet,
    ipv4_header,
    parse_ipv4,
)
from shardio_net.native.wire.tcp import ACK, SYN, TcpSegment, parse_tcp, tcp_header
from shardio_net.native.wire.udp import UdpDatagram, parse_udp, udp_header

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SRC, DST = 0x0A000001, 0x0A000002
MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"


def dispatch(frame: bytes) -> object:
    """What the interface does with a frame: parse it down to the transport."""
    ethernet = parse_ethernet(frame)
    if ethernet.ethertype == ETHERTYPE_ARP:
        return parse_arp(ethernet.payload)
    if ethernet.ethertype != ETHERTYPE_IPV4:
        return ethernet
    ip = parse_ipv4(ethernet.payload)
    if ip.protocol == PROTOCOL_TCP:
        return parse_tcp(ip.payload, ip.src, ip.dst)
    if ip.protocol == PROTOCOL_UDP:
        return parse_udp(ip.payload, ip.src, ip.dst)
    if ip.protocol == PROTOCOL_ICMP:
        return parse_icmpv4(ip.payload)
    return ip


def _within(view: memoryview, data: memoryview) -> bool:
    """Whether *view* is a view of *data*'s memory, not a copy (or empty)."""
    return len(view) == 0 or view.obj is data.obj


def check_parsers(raw: bytes) -> None:
    """Every parser on *raw*: a result with sane fields, or Malformed."""
    data = memoryview(raw)
    parsers: list[Callable[[], object]] = [
        lambda: parse_ethernet(raw),
        lambda: parse_arp(data),
        lambda: parse_ipv4(data),
        lambda: parse_ipv4(data, verify_checksum=False),
        lambda: parse_icmpv4(data),
        lambda: parse_icmpv4(data, verify_checksum=False),
        lambda: parse_udp(data, SRC, DST),
        lambda: parse_udp(data, SRC, DST, verify_checksum=False),
        lambda: parse_tcp(data, SRC, DST),
        lambda: parse_tcp(data, SRC, DST, verify_checksum=False),
        lambda: dispatch(raw),
    ]
    for parse in parsers:
        try:
            result = parse()
        except Malformed as error:
            assert error.reason.split(":")[0] in {
                "ethernet",
                "arp",
                "ipv4",
                "icmpv4",
                "udp",
                "tcp",
            }
            continue
        check_result(result, data)


def check_result(result: object, data: memoryview) -> None:
    """The invariants a parsed packet keeps, whatever the input."""
    if isinstance(result, TcpSegment):
        assert 0 < result.src_port <= 0xFFFF and 0 < result.dst_port <= 0xFFFF
        assert result.window_scale is None or 0 <= result.window_scale <= 14
        assert len(result.sack_blocks) <= 4
        assert result.flags & SYN or result.mss is None
        assert _within(result.payload, data)
        assert len(result.payload) <= len(data) - 20
    elif isinstance(result, UdpDatagram):
        assert result.dst_port != 0
        assert _within(result.payload, data)
        assert len(result.payload) <= len(data) - 8
    elif isinstance(result, Icmpv4Message):
        assert isinstance(result.payload, memoryview)
        assert _within(result.payload, data)
        if result.type == DESTINATION_UNREACHABLE:
            assert result.original is not None
            assert len(result.payload) >= result.original.header_length + 8
            assert _within(result.original.payload, data)
    elif isinstance(result, Ipv4Packet):
        assert result.header_length >= 20
        assert result.fragment_offset + len(result.payload) <= 0xFFFF
        assert _within(result.payload, data)
    elif isinstance(result, EthernetFrame):
        assert len(result.dst) == len(result.src) == 6
        assert result.ethertype >= 0x0600
        assert _within(result.payload, data)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_make_every_parser_return_a_packet_or_raise_malformed(raw: bytes) -> None:
    check_parsers(raw)


def valid_frames() -> list[bytes]:
    """One valid frame of every kind, to mutate."""
    eth_ip = ethernet_header(EthernetFrame(MAC_B, MAC_A, ETHERTYPE_IPV4))

    def ip(protocol: int, transport: bytes) -> bytes:
        return eth_ip + ipv4_header(Ipv4Packet(SRC, DST, protocol), len(transport)) + transport

    syn = TcpSegment(
        40000, 80, 1, 0, SYN, 64240, mss=1460, window_scale=7, sack_permitted=True, timestamp=(1, 0)
    )
    data = TcpSegment(40000, 80, 2, 3, ACK, 500, sack_blocks=((5, 9), (12, 20)), timestamp=(4, 5))
    quote = ipv4_header(Ipv4Packet(DST, SRC, PROTOCOL_UDP), 12) + b"\x00\x35\x9c\x40\x00\x0c"
    quote += b"\x00\x00abcd"
    return [
        ethernet_header(EthernetFrame(b"\xff" * 6, MAC_A, ETHERTYPE_ARP))
        + arp_header(ArpPacket(REQUEST, MAC_A, SRC, bytes(6), DST)),
        ip(PROTOCOL_TCP, tcp_header(syn, SRC, DST, [])),
        ip(PROTOCOL_TCP, tcp_header(data, SRC, DST, [b"payload"]) + b"payload"),
        ip(PROTOCOL_UDP, udp_header(UdpDatagram(5353, 53), SRC, DST, [b"query"]) + b"query"),
        ip(PROTOCOL_ICMP, icmpv4_header(Icmpv4Message(ECHO_REQUEST, 0, 1, 2), [b"ping"]) + b"ping"),
        ip(
            PROTOCOL_ICMP,
            icmpv4_header(Icmpv4Message(DESTINATION_UNREACHABLE, 3), [quote]) + quote,
        ),
    ]


VALID = valid_frames()


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with bytes overwritten, inserted, deleted, or cut off."""
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["overwrite", "insert", "delete", "truncate", "extend"]))
        position = draw(st.integers(min_value=0, max_value=max(len(frame) - 1, 0)))
        if action == "overwrite" and frame:
            frame[position] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            frame[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del frame[position : position + draw(st.integers(min_value=1, max_value=8))]
        elif action == "truncate":
            del frame[position:]
        else:
            frame += draw(st.binary(min_size=1, max_size=40))
    return bytes(frame)


@FUZZ
@given(frame=mutated_frames())
def test_mutated_valid_frames_make_every_parser_return_a_packet_or_raise_malformed(
    frame: bytes,
) -> None:
    check_parsers(frame)
    # Each parser on the slices where its layer starts (the IPv4 packet, the
    # transport), with checksums on and off: off, the mutations reach the
    # field checks behind the checksum.
    check_parsers(frame[14:])
    check_parsers(frame[34:])


def test_every_valid_frame_dispatches_to_its_transport() -> None:
    kinds = [type(dispatch(frame)).__name__ for frame in VALID]
    assert kinds == [
        "ArpPacket",
        "TcpSegment",
        "TcpSegment",
        "UdpDatagram",
        "Icmpv4Message",
        "Icmpv4Message",
    ]
