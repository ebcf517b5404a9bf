"""P1: bulk transfer, one way, one connection; the figure is MB (10**6 bytes) per CPU second.

The native stack's floor for part 2's N3/N4: two native stacks on a clean
simulated link (no faults, no latency, no rate limit, real clock), against
the same workload on the kernel's TCP over loopback; see
:mod:`bench._stream_pairs` for what each pair is and why CPU time is the
measure. ``size`` is the CPU budget of one trial in milliseconds.

The client sends 1 MiB ``bytes`` objects with ``send_all`` (read-only: the
native stack holds them by reference, and copies nothing until the link
joins each frame) until the process has spent ``size`` ms of CPU time in the
timed span, then ``send_eof()``; the server reads with ``receive_into`` into
one 64 KiB ``bytearray`` (the one copy of the received bytes, on both
stacks) until end-of-file. The span runs from the first send to the server's
end-of-file; the connection is made before it. Figures: ``cpu_rate``, bytes
received / CPU seconds of the span (both ends, every layer); ``rate``, the
same over wall-clock seconds, which on a loaded machine is the CPU figure
times the share of the CPU the process got. Under a MockClock with no rate
limit simulated time would not move, so a simulated-time goodput means
nothing here: set ``rate=`` on the link to study that.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ._spec import Benchmark, Figures, Implementation, Metric
from ._stream_pairs import Stream, cpu_clock, native_streams, posix_streams

CHUNK = 1 << 20
"""Bytes per ``send_all``."""

RECEIVE_BUFFER = 65536
"""The server's ``receive_into`` buffer."""


def _bulk(
    open_streams: Callable[[], Awaitable[tuple[Stream, Stream]]],
    budget_ms: int,
) -> Figures:
    import shardio

    async def main() -> tuple[int, float, float]:
        client, server = await open_streams()
        received = 0

        async def sink() -> None:
            nonlocal received
            buffer = bytearray(RECEIVE_BUFFER)
            while count := await server.receive_into(buffer):
                received += count

        chunk = bytes(CHUNK)
        cpu_start, wall_start = cpu_clock(), time.perf_counter()
        stop = cpu_start + budget_ms / 1000
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(sink)
            while cpu_clock() < stop:
                await client.send_all(chunk)
            await client.send_eof()
        cpu, wall = cpu_clock() - cpu_start, time.perf_counter() - wall_start
        await client.aclose()
        await server.aclose()
        return received, cpu, wall

    received, cpu, wall = shardio.run(main)
    return {"cpu_rate": received / 1e6 / cpu, "rate": received / 1e6 / wall}


def native_bulk(budget_ms: int) -> Figures:
    """Two native stacks on a ``simulated_pair()``, both in this shard."""
    return _bulk(native_streams, budget_ms)


def posix_bulk(budget_ms: int) -> Figures:
    """``shardio_net`` streams over loopback, both ends in this shard."""
    return _bulk(posix_streams, budget_ms)


BENCHMARK = Benchmark(
    name="P1",
    title="native stack: bulk goodput one way over a clean simulated link",
    metrics=(Metric("cpu_rate", "MB/CPU-s"), Metric("rate", "MB/s")),
    implementations=(
        Implementation("native", native_bulk),
        Implementation("posix", posix_bulk),
    ),
    targets=(),
    size=2000,
    quick_size=200,
    subject="native",
)
