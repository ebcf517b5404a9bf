"""Hostile frames into the interface: random bytes and random mutations of
valid frames never make ``receive`` raise; every frame is accounted for; and
whatever the interface sends in answer is itself a well-formed frame."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardio_net.native.iface import (
    EchoReplyIngress,
    IcmpErrorIngress,
    Interface,
    TcpIngress,
    UdpIngress,
)
from shardio_net.native.wire.arp import REQUEST
from shardio_net.native.wire.ethernet import BROADCAST
from shardio_net.native.wire.icmpv4 import (
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    Icmpv4Message,
    icmpv4_header,
)
from shardio_net.native.wire.ipv4 import PROTOCOL_ICMP, PROTOCOL_UDP, Ipv4Packet, ipv4_header
from shardio_net.native.wire.tcp import ACK, SYN, TcpSegment

from ._iface import (
    MAC_PEER,
    MAC_US,
    PEER,
    US,
    arp_frame,
    arp_reply,
    echo_request_frame,
    interface,
    ip_frame,
    resolved,
    sent,
    tcp_frame,
    udp_frame,
    udp_payload,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LAYERS = ("ethernet:", "arp:", "ipv4:", "icmpv4:", "udp:", "tcp:", "route:")


def _icmp_error() -> bytes:
    quoted = ipv4_header(Ipv4Packet(US, PEER, PROTOCOL_UDP), 8) + udp_payload(US, PEER, 1, 2, b"")
    return icmpv4_header(Icmpv4Message(DESTINATION_UNREACHABLE, 3), [quoted]) + quoted


_FRAGMENTED = udp_payload(PEER, US, 1, 2, bytes(80))
VALID = [
    bytes(arp_frame(REQUEST, MAC_PEER, PEER, US)),
    bytes(arp_reply(MAC_PEER, PEER)),
    bytes(echo_request_frame(1, 2, b"ping" * 10)),
    bytes(udp_frame(b"datagram")),
    bytes(udp_frame(b"to all", dst=0xFFFFFFFF, dst_mac=BROADCAST)),
    bytes(tcp_frame(TcpSegment(1, 2, 3, 4, SYN, 5, mss=1460, window_scale=7, timestamp=(1, 0)))),
    bytes(tcp_frame(TcpSegment(1, 2, 3, 4, ACK, 5, sack_blocks=((10, 20),)), b"data")),
    bytes(ip_frame(_icmp_error(), protocol=PROTOCOL_ICMP)),
    bytes(
        ip_frame(
            icmpv4_header(Icmpv4Message(ECHO_REPLY, 0, 1, 1), [b"x"]) + b"x",
            protocol=PROTOCOL_ICMP,
        )
    ),
    bytes(ip_frame(b"\x00" * 40, protocol=132)),
    bytes(ip_frame(_FRAGMENTED[:64], protocol=PROTOCOL_UDP, ident=9, more_fragments=True)),
    bytes(ip_frame(_FRAGMENTED[64:], protocol=PROTOCOL_UDP, ident=9, fragment_offset=64)),
]

INGRESS = (TcpIngress, UdpIngress, IcmpErrorIngress, EchoReplyIngress)


def check(iface: Interface, frames: list[bytes], start: float = 0.0) -> None:
    """Feed ``frames`` one per 10 ms (and the timers); check what comes out."""
    now = start
    before = iface.statistics().frames_received
    for raw in frames:
        frame = memoryview(raw)
        packet = iface.receive(frame, now)
        assert packet is None or isinstance(packet, INGRESS)
        if isinstance(packet, TcpIngress):
            assert packet.dst == US
        now += 0.01
        if iface.next_deadline() <= now:
            iface.on_timer(now)
        # Everything sent in answer parses, checksums and all.
        for out in sent(iface.frames()):
            assert out.ethernet.src == MAC_US
            if out.ip is not None:
                assert out.ip.src == US
    iface.on_timer(now + 100.0)
    sent(iface.frames())
    stats = iface.statistics()
    assert stats.frames_received == before + len(frames)
    assert all(reason.startswith(LAYERS) for reason in stats.dropped)
    assert (stats.reassembly_datagrams, stats.reassembly_memory) == (0, 0)


def _random_frame() -> st.SearchStrategy[bytes]:
    """Random bytes, often behind a header that gets them past Ethernet."""
    ours = MAC_US + MAC_PEER
    header = st.sampled_from(
        [b"", ours + b"\x08\x00", ours + b"\x08\x06", BROADCAST + MAC_PEER + b"\x08\x00"]
    )
    return st.builds(lambda h, body: h + body, header, st.binary(max_size=200))


@FUZZ
@given(st.lists(_random_frame(), max_size=20), st.booleans())
def test_random_frames_never_raise_and_are_all_accounted_for(frames, verify):
    check(resolved(interface(verify_checksums=verify)), frames)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "extend"]))
        if kind == "truncate":
            del frame[draw(st.integers(0, len(frame))) :]
        elif kind == "extend":
            frame += draw(st.binary(min_size=1, max_size=30))
        elif frame:
            index = draw(st.integers(0, len(frame) - 1))
            if kind == "flip":
                frame[index] ^= 1 << draw(st.integers(0, 7))
            else:
                frame[index] = draw(st.integers(0, 255))
    return bytes(frame)


@FUZZ
@given(st.lists(_mutated(), max_size=20), st.booleans())
def test_mutated_valid_frames_never_raise_and_are_all_accounted_for(frames, verify):
    # Without checksums, a mutation reaches every layer's checks.
    check(resolved(interface(verify_checksums=verify)), frames)


@FUZZ
@given(st.lists(_mutated(), max_size=20))
def test_mutated_frames_to_an_interface_that_knows_nobody_never_raise(frames):
    check(interface(verify_checksums=False, arp_retries=0, arp_pending_limit=2), frames)


def test_the_valid_frames_the_mutations_start_from_are_all_used():
    iface = resolved(interface())
    handed_up = [iface.receive(memoryview(frame), 1.0) for frame in VALID]

    assert [type(packet).__name__ for packet in handed_up] == [
        "NoneType",  # ARP request: answered
        "NoneType",  # ARP reply: learned
        "NoneType",  # echo request: answered
        "UdpIngress",
        "UdpIngress",
        "TcpIngress",
        "TcpIngress",
        "IcmpErrorIngress",
        "EchoReplyIngress",
        "NoneType",  # SCTP: protocol unreachable
        "NoneType",  # the first fragment
        "UdpIngress",  # the second: the datagram whole
    ]
    stats = iface.statistics()
    assert stats.dropped == {"ipv4: unsupported protocol": 1}
    # Two ARP replies: to resolved()'s request, and to this one.
    assert (stats.arp_replies_sent, stats.echo_replies_sent, stats.icmp_errors_sent) == (2, 1, 1)
