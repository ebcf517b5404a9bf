"""ReceiveBuffer: filling, finding, taking without copies, and the view rule."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import shardio
from shardio.testing import memory_stream_pair
from shardio_net import ReceiveBuffer


def until(buffer: ReceiveBuffer, delimiter: bytes) -> bytes | None:
    """take_until, as a copy (for comparing)."""
    frame = buffer.take_until(delimiter)
    return None if frame is None else bytes(frame)


def test_append_then_take_until_returns_frames_without_the_delimiter() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"GET / HTTP/1.1\r\nHost: x\r\n\r\npartial")
    assert until(buffer, b"\r\n") == b"GET / HTTP/1.1"
    assert until(buffer, b"\r\n") == b"Host: x"
    assert until(buffer, b"\r\n") == b""
    assert until(buffer, b"\r\n") is None
    assert len(buffer) == len(b"partial")
    assert bytes(buffer) == b"partial"


def test_take_returns_a_view_into_the_buffer_not_a_copy() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"abcdef")
    frame = buffer.take(3)
    assert isinstance(frame, memoryview)
    assert frame.obj is buffer.peek().obj  # the same storage
    assert bytes(frame) == b"abc"
    assert buffer.take_bytes(2) == b"de"
    buffer.skip(1)
    assert not buffer
    with pytest.raises(ValueError, match="only 0 bytes"):
        buffer.take(1)


def test_find_and_peek_look_without_consuming() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"key: value\r\n\r\nbody")
    assert buffer.find(b"\r\n\r\n") == 10
    assert buffer.find(b"\r\n", 11) == 12
    assert buffer.find(b"missing") == -1
    assert bytes(buffer.peek(3)) == b"key"
    assert bytes(buffer.peek()) == b"key: value\r\n\r\nbody"
    assert len(buffer) == 18
    with pytest.raises(ValueError, match="negative"):
        buffer.find(b"x", -1)


def test_reserve_and_commit_fill_the_buffer_in_place() -> None:
    buffer = ReceiveBuffer(capacity=64)
    view = buffer.reserve(10)
    assert len(view) >= 10
    view[:5] = b"hello"
    buffer.commit(5)
    view[5:7] = b", "
    buffer.commit(2)
    assert bytes(buffer) == b"hello, "
    with pytest.raises(ValueError, match="reserved"):
        buffer.commit(len(view))


def test_filling_invalidates_views_lent_before_it() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"first\n")
    line = buffer.take_until(b"\n")
    assert line is not None and bytes(line) == b"first"
    kept = bytes(line)  # what to do to keep it
    buffer.append(b"second\n")
    with pytest.raises(ValueError, match="released"):
        bytes(line)
    assert kept == b"first"


def test_compaction_moves_the_unread_bytes_to_the_front() -> None:
    buffer = ReceiveBuffer(capacity=16)
    buffer.append(b"0123456789ab")
    buffer.skip(10)
    buffer.append(b"cdefgh")  # does not fit after "ab": "ab" moves to the front
    assert buffer.capacity == 16
    assert bytes(buffer) == b"abcdefgh"


def test_the_buffer_grows_for_large_frames_and_shrinks_once_empty() -> None:
    buffer = ReceiveBuffer(capacity=16)
    buffer.append(b"x" * 100)
    assert buffer.capacity >= 100
    buffer.clear()
    buffer.append(b"small")
    assert buffer.capacity == 16
    assert bytes(buffer) == b"small"


def test_take_until_does_not_rescan_what_it_already_searched() -> None:
    buffer = ReceiveBuffer()
    for byte in b"a long line arriving one byte at a time":
        buffer.append(bytes([byte]))
        assert until(buffer, b"\r\n") is None
    buffer.append(b"\r")
    assert until(buffer, b"\r\n") is None
    buffer.append(b"\n")  # the delimiter straddles two appends
    assert until(buffer, b"\r\n") == b"a long line arriving one byte at a time"


async def test_receive_from_uses_receive_some_and_reports_end_of_file() -> None:
    left, right = memory_stream_pair()
    buffer = ReceiveBuffer()
    await left.send_all(b"one\ntwo\n")
    await left.send_eof()
    assert await buffer.receive_from(right) == 8
    assert until(buffer, b"\n") == b"one"
    assert until(buffer, b"\n") == b"two"
    assert await buffer.receive_from(right) == 0


class IntoStream(shardio.abc.ReceiveStream):
    """A stream with receive_into, which must be preferred to receive_some."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def receive_into(self, buffer: memoryview) -> int:
        chunk = self.chunks.pop(0) if self.chunks else b""
        assert len(chunk) <= len(buffer)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        raise AssertionError("receive_some used although receive_into exists")

    async def aclose(self) -> None:
        pass


async def test_receive_from_writes_straight_into_the_free_tail_with_receive_into() -> None:
    buffer = ReceiveBuffer(capacity=32)
    stream = IntoStream([b"abc", b"defg"])
    assert await buffer.receive_from(stream) == 3
    assert await buffer.receive_from(stream, max_bytes=4) == 4
    assert bytes(buffer) == b"abcdefg"
    assert await buffer.receive_from(stream) == 0


class KeepingStream(IntoStream):
    """A receive_into that keeps the view it was given, as a stream must not."""

    async def receive_into(self, buffer: memoryview) -> int:
        self.kept = buffer
        return await super().receive_into(buffer)


async def test_receive_from_releases_the_view_it_gave_the_stream() -> None:
    buffer = ReceiveBuffer(capacity=32)
    stream = KeepingStream([b"abc"])
    await buffer.receive_from(stream)
    with pytest.raises(ValueError, match="released"):
        stream.kept[0] = 0
    assert bytes(buffer) == b"abc"


async def test_receive_from_refuses_max_bytes_below_one() -> None:
    buffer = ReceiveBuffer()
    for stream in (IntoStream([b"x"]), memory_stream_pair()[1]):
        with pytest.raises(ValueError, match="max_bytes"):
            await buffer.receive_from(stream, max_bytes=0)
    assert not buffer


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

frames = st.lists(st.binary(max_size=80).filter(lambda f: b"\r\n" not in f), max_size=30)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(frames, st.lists(st.integers(min_value=0), max_size=40), st.integers(1, 64), st.booleans())
def test_any_chunking_of_delimited_frames_yields_the_same_frames(
    sent: list[bytes], cuts: list[int], capacity: int, use_reserve: bool
) -> None:
    stream = b"".join(frame + b"\r\n" for frame in sent)
    buffer = ReceiveBuffer(capacity=capacity)
    received: list[bytes] = []
    for chunk in chunked(stream, cuts):
        if use_reserve:
            view = buffer.reserve(max(1, len(chunk)))
            view[: len(chunk)] = chunk
            buffer.commit(len(chunk))
        else:
            buffer.append(chunk)
        while (frame := buffer.take_until(b"\r\n")) is not None:
            received.append(bytes(frame))
    assert received == sent
    assert not buffer


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(min_value=0), max_size=40),
    st.integers(1, 64),
)
def test_any_chunking_of_length_prefixed_frames_yields_the_same_frames(
    sent: list[bytes], cuts: list[int], capacity: int
) -> None:
    stream = b"".join(len(frame).to_bytes(2, "big") + frame for frame in sent)
    buffer = ReceiveBuffer(capacity=capacity)
    received: list[bytes] = []
    for chunk in chunked(stream, cuts):
        buffer.append(chunk)
        while len(buffer) >= 2:
            size = int.from_bytes(buffer.peek(2), "big")
            if len(buffer) < 2 + size:
                break
            buffer.skip(2)
            received.append(bytes(buffer.take(size)))
    assert received == sent


class ReceiveBufferMachine(RuleBasedStateMachine):
    """Every operation sequence behaves like a plain bytes model."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = ReceiveBuffer(capacity=8)
        self.model = b""

    @rule(data=st.binary(max_size=40))
    def append(self, data: bytes) -> None:
        self.buffer.append(data)
        self.model += data

    @rule(data=st.binary(min_size=1, max_size=40), extra=st.integers(0, 10))
    def reserve_and_commit(self, data: bytes, extra: int) -> None:
        view = self.buffer.reserve(len(data) + extra)
        assert len(view) >= len(data) + extra
        view[: len(data)] = data
        self.buffer.commit(len(data))
        self.model += data

    @precondition(lambda self: self.model)
    @rule(count=st.integers(0, 50))
    def take(self, count: int) -> None:
        count = min(count, len(self.model))
        assert bytes(self.buffer.take(count)) == self.model[:count]
        self.model = self.model[count:]

    @rule(delimiter=st.sampled_from([b"\n", b"\r\n", b"ab", b"\x00\x00\x00"]))
    def take_until(self, delimiter: bytes) -> None:
        frame = until(self.buffer, delimiter)
        before, found, after = self.model.partition(delimiter)
        if found:
            assert frame == before
            self.model = after
        else:
            assert frame is None

    @rule(delimiter=st.binary(min_size=1, max_size=3), start=st.integers(0, 60))
    def find(self, delimiter: bytes, start: int) -> None:
        assert self.buffer.find(delimiter, start) == self.model.find(delimiter, start)

    @precondition(lambda self: self.model)
    @rule(count=st.integers(0, 50))
    def skip(self, count: int) -> None:
        count = min(count, len(self.model))
        self.buffer.skip(count)
        self.model = self.model[count:]

    @invariant()
    def same_contents(self) -> None:
        assert len(self.buffer) == len(self.model)
        assert bytes(self.buffer) == self.model
        assert bytes(self.buffer.peek()) == self.model


TestReceiveBufferAgainstAModel = ReceiveBufferMachine.TestCase
TestReceiveBufferAgainstAModel.settings = settings(max_examples=200, deadline=None)
