"""Cross-shard channels whose ends move while values flow.

Every send that returned must be received exactly once, and the values sent
through one end in the order they were sent, whatever the ends do meanwhile:
the send end handed back and forth by calls, the receive end passed down a
chain of calls or returned by one, a receive end that moves while a send on
its shard waits. Two checks of that: a fixed-seed walk of both ends over
three shards, and a hypothesis state machine that moves them at random
(both fail on the code before the fix: values lost or reordered, senders
stuck, receive ends refused and dropped).

The state machine runs 150 examples (about fifteen seconds);
SHARDIO_XCHANNEL_EXAMPLES=5000 makes it search harder.
"""

from __future__ import annotations

import functools
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

import shardio
import shardio.to_thread

SHARDS = 3
# A guard against a stalled channel, not a measurement: a healthy run takes
# a small fraction of it.
STALL = 30.0


# -- a fixed-seed walk ----------------------------------------------------------------


async def send_run(send: shardio.ShardSendChannel[int], start: int, count: int) -> Any:
    for value in range(start, start + count):
        await send.send(value)
    return send  # the send end goes back to the caller, as a result


async def receive_down_a_chain(
    receive: shardio.ShardReceiveChannel[int], route: list[tuple[int, int]]
) -> list[int]:
    """Receive a few values here, then pass the receive end, as an argument,
    to the next shard of ``route``; the last one receives until the end."""
    received: list[int] = []
    if not route:
        async for value in receive:
            received.append(value)
        return received
    (count, shard), rest = route[0], route[1:]
    for _ in range(count):
        try:
            received.append(await receive.receive())
        except shardio.EndOfChannel:
            return received
    return received + await shardio.run_on(shard, receive_down_a_chain, receive, rest)


@pytest.mark.shardio(shards=SHARDS, cpus=False)
@pytest.mark.parametrize("seed", [1, 4, 7])
async def test_values_sent_while_both_ends_hop_between_shards_arrive_once_in_order(
    seed: int,
) -> None:
    rng = random.Random(seed)
    hops = 300
    send, receive = shardio.open_channel(rng.choice([1, 2, 4, 16]))
    sends = [(rng.randrange(SHARDS), rng.randrange(1, 6)) for _ in range(hops)]
    route = [(rng.randrange(8), rng.randrange(SHARDS)) for _ in range(hops)]
    received: list[int] = []
    sent = 0
    with shardio.fail_after(STALL):
        async with shardio.open_nursery() as nursery:

            async def consumer() -> None:
                received.extend(await shardio.run_on(1, receive_down_a_chain, receive, route))

            nursery.start_soon(consumer)
            for shard, count in sends:
                send = await shardio.run_on(shard, send_run, send, sent, count)
                sent += count
            send.close()
    assert received == list(range(sent))


# -- a receive end that moves while its shard waits for earlier messages -------------


def hand_back(send: Any, receive: Any) -> tuple[Any, Any]:
    return send, receive


@pytest.mark.shardio(shards=2)
async def test_a_receive_end_handed_back_by_the_call_it_arrived_with_is_not_lost() -> None:
    send, receive = shardio.open_channel(10)
    await send.send("before")
    # On shard 1 the receive end arrives after the send end, whose request
    # for credit is still on its way to shard 0 and back: the receive end
    # moves back all the same.
    send, receive = await shardio.run_on(1, hand_back, send, receive)
    await send.send("after")
    send.close()
    with shardio.fail_after(STALL):
        assert [value async for value in receive] == ["before", "after"]


def close_and_hand_back(send: Any, receive: Any) -> Any:
    send.close()  # counted only once this shard's request for credit is back
    return receive


@pytest.mark.shardio(shards=2)
async def test_a_receive_end_moves_while_a_close_on_its_shard_is_held_back() -> None:
    send, receive = shardio.open_channel(10)
    await send.send("before")
    receive = await shardio.run_on(1, close_and_hand_back, send.clone(), receive)
    await send.send("after")
    send.close()
    # The close held back on shard 1 went after the channel, and counted:
    # the channel ends once, after both values.
    with shardio.fail_after(STALL):
        assert [value async for value in receive] == ["before", "after"]


# -- a state machine ------------------------------------------------------------------
#
# Hypothesis runs the machine in a worker thread. Its rules only queue
# operations, through a Bridge, for three drivers running in the shardio run
# (one per end), which carry them out as fast as they can: the ends move
# while values are in flight, and the receive end moves while sends are under
# way. The ends live on the shards in HELD, a module global, so each shard
# has its own. The receive end gets a new name at each move, so that the
# consumer of one stay of it never receives during the next.

HELD: dict[str, Any] = {}


def surrender(name: str) -> Any:
    return HELD.pop(name)


async def carry(name: str, end: Any, route: list[int]) -> None:
    """The end arrived here as an argument: keep it, or pass it on."""
    if route:
        await shardio.run_on(route[0], carry, name, end, route[1:])
    else:
        HELD[name] = end


async def pass_end(name: str, route: list[int], new_name: str) -> None:
    """On the shard that holds the end: pass it along ``route`` as an argument."""
    await shardio.run_on(route[0], carry, new_name, HELD.pop(name), route[1:])


async def fetch_end(name: str, holder: int, new_name: str) -> None:
    """On the destination: ask the holder for the end; it comes back as a result."""
    HELD[new_name] = await shardio.run_on(holder, surrender, name)


async def send_values(name: str, values: list[int]) -> None:
    end = HELD[name]
    for value in values:
        await end.send((name, value))


async def consume(name: str) -> list[Any]:
    """Receive until the receive end moves away (or the channel ends)."""
    receive = HELD.get(name)
    if receive is None:  # it left before this consumer started
        return []
    received = []
    while True:
        try:
            received.append(await receive.receive())
        except (shardio.ClosedResourceError, shardio.EndOfChannel):
            return received


def close_end(name: str) -> None:
    HELD.pop(name).close()


# An operation for a driver: ("send", values), ("move", to, as_result, via)
# or ("settled", event).
Operation = tuple[Any, ...]


async def move(name: str, new_name: str, holder: int, operation: Operation) -> int:
    """Carry out a move; the shard the end is on after it."""
    _, to, as_result, via = operation
    if as_result:
        await shardio.run_on(to, fetch_end, name, holder, new_name)
    else:
        route = [to] if via is None else [via, to]
        await shardio.run_on(holder, pass_end, name, route, new_name)
    return int(to)


def leaves(holder: int, operation: Operation) -> bool:
    """Does this move take the end off its shard? (One that does not is no move.)"""
    _, to, as_result, via = operation
    return bool(to != holder or (not as_result and via not in (None, holder)))


async def drive_send_end(name: str, operations: shardio.MemoryReceiveChannel[Operation]) -> None:
    holder = 0
    async for operation in operations:
        if operation[0] == "send":
            await shardio.run_on(holder, send_values, name, operation[1])
        elif operation[0] == "move":
            if leaves(holder, operation):
                holder = await move(name, name, holder, operation)
        else:
            operation[1].set()
    await shardio.run_on(holder, close_end, name)


async def drive_receive_end(operations: shardio.MemoryReceiveChannel[Operation]) -> list[Any]:
    """Move the receive end as told, with a consumer wherever it is; return
    what the consumers received, in order."""
    holder, name = 0, "receive 0"
    received: list[list[Any]] = []

    async def consumer(name: str, shard: int, into: list[Any]) -> None:
        into.extend(await shardio.run_on(shard, consume, name))

    async with shardio.open_nursery() as nursery:
        received.append([])
        nursery.start_soon(consumer, name, holder, received[-1])
        async for operation in operations:
            if operation[0] == "settled":
                operation[1].set()
            elif leaves(holder, operation):
                # The consumer is not stopped first: it finds the end moved.
                new_name = f"receive {len(received)}"
                holder = await move(name, new_name, holder, operation)
                name = new_name
                received.append([])
                nursery.start_soon(consumer, name, holder, received[-1])
    await shardio.run_on(holder, close_end, name)
    return [value for part in received for value in part]


class Job:
    """An async function running in the shardio run for the machine's thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: outcome.Outcome[Any] | None = None

    def wait(self) -> Any:
        if not self.done.wait(STALL):
            raise AssertionError("the channel stalled: an operation never finished")
        if isinstance(self.result, outcome.Error):
            raise self.result.error
        assert isinstance(self.result, outcome.Value)
        return self.result.value


class Bridge:
    def __init__(self, nursery: shardio.Nursery) -> None:
        self.nursery = nursery
        self.token = shardio.lowlevel.current_token()

    def start(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Job:
        job = Job()

        async def run() -> None:
            job.result = await outcome.acapture(fn, *args)
            job.done.set()

        self.token.run_sync_soon(self.nursery.start_soon, run)
        return job

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return self.start(fn, *args).wait()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.token.run_sync_soon(fn, *args)


SENDERS = ("a", "b")
ENDS = (*SENDERS, "receive")
shards = st.integers(0, SHARDS - 1)


class MovingEnds(RuleBasedStateMachine):
    """Two send ends and the receive end of one channel, opened on shard 0,
    each moved at random among the shards while values flow."""

    bridge: Bridge

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, list[int]] = {name: [] for name in SENDERS}
        self.next_value = 0
        self.queues: dict[str, shardio.MemorySendChannel[Operation]] = {}
        self.drivers: dict[str, Job] = {}

    @initialize(size=st.sampled_from([0, 1, 2, 16, math.inf]))
    def open_channel(self, size: float) -> None:
        async def open_here() -> dict[str, Any]:
            send, receive = shardio.open_channel(size)
            HELD.update({"a": send, "b": send.clone(), "receive 0": receive})
            return {name: shardio.open_memory_channel(math.inf) for name in ENDS}

        queues = self.bridge.run(open_here)
        for name in SENDERS:
            self.drivers[name] = self.bridge.start(drive_send_end, name, queues[name][1])
        self.drivers["receive"] = self.bridge.start(drive_receive_end, queues["receive"][1])
        self.queues = {name: queues[name][0] for name in ENDS}

    def queue(self, name: str, *operation: Any) -> None:
        self.bridge.call_soon(self.queues[name].send_nowait, operation)

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(1, 30))
    def send_some(self, sender: str, count: int) -> None:
        values = list(range(self.next_value, self.next_value + count))
        self.next_value += count
        self.sent[sender] += values
        self.queue(sender, "send", values)

    @rule(sender=st.sampled_from(SENDERS), to=shards, as_result=st.booleans())
    def move_send_end(self, sender: str, to: int, as_result: bool) -> None:
        self.queue(sender, "move", to, as_result, None)

    @rule(to=shards, as_result=st.booleans(), via=st.none() | shards)
    def move_receive_end(self, to: int, as_result: bool, via: int | None) -> None:
        self.queue("receive", "move", to, as_result, via)

    @rule()
    def let_everything_settle(self) -> None:
        events = [threading.Event() for _ in ENDS]
        for name, event in zip(ENDS, events, strict=True):
            self.queue(name, "settled", event)
        for event in events:
            self.wait_for(event)

    def wait_for(self, event: threading.Event) -> None:
        """Wait for ``event``; a driver that failed meanwhile raises its error."""
        deadline = time.monotonic() + STALL
        while not event.wait(0.01):
            for job in self.drivers.values():
                if job.done.is_set():
                    job.wait()  # raises its error: a driver ends only at teardown
            if time.monotonic() > deadline:
                raise AssertionError("the channel stalled: an operation never finished")

    def teardown(self) -> None:
        for name in ENDS:
            self.bridge.call_soon(self.queues[name].close)
        for name in ENDS:
            self.wait_for(self.drivers[name].done)
        for name in SENDERS:
            self.drivers[name].wait()
        received = self.drivers["receive"].wait()
        for sender in SENDERS:
            assert [value for name, value in received if name == sender] == self.sent[sender]
        assert len(received) == sum(len(values) for values in self.sent.values())


@pytest.mark.shardio(shards=SHARDS, cpus=False)
async def test_random_moves_of_both_ends_lose_duplicate_and_reorder_nothing() -> None:
    async with shardio.open_nursery() as nursery:
        MovingEnds.bridge = Bridge(nursery)
        try:
            await shardio.to_thread.run_sync(
                functools.partial(
                    run_state_machine_as_test,
                    MovingEnds,
                    settings=settings(
                        max_examples=int(os.environ.get("SHARDIO_XCHANNEL_EXAMPLES", "150")),
                        stateful_step_count=40,
                        deadline=None,
                        suppress_health_check=[HealthCheck.too_slow],
                    ),
                )
            )
        finally:
            # What a failed example left running must not keep the run alive.
            nursery.cancel_scope.cancel()
