"""The log's record format: every record survives a round trip whatever the
chunking; a log cut or damaged anywhere in its last record gives back
exactly the records before it, with the place where they end; and damage
anywhere else costs only the records it hit: the reader resynchronises on
the next valid record and reports the bytes it skipped."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.memcached.records import (
    FRAME_SIZE,
    CorruptRecord,
    Damage,
    Delete,
    Flush,
    Header,
    LogEnd,
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


def read_all(
    data: bytes, chunk: int = 1 << 20, size: int | None = None
) -> tuple[list[Record], LogEnd]:
    reader = LogReader(max_record=1 << 20, size=size)
    records: list[Record] = []
    for start in range(0, len(data), chunk):
        records += reader.feed(data[start : start + chunk])
    more, end = reader.finish()
    records += more
    assert end.records == len(records)
    return records, end


def read(data: bytes, chunk: int = 1 << 20) -> tuple[list[Record], int, int]:
    records, end = read_all(data, chunk)
    assert end.damaged == ()
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


def test_a_damaged_record_in_the_middle_costs_only_that_record() -> None:
    data, ends = log_of(SAMPLE)
    damaged = bytearray(data)
    damaged[ends[1] + FRAME_SIZE + 3] ^= 1  # inside the third record's body
    for chunk in (1, 7, 4096):
        records, end = read_all(bytes(damaged) + bytes(300), chunk)
        assert records == SAMPLE[:2] + SAMPLE[3:]
        assert end.damaged == (Damage(offset=ends[1], length=ends[2] - ends[1]),)
        assert (end.valid_end, end.torn) == (len(data), 0)


def test_a_damaged_length_is_skipped_byte_by_byte_to_the_next_record() -> None:
    records_written: list[Record] = [Header(0, 1)] + [
        Put(b"key%d" % i, b"value %d" % i, 0, 0, i, 1_700_000_000) for i in range(20)
    ]
    data, ends = log_of(records_written)
    damaged = bytearray(data)
    damaged[ends[4] : ends[4] + 4] = (5000).to_bytes(4, "little")  # the sixth record's length
    records, end = read_all(bytes(damaged), chunk=64)
    assert records == records_written[:5] + records_written[6:]
    assert end.damaged == (Damage(offset=ends[4], length=ends[5] - ends[4]),)


def test_two_damaged_stretches_are_reported_apart() -> None:
    written: list[Record] = [Touch(b"k%d" % i, i) for i in range(10)]
    data, ends = log_of(written)
    damaged = bytearray(data)
    damaged[ends[1] + 2] ^= 0xFF  # the third record
    damaged[ends[5] + 9 : ends[6] + 3] = bytes(ends[6] + 3 - ends[5] - 9)  # the 7th and 8th
    records, end = read_all(bytes(damaged))
    assert records == written[:2] + written[3:6] + written[8:]
    assert end.damaged == (
        Damage(ends[1], ends[2] - ends[1]),
        Damage(ends[5], ends[7] - ends[5]),
    )


def test_a_frame_inside_a_damaged_value_is_not_taken_for_a_record() -> None:
    # A value holding one well-formed frame of a delete: the header of its
    # record damaged, the reader scans through it, finds the frame, and must
    # not take it (nothing valid follows it inside the value).
    inner = bytearray()
    encode(inner, Delete(b"victim", 99))
    written: list[Record] = [
        Header(0, 1),
        Put(b"a", b"x" * 40 + bytes(inner) + b"y" * 40, 0, 0, 1, 1_700_000_000),
        Put(b"b", b"b", 0, 0, 2, 1_700_000_000),
        Put(b"c", b"c", 0, 0, 3, 1_700_000_000),
    ]
    data, ends = log_of(written)
    damaged = bytearray(data)
    damaged[ends[0] + 1] ^= 0x10  # the put's length
    records, end = read_all(bytes(damaged))
    assert records == [written[0], written[2], written[3]]
    assert end.damaged == (Damage(ends[0], ends[1] - ends[0]),)


def test_a_record_alone_between_two_damaged_stretches_is_counted_as_damaged() -> None:
    written: list[Record] = [Touch(b"k%d" % i, i) for i in range(6)]
    data, ends = log_of(written)
    damaged = bytearray(data)
    damaged[ends[0] + 2] ^= 0xFF  # the second record
    damaged[ends[2] + 2] ^= 0xFF  # the fourth; the third is alone between them
    records, end = read_all(bytes(damaged))
    assert records == [written[0], written[4], written[5]]
    assert end.damaged == (Damage(ends[0], ends[3] - ends[0]),)


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
changes = st.one_of(
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
)
records = st.one_of(
    changes,
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


damages = st.tuples(
    st.floats(0, 1, exclude_max=True),  # where, as a fraction of the log
    st.integers(1, 600),  # how many bytes
    st.sampled_from(["flip", "zero", "random"]),
    st.randoms(use_true_random=False),
)


@given(st.lists(changes, min_size=1, max_size=30), damages, st.integers(1, 600), st.booleans())
def test_damage_anywhere_costs_only_the_records_it_hit(
    written: list[Record],
    damage: tuple[float, int, str, random.Random],
    chunk: int,
    padded: bool,
) -> None:
    written = [Header(0, 1), *written]  # as in a log: a header, then changes
    data, ends = log_of(written)
    if padded:
        data += bytes(-len(data) % 512)
    where, length, kind, rng = damage
    start = int(where * len(data))
    stop = min(len(data), start + length)
    damaged = bytearray(data)
    for position in range(start, stop):
        if kind == "flip":
            damaged[position] ^= rng.randrange(1, 256)
        elif kind == "zero":
            damaged[position] = 0
        else:
            damaged[position] = rng.randrange(256)
    changed = [position for position in range(start, stop) if damaged[position] != data[position]]
    starts = [0, *ends[:-1]]
    hit = [
        index
        for index, (first, end) in enumerate(zip(starts, ends, strict=True))
        if changed and first <= changed[-1] and changed[0] < end
    ]
    records_read, end = read_all(bytes(damaged), chunk, size=len(damaged))
    assert records_read == [record for index, record in enumerate(written) if index not in hit]
    after = [index for index in range(len(written)) if not hit or index > hit[-1]]
    if hit and any(index > hit[-1] for index in after):
        # Valid records follow: reported as damage, from the first record
        # hit to the first one after it.
        first, last = hit[0], hit[-1]
        assert end.damaged == (Damage(starts[first], ends[last] - starts[first]),)
        assert end.valid_end == ends[-1]
    else:
        # The damage reached the end: a torn tail (or nothing at all).
        assert end.damaged == ()
        assert end.valid_end == (starts[hit[0]] if hit else ends[-1])
