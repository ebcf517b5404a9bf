"""open_memory_channel: MemorySendChannel and MemoryReceiveChannel."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import shardio
from shardio import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfChannel,
    MemoryReceiveChannel,
    MemorySendChannel,
    WouldBlock,
    open_memory_channel,
)
from shardio.abc import ReceiveChannel, SendChannel
from shardio.testing import MockClock, wait_all_tasks_blocked


@asynccontextmanager
async def assert_schedule_point() -> AsyncIterator[None]:
    """Assert the body lets another (already runnable) task run."""
    ran: list[None] = []

    async def bystander() -> None:
        ran.append(None)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(bystander)
        yield
        assert ran, "the operation did not yield to the scheduler"


def drain(receive: MemoryReceiveChannel[int]) -> list[int]:
    values = []
    while True:
        try:
            values.append(receive.receive_nowait())
        except WouldBlock:
            return values


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------


def test_open_rejects_non_integer_buffer_sizes_with_type_error() -> None:
    for bad in (1.0, "1", None, math.nan):
        with pytest.raises(TypeError, match=r"int or math\.inf"):
            open_memory_channel(bad)  # type: ignore[arg-type]


def test_open_rejects_negative_buffer_size_with_value_error() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        open_memory_channel(-1)


def test_open_accepts_zero_and_infinity_and_a_type_parameter() -> None:
    send, receive = open_memory_channel[int](0)
    assert send.statistics().max_buffer_size == 0
    send, receive = open_memory_channel[int](math.inf)
    assert receive.statistics().max_buffer_size == math.inf


def test_channel_ends_have_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="open_memory_channel"):
        MemorySendChannel()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="open_memory_channel"):
        MemoryReceiveChannel()  # type: ignore[call-arg]


def test_channel_ends_implement_the_channel_interfaces() -> None:
    send, receive = open_memory_channel[int](0)
    assert isinstance(send, SendChannel)
    assert isinstance(receive, ReceiveChannel)
    assert "MemorySendChannel" in repr(send)
    assert "MemoryReceiveChannel" in repr(receive)


def test_channel_can_be_used_and_closed_outside_a_run() -> None:
    send, receive = open_memory_channel[int](1)
    send.send_nowait(7)
    assert receive.receive_nowait() == 7
    send.close()
    receive.close()
    assert send.statistics().open_send_channels == 0


# ---------------------------------------------------------------------------
# Sending and receiving
# ---------------------------------------------------------------------------


async def test_buffered_values_come_out_in_order_and_nowait_raises_when_full_or_empty() -> None:
    send, receive = open_memory_channel[int](2)
    send.send_nowait(1)
    await send.send(2)
    with pytest.raises(WouldBlock):
        send.send_nowait(3)
    assert send.statistics().current_buffer_used == 2
    assert await receive.receive() == 1
    assert receive.receive_nowait() == 2
    with pytest.raises(WouldBlock):
        receive.receive_nowait()


async def test_unblocked_send_and_receive_are_schedule_points() -> None:
    send, receive = open_memory_channel[int](1)
    async with assert_schedule_point():
        await send.send(1)
    async with assert_schedule_point():
        assert await receive.receive() == 1


async def test_send_in_cancelled_scope_raises_cancelled_and_sends_nothing() -> None:
    send, receive = open_memory_channel[int](1)
    with shardio.CancelScope() as scope:
        scope.cancel()
        await send.send(1)
    assert scope.cancelled_caught
    assert send.statistics().current_buffer_used == 0
    with pytest.raises(WouldBlock):
        receive.receive_nowait()


async def test_receive_in_cancelled_scope_raises_cancelled_and_takes_nothing() -> None:
    send, receive = open_memory_channel[int](1)
    send.send_nowait(1)
    with shardio.CancelScope() as scope:
        scope.cancel()
        await receive.receive()
    assert scope.cancelled_caught
    assert receive.receive_nowait() == 1


async def test_completed_send_and_receive_are_not_undone_by_a_cancel_at_their_schedule_point() -> (
    None
):
    send, receive = open_memory_channel[int](1)

    async def cancel(scope: shardio.CancelScope) -> None:
        scope.cancel()

    async with shardio.open_nursery() as nursery:
        with shardio.CancelScope() as send_scope:
            nursery.start_soon(cancel, send_scope)
            await send.send(1)
        with shardio.CancelScope() as receive_scope:
            nursery.start_soon(cancel, receive_scope)
            got = await receive.receive()
    assert send_scope.cancel_called and receive_scope.cancel_called
    assert not send_scope.cancelled_caught and not receive_scope.cancelled_caught
    assert got == 1


async def test_cancelled_blocked_send_leaves_nothing_in_the_channel() -> None:
    send, receive = open_memory_channel[int](1)
    send.send_nowait(1)
    with shardio.move_on_after(0) as scope:
        await send.send(2)
    assert scope.cancelled_caught
    stats = send.statistics()
    assert (stats.current_buffer_used, stats.tasks_waiting_send) == (1, 0)
    assert drain(receive) == [1]


async def test_cancelled_blocked_receive_takes_nothing_from_later_sends() -> None:
    send, receive = open_memory_channel[int](1)
    with shardio.move_on_after(0) as scope:
        await receive.receive()
    assert scope.cancelled_caught
    assert receive.statistics().tasks_waiting_receive == 0
    send.send_nowait(1)
    assert receive.receive_nowait() == 1


async def test_receive_timeout_then_send_with_autojump_clock(autojump_clock: MockClock) -> None:
    send, receive = open_memory_channel[str](1)
    with shardio.move_on_after(10) as scope:
        await receive.receive()
    assert scope.cancelled_caught
    assert shardio.current_time() == 10
    await send.send("after the timeout")
    assert receive.receive_nowait() == "after the timeout"


async def test_unbuffered_channel_is_a_rendezvous() -> None:
    send, receive = open_memory_channel[int](0)
    with pytest.raises(WouldBlock):
        send.send_nowait(1)
    with pytest.raises(WouldBlock):
        receive.receive_nowait()
    record: list[str] = []

    async def sender() -> None:
        await send.send(1)
        record.append("send returned")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await wait_all_tasks_blocked()
        assert record == []
        assert send.statistics().tasks_waiting_send == 1
        assert send.statistics().current_buffer_used == 0
        assert await receive.receive() == 1
    assert record == ["send returned"]


async def test_unbuffered_send_nowait_hands_value_to_a_waiting_receiver() -> None:
    send, receive = open_memory_channel[int](0)
    got: list[int] = []

    async def receiver() -> None:
        got.append(await receive.receive())

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        send.send_nowait(5)
        assert send.statistics().current_buffer_used == 0
        assert send.statistics().peak_buffer_used == 0
    assert got == [5]


async def test_value_sent_to_a_waiting_receiver_is_not_available_to_others() -> None:
    send, receive = open_memory_channel[int](1)
    got: list[int] = []

    async def receiver() -> None:
        got.append(await receive.receive())

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        send.send_nowait(2)
        with pytest.raises(WouldBlock):
            receive.receive_nowait()
    assert got == [2]


async def test_space_freed_while_a_sender_waits_goes_to_that_sender() -> None:
    send, receive = open_memory_channel[int](1)
    send.send_nowait(1)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(send.send, 2)
        await wait_all_tasks_blocked()
        assert receive.receive_nowait() == 1
        # The waiting sender's value filled the freed slot.
        assert send.statistics().current_buffer_used == 1
        with pytest.raises(WouldBlock):
            send.send_nowait(3)
    assert receive.receive_nowait() == 2


async def test_waiting_receivers_are_served_in_arrival_order() -> None:
    send, receive = open_memory_channel[str](0)
    got: list[tuple[int, str]] = []

    async def receiver(i: int) -> None:
        got.append((i, await receive.receive()))

    async with shardio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(receiver, i)
            await wait_all_tasks_blocked()
        for value in "abc":
            await send.send(value)
    assert got == [(0, "a"), (1, "b"), (2, "c")]


async def test_waiting_senders_deliver_in_arrival_order_after_the_buffer() -> None:
    send, receive = open_memory_channel[int](2)
    send.send_nowait(0)
    send.send_nowait(1)
    async with shardio.open_nursery() as nursery:
        for i in range(2, 5):
            nursery.start_soon(send.send, i)
            await wait_all_tasks_blocked()
        assert send.statistics().tasks_waiting_send == 3
        got = [await receive.receive() for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]


async def test_infinite_buffer_never_blocks_a_sender() -> None:
    send, receive = open_memory_channel[int](math.inf)
    with send:
        for i in range(1000):
            send.send_nowait(i)
    assert [value async for value in receive] == list(range(1000))


async def test_many_producers_each_closing_a_clone_end_the_channel() -> None:
    send, receive = open_memory_channel[int](0)

    async def producer(send: MemorySendChannel[int], first: int) -> None:
        async with send:
            for value in range(first, first + 3):
                await send.send(value)

    async with shardio.open_nursery() as nursery:
        async with send:
            for i in range(5):
                nursery.start_soon(producer, send.clone(), 3 * i)
        got = [value async for value in receive]
    assert sorted(got) == list(range(15))


async def test_many_consumers_share_the_values_between_them() -> None:
    send, receive = open_memory_channel[int](1)
    got: dict[int, list[int]] = {}

    async def consumer(i: int) -> None:
        async for value in receive:
            got.setdefault(i, []).append(value)

    async with shardio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(consumer, i)
        await wait_all_tasks_blocked()
        async with send:
            for value in range(12):
                await send.send(value)
    assert sorted(v for values in got.values() for v in values) == list(range(12))
    assert set(got) == {0, 1, 2, 3}


# ---------------------------------------------------------------------------
# Closing
# ---------------------------------------------------------------------------


async def test_closed_send_end_raises_closed_resource_error_everywhere() -> None:
    send, receive = open_memory_channel[int](1)
    send.close()
    with pytest.raises(ClosedResourceError):
        send.send_nowait(1)
    with pytest.raises(ClosedResourceError):
        await send.send(1)
    with pytest.raises(ClosedResourceError):
        send.clone()
    send.close()
    await send.aclose()
    with pytest.raises(EndOfChannel):
        receive.receive_nowait()


async def test_closed_receive_end_raises_closed_resource_error_everywhere() -> None:
    send, receive = open_memory_channel[int](1)
    send.send_nowait(1)
    await receive.aclose()
    with pytest.raises(ClosedResourceError):
        receive.receive_nowait()
    with pytest.raises(ClosedResourceError):
        await receive.receive()
    with pytest.raises(ClosedResourceError):
        receive.clone()
    receive.close()


async def test_using_a_closed_send_end_is_closed_even_if_receivers_are_gone() -> None:
    send, receive = open_memory_channel[int](1)
    receive.close()
    send.close()
    with pytest.raises(ClosedResourceError):
        send.send_nowait(1)


async def test_receivers_drain_the_buffer_then_get_end_of_channel() -> None:
    send, receive = open_memory_channel[int](3)
    send.send_nowait(1)
    send.send_nowait(2)
    await send.aclose()
    assert await receive.receive() == 1
    assert receive.receive_nowait() == 2
    with pytest.raises(EndOfChannel):
        receive.receive_nowait()
    with pytest.raises(EndOfChannel):
        await receive.receive()


async def test_closing_last_send_end_wakes_blocked_receivers_with_end_of_channel() -> None:
    send, receive = open_memory_channel[int](0)
    errors: list[type[BaseException]] = []

    async def receiver() -> None:
        try:
            await receive.receive()
        except EndOfChannel:
            errors.append(EndOfChannel)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        send.close()
        assert send.statistics().tasks_waiting_receive == 0
    assert errors == [EndOfChannel, EndOfChannel]


async def test_closing_a_send_end_fails_its_own_blocked_senders_only() -> None:
    send1, receive = open_memory_channel[str](0)
    send2 = send1.clone()
    outcomes: list[str] = []

    async def sender(send: MemorySendChannel[str], value: str) -> None:
        try:
            await send.send(value)
        except ClosedResourceError:
            outcomes.append(f"{value}: closed")
        else:
            outcomes.append(f"{value}: sent")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(sender, send1, "via send1")
        nursery.start_soon(sender, send2, "via send2")
        await wait_all_tasks_blocked()
        send1.close()
        assert send1.statistics().tasks_waiting_send == 1
        assert await receive.receive() == "via send2"
    assert sorted(outcomes) == ["via send1: closed", "via send2: sent"]
    with pytest.raises(WouldBlock):
        receive.receive_nowait()


async def test_closing_a_receive_end_fails_its_own_blocked_receivers_only() -> None:
    send, receive1 = open_memory_channel[str](0)
    receive2 = receive1.clone()
    outcomes: list[str] = []

    async def receiver(receive: MemoryReceiveChannel[str], name: str) -> None:
        try:
            outcomes.append(f"{name} got {await receive.receive()}")
        except ClosedResourceError:
            outcomes.append(f"{name}: closed")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receiver, receive1, "receive1")
        nursery.start_soon(receiver, receive2, "receive2")
        await wait_all_tasks_blocked()
        await receive1.aclose()
        await send.send("ok")
    assert sorted(outcomes) == ["receive1: closed", "receive2 got ok"]


async def test_closing_last_receive_end_breaks_blocked_and_later_senders() -> None:
    send, receive = open_memory_channel[int](1)
    send.send_nowait(1)
    errors: list[type[BaseException]] = []

    async def sender() -> None:
        try:
            await send.send(2)
        except BrokenResourceError:
            errors.append(BrokenResourceError)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await wait_all_tasks_blocked()
        receive.close()
    assert errors == [BrokenResourceError]
    stats = send.statistics()
    # The buffered value was dropped with the last receiver.
    assert (stats.current_buffer_used, stats.tasks_waiting_send) == (0, 0)
    with pytest.raises(BrokenResourceError):
        send.send_nowait(3)
    with pytest.raises(BrokenResourceError):
        await send.send(3)


async def test_receive_end_stays_open_while_a_clone_is_open() -> None:
    send, receive = open_memory_channel[None](10)
    clone1 = receive.clone()
    clone2 = receive.clone()
    await receive.aclose()
    with clone1:
        pass
    send.send_nowait(None)
    assert clone2.receive_nowait() is None
    clone2.close()
    with pytest.raises(BrokenResourceError):
        send.send_nowait(None)


async def test_send_end_stays_open_while_a_clone_is_open() -> None:
    send, receive = open_memory_channel[int](10)
    clone = send.clone()
    send.close()
    clone.send_nowait(1)
    assert receive.receive_nowait() == 1
    with pytest.raises(WouldBlock):
        receive.receive_nowait()
    clone.close()
    with pytest.raises(EndOfChannel):
        receive.receive_nowait()


async def test_aclose_closes_even_when_cancelled() -> None:
    send, receive = open_memory_channel[int](0)
    with shardio.CancelScope() as scope:
        scope.cancel()
        await send.aclose()
    assert scope.cancelled_caught
    assert send.statistics().open_send_channels == 0
    with pytest.raises(EndOfChannel):
        receive.receive_nowait()


async def test_aclose_is_a_schedule_point_and_close_is_not() -> None:
    send, receive = open_memory_channel[int](0)
    async with assert_schedule_point():
        await send.aclose()
    ran: list[None] = []

    async def bystander() -> None:
        ran.append(None)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(bystander)
        receive.close()
        assert ran == []


async def test_sync_and_async_with_close_the_end() -> None:
    send, receive = open_memory_channel[int](0)
    with send as entered:
        assert entered is send
    async with receive as entered_receive:
        assert entered_receive is receive
    stats = send.statistics()
    assert (stats.open_send_channels, stats.open_receive_channels) == (0, 0)


async def test_async_for_ends_quietly_at_end_of_channel() -> None:
    send, receive = open_memory_channel[int](5)
    for i in range(3):
        send.send_nowait(i)
    send.close()
    assert [value async for value in receive] == [0, 1, 2]


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


async def test_statistics_count_buffer_ends_and_waiters() -> None:
    send, receive = open_memory_channel[int](2)
    stats = send.statistics()
    assert stats == receive.statistics()
    assert stats.current_buffer_used == 0
    assert stats.max_buffer_size == 2
    assert stats.open_send_channels == 1
    assert stats.open_receive_channels == 1
    assert stats.tasks_waiting_send == 0
    assert stats.tasks_waiting_receive == 0
    assert stats.peak_buffer_used == 0

    send2 = send.clone()
    receive2 = receive.clone()
    stats = send.statistics()
    assert (stats.open_send_channels, stats.open_receive_channels) == (2, 2)
    receive2.close()
    assert send.statistics().open_receive_channels == 1

    send.send_nowait(1)
    send2.send_nowait(2)
    assert send.statistics().current_buffer_used == 2
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(send.send, 3)
        nursery.start_soon(send2.send, 4)
        await wait_all_tasks_blocked()
        assert send.statistics().tasks_waiting_send == 2
        nursery.cancel_scope.cancel()
    assert send.statistics().tasks_waiting_send == 0
    assert drain(receive) == [1, 2]
    stats = send.statistics()
    assert (stats.current_buffer_used, stats.peak_buffer_used) == (0, 2)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(receive.receive)
        await wait_all_tasks_blocked()
        assert send.statistics().tasks_waiting_receive == 1
        nursery.cancel_scope.cancel()
    assert send.statistics().tasks_waiting_receive == 0
