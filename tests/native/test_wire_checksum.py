"""The Internet checksum (wire.checksum): the C sum, sums over several parts
at any offsets, the pseudo-header, against RFC 1071's examples and against an
independent word-by-word computation."""

from __future__ import annotations

import array
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.checksum import (
    internet_checksum,
    ones_sum,
    pseudo_header_sum,
    sum_parts,
    verify,
)

from ._wire_reference import pseudo_header, reference_checksum, reference_sum

# A header from Wikipedia's "IPv4 header checksum" article, checksum b861.
WIKIPEDIA_IPV4_HEADER = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")


def test_rfc1071_numerical_example_sums_to_ddf2() -> None:
    # RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert internet_checksum([data]) == 0x220D


def test_wikipedia_ipv4_header_checksum_is_b861_and_then_verifies() -> None:
    assert internet_checksum([WIKIPEDIA_IPV4_HEADER]) == 0xB861
    with_checksum = WIKIPEDIA_IPV4_HEADER[:10] + b"\xb8\x61" + WIKIPEDIA_IPV4_HEADER[12:]
    assert verify(with_checksum)
    assert not verify(WIKIPEDIA_IPV4_HEADER)


def test_all_zero_data_sums_to_zero_and_does_not_verify() -> None:
    # One's complement has two zeros; only all-zero data sums to +0, and a
    # checksummed packet always sums to -0 (0xffff).
    assert ones_sum(bytes(20)) == 0
    assert not verify(bytes(20))
    assert ones_sum(b"") == 0


@pytest.mark.parametrize("length", [15, 16, 17, 1460, 1461, 9000])
def test_carries_out_of_the_wide_accumulators_are_counted(length: int) -> None:
    # Bytes of 0xff overflow the C loop's 64-bit accumulators on every add.
    data = b"\xff" * length
    assert ones_sum(data) == reference_sum(data)
    almost = b"\xff" * (length - 1) + b"\xfe"
    assert ones_sum(almost) == reference_sum(almost)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), offset=st.integers(min_value=0, max_value=7))
def test_ones_sum_matches_the_reference_at_any_length_and_alignment(
    data: bytes, offset: int
) -> None:
    # The offset puts the data at every alignment inside a larger buffer.
    view = memoryview(bytes(offset) + data)[offset:]
    assert ones_sum(view) == reference_sum(data)
    assert ones_sum(data) == reference_sum(data)
    assert ones_sum(bytearray(data)) == reference_sum(data)


@st.composite
def split_into_parts(draw: st.DrawFn) -> tuple[bytes, list[bytes | bytearray | memoryview]]:
    """Some bytes, and the same bytes cut into parts of any lengths (odd ones
    included) and of the three buffer types."""
    data = draw(st.binary(max_size=2000))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    parts: list[bytes | bytearray | memoryview] = []
    for start, end in itertools.pairwise(bounds):
        kind = draw(st.sampled_from(["bytes", "bytearray", "memoryview"]))
        chunk = data[start:end]
        if kind == "bytes":
            parts.append(chunk)
        elif kind == "bytearray":
            parts.append(bytearray(chunk))
        else:
            parts.append(memoryview(b"?" + chunk)[1:])
    return data, parts


@settings(max_examples=300, deadline=None)
@given(
    split=split_into_parts(),
    initial=st.integers(min_value=0, max_value=6 * 0xFFFF),
)
def test_checksum_over_parts_equals_the_checksum_of_their_concatenation(
    split: tuple[bytes, list[bytes | bytearray | memoryview]], initial: int
) -> None:
    data, parts = split
    total, length = sum_parts(parts)
    assert length == len(data)
    # The partial sum stands for a prefix of even length (a pseudo-header).
    prefix = b"".join(
        word.to_bytes(2, "big") for word in [0xFFFF] * (initial // 0xFFFF) + [initial % 0xFFFF]
    )
    assert internet_checksum(parts, initial) == reference_checksum(prefix, data)
    assert (total % 0xFFFF) == (reference_sum(data) % 0xFFFF)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=2, max_size=600), bit=st.integers(min_value=0))
def test_data_with_its_checksum_verifies_and_any_single_bit_flip_does_not(
    data: bytes, bit: int
) -> None:
    if len(data) % 2:
        data += b"\x00"
    checked = data + internet_checksum([data]).to_bytes(2, "big")
    assert verify(checked)
    bit %= len(checked) * 8
    flipped = bytearray(checked)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    assert not verify(flipped)


@settings(max_examples=200, deadline=None)
@given(
    src=st.integers(min_value=0, max_value=2**32 - 1),
    dst=st.integers(min_value=0, max_value=2**32 - 1),
    protocol=st.sampled_from([6, 17]),
    length=st.integers(min_value=0, max_value=0xFFFF),
)
def test_pseudo_header_sum_is_the_sum_of_the_pseudo_header_bytes(
    src: int, dst: int, protocol: int, length: int
) -> None:
    expected = reference_sum(pseudo_header(src, dst, protocol, length))
    total = pseudo_header_sum(src, dst, protocol, length)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == expected


def test_a_buffer_of_wider_items_is_summed_by_its_bytes() -> None:
    words = array.array("H", [0x1234, 0xABCD, 0x0001])
    assert ones_sum(words) == reference_sum(words.tobytes())
    assert sum_parts([words, b"x"])[1] == 7


def test_a_non_contiguous_view_is_refused() -> None:
    strided = memoryview(bytes(range(10)))[::2]
    with pytest.raises(BufferError):
        ones_sum(strided)
