"""TapDevice against the Linux kernel: making and attaching queues, the errors
a user gets, frames both ways, the waker, the receive budget and TSO.

Each test runs in a network namespace of its own (``_netns.py``), where the
kernel side of the TAP is 10.99.0.1/24 and our side 10.99.0.2; without root
and /dev/net/tun they skip (under CI they fail). The frames are built and
read with ``wire``: no stack here, so what is tested is the device alone.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

import shardio
from shardio import lowlevel
from shardio_net.native.phy import DeviceWaiter
from shardio_net.native.phy.tap import TapDevice
from shardio_net.native.wire.arp import REPLY, REQUEST, ArpPacket, arp_header, parse_arp
from shardio_net.native.wire.ethernet import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    EthernetFrame,
    ethernet_header,
    parse_ethernet,
)
from shardio_net.native.wire.ipv4 import (
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    Ipv4Packet,
    ipv4_header,
    parse_address,
    parse_ipv4,
)
from shardio_net.native.wire.tcp import ACK, PSH, SYN, TcpSegment, parse_tcp, tcp_header
from shardio_net.native.wire.udp import UdpDatagram, parse_udp, udp_header

from ._netns import (
    KERNEL_ADDRESS,
    STACK_ADDRESS,
    configure_kernel_side,
    ip,
    mac_of,
    network_namespace,
)

pytestmark = pytest.mark.requires_program("ip", apt="iproute2")

KERNEL = parse_address(KERNEL_ADDRESS)
US = parse_address(STACK_ADDRESS)
# How long the kernel gets to send a frame before a test fails: generous, as
# the machine may be loaded; a passing test waits only for the frames.
PATIENCE = 30.0


@pytest.fixture(autouse=True)
def netns() -> Iterator[None]:
    with network_namespace():
        yield


def _link(name: str) -> str:
    return ip("-d", "link", "show", name)


def _exists(name: str) -> bool:
    try:
        _link(name)
    except RuntimeError:
        return False
    return True


# -- making and attaching --------------------------------------------------------------


def test_a_queue_makes_the_device_when_absent_and_it_goes_with_the_last_queue() -> None:
    first = TapDevice("tap0")
    second = TapDevice("tap0")
    assert (first.created, second.created) == (True, False)
    details = _link("tap0")
    assert "tun type tap" in details
    assert "multi_queue" in details
    assert "vnet_hdr on" in details
    assert "numqueues 2" in details
    assert first.mac == second.mac  # every shard's stack answers for one MAC
    assert first.mtu == 1500
    first.close()
    assert _exists("tap0")
    second.close()
    second.close()  # idempotent
    assert not _exists("tap0")


def test_queues_attach_to_a_persistent_device_which_stays_after_them() -> None:
    ip("tuntap", "add", "dev", "tap7", "mode", "tap", "multi_queue")
    ip("link", "set", "tap7", "mtu", "9000")
    queues = [TapDevice("tap7") for _ in range(3)]
    assert [queue.created for queue in queues] == [False, False, False]
    assert {queue.mtu for queue in queues} == {9000}
    assert "numqueues 3" in _link("tap7")
    for queue in queues:
        queue.close()
    assert "numqueues 0" in _link("tap7")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (("tuntap", "add", "dev", "tap0", "mode", "tap"), "was made without multi_queue"),
        (("tuntap", "add", "dev", "tap0", "mode", "tun", "multi_queue"), "is a TUN device"),
        (("link", "add", "tap0", "type", "veth", "peer", "name", "tap1"), "is a veth device"),
    ],
)
def test_a_device_that_is_not_a_multi_queue_tap_is_refused_saying_what_to_do(
    setup: tuple[str, ...], message: str
) -> None:
    ip(*setup)
    with pytest.raises(OSError, match=message) as caught:
        TapDevice("tap0")
    assert "ip tuntap" in str(caught.value) or "another name" in str(caught.value)


@pytest.mark.parametrize("name", ["", "sixteen-chars-xx", "a/b", " tap0"])
def test_a_name_linux_cannot_have_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="not an interface name"):
        TapDevice(name)


def _python(code: str, *wrapper: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (in this namespace), under ``wrapper``."""
    return subprocess.run(
        [*wrapper, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )


_OPEN = (
    "from shardio_net.native.phy.tap import TapDevice\n"
    "try:\n"
    "    TapDevice('tap0')\n"
    "except OSError as error:\n"
    "    print(type(error).__name__, error)\n"
    "else:\n"
    "    print('opened')\n"
)
# Root without CAP_NET_ADMIN, as a service account with the right to open
# /dev/net/tun and nothing more would be.
_WITHOUT_NET_ADMIN = ("setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin")


@pytest.mark.requires_program("setpriv", apt="util-linux")
def test_making_a_device_without_cap_net_admin_says_how_to_make_it_beforehand() -> None:
    done = _python(_OPEN, *_WITHOUT_NET_ADMIN)
    assert done.stdout.startswith("PermissionError"), done
    assert "needs CAP_NET_ADMIN" in done.stdout
    assert "ip tuntap add dev tap0 mode tap multi_queue user" in done.stdout
    assert not _exists("tap0")


@pytest.mark.requires_program("setpriv", apt="util-linux")
def test_without_cap_net_admin_a_queue_attaches_to_its_owners_device_only() -> None:
    ip("tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue", "user", "0")
    assert _python(_OPEN, *_WITHOUT_NET_ADMIN).stdout == "opened\n"
    ip("tuntap", "del", "dev", "tap0", "mode", "tap", "multi_queue")
    ip("tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue", "user", "65534")
    done = _python(_OPEN, *_WITHOUT_NET_ADMIN)
    assert done.stdout.startswith("PermissionError"), done
    assert "not allowed to attach to TAP device 'tap0'" in done.stdout


@pytest.mark.requires_program("unshare", apt="util-linux")
def test_without_dev_net_tun_the_error_says_how_to_get_it() -> None:
    # A mount namespace where /dev/net is an empty tmpfs: a container
    # that was not given the device.
    code = "import subprocess; subprocess.run(['mount', '-t', 'tmpfs', 'none', '/dev/net'])\n"
    done = _python(code + _OPEN, "unshare", "--mount", "--propagation", "private")
    assert done.stdout.startswith("FileNotFoundError"), done
    assert "no /dev/net/tun" in done.stdout
    assert "modprobe tun" in done.stdout


def _open_and_describe(name: str) -> tuple[bool, bytes]:
    # Runs on each shard: the queue stays open (kept in the shard's globals)
    # until _close_queue.
    device = TapDevice(name)
    _QUEUES.append(device)
    return device.created, device.mac


def _close_queue() -> None:
    while _QUEUES:
        _QUEUES.pop().close()


_QUEUES: list[TapDevice] = []


@pytest.mark.shardio(shards=2)
async def test_every_shard_opens_a_queue_of_its_own() -> None:
    ip("tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
    opened = [await shardio.run_on(shard, _open_and_describe, "tap0") for shard in (0, 1)]
    assert "numqueues 2" in _link("tap0")
    assert [created for created, _ in opened] == [False, False]
    assert opened[0][1] == opened[1][1]
    for shard in (0, 1):
        await shardio.run_on(shard, _close_queue)
    assert "numqueues 0" in _link("tap0")


# -- frames --------------------------------------------------------------------------------


def _frame(dst_mac: bytes, src_mac: bytes, ethertype: int, *parts: bytes) -> list[bytes]:
    return [ethernet_header(EthernetFrame(dst_mac, src_mac, ethertype)), *parts]


def _ip_parts(src_mac: bytes, dst_mac: bytes, protocol: int, transport: list[bytes]) -> list[bytes]:
    length = sum(len(part) for part in transport)
    packet = Ipv4Packet(US, KERNEL, protocol, ident=1, dont_fragment=True)
    head = ethernet_header(EthernetFrame(dst_mac, src_mac, ETHERTYPE_IPV4))
    return [head + ipv4_header(packet, length), *transport]


class Wire:
    """Our side of the TAP, by hand: waits for frames, answers the kernel's
    ARP requests for 10.99.0.2, remembers the kernel's MAC."""

    def __init__(self, device: TapDevice) -> None:
        self.device = device
        self.waiter = DeviceWaiter(device)
        self.kernel_mac: bytes | None = None

    async def next(self, wanted: Callable[[memoryview], bool], what: str) -> memoryview:
        with shardio.move_on_after(PATIENCE):
            while True:
                for frame in self.device.receive(shardio.current_time()):
                    if wanted(frame):
                        return frame
                    self._answer_arp(frame)
                await self.waiter.wait()
        raise AssertionError(f"the kernel sent no {what} within {PATIENCE} s")

    def _answer_arp(self, frame: memoryview) -> None:
        ethernet = parse_ethernet(frame)
        if ethernet.ethertype != ETHERTYPE_ARP:
            return
        request = parse_arp(ethernet.payload)
        if request.operation == REQUEST and request.target_ip == US:
            self.kernel_mac = request.sender_mac
            reply = ArpPacket(REPLY, self.device.mac, US, request.sender_mac, request.sender_ip)
            self.send(_frame(request.sender_mac, self.device.mac, ETHERTYPE_ARP, arp_header(reply)))

    def send(self, *frames: list[bytes]) -> None:
        self.device.transmit(frames, shardio.current_time())

    def send_ip(self, protocol: int, *transport: bytes) -> None:
        assert self.kernel_mac is not None
        self.send(_ip_parts(self.device.mac, self.kernel_mac, protocol, list(transport)))

    async def next_ip(self, protocol: int, what: str) -> Ipv4Packet:
        def wanted(frame: memoryview) -> bool:
            return bytes(frame[12:14]) == b"\x08\x00" and frame[23] == protocol

        return parse_ipv4(parse_ethernet(await self.next(wanted, what)).payload)


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((KERNEL_ADDRESS, 5000))
    return sock


@pytest.mark.parametrize("checksum_offload", [True, False])
async def test_frames_cross_both_ways_and_a_readable_queue_wakes_the_waiter(
    checksum_offload: bool,
) -> None:
    device = TapDevice("tap0", checksum_offload=checksum_offload, lro=checksum_offload)
    configure_kernel_side("tap0")
    wire = Wire(device)
    with _udp_socket() as kernel:
        # The kernel resolves 10.99.0.2 first: the ARP request is the first
        # frame, and only the waker can end the waiter's sleep for it.
        kernel.sendto(b"from the kernel", (STACK_ADDRESS, 7000))
        arp = await wire.next(lambda frame: bytes(frame[12:14]) == b"\x08\x06", "ARP request")
        request = parse_arp(parse_ethernet(arp).payload)
        assert (request.operation, request.target_ip) == (REQUEST, US)
        wire._answer_arp(arp)
        # Then the datagram, its checksum left to us with offload on.
        packet = await wire.next_ip(PROTOCOL_UDP, "UDP datagram")
        datagram = parse_udp(packet.payload, KERNEL, US, verify_checksum=not checksum_offload)
        assert (datagram.src_port, datagram.dst_port) == (5000, 7000)
        assert bytes(datagram.payload) == b"from the kernel"
        statistics = device.statistics()
        assert (statistics.partial_checksums > 0) == checksum_offload
        assert device.checksums_verified == checksum_offload

        # Our datagram, its payload in two parts, reaches the kernel's socket.
        parts = [b"from ", b"the stack"]
        header = udp_header(UdpDatagram(7000, 5000), US, KERNEL, parts)
        wire.send_ip(PROTOCOL_UDP, header, *parts)
        with shardio.fail_after(PATIENCE):
            await lowlevel.wait_readable(kernel)
        assert kernel.recvfrom(100) == (b"from the stack", (STACK_ADDRESS, 7000))
    statistics = device.statistics()
    assert statistics.frames_sent == 2  # the ARP reply and the datagram
    assert statistics.dropped_send_error == 0


async def test_a_frame_sent_while_the_link_is_down_is_counted_not_raised() -> None:
    device = TapDevice("tap0")  # made, and down until someone brings it up
    frame = [b"\xff" * 6 + device.mac + b"\x08\x06", bytes(28)]
    device.transmit([frame, frame], shardio.current_time())
    statistics = device.statistics()
    assert (statistics.frames_sent, statistics.dropped_send_error) == (0, 2)
    assert statistics.last_error is not None
    assert "ip link set tap0 up" in statistics.last_error
    configure_kernel_side("tap0")
    device.transmit([frame], shardio.current_time())
    assert device.statistics().frames_sent == 1


async def test_receive_stops_at_its_budget_and_says_frames_wait() -> None:
    device = TapDevice("tap0", receive_budget=4)
    configure_kernel_side("tap0")
    wire = Wire(device)
    with _udp_socket() as kernel:
        kernel.sendto(b"0", (STACK_ADDRESS, 7000))
        await wire.next_ip(PROTOCOL_UDP, "first datagram")
        # Ten datagrams, queued on the TAP by the time sendto returns.
        for number in range(1, 11):
            kernel.sendto(b"%d" % number, (STACK_ADDRESS, 7000))
        now = shardio.current_time()
        batches: list[int] = []
        while len(batches) < 3:
            batch = device.receive(now)
            batches.append(len(batch))
            assert device.next_deadline() == (-float("inf") if len(batch) == 4 else float("inf"))
    assert batches == [4, 4, 2]
    assert device.statistics().receive_budget_exhausted == 2


@pytest.mark.parametrize("tso", [True, False])
async def test_a_tcp_segment_over_the_mtu_goes_whole_with_tso_and_is_dropped_without(
    tso: bool,
) -> None:
    device = TapDevice("tap0", tso=tso)
    configure_kernel_side("tap0")
    assert device.tso_max == (65535 if tso else 1500)
    wire = Wire(device)
    listener = socket.socket()
    listener.bind((KERNEL_ADDRESS, 8000))
    listener.listen()
    listener.setblocking(False)
    # A handshake by hand: SYN (no window scaling, so the kernel's window is
    # a plain 16-bit number), the kernel's SYN-ACK, our ACK.
    iss = 1_000_000
    syn = TcpSegment(40000, 8000, iss, 0, SYN, 65535, mss=1460)
    wire.kernel_mac = mac_of("tap0")
    wire.send_ip(PROTOCOL_TCP, tcp_header(syn, US, KERNEL, []))
    packet = await wire.next_ip(PROTOCOL_TCP, "SYN-ACK")
    synack = parse_tcp(packet.payload, KERNEL, US, verify_checksum=False)
    assert synack.flags == SYN | ACK
    ack = (synack.seq + 1) % 2**32
    wire.send_ip(
        PROTOCOL_TCP, tcp_header(TcpSegment(40000, 8000, iss + 1, ack, ACK, 65535), US, KERNEL, [])
    )
    with shardio.fail_after(PATIENCE):
        await lowlevel.wait_readable(listener)
    connection, _ = listener.accept()
    connection.setblocking(False)

    # 60,000 bytes in one segment, in three parts: 41 segments of 1,460
    # bytes once the kernel has cut it.
    payload = os.urandom(60_000)
    parts = [payload[:1000], payload[1000:30_000], payload[30_000:]]
    data = TcpSegment(40000, 8000, iss + 1, ack, ACK | PSH, 65535)
    wire.send_ip(PROTOCOL_TCP, tcp_header(data, US, KERNEL, parts), *parts)
    statistics = device.statistics()
    if not tso:
        assert (statistics.dropped_oversize, statistics.large_frames_sent) == (1, 0)
        connection.close()
        listener.close()
        return
    assert (statistics.dropped_oversize, statistics.large_frames_sent) == (0, 1)
    received = bytearray()
    with shardio.fail_after(PATIENCE):
        while len(received) < len(payload):
            await lowlevel.wait_readable(connection)
            received += connection.recv(1 << 20)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    connection.close()
    listener.close()
