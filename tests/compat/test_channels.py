"""Memory channels: buffering, rendezvous, close and clone semantics, the
errors of each state, cancellation, and statistics."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from ._harness import Scenarios, Trace

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


def _stats(channel: Any) -> tuple[Any, ...]:
    s = channel.statistics()
    return (
        ("current_buffer_used", s.current_buffer_used),
        ("max_buffer_size", s.max_buffer_size),
        ("open_send_channels", s.open_send_channels),
        ("open_receive_channels", s.open_receive_channels),
        ("tasks_waiting_send", s.tasks_waiting_send),
        ("tasks_waiting_receive", s.tasks_waiting_receive),
        ("peak_buffer_used", s.peak_buffer_used),
    )


@scenario
async def end_of_channel_only_after_every_send_clone_is_closed(lib: ModuleType, t: Trace) -> None:
    """The receiver gets EndOfChannel once all send ends (clones included) are
    closed and the buffer is drained, not before."""
    send, receive = lib.open_memory_channel(5)
    clone = send.clone()
    send.send_nowait(1)
    send.close()
    t("after closing the original", _stats(receive))
    t("receive", await receive.receive())
    with t.catch("receive_nowait with a clone still open"):
        receive.receive_nowait()
    clone.send_nowait(2)
    clone.send_nowait(3)
    await clone.aclose()
    t("receive", await receive.receive(), receive.receive_nowait())
    with t.catch("receive after all closed"):
        await receive.receive()
    with t.catch("receive_nowait after all closed"):
        receive.receive_nowait()
    t("stats", _stats(receive))


@scenario
async def closing_the_last_send_end_wakes_receivers(lib: ModuleType, t: Trace) -> None:
    """Receivers blocked on an empty channel wake with EndOfChannel when the
    last send end is closed."""
    send, receive = lib.open_memory_channel(0)
    other = receive.clone()

    async def receiver(name: str, end: Any) -> None:
        try:
            await end.receive()
        except lib.EndOfChannel:
            t.unordered(name, "EndOfChannel", t.now())

    async with lib.open_nursery() as nursery:
        nursery.start_soon(receiver, "first", receive)
        nursery.start_soon(receiver, "second", other)
        await lib.sleep(2)
        t("waiting", _stats(send))
        send.close()
    t.flush("receivers")


@scenario
async def closing_every_receive_end_breaks_senders(lib: ModuleType, t: Trace) -> None:
    """Once all receive ends are closed, blocked senders get
    BrokenResourceError, the buffer is discarded, and later sends fail too."""
    send, receive = lib.open_memory_channel(1)
    clone = receive.clone()
    send.send_nowait("buffered")

    async def sender() -> None:
        with t.catch("blocked send"):
            await send.send("blocked")
        t.at("sender done")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sender)
        await lib.sleep(1)
        receive.close()
        await lib.sleep(1)
        t.at("one receive end closed", _stats(send))
        clone.close()
    t("after", _stats(send))
    with t.catch("send_nowait"):
        send.send_nowait("late")
    with t.catch("send"):
        await send.send("late")


@scenario
async def using_a_closed_end_raises_closed_resource_error(lib: ModuleType, t: Trace) -> None:
    """Every operation on an end that was closed raises ClosedResourceError;
    closing it again does nothing."""
    send, receive = lib.open_memory_channel(1)
    keep_send = send.clone()
    keep_receive = receive.clone()
    send.close()
    receive.close()
    with t.catch("send"):
        await send.send("x")
    with t.catch("receive"):
        await receive.receive()
    with t.catch("send_nowait"):
        send.send_nowait("x")
    with t.catch("receive_nowait"):
        receive.receive_nowait()
    with t.catch("clone send"):
        send.clone()
    with t.catch("clone receive"):
        receive.clone()
    with t.catch("close again"):
        send.close()
        receive.close()
    with t.catch("aclose again"):
        await send.aclose()
        await receive.aclose()
    t("stats", _stats(keep_send))
    keep_send.close()
    keep_receive.close()


@scenario
async def closing_an_end_fails_its_own_blocked_tasks(lib: ModuleType, t: Trace) -> None:
    """A task blocked on a channel end that another task closes gets
    ClosedResourceError (not EndOfChannel or BrokenResourceError)."""
    send, receive = lib.open_memory_channel(0)
    send_clone = send.clone()
    receive_clone = receive.clone()

    async def blocked(label: str, action: Any) -> None:
        with t.catch(label):
            await action()
        t.at(label, "done")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(blocked, "receive", receive.receive)
        await lib.sleep(1)
        receive.close()
        await lib.sleep(1)
        nursery.start_soon(blocked, "send", lambda: send.send("x"))
        await lib.sleep(1)
        send.close()
    t("stats", _stats(send_clone))
    send_clone.close()
    receive_clone.close()


@scenario
async def nowait_operations_raise_would_block(lib: ModuleType, t: Trace) -> None:
    """receive_nowait on an empty channel and send_nowait on a full one raise
    WouldBlock and change nothing."""
    send, receive = lib.open_memory_channel(2)
    with t.catch("receive_nowait on empty"):
        receive.receive_nowait()
    send.send_nowait("a")
    send.send_nowait("b")
    with t.catch("send_nowait on full"):
        send.send_nowait("c")
    t("stats", _stats(send))
    t("drained", receive.receive_nowait(), receive.receive_nowait())


@scenario
async def zero_buffer_channel_is_a_rendezvous(lib: ModuleType, t: Trace) -> None:
    """With max_buffer_size 0 a send blocks until a receiver takes the value;
    send_nowait succeeds only when a receiver is already waiting."""
    send, receive = lib.open_memory_channel(0)
    with t.catch("send_nowait with no receiver"):
        send.send_nowait("nobody")

    async def sender() -> None:
        await send.send("hello")
        t.unordered("send returned", t.now())

    async def receiver() -> None:
        value = await receive.receive()
        t.unordered("received", value, t.now())

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sender)
        await lib.sleep(3)
        t.at("sender waiting", _stats(send))
        nursery.start_soon(receiver)
    t.flush("rendezvous")
    async with lib.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await lib.testing.wait_all_tasks_blocked()
        with t.catch("send_nowait to a waiting receiver"):
            send.send_nowait("direct")
    t.flush("direct")


@scenario
async def blocked_receivers_are_served_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """Values sent to a channel with several blocked receivers go to the
    receivers in the order they started waiting."""
    send, receive = lib.open_memory_channel(0)

    async def receiver(name: str, delay: float) -> None:
        await lib.sleep(delay)
        t.unordered(name, await receive.receive())

    async with lib.open_nursery() as nursery:
        nursery.start_soon(receiver, "second", 2)
        nursery.start_soon(receiver, "third", 3)
        nursery.start_soon(receiver, "first", 1)
        await lib.sleep(5)
        for value in ("a", "b", "c"):
            send.send_nowait(value)
    t.flush("received")


@scenario
async def blocked_senders_are_served_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """Senders blocked on a full channel deliver in the order they blocked,
    after the buffered value."""
    send, receive = lib.open_memory_channel(1)
    send.send_nowait("buffered")

    async def sender(value: str, delay: float) -> None:
        await lib.sleep(delay)
        await send.send(value)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sender, "third", 3)
        nursery.start_soon(sender, "first", 1)
        nursery.start_soon(sender, "second", 2)
        await lib.sleep(5)
        t("blocked", _stats(send))
        t("received", [await receive.receive() for _ in range(4)])


@scenario
async def async_for_drains_then_stops_at_end_of_channel(lib: ModuleType, t: Trace) -> None:
    """``async for`` over a receive end yields every value, including those
    buffered before the close, then ends without an error."""
    send, receive = lib.open_memory_channel(math.inf)

    async def producer() -> None:
        async with send:
            for i in range(3):
                await send.send(i)
                await lib.sleep(1)
            send.send_nowait("last")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(producer)
        async for value in receive:
            t.at("got", value)
    t.at("loop ended", _stats(receive))


@scenario
async def cancelled_send_does_not_send(lib: ModuleType, t: Trace) -> None:
    """A send blocked on a full channel and cancelled delivers nothing."""
    send, receive = lib.open_memory_channel(0)
    with lib.move_on_after(1) as scope:
        await send.send("never")
    t.at("cancelled", scope.cancelled_caught, _stats(send))
    with t.catch("receive_nowait"):
        receive.receive_nowait()


@scenario
async def cancelled_receive_takes_nothing(lib: ModuleType, t: Trace) -> None:
    """A receive cancelled while blocked leaves the next value for the next
    receiver."""
    send, receive = lib.open_memory_channel(1)
    with lib.move_on_after(1) as scope:
        await receive.receive()
    t.at("cancelled", scope.cancelled_caught, _stats(send))
    send.send_nowait("kept")
    t("next receive", receive.receive_nowait())


@scenario
async def send_and_receive_are_cancel_points_even_when_ready(lib: ModuleType, t: Trace) -> None:
    """In a cancelled scope, send into free buffer space and receive of a
    buffered value raise Cancelled without sending or receiving."""
    send, receive = lib.open_memory_channel(1)
    with lib.CancelScope() as scope:
        scope.cancel()
        await send.send("not sent")
    t("send cancelled", scope.cancelled_caught, _stats(send))
    send.send_nowait("buffered")
    with lib.CancelScope() as scope:
        scope.cancel()
        await receive.receive()
    t("receive cancelled", scope.cancelled_caught, _stats(send))


@scenario
async def aclose_closes_even_when_cancelled(lib: ModuleType, t: Trace) -> None:
    """aclose() in a cancelled scope closes the end and then raises Cancelled
    (it is a checkpoint); close() is not one."""
    send, receive = lib.open_memory_channel(1)
    with lib.CancelScope() as scope:
        scope.cancel()
        receive.clone().close()
        t("close() did not raise")
        await send.aclose()
        t("unreachable: after aclose")
    t("after", scope.cancelled_caught, _stats(receive))


@scenario
async def with_block_closes_a_channel_end(lib: ModuleType, t: Trace) -> None:
    """Leaving ``with end:`` closes that end; other clones stay open."""
    send, receive = lib.open_memory_channel(1)
    clone = send.clone()
    with send:
        send.send_nowait("inside")
    t("after with", _stats(receive))
    with receive.clone() as receive_clone:
        t("clone got", receive_clone.receive_nowait())
    t("after receive with", _stats(receive))
    clone.close()


@scenario
async def invalid_buffer_sizes_are_rejected(lib: ModuleType, t: Trace) -> None:
    """max_buffer_size must be an int >= 0 or math.inf: negative gives
    ValueError, a non-integral float gives TypeError."""
    with t.catch("open_memory_channel(-1)"):
        lib.open_memory_channel(-1)
    with t.catch("open_memory_channel(1.5)"):
        lib.open_memory_channel(1.5)
    send, _receive = lib.open_memory_channel(math.inf)
    for i in range(100):
        send.send_nowait(i)
    t("inf buffer", _stats(send))


@scenario
async def receive_from_a_full_channel_admits_the_first_blocked_sender(
    lib: ModuleType, t: Trace
) -> None:
    """Receiving from a full buffer moves the longest-blocked sender's value
    into the buffer at once and wakes that sender."""
    send, receive = lib.open_memory_channel(1)
    send.send_nowait("buffered")

    async def sender(value: str, arrive: float) -> None:
        await lib.sleep(arrive)
        await send.send(value)
        t.unordered(value, "sent", t.now())

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sender, "second", 2)
        nursery.start_soon(sender, "first", 1)
        await lib.sleep(3)
        t("receive_nowait", receive.receive_nowait(), _stats(send))
        await lib.sleep(1)
        t("receive", await receive.receive(), _stats(send))
        await lib.sleep(1)
    t("left", receive.receive_nowait(), _stats(send))
    t.flush("senders")


@scenario
async def value_handed_to_a_receiver_survives_its_cancellation(lib: ModuleType, t: Trace) -> None:
    """A blocked receiver handed a value and cancelled before it runs again
    still gets the value: nothing is lost; the Cancelled comes at its next
    checkpoint."""
    send, receive = lib.open_memory_channel(0)
    scope = lib.CancelScope()

    async def receiver() -> None:
        with scope:
            t.at("received", await receive.receive())
            await lib.lowlevel.checkpoint()
            t("unreachable: after the checkpoint")
        t.at("receiver done", scope.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await lib.sleep(1)
        send.send_nowait("precious")
        scope.cancel()
    t("stats", _stats(send))


@scenario
async def async_for_over_a_closed_receive_end_raises(lib: ModuleType, t: Trace) -> None:
    """Iterating over a receive end that was closed raises ClosedResourceError
    (it is not a clean end of iteration)."""
    send, receive = lib.open_memory_channel(1)
    send.send_nowait("never seen")
    receive.close()
    with t.catch("async for"):
        async for value in receive:
            t("unreachable: got", value)


@scenario
async def cancelled_send_does_not_reach_a_waiting_receiver(lib: ModuleType, t: Trace) -> None:
    """A send in a cancelled scope raises Cancelled even though a receiver is
    waiting, and that receiver gets nothing."""
    send, receive = lib.open_memory_channel(0)

    async def receiver() -> None:
        with lib.move_on_after(5):
            t.at("received", await receive.receive())
        t.at("receiver gave up")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await lib.testing.wait_all_tasks_blocked()
        with lib.CancelScope() as scope:
            scope.cancel()
            await send.send("not delivered")
        t("send cancelled", scope.cancelled_caught, _stats(send))


@scenario
async def receive_nowait_takes_from_a_blocked_sender(lib: ModuleType, t: Trace) -> None:
    """On an unbuffered channel, receive_nowait takes the value of the
    longest-blocked sender and wakes it."""
    send, receive = lib.open_memory_channel(0)

    async def sender(value: str, arrive: float) -> None:
        await lib.sleep(arrive)
        await send.send(value)
        t.at(value, "delivered")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sender, "later", 2)
        nursery.start_soon(sender, "earlier", 1)
        await lib.sleep(3)
        t("receive_nowait", receive.receive_nowait(), _stats(send))
        await lib.sleep(1)
        t("receive_nowait", receive.receive_nowait(), _stats(send))


test_trio_and_shardio_traces_match = SCENARIOS.test()
