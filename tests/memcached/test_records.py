"""The log's record format: every record survives a round trip whatever the
chunking, and a log cut or damaged anywhere in its last record gives back
exactly the records before it, with the place where they end."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.memcached.records import (
    FRAME_SIZE,
    CorruptRecord,
    Delete,
    Flush,
    Header,
    LogReader,
    Put,
    Record,
    Touch,
    encode,
)

SAMPLE: list[Record] = [
    Header(shard=1, shards=4, cas_high=17),
    Put(b"key", b"value\r\nwith newline", 42, 1_700_000_100, 18, 1_700_000_000),
    Put(b"k" * 250, b"", 0, 0, 19, 1_700_000_001, stale=True, key_binary=True),
    Touch(b"key", 1_700_000_200),
    Delete(b"key", 19),
    Flush(oldest_live=1_700_000_009, oldest_cas=20, issued=1_700_000_010),
]


def log_of(records: list[Record]) -> tuple[bytes, list[int]]:
    """The encoded log, and the offset where each record ends."""
    out = bytearray()
    ends = []
    for record in records:
        encode(out, record)
        ends.append(len(out))
    return bytes(out), ends


def read(data: bytes, chunk: int = 1 << 20) -> tuple[list[Record], int, int]:
    reader = LogReader(max_record=1 << 20)
    records: list[Record] = []
    for start in range(0, len(data), chunk):
        records += reader.feed(data[start : start + chunk])
    end = reader.finish()
    assert end.records == len(records)
    return records, end.valid_end, end.torn


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_every_record_type_round_trips_in_chunks_of_any_size(chunk: int) -> None:
    data, _ = log_of(SAMPLE)
    assert read(data, chunk) == (SAMPLE, len(data), 0)


def test_zero_padding_after_the_records_is_a_clean_end() -> None:
    data, _ = log_of(SAMPLE)
    padded = data + bytes(4096 - len(data) % 4096)
    assert read(padded, 512) == (SAMPLE, len(data), 0)


def test_a_log_cut_inside_its_last_record_keeps_every_record_before_it() -> None:
    data, ends = log_of(SAMPLE)
    last_start = ends[-2]
    for cut in range(last_start + 1, len(data)):
        records, valid_end, torn = read(data[:cut], chunk=5)
        assert records == SAMPLE[:-1]
        assert valid_end == last_start
        # The partial frame is what was torn (all of it, unless it ends in zeros).
        assert torn == len(data[last_start:cut].rstrip(b"\0"))


def test_a_damaged_byte_in_the_last_record_fails_its_crc() -> None:
    data, ends = log_of(SAMPLE)
    for position in range(ends[-2], len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x40
        records, valid_end, torn = read(bytes(damaged) + bytes(100))
        assert records == SAMPLE[:-1]
        assert valid_end == ends[-2]
        assert torn > 0


def test_a_damaged_record_ends_the_log_there_even_with_good_records_after_it() -> None:
    data, ends = log_of(SAMPLE)
    damaged = bytearray(data)
    damaged[ends[1] + FRAME_SIZE + 3] ^= 1  # inside the third record's body
    records, valid_end, torn = read(bytes(damaged))
    assert records == SAMPLE[:2]
    assert valid_end == ends[1]
    assert torn == len(data[ends[1] :].rstrip(b"\0"))  # up to its last nonzero byte


def test_a_length_beyond_the_largest_record_is_taken_as_torn() -> None:
    data, _ = log_of(SAMPLE[:2])
    garbage = (1 << 30).to_bytes(4, "little") + bytes(4) + b"x" * 10
    records, valid_end, torn = read(data + garbage)
    assert (records, valid_end, torn) == (SAMPLE[:2], len(data), len(garbage))


def test_a_valid_frame_holding_no_known_record_is_an_error_not_a_torn_write() -> None:
    out = bytearray()
    encode(out, Delete(b"k", 1))
    body = bytearray(out[FRAME_SIZE:])
    body[0] = 99  # an unknown type, with a matching CRC
    prefix = len(body).to_bytes(4, "little")
    frame = prefix + zlib.crc32(bytes(body), zlib.crc32(prefix)).to_bytes(4, "little") + body
    with pytest.raises(CorruptRecord, match="unknown record type 99"):
        LogReader(max_record=1 << 20).feed(frame)


keys = st.binary(min_size=1, max_size=250)
times = st.integers(min_value=0, max_value=(1 << 62))
records = st.one_of(
    st.builds(
        Put,
        keys,
        st.binary(max_size=3000),
        st.integers(0, (1 << 32) - 1),
        times,
        st.integers(0, (1 << 64) - 1),
        times,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(Delete, keys, st.integers(0, (1 << 64) - 1)),
    st.builds(Touch, keys, times),
    st.builds(Flush, times, st.integers(0, (1 << 64) - 1), times),
    st.builds(Header, st.integers(0, 65535), st.integers(1, 65535), st.integers(0, (1 << 64) - 1)),
)


@given(st.lists(records, max_size=30), st.integers(1, 600), st.integers(0, 2000))
def test_any_records_round_trip_and_a_cut_keeps_a_prefix(
    written: list[Record], chunk: int, cut: int
) -> None:
    data, ends = log_of(written)
    assert read(data, chunk)[:2] == (written, len(data))
    cut = min(cut, len(data))
    kept = sum(1 for end in ends if end <= cut)
    records_read, valid_end, _ = read(data[:cut], chunk)
    assert records_read == written[:kept]
    assert valid_end == (ends[kept - 1] if kept else 0)
