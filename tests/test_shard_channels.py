"""Cross-shard channels: ends on different shards, ends that move, credits,
order, exactly-once delivery, and the close/broken rules across shards.

(The same channels used within one shard are checked against Trio's memory
channels in tests/compat/test_shard_channels.py.)"""

from __future__ import annotations

import math
import random
import socket
import sys
from typing import Any

import pytest

import shardio

pytestmark = pytest.mark.shardio(shards=2)


async def collect(receive: shardio.ShardReceiveChannel[Any]) -> list[Any]:
    return [value async for value in receive]


async def produce(send: shardio.ShardSendChannel[Any], values: list[Any]) -> int:
    async with send:
        for value in values:
            await send.send(value)
    return shardio.current_shard()


@pytest.mark.parametrize("size", [0, 1, 16, math.inf])
async def test_receive_end_on_another_shard_gets_everything_in_order(size: float) -> None:
    send, receive = shardio.open_channel(size)
    async with shardio.open_nursery() as nursery:
        result: list[Any] = []

        async def consumer() -> None:
            result.extend(await shardio.run_on(1, collect, receive))

        nursery.start_soon(consumer)
        await produce(send, list(range(500)))
    assert result == list(range(500))


async def test_send_end_on_another_shard() -> None:
    send, receive = shardio.open_channel(4)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(produce, send, [("item", i) for i in range(300)], shard=1)
        assert await collect(receive) == [("item", i) for i in range(300)]


async def test_passing_an_end_moves_it() -> None:
    send, receive = shardio.open_channel(10)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(collect, receive, shard=1)
        await shardio.sleep(0)
        with pytest.raises(shardio.ClosedResourceError, match="moved"):
            await receive.receive()
        await send.aclose()
    with pytest.raises(shardio.ClosedResourceError):
        receive.receive_nowait()


async def test_end_of_channel_waits_for_every_clone_on_every_shard() -> None:
    send, receive = shardio.open_channel(10)
    clone = send.clone()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(produce, clone, ["remote"], shard=1)
        await send.send("local")
        send.close()
        assert sorted(await collect(receive)) == ["local", "remote"]


async def make_clones_and_send(send: shardio.ShardSendChannel[str]) -> None:
    clones = [send.clone() for _ in range(3)]
    send.close()
    for i, clone in enumerate(clones):
        await clone.send(f"clone {i}")
        await shardio.sleep(0.01)
        clone.close()


async def test_clones_made_on_another_shard_are_counted_before_their_close() -> None:
    send, receive = shardio.open_channel(10)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(make_clones_and_send, send, shard=1)
        assert await collect(receive) == ["clone 0", "clone 1", "clone 2"]


async def send_some_then_return(send: shardio.ShardSendChannel[int], start: int) -> Any:
    for i in range(start, start + 100):
        await send.send(i)
    return send


async def test_a_send_end_keeps_its_order_while_it_moves_between_shards() -> None:
    send, receive = shardio.open_channel(7)
    async with shardio.open_nursery() as nursery:
        received: list[int] = []

        async def consumer() -> None:
            received.extend(await shardio.run_on(1, collect, receive))

        nursery.start_soon(consumer)
        for i in range(100):
            await send.send(i)
        # to shard 1 (the channel's home) and back, sending on the way
        send = await shardio.run_on(1, send_some_then_return, send, 100)
        for i in range(200, 300):
            await send.send(i)
        send.close()
    assert received == list(range(300))


async def test_the_buffer_never_exceeds_max_buffer_size() -> None:
    send, receive = shardio.open_channel(8)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(produce, send, list(range(2000)), shard=1)
        count = 0
        async for _ in receive:
            count += 1
            if count % 50 == 0:
                await shardio.sleep(0.001)  # a slow consumer
        stats = receive.statistics()
    assert count == 2000
    assert stats.peak_buffer_used <= 8
    assert stats.receiving_shard == 0


async def sender_that_gets_cancelled(send: shardio.ShardSendChannel[str]) -> list[str]:
    log = []
    with shardio.move_on_after(0.05) as scope:
        await send.send("never")
    log.append(f"cancelled={scope.cancelled_caught}")
    await send.send("later")
    log.append("sent later")
    return log


async def test_a_cancelled_rendezvous_send_across_shards_did_not_send() -> None:
    send, receive = shardio.open_channel(0)
    async with shardio.open_nursery() as nursery:
        log: list[str] = []

        async def sender() -> None:
            log.extend(await shardio.run_on(1, sender_that_gets_cancelled, send))

        nursery.start_soon(sender)
        await shardio.sleep(0.2)  # the first send gave up long ago
        assert await receive.receive() == "later"
    assert log == ["cancelled=True", "sent later"]
    with pytest.raises(shardio.WouldBlock):
        receive.receive_nowait()


async def send_until_broken(send: shardio.ShardSendChannel[int]) -> int:
    sent = 0
    try:
        while True:
            await send.send(sent)
            sent += 1
    except shardio.BrokenResourceError:
        return sent


async def test_closing_the_receive_end_breaks_senders_on_other_shards() -> None:
    send, receive = shardio.open_channel(4)
    async with shardio.open_nursery() as nursery:
        result: list[int] = []

        async def sender() -> None:
            result.append(await shardio.run_on(1, send_until_broken, send))

        nursery.start_soon(sender)
        for _ in range(20):
            await receive.receive()
        await receive.aclose()
    assert result[0] >= 20


async def forward_channel_end(
    carrier: shardio.ShardReceiveChannel[Any],
) -> list[Any]:
    inner_send = await carrier.receive()
    await inner_send.send("through a channel")
    await inner_send.aclose()
    return await collect(carrier)


async def test_an_end_can_travel_through_another_channel() -> None:
    carrier_send, carrier_receive = shardio.open_channel(1)
    inner_send, inner_receive = shardio.open_channel(1)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(forward_channel_end, carrier_receive, shard=1)
        await carrier_send.send(inner_send)
        with pytest.raises(shardio.ClosedResourceError):
            inner_send.send_nowait("the original moved")
        assert await inner_receive.receive() == "through a channel"
        await carrier_send.aclose()
        with pytest.raises(shardio.EndOfChannel):
            await inner_receive.receive()


async def send_socket(send: shardio.ShardSendChannel[Any]) -> str:
    with socket.socket() as sock:
        try:
            await send.send(sock)
        except TypeError as exc:
            await send.send("still usable")
            await send.aclose()
            return str(exc)
    return "sent?"


async def test_an_unpicklable_value_fails_its_send_and_nothing_else() -> None:
    send, receive = shardio.open_channel(10)
    async with shardio.open_nursery() as nursery:
        message: list[str] = []

        async def sender() -> None:
            message.append(await shardio.run_on(1, send_socket, send))

        nursery.start_soon(sender)
        assert await collect(receive) == ["still usable"]
    assert "cannot be sent to shard 0" in message[0]


async def test_a_receive_end_with_clones_cannot_move() -> None:
    send, receive = shardio.open_channel(1)
    clone = receive.clone()
    with pytest.raises(TypeError, match="only the last open receive end"):
        await shardio.run_on(1, collect, receive)
    clone.close()
    send.close()
    assert await shardio.run_on(1, collect, receive) == []


async def test_channel_ends_cannot_be_pickled_outside_shardio() -> None:
    import pickle

    send, _ = shardio.open_channel(1)
    with pytest.raises(TypeError, match="only through shardio"):
        pickle.dumps(send)


@pytest.mark.shardio(shards=3, cpus=False)
async def test_producers_on_every_shard_each_keep_their_order() -> None:
    send, receive = shardio.open_channel(32)
    async with shardio.open_nursery() as nursery:
        for shard in range(3):
            nursery.start_soon(produce, send.clone(), [(shard, i) for i in range(400)], shard=shard)
        send.close()
        values = await collect(receive)
    assert sorted(values) == [(s, i) for s in range(3) for i in range(400)]
    for shard in range(3):
        mine = [i for s, i in values if s == shard]
        assert mine == list(range(400))


async def cancelling_producer(send: shardio.ShardSendChannel[int], count: int, seed: int) -> int:
    # Sends 0..count-1 in order; random cancellations interrupt sends, and a
    # cancelled send is retried -- so exactly-once means no gap, no repeat.
    rng = random.Random(seed)
    cancelled = 0
    i = 0
    async with send:
        while i < count:
            timeout = rng.choice((0, 0, 1e-5, 1e-4, math.inf))
            with shardio.move_on_after(timeout) as scope:
                await send.send(i)
            if scope.cancelled_caught:
                cancelled += 1
            else:
                i += 1
    return cancelled


async def check_sequence(receive: shardio.ShardReceiveChannel[int]) -> int:
    expected = 0
    async for value in receive:
        assert value == expected, (value, expected)
        expected += 1
    return expected


async def test_a_million_messages_exactly_once_in_order_with_random_cancellations() -> None:
    send, receive = shardio.open_channel(1000)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(cancelling_producer, send, 1_000_000, 1, shard=1)
        assert await check_sequence(receive) == 1_000_000


async def test_small_buffer_cancellations_lose_and_duplicate_nothing() -> None:
    send, receive = shardio.open_channel(2)
    results: list[int] = []
    async with shardio.open_nursery() as nursery:

        async def producer() -> None:
            results.append(await shardio.run_on(1, cancelling_producer, send, 20_000, 7))

        nursery.start_soon(producer)
        assert await check_sequence(receive) == 20_000
    assert results[0] > 0  # cancellations did happen


async def collect_and_close(receive: shardio.ShardReceiveChannel[Any]) -> list[Any]:
    async with receive:
        return await collect(receive)


def channels_known_here() -> int:
    from shardio._core._shards import current_state

    return len(current_state().channels)


async def test_a_closed_channel_leaves_nothing_behind_on_any_shard() -> None:
    before = (channels_known_here(), await shardio.run_on(1, channels_known_here))
    for i in range(20):
        send, receive = shardio.open_channel(4)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(produce, send.clone(), [1, 2, 3], shard=1)
            nursery.start_soon(produce, send, [4])
            if i % 2:
                # the channel moves to shard 1 (shard 0 keeps a forwarder)
                assert sorted(await shardio.run_on(1, collect_and_close, receive)) == [1, 2, 3, 4]
            else:
                assert sorted(await collect(receive)) == [1, 2, 3, 4]
                receive.close()
                stats = receive.statistics()
                assert (stats.open_send_channels, stats.open_receive_channels) == (0, 0)
    await shardio.sleep(0.01)  # the "finished" notices are messages too
    after = (channels_known_here(), await shardio.run_on(1, channels_known_here))
    assert after == before


async def test_statistics_on_a_former_home_count_its_own_send_ends() -> None:
    send, receive = shardio.open_channel(4)
    other = send.clone()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(collect, receive, shard=1)
        assert send.statistics().open_send_channels == 2
        assert send.statistics().receiving_shard in (0, 1)
        other.close()
        assert send.statistics().open_send_channels == 1
        send.close()


async def test_a_second_ctrl_c_never_lands_inside_a_channel_operation() -> None:
    # Ask, on every line the ends' methods run, what the SIGINT handler asks
    # about the frame it interrupts: would a KeyboardInterrupt be held back?
    from shardio._core._ki import ki_protection_enabled

    methods = [
        *(getattr(shardio.ShardSendChannel, name) for name in ("send", "send_nowait", "close")),
        *(
            getattr(shardio.ShardReceiveChannel, name)
            for name in ("receive", "receive_nowait", "__anext__", "close")
        ),
    ]
    watched = {method.__code__ for method in methods}
    verdicts: list[bool] = []

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            verdicts.append(ki_protection_enabled(frame))
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return on_line if frame.f_code in watched else None

    send, receive = shardio.open_channel(4)
    sys.settrace(on_call)
    try:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(produce, send.clone(), list(range(20)), shard=1)
            await send.send(-1)
            send.send_nowait(-2)
            send.close()
            values = [await receive.receive(), receive.receive_nowait()]
            values += [value async for value in receive]
    finally:
        sys.settrace(None)
    assert sorted(values) == [-2, -1, *range(20)]
    assert verdicts
    assert all(verdicts)
