"""How fast the TAP device is: ``sudo .venv/bin/python -m tests.native.tap_bench``.

Needs root and /dev/net/tun; everything happens in a network namespace of
its own (``_netns.py``). Four measurements:

1. ``transmit`` alone: frames of three parts (34 bytes of Ethernet and IPv4
   headers, a 32-byte TCP header, 1,448 bytes of payload) written to a TAP
   whose kernel side drops them at once (they are for another MAC), with
   ``os.writev`` per frame (what ``TapDevice.transmit`` does) and with a C
   loop of ``writev`` calls over the whole batch in one cffi call, the
   iovecs built with ``ffi.from_buffer`` (compiled here, into a temporary
   directory: nothing of it ships unless it wins).
2. ``receive`` alone: frames per second draining a queue the kernel filled
   with 20,000 UDP datagrams of 1,472 bytes.
3. A NativeStack on the TAP and a kernel socket in the same shard (so one
   CPU runs both, the kernel's side included): 64 MiB from the kernel to the
   stack and 64 MiB back, offloads on and off; MB/s and frames per second
   at the device. Plus, with ``tso`` on, the stack sending 64 KiB segments
   (its connection's MSS raised by hand: what TSO gives once the TCP layer
   makes large segments).
4. Wake-ups: UDP round trips between a kernel socket and the stack (echo),
   with the device's waker as a Poller's wakeup fd (what it does) and as a
   task looping on ``lowlevel.wait_readable``.

Times are wall-clock on a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

import shardio
import shardio_net
from shardio import lowlevel
from shardio_net.native import NativeStack
from shardio_net.native.phy.device import Waker
from shardio_net.native.phy.tap import TapDevice

from ._netns import KERNEL_ADDRESS, STACK_ADDRESS, configure_kernel_side, ip, network_namespace

MIB = 1 << 20

_C_SOURCE = """
#include <sys/uio.h>
#include <errno.h>
int tap_writev_batch(int fd, const struct iovec *iov, const int *counts, int frames) {
    int sent = 0, offset = 0;
    for (int i = 0; i < frames; i++) {
        if (writev(fd, iov + offset, counts[i]) >= 0)
            sent++;
        offset += counts[i];
    }
    return sent;
}
"""


def _c_writer() -> Any:
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(
        "struct iovec { void *iov_base; size_t iov_len; };"
        "int tap_writev_batch(int fd, const struct iovec *iov, const int *counts, int frames);"
    )
    ffi.set_source("_tap_bench_c", "#include <sys/uio.h>\n" + _C_SOURCE)
    directory = tempfile.mkdtemp(prefix="tap_bench_")
    library = ffi.compile(tmpdir=directory)
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tap_bench_c", library)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _frames(count: int) -> list[list[Any]]:
    head = b"\x02\x00\x00\x00\x00\x99" + b"\x02" * 6 + b"\x08\x00" + bytes(20)
    tcp = bytes(32)
    payload = memoryview(bytes(1448 * 16))
    return [[head, tcp, payload[(i % 16) * 1448 : (i % 16 + 1) * 1448]] for i in range(count)]


def bench_transmit(count: int) -> None:
    device = TapDevice("tap0")
    configure_kernel_side("tap0")
    frames = _frames(count)
    best = min(_timed(lambda: device.transmit(frames, 0.0)) for _ in range(5))
    print(f"transmit, os.writev per frame:    {count / best:>10,.0f} frames/s")
    module = _c_writer()
    ffi, lib = module.ffi, module.lib
    header = bytes(10)

    def c_batch() -> None:
        parts = [header]
        counts = []
        for frame in frames:
            parts.append(header)
            parts.extend(frame)
            counts.append(1 + len(frame))
        keep = [ffi.from_buffer(part) for part in parts[1:]]
        iov = ffi.new("struct iovec[]", len(keep))
        for i, (buffer, part) in enumerate(zip(keep, parts[1:], strict=True)):
            iov[i].iov_base = buffer
            iov[i].iov_len = len(part)
        lib.tap_writev_batch(device.fileno(), iov, counts, len(counts))

    best = min(_timed(c_batch) for _ in range(5))
    print(f"transmit, C loop of writev (cffi): {count / best:>10,.0f} frames/s")
    device.close()


def bench_receive(count: int) -> None:
    device = TapDevice("tap0", receive_budget=count)
    configure_kernel_side("tap0")
    ip("link", "set", "tap0", "txqueuelen", str(count + 100))
    ip("neigh", "add", STACK_ADDRESS, "lladdr", device.mac.hex(":"), "dev", "tap0")
    results = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as kernel:
        for _ in range(3):
            for _ in range(count):
                kernel.sendto(bytes(1472), (STACK_ADDRESS, 9))
            start = time.perf_counter()
            got = len(device.receive(0.0))
            results.append(time.perf_counter() - start)
            assert got == count, got
    print(f"receive, os.read per frame:        {count / min(results):>10,.0f} frames/s")
    device.close()


async def _bulk(size: int, offloads: bool, big_segments: bool = False) -> str:
    device = TapDevice("tap0", checksum_offload=offloads, lro=offloads, tso=offloads)
    configure_kernel_side("tap0")
    stack = NativeStack(device, STACK_ADDRESS)
    if big_segments:
        stack._iface._max_payload = 65515
    [listener] = await stack.open_tcp_listeners(8080)
    kernel = await shardio_net.open_tcp_stream(STACK_ADDRESS, 8080)
    native = await listener.accept()
    if big_segments:
        native._tcp._snd_mss = 65000 - 52
    payload = memoryview(os.urandom(MIB))
    lines = []
    for direction, sender, receiver in (
        ("kernel -> stack", kernel, native),
        ("stack -> kernel", native, kernel),
    ):
        before = device.statistics()
        start = time.perf_counter()
        async with shardio.open_nursery() as nursery:

            async def send(stream: Any = sender) -> None:
                for _ in range(size // MIB):
                    await stream.send_all(payload)

            nursery.start_soon(send)
            left = size
            buffer = bytearray(MIB)
            while left:
                left -= await receiver.receive_into(buffer)
        elapsed = time.perf_counter() - start
        after = device.statistics()
        frames_in = after.frames_received - before.frames_received
        frames_out = after.frames_sent - before.frames_sent
        large_in = after.large_frames_received - before.large_frames_received
        large_out = after.large_frames_sent - before.large_frames_sent
        lines.append(
            f"{direction}: {size / elapsed / 1e6:6.1f} MB/s; device frames in "
            f"{frames_in / elapsed:8,.0f}/s ({large_in} large), "
            f"out {frames_out / elapsed:8,.0f}/s ({large_out} large)"
        )
    await kernel.aclose()
    await native.aclose()
    return "\n  ".join(lines)


class _TaskWakerDevice(TapDevice):  # type: ignore[misc]
    """The other way to wake a stack: a task per device that waits for the
    fd to be readable, calls the waker, and waits for the stack to read."""

    def __init__(self) -> None:
        super().__init__("tap0")
        self._task_waker: Waker | None = None
        self._watching = False

    def set_waker(self, waker: Waker | None) -> None:
        self._task_waker = waker
        if waker is not None and not self._watching:
            self._watching = True
            lowlevel.spawn_system_task(self._watch)

    async def _watch(self) -> None:
        while self.fileno() >= 0:
            await lowlevel.wait_readable(self.fileno())
            self._readable = True
            if self._task_waker is not None:
                self._task_waker()
            # The fd stays readable until the stack reads: wait for that,
            # or this task would wake at once, again and again.
            while self._readable:
                await lowlevel.checkpoint()


async def _round_trips(count: int, make: Callable[[], TapDevice]) -> float:
    device = make()
    configure_kernel_side("tap0")
    stack = NativeStack(device, STACK_ADDRESS)
    udp = await stack.open_udp_socket(port=7)

    async def echo() -> None:
        while True:
            data, address = await udp.recvfrom(2048)
            await udp.sendto(data, address)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(echo)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as kernel:
            kernel.setblocking(False)
            kernel.bind((KERNEL_ADDRESS, 0))
            for warm in (True, False):
                start = time.perf_counter()
                for _ in range(50 if warm else count):
                    kernel.sendto(b"x" * 64, (STACK_ADDRESS, 7))
                    await lowlevel.wait_readable(kernel)
                    kernel.recv(2048)
            elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, help="MiB per bulk direction")
    args = parser.parse_args()
    with network_namespace():
        bench_transmit(20_000)
        bench_receive(20_000)
        for offloads in (True, False):
            text = shardio.run(_bulk, args.size * MIB, offloads)
            print(f"bulk, offloads {'on' if offloads else 'off'}:\n  {text}")
        text = shardio.run(_bulk, args.size * MIB, True, True)
        print(f"bulk, offloads on, 64 KiB segments from the stack:\n  {text}")
        for name, make in (
            ("Poller wakeup fd", lambda: TapDevice("tap0")),
            ("task on wait_readable", _TaskWakerDevice),
        ):
            rate = shardio.run(_round_trips, 5000, make)
            print(f"UDP round trips, waker as {name}: {rate:,.0f}/s")


if __name__ == "__main__":
    main()
