"""Cross-shard channels against Trio's memory channels.

On one shard: every memory-channel scenario of ``test_channels.py``, with
``open_channel`` in place of ``open_memory_channel``, must give Trio's trace.

On two shards: the scenarios below put the ends on shards 0 and 1 -- senders
on shard 1 and the receiver on shard 0, ends that move while values are on
their way, ``max_buffer_size=0``, closing either side -- and must let a user
observe what Trio's memory channel shows with every task in one process: the
values and their order, what ``send`` and ``receive`` return or raise
(``EndOfChannel``, ``BrokenResourceError``, ``ClosedResourceError``). They are
written once against ``test_across_shards.Here``, whose rules hold here too:
the trace lives on shard 0, code on shard 1 reaches it with ``here.report``,
and events are ordered by causality, never by timing. Where shardio moves an
end to shard 1 (passing it to a child, returning it from ``run_on``, sending
it through a channel), Trio's task gets the very same object; a scenario never
uses an end after passing it on, since that is where the two differ (the
passed shardio object is closed).

Only what the contract promises across shards is traced: the values one end
sends, in order, but not the order between two ends; ``send_nowait`` only
where its answer cannot depend on credit (on another shard a ``send_nowait``
with room in the buffer may still raise ``WouldBlock``, while the credit is on
its way); no statistics (on another shard they are that shard's own).
"""

from __future__ import annotations

import inspect
import math
import traceback
import types
from collections.abc import Callable
from typing import Any

import pytest

import shardio

from . import test_across_shards as across
from . import test_channels
from ._harness import _diff, run_scenario, shape, trio_traces
from .test_across_shards import STEP, Here, Scenario, Trace

# -- on one shard ----------------------------------------------------------------------------

# shardio, except that open_memory_channel makes cross-shard channels.
WITH_SHARD_CHANNELS = types.SimpleNamespace(
    **{name: getattr(shardio, name) for name in dir(shardio) if not name.startswith("__")}
)
WITH_SHARD_CHANNELS.open_memory_channel = shardio.open_channel

SCENARIOS = test_channels.SCENARIOS._all


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_shard_channel_on_one_shard_matches_trio_memory_channel(scenario: object) -> None:
    reference = trio_traces(scenario)[0]  # type: ignore[arg-type]
    observed = run_scenario(WITH_SHARD_CHANNELS, scenario)  # type: ignore[arg-type]
    if observed.events != reference:
        pytest.fail(
            "open_channel's trace differs from Trio's memory channel\n"
            + _diff("trio", reference, "shardio.open_channel", observed.events),
            pytrace=False,
        )


# -- on two shards: helpers (module level: they travel to shard 1 by reference) -------------


def open_channel(here: Here, max_buffer_size: float) -> tuple[Any, Any]:
    """``shardio.open_channel`` under shardio; Trio's memory channel under Trio."""
    if here.sharded:
        return shardio.open_channel(max_buffer_size)
    return here.lib.open_memory_channel(max_buffer_size)


async def observe(here: Here, label: str, operation: Callable[..., Any], *args: Any) -> None:
    """Call ``operation(*args)`` (awaiting what it returns, if awaitable) and
    report what it returned or raised."""
    try:
        result = operation(*args)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        await here.report(label, "raised", shape(exc))
    else:
        await here.report(label, "returned", result)


async def send_all_then_close(here: Here, send: Any, values: list[Any], label: str) -> None:
    """Send each value, report what the sends returned, then close the end."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    async with send:
        returned = [await send.send(value) for value in values]
        await here.report(label, "sends returned", returned)


async def receive_all(here: Here, receive: Any, label: str) -> None:
    """Receive until the channel ends, report the values, close the end."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    with receive:
        values = [value async for value in receive]
        await here.report(label, values)


async def send_range_and_return(here: Here, send: Any, start: int, stop: int) -> Any:
    """Send ``range(start, stop)``, then hand the end back (as a result)."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    for value in range(start, stop):
        await send.send(value)
    return send


async def send_range_then_close(here: Here, send: Any, start: int, stop: int, label: str) -> None:
    """Send ``range(start, stop)``, report it was all sent, close the end."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    async with send:
        for value in range(start, stop):
            await send.send(value)
        await here.report(label, "sent all")


async def send_tagged(here: Here, send: Any, tag: str, count: int) -> None:
    """Send ``(tag, 0)``, ``(tag, 1)``, ... then close the end."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    async with send:
        for index in range(count):
            await send.send((tag, index))


async def rendezvous_sender(here: Here, send: Any) -> None:
    """Send "a" and "b", reporting each time a send returned, then close."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    async with send:
        for value in ("a", "b"):
            await send.send(value)
            await here.report(value, "send returned")


async def cancelled_send_then_send(here: Here, send: Any, control: Any) -> None:
    """A send cancelled while it waits for a receiver; a word on ``control``;
    another send, which goes through; then close both ends."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    with here.lib.move_on_after(STEP) as scope:
        await send.send("withdrawn")
    await here.report("waiting send cancelled", scope.cancelled_caught)
    async with control:
        await control.send("the send was cancelled")
    async with send:
        await observe(here, "send after it", send.send, "sent")


async def sender_broken_by_the_receiver(here: Here, send: Any, control: Any) -> None:
    """Fill the one slot, say so on ``control``, then send on: the receive end
    gets closed meanwhile."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    await observe(here, "send first", send.send, "first")
    async with control:
        await control.send("the buffer is full")
    await observe(here, "send second", send.send, "second")
    await observe(here, "send third", send.send, "third")
    await observe(here, "send_nowait fourth", send.send_nowait, "fourth")
    await observe(here, "close", send.close)


async def clone_send_and_close(here: Here, send: Any) -> None:
    """Clone the end, send on it, close it (``with``); what the closed end
    does; then send on the clone and close that (``async with``, then
    ``aclose`` again)."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    clone = send.clone()
    with send:
        await observe(here, "send a", send.send, "a")
    await observe(here, "send on the closed end", send.send, "x")
    await observe(here, "send_nowait on the closed end", send.send_nowait, "x")
    await observe(here, "clone the closed end", send.clone)
    await observe(here, "close it again", send.close)
    async with clone:
        await observe(here, "send b on the clone", clone.send, "b")
    await observe(here, "aclose the clone again", clone.aclose)


async def close_under_a_blocked_send(here: Here, send: Any) -> None:
    """A task blocks sending on the end (no receiver, no buffer); a step
    later the end is closed under it."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    async with here.lib.open_nursery() as nursery:
        nursery.start_soon(observe, here, "blocked send", send.send, "withheld")
        await here.lib.sleep(STEP)
        await here.report("closing the end")
        send.close()


async def take_an_end_and_send(here: Here, carrier: Any, start: int, stop: int) -> None:
    """Receive a send end through ``carrier``, send ``range(start, stop)`` on
    it, close it."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    with carrier:
        send = await carrier.receive()
    async with send:
        for value in range(start, stop):
            await send.send(value)


async def receive_some_then_close(here: Here, receive: Any, count: int) -> None:
    """Receive ``count`` values, report them, close the receive end."""
    assert here.placed(), "ran on another shard than the one it was sent to"
    values = [await receive.receive() for _ in range(count)]
    await here.report("received", values)
    await receive.aclose()


# -- on two shards: scenarios -------------------------------------------------------------

ACROSS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    if not fn.__doc__:
        raise ValueError(f"scenario {fn.__name__!r} needs a docstring saying what it checks")
    if fn.__name__ in ACROSS:
        raise ValueError(f"two scenarios are named {fn.__name__!r}")
    ACROSS[fn.__name__] = fn
    return fn


@scenario
async def values_sent_on_shard_1_arrive_in_order_on_shard_0(here: Here, t: Trace) -> None:
    """A sender on shard 1, the receiver on shard 0, for buffers of 0, 1, 3
    and unbounded: every value arrives once and in order, each send returns
    None, and once the sender closed, receive and receive_nowait raise
    EndOfChannel."""
    for size in (0, 1, 3, math.inf):
        send, receive = open_channel(here, size)
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, send_all_then_close, send, list(range(20)), f"size {size}", shard=1)
            t("received", size, [value async for value in receive])
            with t.catch("receive after the end"):
                await receive.receive()
            with t.catch("receive_nowait after the end"):
                receive.receive_nowait()
        receive.close()


@scenario
async def without_a_buffer_a_send_on_shard_1_returns_once_shard_0_received(
    here: Here, t: Trace
) -> None:
    """max_buffer_size=0 across shards is a rendezvous: a send on shard 1
    returns only once shard 0 received its value (the receiver starts a step
    later), and so does the next one; then the receiver sees the end."""
    send, receive = open_channel(here, 0)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, rendezvous_sender, send, shard=1)
        await here.lib.sleep(STEP)
        t("receiving")
        received = [await receive.receive(), await receive.receive()]
        with t.catch("receive after the sender closed"):
            await receive.receive()
    t("received", received)
    receive.close()


@scenario
async def a_send_cancelled_while_waiting_on_shard_1_sent_nothing(here: Here, t: Trace) -> None:
    """A send on shard 1 waiting for a receiver on shard 0 (no buffer) is
    cancelled: it raised Cancelled, and the receiver, which starts after,
    never sees its value -- only the next one's."""
    send, receive = open_channel(here, 0)
    control_send, control_receive = open_channel(here, math.inf)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, cancelled_send_then_send, send, control_send, shard=1)
        t("control", await control_receive.receive())
        t("received", [value async for value in receive])
    control_receive.close()


@scenario
async def closing_the_receive_end_on_shard_0_breaks_the_sender_on_shard_1(
    here: Here, t: Trace
) -> None:
    """With the one slot full, shard 0 closes the receive end: the send
    waiting on shard 1 raises BrokenResourceError, and so does every later
    send, send_nowait included; closing the send end then still works."""
    send, receive = open_channel(here, 1)
    control_send, control_receive = open_channel(here, math.inf)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, sender_broken_by_the_receiver, send, control_send, shard=1)
        t("control", await control_receive.receive())
        t("closing the receive end")
        await receive.aclose()
    control_receive.close()


@scenario
async def closing_send_ends_on_shard_1_ends_the_channel_after_their_values(
    here: Here, t: Trace
) -> None:
    """A send end and its clone on shard 1, each closed after sending (with
    ``with`` and ``async with``): the receiver on shard 0 gets both values,
    then EndOfChannel only after the last one closed. The closed end raises
    ClosedResourceError for send, send_nowait and clone; closing again
    does nothing."""
    send, receive = open_channel(here, 0)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, clone_send_and_close, send, shard=1)
        received = [value async for value in receive]
    t("received", received)
    with t.catch("receive_nowait after the end"):
        receive.receive_nowait()
    receive.close()


@scenario
async def closing_a_send_end_on_shard_1_under_a_blocked_send_withdraws_it(
    here: Here, t: Trace
) -> None:
    """A task on shard 1 waits to send on a channel without buffer; its end
    is closed under it: the send raises ClosedResourceError, and its value
    never reaches the receiver on shard 0, which sees the channel end."""
    send, receive = open_channel(here, 0)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, close_under_a_blocked_send, send, shard=1)
    with t.catch("receive_nowait"):
        receive.receive_nowait()
    receive.close()


@scenario
async def senders_on_both_shards_each_keep_their_order(here: Here, t: Trace) -> None:
    """Two clones sending from shard 1 and the original from shard 0, into a
    buffer of 2 received on shard 0: every value arrives once, and each
    sender's values in the order it sent them."""
    send, receive = open_channel(here, 2)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, send_tagged, send.clone(), "shard 1, first", 30, shard=1)
        here.soon(nursery, send_tagged, send.clone(), "shard 1, second", 30, shard=1)
        here.soon(nursery, send_tagged, send, "shard 0", 30, shard=0)
        received = [value async for value in receive]
    by_sender: dict[str, list[int]] = {}
    for tag, index in received:
        by_sender.setdefault(tag, []).append(index)
    t("per sender", sorted(by_sender.items()), "count", len(received))
    receive.close()


@scenario
async def a_send_end_moving_mid_stream_keeps_its_order(here: Here, t: Trace) -> None:
    """Three values buffered on shard 0, then the receive end moves to shard
    1 with them; the send end goes on sending from shard 0 (while the channel
    is still on its way), moves to shard 1 (as a call's argument) and back (as
    its result), sending on each: the receiver gets every value once, in the
    order sent. With a buffer of 4, and unbounded."""
    for size in (4, math.inf):
        send, receive = open_channel(here, size)
        for value in range(3):
            await send.send(value)
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, receive_all, receive, f"size {size}: shard 1 received", shard=1)
            for value in range(3, 10):
                await send.send(value)
            send = await here.run_on(1, send_range_and_return, send, 10, 20)
            for value in range(20, 30):
                await send.send(value)
            await send.aclose()


@scenario
async def a_send_end_sent_through_a_channel_mid_stream_keeps_its_order(
    here: Here, t: Trace
) -> None:
    """A send end sends from shard 0, then travels inside a value through a
    second channel to shard 1 and sends from there: the receiver on shard 0
    gets every value once, in the order sent, then EndOfChannel."""
    send, receive = open_channel(here, 3)
    carrier_send, carrier_receive = open_channel(here, 1)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, take_an_end_and_send, carrier_receive, 5, 12, shard=1)

        async def first_values_then_pass_the_end() -> None:
            for value in range(5):
                await send.send(value)
            async with carrier_send:
                await carrier_send.send(send)

        nursery.start_soon(first_values_then_pass_the_end)
        t("received", [value async for value in receive])
    receive.close()


@scenario
async def a_receive_end_moving_mid_stream_takes_the_buffer_and_waiting_senders(
    here: Here, t: Trace
) -> None:
    """A sender on shard 1 fills a buffer of 1 while shard 0 receives four
    values; then the receive end moves to shard 1, taking the buffered value
    and the waiting send along: the rest arrives there, in order, and the
    sender finishes."""
    send, receive = open_channel(here, 1)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, send_range_then_close, send, 0, 10, "sender", shard=1)
        t("shard 0 received", [await receive.receive() for _ in range(4)])
        here.soon(nursery, receive_all, receive, "shard 1 received", shard=1)


@scenario
async def closing_a_receive_end_that_moved_breaks_the_sender_it_left(here: Here, t: Trace) -> None:
    """The receive end moves to shard 1, takes two values in rendezvous
    (no buffer) with the sender on shard 0, and closes: the sender's next
    sends raise BrokenResourceError."""
    send, receive = open_channel(here, 0)
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, receive_some_then_close, receive, 2, shard=1)
        returned = [await send.send(value) for value in range(2)]
        with t.catch("send 2"):
            await send.send(2)
        with t.catch("send 3"):
            await send.send(3)
    t("sends 0 and 1 returned", returned)
    send.close()


@pytest.mark.parametrize("scenario", list(ACROSS.values()), ids=list(ACROSS))
def test_shard_channel_across_shards_matches_trio_memory_channel(scenario: Scenario) -> None:
    traces = across.trio_traces(scenario)
    reference_label, reference = traces[0]
    for label, other in traces[1:]:
        if other != reference:
            pytest.fail(
                "the trace under Trio depends on the batch order or on real time: the "
                "scenario pins an accident, not a guarantee\n"
                + _diff(f"trio ({reference_label})", reference, f"trio ({label})", other),
                pytrace=False,
            )
    observed = across.run_scenario(shardio, scenario)
    if observed.events != reference:
        message = "open_channel's trace (ends on two shards) differs from Trio's memory channel\n"
        message += _diff("trio", reference, "shardio", observed.events)
        if observed.error is not None:
            message += "\n\nwhat escaped shardio.run():\n"
            message += "".join(traceback.format_exception(observed.error))
        pytest.fail(message, pytrace=False)
