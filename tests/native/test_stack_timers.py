"""The stack's timer heap: lazy, bounded, and still on time.

A connection's deadline moves at almost every segment (the retransmission
timer armed by data, cleared by its ACK; the delayed ACK armed and
cleared). The stack pushes a heap entry only when the deadline moves
earlier, and re-arms an entry that comes up early, so a busy connection has
a few entries, not one per segment; and a timer still fires at the
connection's real deadline.
"""

from __future__ import annotations

import shardio
from shardio.testing import MockClock
from shardio_net.native import NativeStack, NativeStream, simulated_pair


async def _connected_pair(a: NativeStack, b: NativeStack) -> tuple[NativeStream, NativeStream]:
    [listener] = await b.open_tcp_listeners(0)
    client = await a.open_tcp_stream("10.0.0.2", listener.port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def _exchange(client: NativeStream, server: NativeStream, count: int) -> None:
    for _ in range(count):
        await client.send_all(b"ping")
        assert await server.receive_some() == b"ping"
        await server.send_all(b"pong")
        assert await client.receive_some() == b"pong"


async def test_a_busy_connection_keeps_a_few_timer_entries_not_one_per_exchange(
    autojump_clock: MockClock,
) -> None:
    a, b = simulated_pair(delay=0.001)
    client, server = await _connected_pair(a, b)
    await _exchange(client, server, 200)
    # Each exchange arms and clears a retransmission timer and a delayed ACK
    # on both sides; pushing every move would leave over a hundred entries
    # waiting to expire, one per move in the last RTO. Lazily, a handful.
    assert len(a._timers) <= 10
    assert len(b._timers) <= 10


async def test_a_retransmission_timer_pushed_back_by_acks_fires_at_its_real_deadline(
    autojump_clock: MockClock,
) -> None:
    a, b = simulated_pair(delay=0.001)
    client, server = await _connected_pair(a, b)
    await _exchange(client, server, 50)
    a.device.loss = 1.0  # type: ignore[attr-defined]  # from now on, a hears no ACK
    await client.send_all(b"unacknowledged")
    sent_at = shardio.current_time()
    rto = client.statistics().rto
    # Entries pushed for earlier, since-cleared timers come up before the
    # deadline; none of them may fire the timer early, nor lose it.
    await shardio.sleep_until(sent_at + rto - 0.001)
    assert client.statistics().timeouts == 0
    await shardio.sleep_until(sent_at + rto + 0.001)
    assert client.statistics().timeouts == 1
    assert client.statistics().retransmits == 1
