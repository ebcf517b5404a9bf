"""N4: bulk transfer, kernel -> stack and stack -> kernel, native over TAP vs posix over veth.

The server is :mod:`bench._bulk_server` on one shard, on the native stack
over its queue of ``tap0`` with every offload the TAP device has (checksum
offload, TSO out, large segments in: ``start_tap_stacks``' defaults, which
Seastar's flags use), or on the kernel's stack in a namespace of its own
reached over a veth pair (whose TSO, GSO and GRO are on by default); the
networks are :mod:`bench._netns`'s. The client is the trial process itself,
in the client namespace: a kernel socket. It sends ``size`` MiB to the
server (``sendall`` of one 1 MiB buffer, then ``shutdown(SHUT_WR)``) and
waits for the count the server received; then asks for ``size`` MiB and
reads them (``recv_into`` a 1 MiB buffer) to end-of-file. Each direction is
timed from the first byte sent to the last byte (or the count) received,
and checked: the count must be exact. The server inherits the trial's CPU;
the client moves to the next one for the transfers, so that the two do not
share a core. For scale, ``native-no-offloads`` is the native stack with
the TAP device's offloads off (``start_tap_stacks(checksum_offload=False,
tso=False, lro=False)``): every frame at most the MTU, checksums computed
and verified by the stack, as over a NIC without offloads; no target.

Figures, per direction (``in``: kernel -> stack, ``out``: stack -> kernel):

- ``rate``: MB (10**6 bytes) per second of wall-clock time;
- ``cpu``: the server process's CPU seconds (user and system, from
  ``getrusage`` in the server) per GB moved. The kernel's work done in the
  server's system calls is in it: for TAP, the kernel's TCP receiving what
  the stack writes (and for veth, the kernel's sending and the peer's
  receiving, in softirq on the sender's CPU);
- ``frames``: frames per second that crossed the link, both ways, by the
  counters of the kernel's side of it (``tap0`` or ``veth0``): one per skb,
  so a segment of up to 64 KiB that TSO or GRO kept whole counts once --
  the same count for both stacks. For the native stack they are the TAP
  queue's reads and writes, each one TCP segment the Python stack handled.

Recorded beside them in the results file, not compared: ``segments``, TCP
segments per second the server's TCP handled both ways -- the native
stack's frames in and out (so, but for a few ARP frames, its ``frames``), or
``InSegs + OutSegs`` of the server namespace's kernel TCP, which counts a
segment it sends by the pieces the device will cut (so several times its
``frames`` going out); and for the native stack its TAP queue's frames,
bytes and large frames each way, and its pump's passes.

One shard, so every figure is per shard. The targets are native >= 0.5x
posix on both rates. Skipped, with the reason, without root, /dev/net/tun
or ``ip``. ``size`` is MiB per direction (1024: 1 GiB).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from ._netns import STACK_ADDRESS, link_counters, missing_privileges
from ._spec import Benchmark, Figures, Implementation, Metric, Target
from ._stack_runs import Stack, serving

MIB = 1 << 20
PORT = 5001
_PATIENCE = 300.0


def _next_cpu() -> int:
    here = min(os.sched_getaffinity(0))
    return (here + 1) % (os.cpu_count() or 1)


def _connect(kind: bytes, count: int) -> socket.socket:
    client = socket.create_connection((STACK_ADDRESS, PORT), timeout=_PATIENCE)
    client.sendall(kind + count.to_bytes(8, "big"))
    return client


def _server_statistics() -> dict[str, Any]:
    with _connect(b"T", 0) as client:
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    result: dict[str, Any] = json.loads(data)
    return result


def _to_stack(size: int) -> None:
    """Send ``size`` bytes to the server; check that it received them all."""
    buffer = memoryview(bytes(MIB))
    with _connect(b"R", 0) as client:
        left = size
        while left:
            step = min(left, MIB)
            client.sendall(buffer[:step])
            left -= step
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 8 and (chunk := client.recv(8 - len(answer))):
            answer += chunk
    received = int.from_bytes(answer, "big")
    if received != size:
        raise RuntimeError(f"the server received {received} bytes of {size}")


def _from_stack(size: int) -> None:
    """Have the server send ``size`` bytes; check they all came."""
    buffer = bytearray(MIB)
    received = 0
    with _connect(b"S", size) as client:
        while got := client.recv_into(buffer):
            received += got
    if received != size:
        raise RuntimeError(f"{received} bytes came from the server, not {size}")


#: The native server's counters recorded as they are, per direction.
_DETAILS = (
    "frames_received",
    "frames_sent",
    "bytes_received",
    "bytes_sent",
    "large_frames_received",
    "large_frames_sent",
    "passes",
    "receive_budget_exhausted",
)


def _measure(link: str, size: int, transfer: Callable[[int], None]) -> dict[str, float]:
    """One direction: its figures, and the native stack's details."""
    before, link_before = _server_statistics(), link_counters(link)
    start = time.perf_counter()
    transfer(size)
    elapsed = time.perf_counter() - start
    after, link_after = _server_statistics(), link_counters(link)

    def delta(key: str) -> float:
        return float(after[key] - before[key])

    frames = sum(link_after) - sum(link_before)
    figures = {
        "rate": size / 1e6 / elapsed,
        "cpu": delta("cpu") / (size / 1e9),
        "frames": frames / elapsed,
        "segments": (delta("segments_received") + delta("segments_sent")) / elapsed,
    }
    for key in _DETAILS:
        if key in after:
            figures[key] = delta(key)
    return figures


def _bulk(stack: Stack, mebibytes: int, *options: str) -> Figures:
    size = mebibytes * MIB
    home = os.sched_getaffinity(0)
    figures: dict[str, float] = {}
    with serving(stack, "bench._bulk_server", "--port", str(PORT), *options) as server:
        os.sched_setaffinity(0, {_next_cpu()})
        try:
            for direction, transfer in (("in", _to_stack), ("out", _from_stack)):
                for key, value in _measure(server.link, size, transfer).items():
                    figures[f"{direction}_{key}"] = value
        finally:
            os.sched_setaffinity(0, home)
    return figures


def native_bulk(mebibytes: int) -> Figures:
    """bench._bulk_server on the native stack over tap0, offloads on."""
    return _bulk("native", mebibytes)


def native_no_offloads_bulk(mebibytes: int) -> Figures:
    """The same, with the TAP device's offloads off: every frame at most the MTU."""
    return _bulk("native", mebibytes, "--no-offloads")


def posix_bulk(mebibytes: int) -> Figures:
    """bench._bulk_server on the kernel's stack over a veth pair."""
    return _bulk("posix", mebibytes)


BENCHMARK = Benchmark(
    name="N4",
    title="bulk 1 GiB kernel -> stack and back, one shard: native over TAP vs posix over veth",
    metrics=(
        Metric("in_rate", "MB/s"),
        Metric("out_rate", "MB/s"),
        Metric("in_cpu", "CPU-s/GB", better="lower"),
        Metric("out_cpu", "CPU-s/GB", better="lower"),
        Metric("in_frames", "frames/s"),
        Metric("out_frames", "frames/s"),
    ),
    implementations=(
        Implementation("native", native_bulk, requires=missing_privileges),
        Implementation("posix", posix_bulk, requires=missing_privileges),
        Implementation("native-no-offloads", native_no_offloads_bulk, requires=missing_privileges),
    ),
    targets=(Target("posix", 0.5, "in_rate"), Target("posix", 0.5, "out_rate")),
    size=1024,
    quick_size=64,
    subject="native",
)
