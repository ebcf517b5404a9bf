"""In-memory streams (shardio.testing) and StapledStream / aclose_forcefully (shardio)."""

from __future__ import annotations

import pytest

import shardio
from shardio import (
    BrokenResourceError,
    BusyResourceError,
    ClosedResourceError,
    StapledStream,
    WouldBlock,
    aclose_forcefully,
)
from shardio.abc import HalfCloseableStream, ReceiveStream, SendStream, Stream
from shardio.testing import (
    MemoryReceiveStream,
    MemorySendStream,
    MockClock,
    check_half_closeable_stream,
    check_one_way_stream,
    check_two_way_stream,
    lockstep_stream_one_way_pair,
    lockstep_stream_pair,
    memory_stream_one_way_pair,
    memory_stream_pair,
    memory_stream_pump,
    wait_all_tasks_blocked,
)

# ---------------------------------------------------------------------------
# MemorySendStream
# ---------------------------------------------------------------------------


async def test_memory_send_stream_buffers_until_get_data() -> None:
    stream = MemorySendStream()
    await stream.send_all(b"abc")
    await stream.send_all(bytearray(b"de"))
    await stream.send_all(memoryview(b"f"))
    assert await stream.get_data(2) == b"ab"
    assert stream.get_data_nowait() == b"cdef"
    with pytest.raises(WouldBlock):
        stream.get_data_nowait()


async def test_memory_send_stream_get_data_waits_for_data_then_returns_eof_after_close() -> None:
    stream = MemorySendStream()
    got: list[bytes] = []

    async def getter() -> None:
        got.append(bytes(await stream.get_data()))
        got.append(bytes(await stream.get_data()))

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(getter)
        await wait_all_tasks_blocked()
        assert got == []
        await stream.send_all(b"hello")
        await wait_all_tasks_blocked()
        stream.close()
    assert got == [b"hello", b""]


async def test_memory_send_stream_runs_hooks_and_they_can_be_replaced() -> None:
    calls: list[str] = []

    async def on_send() -> None:
        calls.append("send_all")

    async def on_wait() -> None:
        calls.append("wait")

    stream = MemorySendStream(on_send, on_wait, lambda: calls.append("close"))
    await stream.send_all(b"x")
    await stream.wait_send_all_might_not_block()
    stream.send_all_hook = None
    await stream.send_all(b"y")
    await stream.aclose()
    assert calls == ["send_all", "wait", "close"]
    assert await stream.get_data() == b"xy"


async def test_memory_send_stream_refuses_use_after_close_and_concurrent_sends() -> None:
    stream = MemorySendStream()

    async def block_forever() -> None:
        await shardio.sleep_forever()

    stream.send_all_hook = block_forever
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, b"1")
        await wait_all_tasks_blocked()
        with pytest.raises(BusyResourceError):
            await stream.send_all(b"2")
        with pytest.raises(BusyResourceError):
            await stream.wait_send_all_might_not_block()
        nursery.cancel_scope.cancel()
    stream.close()
    with pytest.raises(ClosedResourceError):
        await stream.send_all(b"3")
    with pytest.raises(ClosedResourceError):
        await stream.wait_send_all_might_not_block()


async def test_get_data_rejects_bad_max_bytes() -> None:
    stream = MemorySendStream()
    with pytest.raises(ValueError, match="max_bytes"):
        stream.get_data_nowait(0)
    with pytest.raises(TypeError):
        await stream.get_data(1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# MemoryReceiveStream
# ---------------------------------------------------------------------------


async def test_memory_receive_stream_returns_put_data_then_eof() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"abc")
    stream.put_data(memoryview(b"def"))
    stream.put_eof()
    assert await stream.receive_some(4) == b"abcd"
    assert await stream.receive_some() == b"ef"
    assert await stream.receive_some() == b""
    assert await stream.receive_some() == b""
    with pytest.raises(ClosedResourceError):
        stream.put_data(b"late")


async def test_memory_receive_stream_hook_runs_before_waiting_for_data() -> None:
    stream = MemoryReceiveStream()

    async def feed() -> None:
        stream.put_data(b"fed by the hook")

    stream.receive_some_hook = feed
    assert await stream.receive_some() == b"fed by the hook"


async def test_closing_memory_receive_stream_discards_data_and_wakes_receiver() -> None:
    closed: list[bool] = []
    stream = MemoryReceiveStream(close_hook=lambda: closed.append(True))

    async def receive() -> None:
        with pytest.raises(ClosedResourceError):
            await stream.receive_some()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await wait_all_tasks_blocked()
        await stream.aclose()
    assert closed == [True]
    with pytest.raises(ClosedResourceError):
        stream.put_data(b"x")
    with pytest.raises(ClosedResourceError):
        await stream.receive_some()


async def test_memory_receive_stream_refuses_two_receivers() -> None:
    stream = MemoryReceiveStream()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(stream.receive_some)
        await wait_all_tasks_blocked()
        with pytest.raises(BusyResourceError):
            await stream.receive_some()
        stream.put_eof()


# ---------------------------------------------------------------------------
# Pumps and pairs
# ---------------------------------------------------------------------------


async def test_pump_moves_data_then_eof_and_reports_whether_anything_moved() -> None:
    send = MemorySendStream()
    receive = MemoryReceiveStream()
    assert memory_stream_pump(send, receive) is False
    await send.send_all(b"abcdef")
    assert memory_stream_pump(send, receive, max_bytes=2) is True
    assert await receive.receive_some() == b"ab"
    assert memory_stream_pump(send, receive) is True
    assert await receive.receive_some() == b"cdef"
    send.close()
    assert memory_stream_pump(send, receive) is True
    assert await receive.receive_some() == b""


async def test_pump_into_a_closed_receiver_is_a_broken_stream() -> None:
    send = MemorySendStream()
    receive = MemoryReceiveStream()
    receive.close()
    await send.send_all(b"x")
    with pytest.raises(BrokenResourceError):
        memory_stream_pump(send, receive)


async def test_one_way_pair_delivers_at_once_and_closing_sender_gives_eof() -> None:
    send, receive = memory_stream_one_way_pair()
    await send.send_all(b"ping")
    assert await receive.receive_some() == b"ping"
    await send.aclose()
    assert await receive.receive_some() == b""


async def test_one_way_pair_without_send_hook_holds_data_until_pumped() -> None:
    send, receive = memory_stream_one_way_pair()
    send.send_all_hook = None
    await send.send_all(b"held")
    received: list[bytes] = []

    async def receiver() -> None:
        received.append(bytes(await receive.receive_some()))

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        assert received == []
        memory_stream_pump(send, receive)
    assert received == [b"held"]


async def test_memory_stream_pair_is_bidirectional_and_send_eof_half_closes() -> None:
    left, right = memory_stream_pair()
    await left.send_all(b"to the right")
    assert await right.receive_some() == b"to the right"
    await right.send_all(b"to the left")
    assert await left.receive_some() == b"to the left"
    await left.send_eof()
    assert await right.receive_some() == b""
    await right.send_all(b"still open this way")
    assert await left.receive_some() == b"still open this way"
    with pytest.raises(ClosedResourceError):
        await left.send_all(b"after eof")


async def test_memory_stream_pair_can_be_rewired_to_trickle(autojump_clock: MockClock) -> None:
    left, right = memory_stream_pair()

    async def trickle() -> None:
        while memory_stream_pump(left.send_stream, right.receive_stream, max_bytes=1):
            await shardio.sleep(1)

    left.send_stream.send_all_hook = trickle
    received: list[tuple[bytes, float]] = []

    async def receiver() -> None:
        async for chunk in right:
            received.append((bytes(chunk), shardio.current_time()))

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await left.send_all(b"abc")
        await left.send_eof()
    assert received == [(b"a", 0), (b"b", 1), (b"c", 2)]


# ---------------------------------------------------------------------------
# Lockstep streams
# ---------------------------------------------------------------------------


async def test_lockstep_send_all_returns_only_once_everything_was_received() -> None:
    send, receive = lockstep_stream_one_way_pair()
    events: list[str] = []

    async def sender() -> None:
        await send.send_all(b"abcd")
        events.append("sent")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await wait_all_tasks_blocked()
        assert events == []
        assert await receive.receive_some(3) == b"abc"
        await wait_all_tasks_blocked()
        assert events == []
        assert await receive.receive_some(3) == b"d"
        await wait_all_tasks_blocked()
        assert events == ["sent"]


async def test_lockstep_wait_send_all_might_not_block_waits_for_a_receiver() -> None:
    send, receive = lockstep_stream_one_way_pair()
    events: list[str] = []

    async def waiter() -> None:
        await send.wait_send_all_might_not_block()
        events.append("might not block")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        assert events == []
        nursery.start_soon(receive.receive_some)
        await wait_all_tasks_blocked()
        assert events == ["might not block"]
        await send.aclose()


async def test_cancelled_lockstep_send_withdraws_the_unreceived_rest() -> None:
    send, receive = lockstep_stream_one_way_pair()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(send.send_all, b"abcdef")
        await wait_all_tasks_blocked()
        assert await receive.receive_some(2) == b"ab"
        nursery.cancel_scope.cancel()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(send.send_all, b"next")
        assert await receive.receive_some() == b"next"


async def test_lockstep_close_ends_give_eof_and_broken_stream() -> None:
    send, receive = lockstep_stream_one_way_pair()
    await send.aclose()
    assert await receive.receive_some() == b""
    send, receive = lockstep_stream_one_way_pair()
    await receive.aclose()
    with pytest.raises(BrokenResourceError):
        await send.send_all(b"x")


# ---------------------------------------------------------------------------
# StapledStream and aclose_forcefully
# ---------------------------------------------------------------------------


class RecordingSendStream(SendStream):
    def __init__(self, log: list[str], fail_close: bool = False) -> None:
        self.log = log
        self.fail_close = fail_close

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.log.append(f"send_all {bytes(data)!r}")

    async def wait_send_all_might_not_block(self) -> None:
        self.log.append("wait_send_all_might_not_block")

    async def aclose(self) -> None:
        self.log.append("send aclose")
        if self.fail_close:
            raise OSError("close failed")


class RecordingHalfCloseable(RecordingSendStream, HalfCloseableStream):
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return b""

    async def send_eof(self) -> None:
        self.log.append("send_eof")


class RecordingReceiveStream(ReceiveStream):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.log.append(f"receive_some {max_bytes}")
        return b"data"

    async def aclose(self) -> None:
        self.log.append("receive aclose")


async def test_stapled_stream_delegates_each_method_to_its_half() -> None:
    log: list[str] = []
    stream = StapledStream(RecordingSendStream(log), RecordingReceiveStream(log))
    await stream.send_all(b"x")
    await stream.wait_send_all_might_not_block()
    assert await stream.receive_some(7) == b"data"
    assert log == ["send_all b'x'", "wait_send_all_might_not_block", "receive_some 7"]


async def test_stapled_send_eof_uses_the_send_streams_own_send_eof_or_closes_it() -> None:
    log: list[str] = []
    await StapledStream(RecordingHalfCloseable(log), RecordingReceiveStream(log)).send_eof()
    await StapledStream(RecordingSendStream(log), RecordingReceiveStream(log)).send_eof()
    assert log == ["send_eof", "send aclose"]


async def test_stapled_aclose_closes_the_receive_half_even_if_the_send_half_fails() -> None:
    log: list[str] = []
    stream = StapledStream(RecordingSendStream(log, fail_close=True), RecordingReceiveStream(log))
    with pytest.raises(OSError, match="close failed"):
        await stream.aclose()
    assert log == ["send aclose", "receive aclose"]


async def test_aclose_forcefully_closes_without_waiting_and_swallows_the_cancel() -> None:
    closed_while_cancelled: list[bool] = []

    class GracefulResource(shardio.abc.AsyncResource):
        async def aclose(self) -> None:
            try:
                await shardio.sleep(3600)  # a goodbye the peer never answers
            finally:
                closed_while_cancelled.append(True)

    await aclose_forcefully(GracefulResource())
    assert closed_while_cancelled == [True]


# ---------------------------------------------------------------------------
# Conformance
# ---------------------------------------------------------------------------


async def test_memory_one_way_pair_passes_the_one_way_checks() -> None:
    async def maker() -> tuple[MemorySendStream, MemoryReceiveStream]:
        return memory_stream_one_way_pair()

    await check_one_way_stream(maker, None)


async def test_memory_stream_pair_passes_the_half_closeable_checks() -> None:
    async def maker() -> tuple[HalfCloseableStream, HalfCloseableStream]:
        return memory_stream_pair()

    await check_half_closeable_stream(maker, None)


async def test_lockstep_one_way_pair_passes_the_one_way_checks_including_clogged() -> None:
    async def maker() -> tuple[SendStream, ReceiveStream]:
        return lockstep_stream_one_way_pair()

    await check_one_way_stream(maker, maker)


async def test_lockstep_pair_passes_the_two_way_checks_including_clogged() -> None:
    async def maker() -> tuple[Stream, Stream]:
        return lockstep_stream_pair()

    await check_two_way_stream(maker, maker)
