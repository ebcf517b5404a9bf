"""A capture started or stopped while the stack runs leaves it as quick as before.

``capture()`` and ``Capture.stop()`` put a new device under a running stack,
with a new waiter; the pump must sleep on the new one, or it hears neither
its users nor the link and moves only when a timer happens to fire.
"""

from __future__ import annotations

from pathlib import Path

import shardio
from shardio.testing import MockClock
from shardio_net.native import NativeStack, NativeStream, simulated_pair


async def _connected_pair(a: NativeStack, b: NativeStack) -> tuple[NativeStream, NativeStream]:
    [listener] = await b.open_tcp_listeners(0)
    client = await a.open_tcp_stream("10.0.0.2", listener.port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def _round_trip(client: NativeStream, server: NativeStream) -> float:
    """Simulated seconds for one request and its answer."""
    start = shardio.current_time()
    await client.send_all(b"ping")
    assert await server.receive_some() == b"ping"
    await server.send_all(b"pong")
    assert await client.receive_some() == b"pong"
    return shardio.current_time() - start


async def test_a_capture_started_and_stopped_mid_run_keeps_the_stack_awake(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    a, b = simulated_pair(delay=0.001)
    client, server = await _connected_pair(a, b)
    # Two link delays (4 ms with the ACK that may ride along) before, during
    # and after the capture: no pass waits for a timer to come by.
    assert await _round_trip(client, server) < 0.01
    capture = a.capture(tmp_path / "mid.pcap")
    assert await _round_trip(client, server) < 0.01
    capture.stop()
    assert await _round_trip(client, server) < 0.01
    assert capture.statistics().frames_transmitted > 0
