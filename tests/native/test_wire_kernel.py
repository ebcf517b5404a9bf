"""The wire formats against Linux, the most independent implementation at hand.

Two kinds of test. The first kind reads frames Linux sent (captured once, kept
here as hex): they must parse to the values Linux put in them, their
checksums -- all computed by Linux in software: a TAP device has no checksum
offload, unlike loopback, where TCP and UDP checksums are left partial -- must
verify and match the reference computation, and emitting the parsed values
again must give Linux's bytes exactly (so the TCP option layout is Linux's).
It also pins the frames our emitters sent in that exchange, which Linux
accepted.

The second kind repeats the exchange live, when the test may create a TAP
device (root, or CAP_NET_ADMIN, and /dev/net/tun; skipped otherwise): Linux
resolves our address with ARP and takes our reply, completes a handshake on
our SYN-ACK, delivers our data (payload in two parts, so the checksum runs
over an odd boundary) to its socket, receives our UDP datagram, answers a
closed port with an ICMP port unreachable and our echo request with a reply.
Linux drops a frame with a bad checksum silently, so each step that goes on
proves the checksums we computed.

The captures came from Linux 6.18 on a TAP device ``swire0`` at 198.18.77.1
(MAC 02:00:00:00:00:01); our side was 198.18.77.2 (02:00:00:00:00:02).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import select
import socket
import struct
from collections.abc import Callable, Iterator

import pytest

from shardio_net.native.wire.arp import REPLY, REQUEST, ArpPacket, arp_header, parse_arp
from shardio_net.native.wire.ethernet import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    EthernetFrame,
    ethernet_header,
    parse_ethernet,
)
from shardio_net.native.wire.icmpv4 import (
    CODE_PORT_UNREACHABLE,
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    Icmpv4Message,
    icmpv4_header,
    parse_icmpv4,
)
from shardio_net.native.wire.ipv4 import (
    PROTOCOL_ICMP,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    Ipv4Packet,
    format_address,
    ipv4_header,
    parse_address,
    parse_ipv4,
)
from shardio_net.native.wire.tcp import (
    ACK,
    PSH,
    RST,
    SYN,
    TcpSegment,
    parse_tcp,
    tcp_header,
)
from shardio_net.native.wire.udp import UdpDatagram, parse_udp, udp_header

from ._wire_reference import pseudo_header, reference_checksum

LINUX_MAC = bytes.fromhex("020000000001")
OUR_MAC = bytes.fromhex("020000000002")
LINUX_IP = parse_address("198.18.77.1")
OUR_IP = parse_address("198.18.77.2")

# What Linux sent. The exchange: a socket connecting to 198.18.77.2:8080 ARPs
# for it, sends a SYN, ACKs our SYN-ACK, sends "hello, wire", ACKs our "hi!
# back"; a UDP socket on port 5353 sends "udp payload!" to port 9999; our
# datagram to its closed port 5354 draws a port unreachable, our echo request
# an echo reply; our SYN to its closed port 9 draws a RST.
FROM_LINUX = {
    name: bytes.fromhex(text)
    for name, text in {
        "arp request": "ffffffffffff020000000001080600010800060400010200000000"
        "01c6124d01000000000000c6124d02",
        "syn": "02000000000202000000000108004500003c1d4640004006f74dc6124d01c6124d"
        "0282b81f90957b1ae100000000a002faf01c450000020405b40402080aad390ac000"
        "0000000103030a",
        "ack": "0200000000020200000000010800450000341d4740004006f754c6124d01c6124d"
        "0282b81f90957b1ae2123456798010003fd92000000101080aad390ac0000003e8",
        "data": "02000000000202000000000108004500003f1d4840004006f748c6124d01c6124d"
        "0282b81f90957b1ae2123456798018003fa62500000101080aad390ac0000003e8"
        "68656c6c6f2c2077697265",
        "udp": "02000000000202000000000108004500002895f2400040117eaac6124d01c6124d"
        "0214e9270f0014facf756470207061796c6f616421",
        "port unreachable": "020000000002020000000001080045c000485cf700004001f6d5c6124d"
        "01c6124d020303234f000000004500002c0002000040115497c6124d02c6124d01270f14ea"
        "0018c18f746f206120636c6f73656420706f7274",
        "echo reply": "0200000000020200000000010800450000305cf800004001f7acc6124d01c6"
        "124d020000f6e24242000770696e6720646174612030313233343536373839",
        "rst": "02000000000202000000000108004500002800004000400614a8c6124d01c6124d"
        "0200099c40000000000000022c50140000eb320000",
    }.items()
}

SYN_PORT = 0x82B8  # the port Linux's connecting socket had
SYN_TSVAL = 0xAD390AC0  # its SYN's timestamp


def _our_frame(ethertype: int, *parts: bytes) -> bytes:
    return ethernet_header(EthernetFrame(LINUX_MAC, OUR_MAC, ethertype)) + b"".join(parts)


def _our_ip(protocol: int, ident: int, transport: bytes, *, dont_fragment: bool = False) -> bytes:
    packet = Ipv4Packet(OUR_IP, LINUX_IP, protocol, ident=ident, dont_fragment=dont_fragment)
    return _our_frame(ETHERTYPE_IPV4, ipv4_header(packet, len(transport)), transport)


def _our_tcp(segment: TcpSegment, *payload: bytes) -> bytes:
    transport = tcp_header(segment, OUR_IP, LINUX_IP, payload) + b"".join(payload)
    return _our_ip(PROTOCOL_TCP, 1, transport, dont_fragment=True)


def _our_udp(datagram: UdpDatagram, *payload: bytes) -> bytes:
    return _our_ip(
        PROTOCOL_UDP, 2, udp_header(datagram, OUR_IP, LINUX_IP, payload) + b"".join(payload)
    )


# What we sent in that exchange, each built the way the exchange built it;
# Linux accepted every one (it answered each).
SENT_BY_US = [
    (
        _our_frame(
            ETHERTYPE_ARP, arp_header(ArpPacket(REPLY, OUR_MAC, OUR_IP, LINUX_MAC, LINUX_IP))
        ),
        "02000000000102000000000208060001080006040002020000000002c6124d02020000000001c6124d01",
    ),
    (
        _our_tcp(
            TcpSegment(
                8080,
                SYN_PORT,
                0x12345678,
                0x957B1AE2,
                SYN | ACK,
                64240,
                mss=1460,
                window_scale=7,
                sack_permitted=True,
                timestamp=(1000, SYN_TSVAL),
            )
        ),
        "02000000000102000000000208004500003c0001400040061493c6124d02c6124d011f9082b812345678"
        "957b1ae2a012faf0afa20000020405b40402080a000003e8ad390ac001030307",
    ),
    (
        _our_tcp(
            TcpSegment(
                8080, SYN_PORT, 0x12345679, 0x957B1AED, ACK | PSH, 502, timestamp=(1001, SYN_TSVAL)
            ),
            b"hi",
            b"! back",
        ),
        "02000000000102000000000208004500003c0001400040061493c6124d02c6124d011f9082b812345679"
        "957b1aed801801f687f700000101080a000003e9ad390ac0686921206261636b",
    ),
    (
        _our_udp(UdpDatagram(9999, 5353), b"odd", b"parts!!"),
        "020000000001020000000002080045000026000200004011549dc6124d02c6124d01270f14e90012d2cd"
        "6f646470617274732121",
    ),
    (
        _our_ip(
            PROTOCOL_ICMP,
            3,
            icmpv4_header(Icmpv4Message(ECHO_REQUEST, 0, 0x4242, 7), [b"ping data 0123456789"])
            + b"ping data 0123456789",
        ),
        "02000000000102000000000208004500003000030000400154a2c6124d02c6124d010800eee242420007"
        "70696e6720646174612030313233343536373839",
    ),
]


def _ip_of(frame: bytes) -> Ipv4Packet:
    ethernet = parse_ethernet(frame)
    assert (ethernet.dst, ethernet.src) == (OUR_MAC, LINUX_MAC)
    assert ethernet.ethertype == ETHERTYPE_IPV4
    return parse_ipv4(ethernet.payload)


def test_linux_arp_request_parses_to_who_has_our_address() -> None:
    ethernet = parse_ethernet(FROM_LINUX["arp request"])
    assert ethernet.dst == b"\xff" * 6
    request = parse_arp(ethernet.payload)
    assert request == ArpPacket(REQUEST, LINUX_MAC, LINUX_IP, bytes(6), OUR_IP)


def test_linux_syn_parses_to_the_options_linux_offers() -> None:
    ip = _ip_of(FROM_LINUX["syn"])
    assert (ip.src, ip.dst, ip.ttl, ip.dont_fragment, ip.protocol) == (
        LINUX_IP,
        OUR_IP,
        64,
        True,
        PROTOCOL_TCP,
    )
    syn = parse_tcp(ip.payload, ip.src, ip.dst)
    assert (syn.src_port, syn.dst_port, syn.flags, syn.window) == (SYN_PORT, 8080, SYN, 64240)
    assert (syn.mss, syn.sack_permitted, syn.window_scale) == (1460, True, 10)
    assert syn.timestamp == (SYN_TSVAL, 0)
    assert syn.sack_blocks == ()
    assert len(syn.payload) == 0


def test_linux_data_and_acks_parse_with_their_timestamps_and_payload() -> None:
    ack = parse_tcp(_ip_of(FROM_LINUX["ack"]).payload, LINUX_IP, OUR_IP)
    assert (ack.flags, ack.ack, ack.window, ack.timestamp) == (
        ACK,
        0x12345679,
        63,
        (SYN_TSVAL, 1000),
    )
    data = parse_tcp(_ip_of(FROM_LINUX["data"]).payload, LINUX_IP, OUR_IP)
    assert data.flags == ACK | PSH
    assert bytes(data.payload) == b"hello, wire"
    rst = parse_tcp(_ip_of(FROM_LINUX["rst"]).payload, LINUX_IP, OUR_IP)
    assert (rst.flags, rst.seq, rst.ack, rst.window) == (RST | ACK, 0, 556, 0)


def test_linux_udp_parses_to_its_ports_and_payload() -> None:
    datagram = parse_udp(_ip_of(FROM_LINUX["udp"]).payload, LINUX_IP, OUR_IP)
    assert (datagram.src_port, datagram.dst_port) == (5353, 9999)
    assert bytes(datagram.payload) == b"udp payload!"


def test_linux_port_unreachable_quotes_our_datagram() -> None:
    ip = _ip_of(FROM_LINUX["port unreachable"])
    assert ip.tos == 0xC0  # Linux sends ICMP errors as internetwork control
    message = parse_icmpv4(ip.payload)
    assert (message.type, message.code) == (DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE)
    assert message.original is not None
    assert (message.original.src, message.original.dst) == (OUR_IP, LINUX_IP)
    assert message.original.protocol == PROTOCOL_UDP
    quoted = parse_udp(message.original.payload, OUR_IP, LINUX_IP)
    assert (quoted.src_port, quoted.dst_port) == (9999, 5354)
    assert bytes(quoted.payload) == b"to a closed port"


def test_linux_echo_reply_returns_our_ident_seq_and_data() -> None:
    message = parse_icmpv4(_ip_of(FROM_LINUX["echo reply"]).payload)
    assert (message.type, message.ident, message.seq) == (ECHO_REPLY, 0x4242, 7)
    assert bytes(message.payload) == b"ping data 0123456789"


def _checksums(frame: bytes) -> list[tuple[bytes, int]]:
    """(the checksum field's bytes, the reference checksum) of each checksum
    in *frame*, computed over the bytes with the field zeroed."""
    ip = frame[14:]
    header_length = (ip[0] & 0x0F) * 4
    total = int.from_bytes(ip[2:4], "big")
    header, transport = ip[:header_length], ip[header_length:total]
    found = [(header[10:12], reference_checksum(header[:10], b"\0\0", header[12:]))]
    protocol = ip[9]
    src, dst = int.from_bytes(ip[12:16], "big"), int.from_bytes(ip[16:20], "big")
    if protocol == PROTOCOL_TCP:
        pseudo = pseudo_header(src, dst, PROTOCOL_TCP, len(transport))
        field = transport[16:18]
        found.append((field, reference_checksum(pseudo, transport[:16], b"\0\0", transport[18:])))
    elif protocol == PROTOCOL_UDP:
        pseudo = pseudo_header(src, dst, PROTOCOL_UDP, len(transport))
        field = transport[6:8]
        found.append((field, reference_checksum(pseudo, transport[:6], b"\0\0", transport[8:])))
    else:
        found.append((transport[2:4], reference_checksum(transport[:2], b"\0\0", transport[4:])))
    return found


@pytest.mark.parametrize("name", [name for name in FROM_LINUX if name != "arp request"])
def test_every_checksum_linux_computed_matches_the_reference_and_verifies(name: str) -> None:
    for field, expected in _checksums(FROM_LINUX[name]):
        assert field == expected.to_bytes(2, "big")


def _emit_again(frame: bytes) -> bytes:
    """Parse *frame* down to its transport and emit every layer again."""
    ethernet = parse_ethernet(frame)
    head = ethernet_header(ethernet)
    if ethernet.ethertype == ETHERTYPE_ARP:
        return head + arp_header(parse_arp(ethernet.payload))
    ip = parse_ipv4(ethernet.payload)
    if ip.protocol == PROTOCOL_TCP:
        segment = parse_tcp(ip.payload, ip.src, ip.dst)
        parts = [segment.payload]
        transport = tcp_header(segment, ip.src, ip.dst, parts)
    elif ip.protocol == PROTOCOL_UDP:
        datagram = parse_udp(ip.payload, ip.src, ip.dst)
        parts = [datagram.payload]
        transport = udp_header(datagram, ip.src, ip.dst, parts)
    else:
        message = parse_icmpv4(ip.payload)
        parts = [message.payload]
        transport = icmpv4_header(message, parts)
    payload = b"".join(bytes(part) for part in parts)
    return head + ipv4_header(ip, len(transport) + len(payload)) + transport + payload


@pytest.mark.parametrize("name", list(FROM_LINUX))
def test_frames_linux_sent_emit_again_byte_for_byte(name: str) -> None:
    assert _emit_again(FROM_LINUX[name]).hex() == FROM_LINUX[name].hex()


@pytest.mark.parametrize(("frame", "accepted"), SENT_BY_US)
def test_the_emitters_still_build_the_frames_linux_accepted(frame: bytes, accepted: str) -> None:
    assert frame.hex() == accepted


# The live exchange.

_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_SIOCSIFHWADDR = 0x8924
_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_ARPHRD_ETHER = 1
# How long Linux gets to send a frame before the test fails: generous, since a
# loaded machine may be slow; a passing test waits for nothing but the frames.
_PATIENCE = 20.0


class Tap:
    """A TAP device at a random 198.18.x.1/24 (RFC 2544's benchmarking block),
    its MAC LINUX_MAC; we are x.2 with OUR_MAC. Frames are read and written
    through the device's file descriptor; Linux's ARP requests for us are
    answered with our emitter, so every test starts with resolution."""

    def __init__(self, fd: int, name: str, subnet: int) -> None:
        self.fd = fd
        self.name = name
        self.linux_ip = subnet | 1
        self.our_ip = subnet | 2

    def write(self, *parts: bytes) -> None:
        os.writev(self.fd, parts)

    def read(self, wanted: Callable[[bytes], bool], what: str) -> bytes:
        """The next frame from Linux that *wanted* accepts, answering ARP
        requests for our address on the way."""
        while True:
            ready, _, _ = select.select([self.fd], [], [], _PATIENCE)
            assert ready, f"Linux sent no {what} within {_PATIENCE} s"
            frame = os.read(self.fd, 65536)
            if wanted(frame):
                return frame
            self._answer_arp(frame)

    def _answer_arp(self, frame: bytes) -> None:
        ethernet = parse_ethernet(frame)
        if ethernet.ethertype != ETHERTYPE_ARP:
            return
        request = parse_arp(ethernet.payload)
        if request.operation != REQUEST or request.target_ip != self.our_ip:
            return
        reply = ArpPacket(REPLY, OUR_MAC, self.our_ip, request.sender_mac, request.sender_ip)
        self.write(
            ethernet_header(EthernetFrame(request.sender_mac, OUR_MAC, ETHERTYPE_ARP)),
            arp_header(reply),
        )

    def send_ip(self, protocol: int, *transport: bytes, dont_fragment: bool = False) -> None:
        length = sum(len(part) for part in transport)
        packet = Ipv4Packet(
            self.our_ip, self.linux_ip, protocol, ident=9, dont_fragment=dont_fragment
        )
        self.write(
            ethernet_header(EthernetFrame(LINUX_MAC, OUR_MAC, ETHERTYPE_IPV4)),
            ipv4_header(packet, length),
            *transport,
        )

    def read_ip(self, protocol: int, what: str) -> Ipv4Packet:
        """The next IPv4 packet of *protocol* from Linux."""

        def wanted(frame: bytes) -> bool:
            return frame[12:14] == b"\x08\x00" and frame[23] == protocol

        frame = self.read(wanted, what)
        return parse_ipv4(parse_ethernet(frame).payload)

    def read_tcp(self, accept: Callable[[TcpSegment], bool], what: str) -> TcpSegment:
        """The next TCP segment from Linux that *accept* accepts (a SYN
        retransmitted while the machine is slow is not the ACK we wait for)."""
        while True:
            ip = self.read_ip(PROTOCOL_TCP, what)
            segment = parse_tcp(ip.payload, ip.src, ip.dst)
            if accept(segment):
                return segment


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s24s", name.encode(), payload)


@pytest.fixture
def tap() -> Iterator[Tap]:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as error:
        pytest.skip(f"needs /dev/net/tun to create a TAP device: {error}")
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, fd)
        try:
            answer = fcntl.ioctl(
                fd, _TUNSETIFF, struct.pack("16sH", b"swire%d", _IFF_TAP | _IFF_NO_PI)
            )
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EACCES):
                raise
            pytest.skip("needs CAP_NET_ADMIN to create a TAP device")
        name = answer[:16].rstrip(b"\0").decode()
        subnet = (198 << 24) | (18 << 16) | (random.randrange(256) << 8)
        with (
            contextlib.suppress(FileNotFoundError),
            open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as knob,
        ):
            knob.write("1")  # no IPv6 router solicitations in the way
        control = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sockaddr_mac = struct.pack("H6s", _ARPHRD_ETHER, LINUX_MAC)
        fcntl.ioctl(control, _SIOCSIFHWADDR, _ifreq(name, sockaddr_mac))
        linux_ip = socket.inet_aton(format_address(subnet | 1))
        fcntl.ioctl(control, _SIOCSIFADDR, _ifreq(name, struct.pack("HH4s", 2, 0, linux_ip)))
        netmask = socket.inet_aton("255.255.255.0")
        fcntl.ioctl(control, _SIOCSIFNETMASK, _ifreq(name, struct.pack("HH4s", 2, 0, netmask)))
        flags = struct.unpack_from("H", fcntl.ioctl(control, _SIOCGIFFLAGS, _ifreq(name)), 16)[0]
        fcntl.ioctl(control, _SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags | _IFF_UP)))
        yield Tap(fd, name, subnet)


def test_linux_takes_our_arp_reply_syn_ack_and_data_and_sends_data_we_parse(tap: Tap) -> None:
    with socket.socket() as client:
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect((format_address(tap.our_ip), 8080))
        # The SYN comes only after Linux has taken our ARP reply.
        syn = tap.read_tcp(lambda segment: True, "SYN")
        assert syn.flags == SYN
        assert syn.mss is not None
        assert syn.timestamp is not None
        synack = TcpSegment(
            8080,
            syn.src_port,
            1_000_000,
            (syn.seq + 1) % 2**32,
            SYN | ACK,
            64240,
            mss=1460,
            window_scale=7,
            sack_permitted=True,
            timestamp=(1000, syn.timestamp[0]),
        )
        tap.send_ip(
            PROTOCOL_TCP, tcp_header(synack, tap.our_ip, tap.linux_ip, []), dont_fragment=True
        )
        ack = tap.read_tcp(lambda segment: segment.flags & SYN == 0, "ACK of our SYN-ACK")
        assert (ack.flags, ack.ack) == (ACK, 1_000_001)
        assert client.getpeername() == (format_address(tap.our_ip), 8080)

        client.send(b"hello, wire")
        data = tap.read_tcp(lambda segment: len(segment.payload) > 0, "data segment")
        assert bytes(data.payload) == b"hello, wire"

        # Our data in two parts, the first of odd length.
        reply = TcpSegment(
            8080,
            syn.src_port,
            1_000_001,
            (data.seq + len(data.payload)) % 2**32,
            ACK | PSH,
            502,
            timestamp=(1001, data.timestamp[0] if data.timestamp else 0),
        )
        parts: list[bytes | memoryview] = [b"hi", memoryview(b"! back")]
        header = tcp_header(reply, tap.our_ip, tap.linux_ip, parts)
        tap.send_ip(PROTOCOL_TCP, header, *(bytes(part) for part in parts), dont_fragment=True)
        client.setblocking(True)
        client.settimeout(_PATIENCE)
        assert client.recv(100) == b"hi! back"


def test_linux_takes_our_udp_datagram_and_quotes_the_next_in_a_port_unreachable(
    tap: Tap,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((format_address(tap.linux_ip), 5353))
        server.settimeout(_PATIENCE)
        # Linux resolves us first (its own datagram to us), then takes ours.
        server.sendto(b"udp payload!", (format_address(tap.our_ip), 9999))
        ip = tap.read_ip(PROTOCOL_UDP, "UDP datagram")
        datagram = parse_udp(ip.payload, ip.src, ip.dst)
        assert bytes(datagram.payload) == b"udp payload!"
        parts = [b"odd", b"parts!!"]
        header = udp_header(UdpDatagram(9999, 5353), tap.our_ip, tap.linux_ip, parts)
        tap.send_ip(PROTOCOL_UDP, header, *parts)
        assert server.recvfrom(100) == (b"oddparts!!", (format_address(tap.our_ip), 9999))

    header = udp_header(UdpDatagram(9999, 5353), tap.our_ip, tap.linux_ip, [b"closed"])
    tap.send_ip(PROTOCOL_UDP, header, b"closed")
    ip = tap.read_ip(PROTOCOL_ICMP, "port unreachable")
    message = parse_icmpv4(ip.payload)
    assert (message.type, message.code) == (DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE)
    assert message.original is not None
    assert parse_udp(message.original.payload, tap.our_ip, tap.linux_ip).dst_port == 5353


def test_linux_answers_our_echo_request(tap: Tap) -> None:
    data = b"ping data 0123456789"
    request = icmpv4_header(Icmpv4Message(ECHO_REQUEST, 0, 0x4242, 7), [data])
    tap.send_ip(PROTOCOL_ICMP, request, data)
    ip = tap.read_ip(PROTOCOL_ICMP, "echo reply")
    reply = parse_icmpv4(ip.payload)
    assert (reply.type, reply.ident, reply.seq) == (ECHO_REPLY, 0x4242, 7)
    assert bytes(reply.payload) == data
