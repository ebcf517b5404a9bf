"""ICMPv4: echo request and reply, destination unreachable and time exceeded
with the quoted original datagram, the checksum, what is refused and why."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.icmpv4 import (
    CODE_FRAGMENTATION_NEEDED,
    CODE_PORT_UNREACHABLE,
    CODE_TTL_EXCEEDED,
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    TIME_EXCEEDED,
    Icmpv4Message,
    icmpv4_header,
    parse_icmpv4,
)
from shardio_net.native.wire.ipv4 import PROTOCOL_UDP, Ipv4Packet, ipv4_header
from shardio_net.native.wire.udp import UdpDatagram, udp_header

from ._wire_reference import joined, reference_checksum

u16 = st.integers(min_value=0, max_value=0xFFFF)


@settings(max_examples=200, deadline=None)
@given(
    icmp_type=st.sampled_from([ECHO_REQUEST, ECHO_REPLY]),
    ident=u16,
    seq=u16,
    data=st.lists(st.binary(max_size=40), max_size=4),
)
def test_echo_round_trips_with_a_checksum_the_reference_agrees_with(
    icmp_type: int, ident: int, seq: int, data: list[bytes]
) -> None:
    message = Icmpv4Message(icmp_type, 0, ident, seq)
    header = icmpv4_header(message, data)
    zeroed = header[:2] + b"\x00\x00" + header[4:]
    assert header[2:4] == reference_checksum(zeroed, joined(data)).to_bytes(2, "big")
    parsed = parse_icmpv4(memoryview(header + joined(data)))
    message.payload = memoryview(joined(data))
    assert parsed == message


def _udp_datagram_sent(payload: bytes) -> bytes:
    """An IPv4 packet carrying a UDP datagram, as its sender put it on the wire."""
    udp = udp_header(UdpDatagram(40000, 53), 0x0A000001, 0x08080808, [payload])
    ip = ipv4_header(
        Ipv4Packet(0x0A000001, 0x08080808, PROTOCOL_UDP, ident=7), len(udp) + len(payload)
    )
    return ip + udp + payload


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(
        [
            (DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE),
            (DESTINATION_UNREACHABLE, CODE_FRAGMENTATION_NEEDED),
            (TIME_EXCEEDED, CODE_TTL_EXCEEDED),
        ]
    ),
    next_hop_mtu=u16,
    quoted_length=st.integers(min_value=28, max_value=548),
)
def test_error_round_trips_and_exposes_the_quoted_original_datagram(
    kind: tuple[int, int], next_hop_mtu: int, quoted_length: int
) -> None:
    icmp_type, code = kind
    original = _udp_datagram_sent(b"query" * 100)
    quote = original[:quoted_length]
    if icmp_type != DESTINATION_UNREACHABLE:
        next_hop_mtu = 0
    message = Icmpv4Message(icmp_type, code, next_hop_mtu=next_hop_mtu)
    header = icmpv4_header(message, [quote])
    parsed = parse_icmpv4(memoryview(header + quote))
    assert (parsed.type, parsed.code, parsed.next_hop_mtu) == (icmp_type, code, next_hop_mtu)
    assert parsed.payload == quote
    assert parsed.original is not None
    assert (parsed.original.src, parsed.original.dst) == (0x0A000001, 0x08080808)
    assert (parsed.original.protocol, parsed.original.ident) == (PROTOCOL_UDP, 7)
    # The first 8 bytes of the original payload: the UDP header, both ports.
    assert parsed.original.payload[:4] == (40000).to_bytes(2, "big") + (53).to_bytes(2, "big")
    assert parsed.original.payload == original[20:quoted_length]


def test_next_hop_mtu_is_in_the_low_16_bits_as_rfc_1191_says() -> None:
    quote = _udp_datagram_sent(b"x" * 8)
    message = Icmpv4Message(DESTINATION_UNREACHABLE, CODE_FRAGMENTATION_NEEDED, next_hop_mtu=1400)
    header = icmpv4_header(message, [quote])
    assert header[4:8] == b"\x00\x00\x05\x78"


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (bytes(19), "icmpv4: quoted header shorter than 20 bytes"),
        (b"\x65" + bytes(27), "icmpv4: quoted header is not IPv4"),
        (b"\x44" + bytes(27), "icmpv4: quoted header length < 20"),
        (b"\x45\x00\x00\x10" + bytes(24), "icmpv4: quoted total length < header length"),
        (b"\x45\x00\x00\x30" + bytes(23), "icmpv4: quote shorter than its header + 8 bytes"),
    ],
)
def test_error_whose_quote_is_not_an_ipv4_header_and_8_bytes_is_malformed(
    quote: bytes, reason: str
) -> None:
    header = icmpv4_header(Icmpv4Message(TIME_EXCEEDED, CODE_TTL_EXCEEDED), [quote])
    with pytest.raises(Malformed) as caught:
        parse_icmpv4(memoryview(header + quote))
    assert caught.value.reason == reason


def test_unsupported_type_is_malformed_without_naming_the_type() -> None:
    # A timestamp request (type 13), checksummed correctly.
    raw = bytearray(b"\x0d\x00\x00\x00\x12\x34\x00\x01" + bytes(12))
    raw[2:4] = reference_checksum(bytes(raw)).to_bytes(2, "big")
    with pytest.raises(Malformed) as caught:
        parse_icmpv4(memoryview(bytes(raw)))
    assert caught.value.reason == "icmpv4: unsupported type"


def test_bad_checksum_and_short_message_are_malformed() -> None:
    header = icmpv4_header(Icmpv4Message(ECHO_REQUEST, 0, 1, 2), [b"abc"])
    damaged = header + b"abd"
    with pytest.raises(Malformed, match="icmpv4: bad checksum"):
        parse_icmpv4(memoryview(damaged))
    assert parse_icmpv4(memoryview(damaged), verify_checksum=False).seq == 2
    with pytest.raises(Malformed, match="icmpv4: shorter than 8 bytes"):
        parse_icmpv4(memoryview(header[:7]))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (Icmpv4Message(13), "is not one of echo request/reply"),
        (Icmpv4Message(ECHO_REQUEST, ident=0x10000), "16-bit"),
        (Icmpv4Message(DESTINATION_UNREACHABLE, 4, next_hop_mtu=0x10000), "16-bit"),
    ],
)
def test_icmpv4_header_refuses_what_cannot_be_sent(message: Icmpv4Message, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        icmpv4_header(message, [])
