"""IPv4 headers: round trips over every field, the header checksum, options
accepted and skipped, fragmentation fields, what is refused and why, and the
address helpers."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.ipv4 import (
    PROTOCOL_UDP,
    Ipv4Packet,
    format_address,
    ipv4_header,
    parse_address,
    parse_ipv4,
)

from ._wire_reference import reference_checksum

addresses = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def ipv4_packets(draw: st.DrawFn) -> tuple[Ipv4Packet, bytes]:
    """Any header's field values, and a payload."""
    options = draw(st.binary(max_size=40).map(lambda raw: raw[: len(raw) // 4 * 4]))
    payload = draw(st.binary(max_size=200))
    packet = Ipv4Packet(
        src=draw(addresses),
        dst=draw(addresses),
        protocol=draw(st.integers(min_value=0, max_value=255)),
        ttl=draw(st.integers(min_value=0, max_value=255)),
        ident=draw(st.integers(min_value=0, max_value=0xFFFF)),
        dont_fragment=draw(st.booleans()),
        more_fragments=draw(st.booleans()),
        fragment_offset=draw(st.integers(min_value=0, max_value=0x1FFF)) * 8,
        tos=draw(st.integers(min_value=0, max_value=255)),
        options=memoryview(options),
    )
    # A fragment may not end past byte 65535 of its datagram.
    if packet.fragment_offset + len(payload) > 0xFFFF:
        packet.fragment_offset = 0
    return packet, payload


@settings(max_examples=300, deadline=None)
@given(packet_and_payload=ipv4_packets())
def test_ipv4_packet_round_trips_with_a_checksum_the_reference_agrees_with(
    packet_and_payload: tuple[Ipv4Packet, bytes],
) -> None:
    packet, payload = packet_and_payload
    header = ipv4_header(packet, len(payload))
    assert len(header) == packet.header_length == 20 + len(packet.options)
    zeroed = header[:10] + b"\x00\x00" + header[12:]
    assert header[10:12] == reference_checksum(zeroed).to_bytes(2, "big")
    parsed = parse_ipv4(memoryview(header + payload))
    packet.payload = memoryview(payload)
    assert parsed == packet


def test_bytes_past_the_total_length_are_padding_not_payload() -> None:
    header = ipv4_header(Ipv4Packet(1, 2, PROTOCOL_UDP), 4)
    parsed = parse_ipv4(memoryview(header + b"data" + bytes(20)))
    assert bytes(parsed.payload) == b"data"


def test_options_are_accepted_exposed_and_skipped() -> None:
    # Router Alert (RFC 2113): the option a Linux host sends with IGMP.
    router_alert = b"\x94\x04\x00\x00"
    header = ipv4_header(Ipv4Packet(1, 2, 2, options=memoryview(router_alert)), 8)
    assert header[0] == 0x46
    parsed = parse_ipv4(memoryview(header + b"igmp msg"))
    assert parsed.options == router_alert
    assert bytes(parsed.payload) == b"igmp msg"
    assert parsed.header_length == 24


def test_fragmentation_fields_are_exposed_with_the_offset_in_bytes() -> None:
    # ident 0x1c46, MF set, offset field 0x00b9 = 185 units of 8 bytes.
    raw = bytearray.fromhex("450000201c4620b9401100000a0000010a000002")
    raw[10:12] = reference_checksum(bytes(raw)).to_bytes(2, "big")
    parsed = parse_ipv4(memoryview(bytes(raw) + bytes(12)))
    assert (parsed.ident, parsed.more_fragments, parsed.dont_fragment) == (0x1C46, True, False)
    assert parsed.fragment_offset == 185 * 8
    assert (parsed.ttl, parsed.protocol) == (64, PROTOCOL_UDP)


def test_the_reserved_flag_bit_is_ignored() -> None:
    raw = bytearray(ipv4_header(Ipv4Packet(1, 2, PROTOCOL_UDP, dont_fragment=True), 0))
    raw[6] |= 0x80
    raw[10:12] = b"\x00\x00"
    raw[10:12] = reference_checksum(bytes(raw)).to_bytes(2, "big")
    parsed = parse_ipv4(memoryview(bytes(raw)))
    assert parsed.dont_fragment
    assert not parsed.more_fragments
    assert parsed.fragment_offset == 0


def _header(**fields: int) -> bytes:
    """A 20-byte header with the given raw field values and a right checksum."""
    values = {"version_ihl": 0x45, "total": 20, "flags_offset": 0, "ttl": 64, **fields}
    raw = struct.pack(
        "!BBHHHBBHII",
        values["version_ihl"],
        0,
        values["total"],
        0,
        values["flags_offset"],
        values["ttl"],
        17,
        0,
        0x0A000001,
        0x0A000002,
    )
    return raw[:10] + reference_checksum(raw).to_bytes(2, "big") + raw[12:]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_header()[:19], "ipv4: shorter than 20 bytes"),
        (_header(version_ihl=0x65), "ipv4: version is not 4"),
        (_header(version_ihl=0x44), "ipv4: header length < 20"),
        (_header(total=19), "ipv4: total length < header length"),
        (_header(total=21), "ipv4: total length > bytes received"),
        (_header(version_ihl=0x46, total=24), "ipv4: total length > bytes received"),
        (_header()[:10] + b"\x12\x34" + _header()[12:], "ipv4: bad checksum"),
        (_header(flags_offset=0x1FFF, total=28) + bytes(8), "ipv4: fragment ends past byte 65535"),
    ],
)
def test_ipv4_packet_is_malformed_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_ipv4(memoryview(raw))
    assert caught.value.reason == reason


def test_the_last_fragment_may_end_exactly_at_byte_65535() -> None:
    # 8191 * 8 = 65528 bytes in, 7 bytes long: the last byte is 65534.
    raw = _header(flags_offset=0x1FFF, total=27) + bytes(7)
    assert parse_ipv4(memoryview(raw)).fragment_offset == 65528


def test_a_bad_checksum_is_accepted_when_verification_is_off() -> None:
    raw = _header()[:10] + b"\x12\x34" + _header()[12:]
    assert parse_ipv4(memoryview(raw), verify_checksum=False).src == 0x0A000001


@pytest.mark.parametrize(
    ("packet", "payload_length", "message"),
    [
        (Ipv4Packet(1, 2, 6, options=memoryview(b"\x01\x01\x01")), 0, "multiple of 4"),
        (Ipv4Packet(1, 2, 6, options=memoryview(bytes(44))), 0, "at most 40"),
        (Ipv4Packet(1, 2, 6), 65516, "at most 65535 bytes"),
        (Ipv4Packet(1, 2, 6, fragment_offset=12), 0, "multiple of 8"),
    ],
)
def test_ipv4_header_refuses_what_cannot_be_sent(
    packet: Ipv4Packet, payload_length: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ipv4_header(packet, payload_length)


@given(address=addresses)
def test_ipv4_address_text_round_trips(address: int) -> None:
    text = format_address(address)
    assert parse_address(text) == address


def test_address_helpers_agree_with_the_dotted_quad() -> None:
    assert parse_address("10.0.0.1") == 0x0A000001
    assert format_address(0xC0A800C7) == "192.168.0.199"


@pytest.mark.parametrize("text", ["10.0.0", "256.1.1.1", "a.b.c.d", "10.0.0.1 ", "::1", ""])
def test_text_that_is_not_an_ipv4_address_is_a_value_error_quoting_it(text: str) -> None:
    with pytest.raises(ValueError, match="not an IPv4 address") as caught:
        parse_address(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("address", [-1, 2**32])
def test_formatting_an_int_out_of_range_is_a_value_error(address: int) -> None:
    with pytest.raises(ValueError, match=re.escape("0..2**32-1")):
        format_address(address)
