"""How fast the sans-io TCP connection is: ``python -m tests.native.tcp_bench``.

Three measurements:

1. The per-segment hot paths on their own, in batches of 256 segments (the
   minimum and median over 200 batches, per segment): receiving an in-order
   data segment, emitting a data segment, processing an ACK of two segments.
2. Segments per second through two connections back to back (tcp_pipe.py),
   no loss, 32 MiB one way, with and without the wire's encode and parse:
   both ends, the link and the applications in one process.
3. How much of (2) is spent inside the connection's entry points
   (``on_segment``, ``segments_to_send``, ``on_timer``, ``send``, ``events``,
   ``consumed``), timed with ``perf_counter`` around each call -- the rest is
   the simulated link, the applications (hashing every byte) and, with the
   wire, the header emit and parse.
4. With ``--profile``: where the time of (2) goes by layer, as cProfile sees
   it (which inflates code made of many small calls, like the connection's).

The machine's load shows in the medians; compare minima across changes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from shardio_net.native.tcp import TcpConfig, TcpConnection
from shardio_net.native.wire.tcp import ACK, SYN, TcpSegment

from .tcp_pipe import Pipe

BATCH = 256
LOCAL = (1, 40000)
REMOTE = (2, 80)


def _established(timestamps: bool) -> TcpConnection:
    config = TcpConfig(timestamps=timestamps, receive_buffer=1 << 30, send_buffer=1 << 30)
    conn = TcpConnection.connect(LOCAL, REMOTE, config, 0.0, 1000)
    conn.segments_to_send(0.0)
    synack = TcpSegment(
        80,
        40000,
        5000,
        1001,
        SYN | ACK,
        65535,
        mss=1460,
        window_scale=7,
        sack_permitted=True,
        timestamp=(1, 0) if timestamps else None,
    )
    conn.on_segment(synack, 0.01)
    conn.segments_to_send(0.01)
    conn.events()
    return conn


def hot_paths(timestamps: bool) -> dict[str, list[float]]:
    """Seconds per segment of each hot path, one figure per batch."""
    mss = 1448 if timestamps else 1460
    results: dict[str, list[float]] = {"receive": [], "emit": [], "ack": []}
    conn = _established(timestamps)
    payload = memoryview(bytes(mss))
    seq, tsval = 5001, 2
    for _ in range(200):
        batch = []
        for _ in range(BATCH):
            ts = (tsval, 1) if timestamps else None
            batch.append(TcpSegment(80, 40000, seq & 0xFFFF_FFFF, 1001, ACK, 65535, 0, None,
                                    None, False, (), ts, payload))  # fmt: skip
            seq += mss
            tsval += 1
        start = time.perf_counter()
        for segment in batch:
            conn.on_segment(segment, 0.02)
        conn.segments_to_send(0.02)
        conn.events()
        conn.consumed(BATCH * mss)
        results["receive"].append((time.perf_counter() - start) / BATCH)
    conn = _established(timestamps)
    conn.send([memoryview(bytes(200 * BATCH * mss))])
    conn._cc.cwnd = 0
    conn._snd_wnd = 1 << 40
    for i in range(200):
        conn._cc.cwnd = (i + 1) * BATCH * mss
        start = time.perf_counter()
        sent = conn.segments_to_send(0.02)
        results["emit"].append((time.perf_counter() - start) / len(sent))
    acked = 1001
    for _ in range(200):
        batch = []
        for _ in range(BATCH // 2):
            acked += 2 * mss
            ts = (3, 20) if timestamps else None
            batch.append(TcpSegment(80, 40000, 5001, acked & 0xFFFF_FFFF, ACK, 65535, 0, None,
                                    None, False, (), ts))  # fmt: skip
        start = time.perf_counter()
        for segment in batch:
            conn.on_segment(segment, 0.03)
        results["ack"].append((time.perf_counter() - start) / len(batch))
    return results


def pipe_rate(wire: bool, size: int = 32 << 20) -> tuple[int, float]:
    """(segments, seconds) to move ``size`` bytes one way through a clean pipe."""
    config = TcpConfig(time_wait=1.0, receive_buffer=1 << 20, send_buffer=1 << 20)
    pipe = Pipe(config, data_a=bytes(size), wire=wire, delay=0.001)
    start = time.perf_counter()
    pipe.run()
    elapsed = time.perf_counter() - start
    assert pipe.finished and pipe.b.received_bytes == size
    return sum(pipe.transmitted.values()), elapsed


Split = dict[str, tuple[int, float]]


def connection_share(wire: bool, size: int = 32 << 20) -> tuple[Split, float]:
    """Calls and seconds inside each of the connection's entry points during
    a pipe run, and the seconds of the whole run."""
    names = ("on_segment", "segments_to_send", "on_timer", "send", "events", "consumed")
    originals = {name: getattr(TcpConnection, name) for name in names}
    spent = dict.fromkeys(names, 0.0)
    calls = dict.fromkeys(names, 0)
    clock = time.perf_counter

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            start = clock()
            result = method(*args)
            spent[name] += clock() - start
            calls[name] += 1
            return result

        return wrapper

    for name, method in originals.items():
        setattr(TcpConnection, name, timed(name, method))
    try:
        config = TcpConfig(time_wait=1.0, receive_buffer=1 << 20, send_buffer=1 << 20)
        pipe = Pipe(config, data_a=bytes(size), wire=wire, delay=0.001)
        start = clock()
        pipe.run()
        total = clock() - start
    finally:
        for name, method in originals.items():
            setattr(TcpConnection, name, method)
    return {name: (calls[name], spent[name]) for name in names}, total


def profile(wire: bool, size: int = 32 << 20) -> None:
    config = TcpConfig(time_wait=1.0, receive_buffer=1 << 20, send_buffer=1 << 20)
    pipe = Pipe(config, data_a=bytes(size), wire=wire, delay=0.001)
    profiler = cProfile.Profile()
    profiler.runcall(pipe.run)
    stats = pstats.Stats(profiler)
    layers: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "native/tcp/" in filename:
            layer = "tcp (connection, queues, congestion control)"
        elif "native/wire/" in filename:
            layer = "wire (TCP header emit and parse, checksums)"
        elif "tcp_pipe" in filename:
            layer = "simulated link and applications (tcp_pipe.py)"
        else:
            layer = "builtins (hashing, copies, heap, attrs __init__ of segments)"
        layers[layer] = layers.get(layer, 0.0) + tottime
    total = sum(layers.values())
    print(f"  profile, wire={wire} ({total:.2f} s under cProfile):")
    for layer, seconds in sorted(layers.items(), key=lambda item: -item[1]):
        print(f"    {seconds / total:5.1%}  {layer}")
    stats.sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile the pipe runs")
    args = parser.parse_args()
    for timestamps in (True, False):
        results = hot_paths(timestamps)
        for name, times in results.items():
            print(
                f"timestamps={timestamps!s:5} {name:8} "
                f"min {min(times) * 1e6:5.2f} us  median {statistics.median(times) * 1e6:5.2f} us"
            )
    for wire in (False, True):
        segments, elapsed = pipe_rate(wire)
        print(
            f"pipe, wire={wire!s:5}: {segments} segments in {elapsed:.2f} s: "
            f"{segments / elapsed:,.0f} segments/s, {(32 << 20) / elapsed / 1e6:.1f} MB/s one way"
        )
        split, total = connection_share(wire)
        inside = sum(seconds for _, seconds in split.values())
        print(f"  inside the connections: {inside:.2f} s of {total:.2f} s ({inside / total:.0%})")
        for name, (calls, seconds) in split.items():
            if calls:
                per_segment = seconds / segments * 1e6
                print(f"    {name:17} {calls:6} calls  {per_segment:5.2f} us per segment")
        if args.profile:
            profile(wire)


if __name__ == "__main__":
    main()
