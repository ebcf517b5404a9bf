"""TCP segments: round trips over every field and option with the checksum
over the pseudo-header and payload parts, the option layout, the parser's
rules for options (strict lengths, unknown kinds skipped, SYN-only options),
what is refused and why."""

from __future__ import annotations

import struct
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.tcp import (
    ACK,
    FIN,
    PSH,
    SYN,
    TcpSegment,
    parse_tcp,
    tcp_header,
    tcp_header_length,
)

from ._wire_reference import joined, pseudo_header, reference_checksum

SRC, DST = 0x0A000001, 0x0A000002
u16 = st.integers(min_value=0, max_value=0xFFFF)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
ports = st.integers(min_value=1, max_value=0xFFFF)


@st.composite
def tcp_segments(draw: st.DrawFn) -> TcpSegment:
    """Any segment the emitter accepts: SYN-only options only with SYN, and
    as many SACK blocks as fit beside the other options."""
    flags = draw(st.integers(min_value=0, max_value=0xFF))
    syn = flags & SYN != 0
    mss = draw(st.none() | u16) if syn else None
    window_scale = draw(st.none() | st.integers(min_value=0, max_value=14)) if syn else None
    sack_permitted = draw(st.booleans()) if syn else False
    timestamp = draw(st.none() | st.tuples(u32, u32))
    used = (mss is not None) * 4 + (window_scale is not None) * 4
    used += 12 if timestamp is not None else 4 * sack_permitted
    room = min(4, (40 - used - 4) // 8)
    sack_blocks = tuple(draw(st.lists(st.tuples(u32, u32), max_size=room)))
    return TcpSegment(
        src_port=draw(ports),
        dst_port=draw(ports),
        seq=draw(u32),
        ack=draw(u32),
        flags=flags,
        window=draw(u16),
        urgent=draw(u16),
        mss=mss,
        window_scale=window_scale,
        sack_permitted=sack_permitted,
        sack_blocks=sack_blocks,
        timestamp=timestamp,
    )


def fields(segment: TcpSegment) -> dict[str, Any]:
    """The segment's fields, its payload as bytes: TcpSegment compares by
    identity (eq=False, as the seam with the connection specifies)."""
    values = attrs.asdict(segment, recurse=False)
    values["payload"] = bytes(segment.payload)
    return values


@settings(max_examples=400, deadline=None)
@given(
    segment=tcp_segments(),
    parts=st.lists(st.binary(max_size=300), max_size=4),
    src=u32,
    dst=u32,
)
def test_tcp_segment_round_trips_with_a_checksum_the_reference_agrees_with(
    segment: TcpSegment, parts: list[bytes], src: int, dst: int
) -> None:
    header = tcp_header(segment, src, dst, parts)
    payload = joined(parts)
    assert len(header) == tcp_header_length(segment)
    assert len(header) % 4 == 0
    assert header[12] >> 4 == len(header) // 4
    zeroed = header[:16] + b"\x00\x00" + header[18:]
    expected = reference_checksum(
        pseudo_header(src, dst, 6, len(header) + len(payload)), zeroed, payload
    )
    assert header[16:18] == expected.to_bytes(2, "big")
    parsed = parse_tcp(memoryview(header + payload), src, dst)
    segment.payload = memoryview(payload)
    assert fields(parsed) == fields(segment)


def test_a_syn_with_every_option_is_laid_out_as_linux_lays_it_out() -> None:
    syn = TcpSegment(
        1234, 80, 1, 0, SYN, 64240, mss=1460, window_scale=7, sack_permitted=True, timestamp=(5, 0)
    )
    options = tcp_header(syn, SRC, DST, [])[20:]
    # mss 1460, sackOK + TS val 5 ecr 0, nop, wscale 7: tcpdump's order.
    assert options.hex() == "020405b40402080a000000050000000001030307"


def test_sack_blocks_and_timestamps_are_laid_out_as_linux_lays_them_out() -> None:
    segment = TcpSegment(1234, 80, 1, 2, ACK, 500, sack_blocks=((10, 20),), timestamp=(7, 8))
    options = tcp_header(segment, SRC, DST, [])[20:]
    assert options.hex() == "0101080a00000007000000080101050a0000000a00000014"


def test_sack_permitted_without_timestamps_is_padded_with_two_nops() -> None:
    syn = TcpSegment(1234, 80, 1, 0, SYN, 500, sack_permitted=True)
    assert tcp_header(syn, SRC, DST, [])[20:] == b"\x01\x01\x04\x02"


def raw_segment(options: bytes, flags: int = ACK, payload: bytes = b"") -> memoryview:
    """A segment from SRC to DST with these raw option bytes (a multiple of 4)
    and a right checksum, from the reference computation."""
    header_length = 20 + len(options)
    header = struct.pack("!HHIIBBHHH", 1234, 80, 1, 2, header_length << 2, flags, 500, 0, 0)
    header += options
    checksum = reference_checksum(
        pseudo_header(SRC, DST, 6, header_length + len(payload)), header, payload
    )
    return memoryview(header[:16] + checksum.to_bytes(2, "big") + header[18:] + payload)


TIMESTAMPS = b"\x08\x0a" + struct.pack("!II", 111, 222)


@pytest.mark.parametrize(
    "options",
    [
        b"\x01\x01" + TIMESTAMPS,  # Linux's layout (the parser's fast path)
        TIMESTAMPS + b"\x01\x01",
        TIMESTAMPS + b"\x00\x00",
        b"\x01" + TIMESTAMPS + b"\x00",
        b"\x01\x01" + TIMESTAMPS + b"\x01\x01\x01\x00",
    ],
)
def test_timestamps_parse_the_same_wherever_they_sit_among_the_options(options: bytes) -> None:
    segment = parse_tcp(raw_segment(options, payload=b"data"), SRC, DST)
    assert segment.timestamp == (111, 222)
    assert bytes(segment.payload) == b"data"


def test_an_unknown_option_is_skipped_by_its_length() -> None:
    # Kind 30 (Multipath TCP), 8 bytes, then the timestamps.
    mptcp = b"\x1e\x08\x00\x81\x12\x34\x56\x78"
    segment = parse_tcp(raw_segment(mptcp + b"\x01\x01" + TIMESTAMPS), SRC, DST)
    assert segment.timestamp == (111, 222)


def test_options_after_the_end_of_list_are_not_read() -> None:
    # After EOL comes what would be a malformed option: it is padding.
    segment = parse_tcp(raw_segment(b"\x00\x02\x01\x00"), SRC, DST)
    assert segment.mss is None


def test_the_last_of_two_copies_of_an_option_wins() -> None:
    twice = TIMESTAMPS + b"\x08\x0a" + struct.pack("!II", 333, 444) + b"\x00\x00\x00\x00"
    assert parse_tcp(raw_segment(twice), SRC, DST).timestamp == (333, 444)


def test_syn_only_options_count_in_a_syn_and_are_ignored_in_any_other_segment() -> None:
    syn_options = b"\x02\x04\x05\xb4" + b"\x01\x03\x03\x07" + b"\x01\x01\x04\x02"
    syn = parse_tcp(raw_segment(syn_options, flags=SYN), SRC, DST)
    assert (syn.mss, syn.window_scale, syn.sack_permitted) == (1460, 7, True)
    other = parse_tcp(raw_segment(syn_options, flags=ACK), SRC, DST)
    assert (other.mss, other.window_scale, other.sack_permitted) == (None, None, False)


def test_a_window_scale_above_14_is_read_as_14() -> None:
    syn = parse_tcp(raw_segment(b"\x01\x03\x03\x0f", flags=SYN), SRC, DST)
    assert syn.window_scale == 14


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (b"\x01\x01\x01\x1e", "tcp: option without its length byte"),
        (b"\x1e\x01\x00\x00", "tcp: option length < 2"),
        (b"\x1e\x00\x00\x00", "tcp: option length < 2"),
        (b"\x1e\x05\x00\x00", "tcp: option runs past the header"),
        (b"\x02\x03\x05\x00", "tcp: MSS option length is not 4"),
        (b"\x03\x04\x07\x00", "tcp: window scale option length is not 3"),
        (b"\x04\x03\x00\x00", "tcp: SACK-permitted option length is not 2"),
        (b"\x05\x02\x00\x00", "tcp: SACK option length is not 2 + 8n"),
        (b"\x05\x06\x00\x00\x00\x00\x00\x00", "tcp: SACK option length is not 2 + 8n"),
        (b"\x08\x08\x00\x00\x00\x00\x00\x00", "tcp: timestamps option length is not 10"),
    ],
)
def test_an_option_with_a_bad_length_makes_the_segment_malformed(
    options: bytes, reason: str
) -> None:
    # Both with and without SYN: a SYN-only option's length is checked either way.
    for flags in (SYN, ACK):
        with pytest.raises(Malformed) as caught:
            parse_tcp(raw_segment(options, flags=flags), SRC, DST)
        assert caught.value.reason == reason


def test_four_sack_blocks_parse() -> None:
    edges = list(range(1, 9))
    options = b"\x01\x01\x05\x22" + struct.pack("!8I", *edges)
    segment = parse_tcp(raw_segment(options), SRC, DST)
    assert segment.sack_blocks == ((1, 2), (3, 4), (5, 6), (7, 8))


def _header(
    src_port: int = 1,
    dst_port: int = 2,
    words: int = 5,
    options: bytes = b"",
    checksum: bool = True,
) -> bytes:
    """A bare header with these raw values; its checksum right unless told."""
    raw = struct.pack("!HHIIBBHHH", src_port, dst_port, 0, 0, words << 4, ACK, 0, 0, 0) + options
    if not checksum:
        return raw[:16] + b"\x12\x34" + raw[18:]
    value = reference_checksum(pseudo_header(SRC, DST, 6, len(raw)), raw)
    return raw[:16] + value.to_bytes(2, "big") + raw[18:]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bytes(19), "tcp: shorter than 20 bytes"),
        (_header(words=4), "tcp: header length < 20"),
        (_header(words=6), "tcp: header length > bytes received"),
        (_header(checksum=False), "tcp: bad checksum"),
        (_header(src_port=0), "tcp: port 0"),
        (_header(dst_port=0), "tcp: port 0"),
        (_header(src_port=0, words=8, options=b"\x01\x01" + TIMESTAMPS), "tcp: port 0"),
    ],
)
def test_tcp_segment_is_malformed_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_tcp(memoryview(raw), SRC, DST)
    assert caught.value.reason == reason


def test_a_bad_checksum_is_accepted_when_verification_is_off() -> None:
    raw = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 5 << 4, ACK, 0, 0x1234, 0)
    assert parse_tcp(memoryview(raw), SRC, DST, verify_checksum=False).seq == 3


@settings(max_examples=200, deadline=None)
@given(segment=tcp_segments(), payload=st.binary(max_size=100), bit=st.integers(min_value=0))
def test_every_single_bit_flip_of_a_segment_makes_it_malformed(
    segment: TcpSegment, payload: bytes, bit: int
) -> None:
    raw = bytearray(tcp_header(segment, SRC, DST, [payload]) + payload)
    bit %= len(raw) * 8
    raw[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(Malformed):
        parse_tcp(memoryview(raw), SRC, DST)


def test_the_payload_is_a_view_of_the_frame_not_a_copy() -> None:
    segment = TcpSegment(1234, 80, 1, 2, ACK | PSH, 500, timestamp=(1, 2))
    frame = bytearray(tcp_header(segment, SRC, DST, [b"abcd"]) + b"abcd")
    parsed = parse_tcp(memoryview(frame), SRC, DST)
    frame[-4] = ord("X")
    assert bytes(parsed.payload) == b"Xbcd"


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        (TcpSegment(1, 2, 0, 0, ACK, 0, mss=1460), "only in a SYN"),
        (TcpSegment(1, 2, 0, 0, ACK | FIN, 0, window_scale=7), "only in a SYN"),
        (TcpSegment(1, 2, 0, 0, ACK, 0, sack_permitted=True), "only in a SYN"),
        (TcpSegment(1, 2, 0, 0, SYN, 0, window_scale=15), "0..14"),
        (TcpSegment(1, 2, 0, 0, ACK, 0, sack_blocks=((1, 2),) * 5), "at most 4 blocks"),
        (
            TcpSegment(1, 2, 0, 0, ACK, 0, sack_blocks=((1, 2),) * 4, timestamp=(1, 2)),
            "at most 3 SACK blocks",
        ),
    ],
)
def test_tcp_header_refuses_options_that_cannot_be_sent(segment: TcpSegment, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tcp_header(segment, SRC, DST, [])
