"""UDP: round trips with the pseudo-header checksum over payload parts, the
optional checksum of IPv4 (0 = none, a computed 0 sent as 0xffff), what is
refused and why."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.udp import UdpDatagram, parse_udp, udp_header

from ._wire_reference import joined, pseudo_header, reference_checksum, reference_sum

addresses = st.integers(min_value=0, max_value=2**32 - 1)
SRC, DST = 0x0A000001, 0x0A000002


@settings(max_examples=300, deadline=None)
@given(
    src_addr=addresses,
    dst_addr=addresses,
    src_port=st.integers(min_value=0, max_value=0xFFFF),
    dst_port=st.integers(min_value=1, max_value=0xFFFF),
    parts=st.lists(st.binary(max_size=300), max_size=5),
)
def test_udp_datagram_round_trips_with_a_checksum_the_reference_agrees_with(
    src_addr: int, dst_addr: int, src_port: int, dst_port: int, parts: list[bytes]
) -> None:
    datagram = UdpDatagram(src_port, dst_port)
    header = udp_header(datagram, src_addr, dst_addr, parts)
    payload = joined(parts)
    length = 8 + len(payload)
    assert header[4:6] == length.to_bytes(2, "big")
    expected = reference_checksum(
        pseudo_header(src_addr, dst_addr, 17, length), header[:6], b"\x00\x00", payload
    )
    assert header[6:8] == (expected or 0xFFFF).to_bytes(2, "big")
    parsed = parse_udp(memoryview(header + payload), src_addr, dst_addr)
    assert parsed == UdpDatagram(src_port, dst_port, memoryview(payload))


def test_a_computed_checksum_of_zero_is_sent_as_ffff_and_verifies() -> None:
    # Choose the payload's one word so that everything else sums to 0xffff
    # with it: the checksum computes to 0.
    rest = reference_sum(pseudo_header(SRC, DST, 17, 10) + struct.pack("!HHH", 1000, 2000, 10))
    word = 0xFFFF - rest
    payload = word.to_bytes(2, "big")
    header = udp_header(UdpDatagram(1000, 2000), SRC, DST, [payload])
    assert header[6:8] == b"\xff\xff"
    assert parse_udp(memoryview(header + payload), SRC, DST).payload == payload


def test_a_zero_checksum_field_means_no_checksum() -> None:
    raw = struct.pack("!HHHH", 1000, 2000, 12, 0) + b"junk"
    assert bytes(parse_udp(memoryview(raw), SRC, DST).payload) == b"junk"


def test_bytes_past_the_length_field_are_ignored() -> None:
    header = udp_header(UdpDatagram(1000, 2000), SRC, DST, [b"data"])
    parsed = parse_udp(memoryview(header + b"data" + b"padding"), SRC, DST)
    assert bytes(parsed.payload) == b"data"


def test_the_pseudo_header_makes_a_datagram_for_another_address_fail() -> None:
    header = udp_header(UdpDatagram(1000, 2000), SRC, DST, [b"data"])
    with pytest.raises(Malformed, match="udp: bad checksum"):
        parse_udp(memoryview(header + b"data"), SRC, DST + 1)
    assert parse_udp(memoryview(header + b"data"), SRC, DST + 1, verify_checksum=False)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bytes(7), "udp: shorter than 8 bytes"),
        (struct.pack("!HHHH", 1, 2, 7, 0), "udp: length field < 8"),
        (struct.pack("!HHHH", 1, 2, 9, 0), "udp: length field > bytes received"),
        (struct.pack("!HHHH", 1, 0, 8, 0), "udp: destination port 0"),
        (struct.pack("!HHHH", 1, 2, 8, 0x1234), "udp: bad checksum"),
    ],
)
def test_udp_datagram_is_malformed_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_udp(memoryview(raw), SRC, DST)
    assert caught.value.reason == reason


def test_source_port_zero_is_accepted() -> None:
    header = udp_header(UdpDatagram(0, 53), SRC, DST, [])
    assert parse_udp(memoryview(header), SRC, DST).src_port == 0


def test_udp_header_refuses_a_datagram_over_65535_bytes() -> None:
    with pytest.raises(ValueError, match="at most 65535 bytes"):
        udp_header(UdpDatagram(1, 2), SRC, DST, [bytes(65528)])
