"""A NativeStack with no address gets one from dnsmasq over a TAP device.

The kernel's side of the TAP is 10.99.0.1/24 in a network namespace the test
makes (``_netns.py``), and dnsmasq serves DHCP there and nowhere else:
``--interface=tap0 --bind-interfaces``, ``--port=0`` (no DNS), no
configuration file, its leases and log in the test's temporary directory.
dnsmasq first pings the address it means to offer (three unanswered ARP
requests: 3 s), then answers a client without the broadcast flag by unicast
to the offered address and the client's MAC (after writing them into the
kernel's ARP table), so these tests also cross the interface's "no address
yet" path for unicast offers. Without root, /dev/net/tun or dnsmasq the tests skip
(under CI they fail: .ci/run installs dnsmasq).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import shardio
import shardio_net
from shardio import lowlevel
from shardio_net.native import NativeStack
from shardio_net.native.dhcp import DhcpConfig, Lease
from shardio_net.native.phy.tap import TapDevice
from shardio_net.native.wire.icmpv4 import (
    ECHO_REPLY,
    ECHO_REQUEST,
    Icmpv4Message,
    icmpv4_header,
    parse_icmpv4,
)
from shardio_net.native.wire.ipv4 import format_address, parse_address

from ._netns import KERNEL_ADDRESS, configure_kernel_side, network_namespace

pytestmark = pytest.mark.requires_program("ip", "dnsmasq", apt="iproute2 dnsmasq-base")

# A bound on a test that hangs, not a timing assertion.
PATIENCE = 60.0
RANGE = (parse_address("10.99.0.50"), parse_address("10.99.0.99"))


@pytest.fixture(autouse=True)
def netns() -> Iterator[None]:
    with network_namespace():
        yield


@contextlib.contextmanager
def _dnsmasq(directory: Path, *options: str) -> Iterator[Path]:
    """dnsmasq serving DHCP on tap0 only, until the block ends; its log."""
    log = directory / "dnsmasq.log"
    process = subprocess.Popen(
        [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--interface=tap0",
            "--bind-interfaces",
            "--dhcp-range=10.99.0.50,10.99.0.99,12h",
            f"--dhcp-leasefile={directory / 'leases'}",
            "--pid-file=",
            "--user=root",
            "--log-dhcp",
            f"--log-facility={log}",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield log
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=PATIENCE)
        assert process.returncode in (0, -15), errors.decode()


def _read(path: Path) -> str:
    """What ``path`` holds so far ("" before it exists)."""
    return path.read_text() if path.exists() else ""


async def _until_serving(log: Path) -> None:
    """Wait until dnsmasq says it serves the range (it logs that once bound)."""
    with shardio.fail_after(PATIENCE):
        while "DHCP, IP range" not in _read(log):
            await shardio.sleep(0.02)


def _stack() -> NativeStack:
    device = TapDevice("tap0")
    configure_kernel_side("tap0")
    return NativeStack(device, None)


async def _ping(address: str) -> bool:
    """One echo request from the kernel to ``address``; whether it was answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        raw.setblocking(False)
        data = b"are you there?"
        request = Icmpv4Message(ECHO_REQUEST, 0, 0x5EA5, 1)
        raw.sendto(icmpv4_header(request, [data]) + data, (address, 0))
        with shardio.fail_after(PATIENCE):
            await lowlevel.wait_readable(raw)
        packet = raw.recv(1500)
    reply = parse_icmpv4(memoryview(packet)[(packet[0] & 0x0F) * 4 :])
    return (reply.type, reply.ident, bytes(reply.payload)) == (ECHO_REPLY, 0x5EA5, data)


async def _echo(stream: shardio.abc.HalfCloseableStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data.upper())


async def test_the_stack_gets_an_address_from_dnsmasq_and_the_kernel_reaches_it(
    tmp_path: Path,
) -> None:
    stack = _stack()
    with _dnsmasq(tmp_path) as log:
        await _until_serving(log)
        with shardio.fail_after(PATIENCE):
            lease = await stack.dhcp(DhcpConfig(host_name="shardio-native"))
        address = format_address(lease.address)
        assert RANGE[0] <= lease.address <= RANGE[1]
        assert stack.address == lease.address
        assert lease.prefix_length == 24
        assert lease.gateway == lease.server == parse_address(KERNEL_ADDRESS)
        assert lease.lease_time == 12 * 3600

        assert await _ping(address)
        async with shardio.open_nursery() as nursery:
            await nursery.start(stack.serve_tcp, _echo, 8080)
            with shardio.fail_after(PATIENCE):
                kernel = await shardio_net.open_tcp_stream(address, 8080)
                await kernel.send_all(b"hello")
                await kernel.send_eof()
                assert await kernel.receive_some(100) == b"HELLO"
                await kernel.aclose()
            nursery.cancel_scope.cancel()
        # dnsmasq holds the lease for our MAC and the name we gave.
        leases = _read(tmp_path / "leases").split()
        assert [address, "shardio-native"] == leases[2:4]
        assert leases[1] == stack.device.mac.hex(":")
        # It offered by unicast to the address: the interface took it without one.
        text = _read(log)
        assert f"DHCPOFFER(tap0) {address}" in text and f"DHCPACK(tap0) {address}" in text


async def test_the_stack_renews_its_lease_with_dnsmasq_and_keeps_its_address(
    tmp_path: Path,
) -> None:
    stack = _stack()
    leases: list[Lease | None] = []
    renewed = shardio.Event()

    async def on_change(lease: Lease | None) -> None:
        leases.append(lease)
        if len(leases) == 2:
            renewed.set()

    # A short T1: the renewal comes in the test's time, not in 6 hours (and
    # no ping before the offer: the first test has it).
    options = ("--dhcp-option=option:T1,2", "--dhcp-option=option:T2,5", "--no-ping")
    with _dnsmasq(tmp_path, *options) as log:
        await _until_serving(log)
        with shardio.fail_after(PATIENCE):
            first = await stack.dhcp(on_change=on_change)
            await renewed.wait()
        second = leases[1]
        assert second is not None
        assert (second.address, second.server) == (first.address, first.server)
        assert second.acquired >= first.renew_at
        assert stack.address == first.address
        # The renewal was a REQUEST from the address, acknowledged.
        address = format_address(first.address)
        assert _read(log).count(f"DHCPACK(tap0) {address}") == 2
        assert await _ping(address)
