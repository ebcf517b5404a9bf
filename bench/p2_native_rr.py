"""P2: request/response over one connection; the figure is round trips per CPU second.

The native stack's per-exchange cost: two native stacks on a clean simulated
link (no faults, no latency, no rate limit, real clock), against the same
workload on the kernel's TCP over loopback; see :mod:`bench._stream_pairs`
for what each pair is and why CPU time is the measure. ``size`` is the CPU
budget of one trial in milliseconds.

The client sends a 64-byte request with ``send_all`` and reads the 64-byte
answer with ``receive_into``, one exchange at a time, until the process has
spent ``size`` ms of CPU time in the timed span (checked every 64
exchanges); the server echoes each request (``receive_into``, then
``send_all`` of what it read). Nothing is pipelined and there is one
connection, so every exchange is at least two passes of each native stack's
pump and four system calls on loopback: the worst case for the native
stack's batching, and the common one for a request/response protocol. The
span runs from the first request to the last answer; the connection is made
before it. Figures: ``cpu_rate``, exchanges / CPU seconds of the span (both
ends, every layer); ``rate``, the same over wall-clock seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ._spec import Benchmark, Figures, Implementation, Metric
from ._stream_pairs import Stream, cpu_clock, native_streams, posix_streams

MESSAGE = 64
"""Bytes of a request, and of its answer."""

CHECK_EVERY = 64
"""Exchanges between two reads of the CPU clock (a system call)."""


def _round_trips(
    open_streams: Callable[[], Awaitable[tuple[Stream, Stream]]],
    budget_ms: int,
) -> Figures:
    import shardio

    async def echo(stream: Stream) -> None:
        buffer = bytearray(4096)
        view = memoryview(buffer)
        while count := await stream.receive_into(buffer):
            await stream.send_all(bytes(view[:count]))

    async def main() -> tuple[int, float, float]:
        client, server = await open_streams()
        request = b"q" * MESSAGE
        buffer = bytearray(4096)
        exchanges = 0
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(echo, server)
            cpu_start, wall_start = cpu_clock(), time.perf_counter()
            stop = cpu_start + budget_ms / 1000
            while cpu_clock() < stop:
                for _ in range(CHECK_EVERY):
                    await client.send_all(request)
                    got = 0
                    while got < MESSAGE:
                        got += await client.receive_into(buffer)
                exchanges += CHECK_EVERY
            cpu, wall = cpu_clock() - cpu_start, time.perf_counter() - wall_start
            await client.send_eof()
        await client.aclose()
        await server.aclose()
        return exchanges, cpu, wall

    exchanges, cpu, wall = shardio.run(main)
    return {"cpu_rate": exchanges / cpu, "rate": exchanges / wall}


def native_round_trips(budget_ms: int) -> Figures:
    """Two native stacks on a ``simulated_pair()``, both in this shard."""
    return _round_trips(native_streams, budget_ms)


def posix_round_trips(budget_ms: int) -> Figures:
    """``shardio_net`` streams over loopback, both ends in this shard."""
    return _round_trips(posix_streams, budget_ms)


BENCHMARK = Benchmark(
    name="P2",
    title="native stack: 64-byte request/response over a clean simulated link",
    metrics=(Metric("cpu_rate", "exchanges/CPU-s"), Metric("rate", "exchanges/s")),
    implementations=(
        Implementation("native", native_round_trips),
        Implementation("posix", posix_round_trips),
    ),
    targets=(),
    size=2000,
    quick_size=200,
    subject="native",
)
