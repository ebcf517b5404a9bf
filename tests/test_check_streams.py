"""The stream conformance checks: they pass on correct streams and catch broken ones.

Each broken stream below wraps a correct in-memory stream and breaks one
promise of the stream contract; the test asserts that the checks fail, and
that the failure names the scenario that caught it.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable

import pytest

import shardio
from shardio import BrokenResourceError, ClosedResourceError
from shardio.abc import HalfCloseableStream, ReceiveStream, Stream
from shardio.lowlevel import checkpoint
from shardio.testing import (
    check_half_closeable_stream,
    check_one_way_stream,
    check_two_way_stream,
    lockstep_stream_pair,
    memory_stream_pair,
)

PairFactory = Callable[[], tuple[HalfCloseableStream, HalfCloseableStream]]


class Wrapped(HalfCloseableStream):
    """A correct stream: every method delegates to a stapled in-memory stream.
    The subclasses each break one thing."""

    def __init__(self, inner: HalfCloseableStream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ReversesEachChunk(Wrapped):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(bytes(data)[::-1])


class IgnoresMaxBytes(Wrapped):
    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if max_bytes is not None and operator.index(max_bytes) < 1:
            raise ValueError("max_bytes must be positive")
        return await self.inner.receive_some(None)


class AcceptsZeroMaxBytes(Wrapped):
    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if max_bytes is not None and max_bytes < 1:
            max_bytes = None
        return await self.inner.receive_some(max_bytes)


class QueuesConcurrentReceivers(Wrapped):
    def __init__(self, inner: HalfCloseableStream) -> None:
        super().__init__(inner)
        self.lock = shardio.Lock()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        async with self.lock:
            return await self.inner.receive_some(max_bytes)


class SendsAfterClose(Wrapped):
    closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            await checkpoint()
            return
        await self.inner.send_all(data)

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


class SendsIntoTheVoid(Wrapped):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except BrokenResourceError:
            pass  # the peer is gone: pretend the data went somewhere


class EmptySendDoesNotYield(Wrapped):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            await self.inner.send_all(data)


class CancelledCloseLeavesItOpen(Wrapped):
    async def aclose(self) -> None:
        await checkpoint()  # a cancellation here skips the close below
        await self.inner.aclose()


class EndOfFileIsNotSticky(Wrapped):
    seen_eof = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.seen_eof:
            raise BrokenResourceError("end-of-file already reported")
        data = await self.inner.receive_some(max_bytes)
        self.seen_eof = not data
        return data


class WaitSendIsNotACancelPoint(Wrapped):
    async def wait_send_all_might_not_block(self) -> None:
        with shardio.CancelScope(shield=True):
            await self.inner.wait_send_all_might_not_block()


class SecondSendEofFails(Wrapped):
    eof_sent = False

    async def send_eof(self) -> None:
        if self.eof_sent:
            raise ClosedResourceError("already sent end-of-file")
        self.eof_sent = True
        await self.inner.send_eof()


class WaitSendNeverWaits(Wrapped):
    closed = False

    async def wait_send_all_might_not_block(self) -> None:
        await checkpoint()
        if self.closed:
            raise ClosedResourceError

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


class QueuesConcurrentSenders(Wrapped):
    def __init__(self, inner: HalfCloseableStream) -> None:
        super().__init__(inner)
        self.lock = shardio.Lock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self.lock:
            await self.inner.send_all(data)


def maker_of(
    kind: type[Wrapped], pair: PairFactory
) -> Callable[[], Awaitable[tuple[Wrapped, Wrapped]]]:
    async def maker() -> tuple[Wrapped, Wrapped]:
        left, right = pair()
        return kind(left), kind(right)

    return maker


async def test_the_delegating_wrapper_itself_passes_every_check() -> None:
    await check_half_closeable_stream(maker_of(Wrapped, memory_stream_pair), None)
    await check_two_way_stream(
        maker_of(Wrapped, lockstep_stream_pair), maker_of(Wrapped, lockstep_stream_pair)
    )


@pytest.mark.parametrize(
    ("kind", "caught_by"),
    [
        (ReversesEachChunk, "order and max_bytes over a bulk transfer: the data differs"),
        (IgnoresMaxBytes, r"receive_some\(\d+\) returned \d+ bytes"),
        (AcceptsZeroMaxBytes, r"max_bytes validation: receive_some\(-1\): expected ValueError"),
        (QueuesConcurrentReceivers, "concurrent receive_some: two tasks in receive_some"),
        (SendsAfterClose, "closing each end: send_all after aclose: expected ClosedResource"),
        (SendsIntoTheVoid, "closing each end: send_all while the receiver closes: expected Broken"),
        (EmptySendDoesNotYield, "b'' sends nothing: send_all returned without yielding"),
        (CancelledCloseLeavesItOpen, "cancelled aclose: send_all after a cancelled aclose"),
        (EndOfFileIsNotSticky, "data, then end-of-file: unexpected BrokenResourceError"),
        (WaitSendIsNotACancelPoint, "cancelled operations: wait_send_all_might_not_block"),
        (SecondSendEofFails, "send_eof: unexpected ClosedResourceError"),
    ],
)
async def test_checks_catch_a_broken_memory_stream(kind: type[Wrapped], caught_by: str) -> None:
    with pytest.raises(AssertionError, match=caught_by):
        await check_half_closeable_stream(maker_of(kind, memory_stream_pair), None)


@pytest.mark.parametrize(
    ("kind", "caught_by"),
    [
        (WaitSendNeverWaits, "clogged: wait_send_all_might_not_block waits for the receiver"),
        (QueuesConcurrentSenders, "clogged: concurrent send_all: two tasks in send_all"),
    ],
)
async def test_clogged_checks_catch_a_broken_flow_control(
    kind: type[Wrapped], caught_by: str
) -> None:
    maker = maker_of(kind, lockstep_stream_pair)
    with pytest.raises(AssertionError, match=caught_by):
        await check_one_way_stream(maker, maker)


async def test_checks_reject_a_pair_of_the_wrong_kind() -> None:
    async def receive_streams() -> tuple[ReceiveStream, ReceiveStream]:
        left, right = memory_stream_pair()
        return left.receive_stream, right.receive_stream

    with pytest.raises(AssertionError, match=r"stream types: .*not a SendStream"):
        await check_one_way_stream(receive_streams, None)  # type: ignore[arg-type]

    class TwoWayOnly(Stream):
        def __init__(self, inner: Stream) -> None:
            self.inner = inner

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            await self.inner.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.inner.wait_send_all_might_not_block()

        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            return await self.inner.receive_some(max_bytes)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def not_half_closeable() -> tuple[Stream, Stream]:
        left, right = memory_stream_pair()
        return TwoWayOnly(left), TwoWayOnly(right)

    with pytest.raises(AssertionError, match=r"send_eof: .*not a HalfCloseableStream"):
        await check_half_closeable_stream(not_half_closeable, None)  # type: ignore[arg-type]
