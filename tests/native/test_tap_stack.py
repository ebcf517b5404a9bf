"""A NativeStack on a TapDevice, with the Linux kernel as its peer.

``NativeStack(TapDevice("tap0"), "10.99.0.2")`` in one shard, the kernel on
the other side of the TAP at 10.99.0.1, in a network namespace the test
makes (``_netns.py``). The kernel's side is played by ordinary sockets --
shardio_net's posix streams, and a raw ICMP socket for ping -- made in that
namespace and driven from the same shard. Without root and /dev/net/tun the
tests skip (under CI they fail).
"""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shardio
import shardio_net
from shardio import lowlevel
from shardio.abc import HalfCloseableStream
from shardio_net.native import NativeStack
from shardio_net.native.phy.tap import TapDevice, TapStatistics
from shardio_net.native.wire.icmpv4 import (
    ECHO_REPLY,
    ECHO_REQUEST,
    Icmpv4Message,
    icmpv4_header,
    parse_icmpv4,
)

from ._netns import KERNEL_ADDRESS, STACK_ADDRESS, configure_kernel_side, network_namespace

pytestmark = pytest.mark.requires_program("ip", apt="iproute2")

# A bound on a test that hangs, not a timing assertion: a passing test
# waits for nothing but its own transfers.
PATIENCE = 120.0
MIB = 1 << 20


@pytest.fixture(autouse=True)
def netns() -> Iterator[None]:
    with network_namespace():
        yield


def _stack(**offloads: Any) -> tuple[NativeStack, TapDevice]:
    device = TapDevice("tap0", **offloads)
    configure_kernel_side("tap0")
    return NativeStack(device, STACK_ADDRESS), device


async def _send(stream: HalfCloseableStream, data: bytes) -> None:
    view = memoryview(data)
    for offset in range(0, len(data), MIB):
        await stream.send_all(view[offset : offset + MIB])
    await stream.send_eof()


async def _digest(stream: HalfCloseableStream, into: dict[str, str], name: str) -> None:
    digest = hashlib.sha256()
    while data := await stream.receive_some(MIB):
        digest.update(data)
    into[name] = digest.hexdigest()


async def _both_ways(
    kernel: HalfCloseableStream, native: HalfCloseableStream, size: int, seed: int
) -> None:
    """``size`` random bytes each way at once; each side gets the other's, intact."""
    rng = random.Random(seed)
    from_kernel, from_native = rng.randbytes(size), rng.randbytes(size)
    digests: dict[str, str] = {}
    with shardio.fail_after(PATIENCE):
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(_send, kernel, from_kernel)
            nursery.start_soon(_send, native, from_native)
            nursery.start_soon(_digest, native, digests, "at the native stack")
            nursery.start_soon(_digest, kernel, digests, "at the kernel")
    assert digests == {
        "at the native stack": hashlib.sha256(from_kernel).hexdigest(),
        "at the kernel": hashlib.sha256(from_native).hexdigest(),
    }
    await kernel.aclose()
    await native.aclose()


async def test_the_kernel_pings_the_stack_and_every_echo_is_answered() -> None:
    stack, _ = _stack()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        raw.setblocking(False)
        replies = []
        for seq in range(5):
            data = b"ping %d " % seq + bytes(range(48))
            request = Icmpv4Message(ECHO_REQUEST, 0, 0x5EA5, seq)
            raw.sendto(icmpv4_header(request, [data]) + data, (STACK_ADDRESS, 0))
            with shardio.fail_after(PATIENCE):
                await lowlevel.wait_readable(raw)
            packet = raw.recv(1500)
            reply = parse_icmpv4(memoryview(packet)[(packet[0] & 0x0F) * 4 :])
            replies.append((reply.type, reply.ident, reply.seq, bytes(reply.payload) == data))
    assert replies == [(ECHO_REPLY, 0x5EA5, seq, True) for seq in range(5)]
    assert stack.statistics().interface.echo_replies_sent == 5


async def test_a_kernel_client_and_a_native_listener_exchange_16_mib_each_way() -> None:
    stack, device = _stack()
    [listener] = await stack.open_tcp_listeners(8080)
    kernel = await shardio_net.open_tcp_stream(STACK_ADDRESS, 8080)
    native = await listener.accept()
    assert native.getpeername() == kernel.socket.getsockname()
    await _both_ways(kernel, native, 16 * MIB, seed=1)
    assert device.statistics().dropped_bad_checksum == 0


async def test_the_native_stack_connects_to_a_kernel_server_and_both_send_16_mib() -> None:
    stack, _ = _stack()
    [listener] = await shardio_net.open_tcp_listeners(9000, host=KERNEL_ADDRESS)
    native = await stack.open_tcp_stream(KERNEL_ADDRESS, 9000)
    kernel = await listener.accept()
    assert kernel.socket.getpeername() == native.getsockname()
    await listener.aclose()
    await _both_ways(kernel, native, 16 * MIB, seed=2)


async def test_a_connection_to_a_closed_kernel_port_is_refused() -> None:
    stack, _ = _stack()
    with pytest.raises(ConnectionRefusedError), shardio.fail_after(PATIENCE):
        await stack.open_tcp_stream(KERNEL_ADDRESS, 9)


@pytest.mark.requires_program("tcpdump", apt="tcpdump")
async def test_a_capture_of_a_tap_session_reads_back_in_tcpdump(tmp_path: Path) -> None:
    stack, _ = _stack()
    path = tmp_path / "tap.pcap"
    writer = stack.capture(path)
    [listener] = await stack.open_tcp_listeners(8080)
    with shardio.fail_after(PATIENCE):
        kernel = await shardio_net.open_tcp_stream(STACK_ADDRESS, 8080)
        native = await listener.accept()
        assert native.getpeername() == kernel.socket.getsockname()
        await kernel.send_all(b"hello")
        assert await native.receive_some(100) == b"hello"
        await native.send_all(b"world!")
        assert await kernel.receive_some(100) == b"world!"
        await kernel.aclose()
        assert await native.receive_some(100) == b""
        await native.aclose()
    writer.flush()  # the capture goes on with the run; what it holds is on disk
    done = await shardio.run_process(
        ["tcpdump", "-r", str(path), "-n", "-tt", "tcp"], capture_stdout=True
    )
    lines = done.stdout.decode().splitlines()
    kernel_side = f"{KERNEL_ADDRESS}."
    stack_side = f"{STACK_ADDRESS}.8080"
    assert any(kernel_side in line and f"> {stack_side}: Flags [S]" in line for line in lines)
    assert any(line.count(stack_side) and "Flags [S.]" in line for line in lines)
    assert any("length 5" in line and f"> {stack_side}" in line for line in lines)
    assert any("length 6" in line and f"{stack_side} >" in line for line in lines)
    assert any("Flags [F" in line for line in lines)


def _transfer(offloads: bool, size: int) -> tuple[str, str, TapStatistics]:
    """A run: ``size`` bytes from the kernel to the stack and back, on a TAP
    with every offload on or off; the digests and the device's counters."""

    async def main() -> tuple[str, str, TapStatistics]:
        stack, device = _stack(checksum_offload=offloads, lro=offloads, tso=offloads)
        [listener] = await stack.open_tcp_listeners(8080)
        kernel = await shardio_net.open_tcp_stream(STACK_ADDRESS, 8080)
        native = await listener.accept()
        payload = random.Random(3).randbytes(size)
        digests: dict[str, str] = {}
        with shardio.fail_after(PATIENCE):
            async with shardio.open_nursery() as nursery:
                nursery.start_soon(_send, kernel, payload)
                nursery.start_soon(_digest, native, digests, "native")
            async with shardio.open_nursery() as nursery:
                nursery.start_soon(_send, native, payload)
                nursery.start_soon(_digest, kernel, digests, "kernel")
        await kernel.aclose()
        await native.aclose()
        return digests["native"], digests["kernel"], device.statistics()

    return shardio.run(main)


def test_offloads_move_the_same_bytes_in_fewer_larger_frames() -> None:
    size = 8 * MIB
    expected = hashlib.sha256(random.Random(3).randbytes(size)).hexdigest()
    on_native, on_kernel, on = _transfer(True, size)
    off_native, off_kernel, off = _transfer(False, size)
    assert on_native == on_kernel == off_native == off_kernel == expected
    # Kernel to stack: with offloads the kernel hands over its TCP segments
    # uncut (up to 64 KiB), their checksums left to us and not computed.
    assert on.large_frames_received > 0
    assert on.partial_checksums > 0
    assert on.frames_received * 4 < off.frames_received
    assert (off.large_frames_received, off.partial_checksums) == (0, 0)
    assert max(on.bytes_received, off.bytes_received) < 1.1 * min(
        on.bytes_received, off.bytes_received
    )
    assert on.dropped_bad_checksum == off.dropped_bad_checksum == 0
    # Stack to kernel: with TSO the connection sends segments of many MSS,
    # which the kernel cuts; without, every frame fits the MTU.
    assert on.large_frames_sent > 0
    assert on.frames_sent * 4 < off.frames_sent
    assert off.large_frames_sent == 0


def test_a_tap_device_outlives_no_run() -> None:
    # The stack closes its device when the run ends, and a device this run
    # made goes with it.
    _transfer(True, MIB)
    done = subprocess.run(["ip", "link", "show", "tap0"], capture_output=True, text=True)
    assert done.returncode != 0
