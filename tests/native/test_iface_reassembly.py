"""IPv4 reassembly in the interface: orders, duplicates, overlaps, timeouts,
the memory bound, and a round trip through our own fragmentation."""

from __future__ import annotations

import pytest

from shardio_net.native.iface import TcpIngress, UdpIngress
from shardio_net.native.wire.icmpv4 import CODE_REASSEMBLY_TIME_EXCEEDED, TIME_EXCEEDED
from shardio_net.native.wire.ipv4 import PROTOCOL_TCP, PROTOCOL_UDP
from shardio_net.native.wire.tcp import ACK, TcpSegment, tcp_header

from ._iface import (
    MAC_PEER,
    MAC_US,
    PEER,
    US,
    drain,
    interface,
    ip_frame,
    resolved,
    udp_payload,
)

DATA = bytes(range(256)) * 10  # 2560 bytes
DATAGRAM = udp_payload(PEER, US, 5000, 7, DATA)  # 2568 bytes of IP payload


def fragment(
    offset: int, end: int, *, last: bool | None = None, ident: int = 77, payload: bytes = DATAGRAM
):
    """The frame of the fragment carrying ``payload[offset:end]``."""
    if last is None:
        last = end >= len(payload)
    return ip_frame(
        payload[offset:end],
        protocol=PROTOCOL_UDP,
        ident=ident,
        fragment_offset=offset,
        more_fragments=not last,
    )


def test_fragments_in_order_make_the_datagram_when_the_last_arrives():
    iface = interface()

    assert iface.receive(fragment(0, 1000), 0.0) is None
    assert iface.receive(fragment(1000, 2000), 0.1) is None
    packet = iface.receive(fragment(2000, 2568), 0.2)

    assert isinstance(packet, UdpIngress)
    assert bytes(packet.datagram.payload) == DATA
    assert (packet.ip.more_fragments, packet.ip.fragment_offset) == (False, 0)
    stats = iface.statistics()
    assert (stats.fragments_received, stats.datagrams_reassembled) == (3, 1)
    assert (stats.reassembly_datagrams, stats.reassembly_memory) == (0, 0)
    assert iface.next_deadline() == float("inf")


def test_fragments_out_of_order_make_the_same_datagram():
    iface = interface()

    iface.receive(fragment(2000, 2568), 0.0)
    iface.receive(fragment(0, 1000), 0.1)
    packet = iface.receive(fragment(1000, 2000), 0.2)

    assert isinstance(packet, UdpIngress)
    assert bytes(packet.datagram.payload) == DATA


def test_a_duplicate_fragment_is_dropped_alone_and_the_datagram_completes():
    iface = interface()

    iface.receive(fragment(0, 1000), 0.0)
    iface.receive(fragment(0, 1000), 0.1)
    iface.receive(fragment(1000, 2000), 0.2)
    packet = iface.receive(fragment(2000, 2568), 0.3)

    assert isinstance(packet, UdpIngress)
    assert iface.statistics().dropped == {"ipv4: duplicate fragment": 1}


@pytest.mark.parametrize(
    "overlapping",
    [(992, 1504), (0, 1504), (504, 1000), (1000, 2568), (8, 16)],
)
def test_overlapping_fragments_drop_the_whole_datagram(overlapping):
    iface = interface()
    iface.receive(fragment(0, 1000), 0.0)
    iface.receive(fragment(1000, 2000), 0.1)

    assert iface.receive(fragment(*overlapping, last=False), 0.2) is None

    stats = iface.statistics()
    assert stats.dropped == {"ipv4: overlapping fragments (datagram dropped)": 1}
    assert (stats.reassembly_datagrams, stats.reassembly_memory) == (0, 0)
    # What came before is gone: the rest alone does not complete it.
    assert iface.receive(fragment(2000, 2568), 0.3) is None
    assert iface.statistics().reassembly_datagrams == 1


def test_fragments_of_different_datagrams_do_not_mix():
    iface = interface()
    other = udp_payload(PEER, US, 5000, 7, DATA[::-1])

    iface.receive(fragment(0, 1000, ident=1), 0.0)
    iface.receive(fragment(0, 1000, ident=2, payload=other), 0.0)
    iface.receive(fragment(1000, 2568, ident=2, payload=other), 0.0)
    packet = iface.receive(fragment(1000, 2568, ident=1), 0.0)

    assert bytes(packet.datagram.payload) == DATA


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([fragment(0, 1001, last=False)], "ipv4: fragment length not a multiple of 8"),
        ([fragment(1000, 1000, last=False)], "ipv4: empty fragment"),
        (
            [fragment(2000, 2568), fragment(1000, 2000, last=True)],
            "ipv4: fragments disagree on the datagram's length",
        ),
        (
            [fragment(2000, 2568), fragment(2568, 2576, last=False, payload=DATAGRAM + bytes(8))],
            "ipv4: fragment past the datagram's end",
        ),
        (
            [fragment(2000, 2568, last=False), fragment(1000, 1504, last=True)],
            "ipv4: fragment past the datagram's end",
        ),
    ],
)
def test_contradictory_fragments_are_dropped_and_counted(frames, reason):
    iface = interface()

    for frame in frames:
        assert iface.receive(frame, 0.0) is None

    assert iface.statistics().dropped == {reason: 1}
    assert iface.statistics().reassembly_datagrams == 0


def test_an_incomplete_datagram_times_out_and_draws_time_exceeded_quoting_fragment_zero():
    iface = resolved(interface(reassembly_timeout=30.0))
    first = fragment(0, 1000)
    iface.receive(first, 1.0)
    iface.receive(fragment(2000, 2568), 2.0)
    assert iface.next_deadline() == 31.0

    iface.on_timer(30.9)
    assert drain(iface) == []
    iface.on_timer(31.0)

    [error] = drain(iface)
    assert error.ethernet.dst == MAC_PEER
    assert (error.icmp.type, error.icmp.code) == (TIME_EXCEEDED, CODE_REASSEMBLY_TIME_EXCEEDED)
    assert bytes(error.icmp.payload) == bytes(first[14 : 14 + 548])
    stats = iface.statistics()
    assert stats.reassembly_timeouts == 1
    assert stats.dropped == {"ipv4: reassembly timed out": 1}
    assert (stats.reassembly_datagrams, stats.reassembly_memory) == (0, 0)
    assert iface.next_deadline() == float("inf")


def test_a_timed_out_datagram_without_its_first_fragment_draws_no_error():
    iface = resolved(interface(reassembly_timeout=30.0))
    iface.receive(fragment(1000, 2000), 0.0)

    iface.on_timer(30.0)

    assert drain(iface) == []
    assert iface.statistics().reassembly_timeouts == 1


def test_each_fragment_is_charged_its_whole_frame():
    iface = interface()
    frames = [fragment(0, 1000), fragment(1000, 2000)]

    for frame in frames:
        iface.receive(frame, 0.0)

    assert iface.statistics().reassembly_memory == sum(len(frame) for frame in frames)


def test_over_the_memory_bound_the_oldest_incomplete_datagrams_are_evicted():
    size = len(fragment(0, 1000))
    iface = interface(reassembly_memory=2 * size)
    iface.receive(fragment(0, 1000, ident=1), 0.0)
    iface.receive(fragment(0, 1000, ident=2), 0.1)

    iface.receive(fragment(0, 1000, ident=3), 0.2)

    stats = iface.statistics()
    assert stats.dropped == {"ipv4: reassembly memory full (oldest datagram dropped)": 1}
    assert stats.reassembly_datagrams == 2
    assert stats.reassembly_memory <= 2 * size
    # Datagram 1 is gone, 3 completes.
    assert iface.receive(fragment(1000, 2568, ident=1), 0.3) is None
    assert iface.receive(fragment(1000, 2568, ident=3), 0.3) is None  # evicts 2 for room
    assert iface.statistics().reassembly_memory <= 2 * size


def test_a_datagram_that_cannot_fit_the_memory_bound_is_dropped():
    size = len(fragment(0, 1000))
    iface = interface(reassembly_memory=size + 10)
    iface.receive(fragment(0, 1000), 0.0)

    assert iface.receive(fragment(1000, 2000), 0.1) is None

    stats = iface.statistics()
    assert stats.dropped == {"ipv4: fragment over the reassembly memory": 1}
    assert (stats.reassembly_datagrams, stats.reassembly_memory) == (0, 0)


def test_a_datagram_over_65535_bytes_once_whole_is_dropped():
    iface = interface()
    payload = bytes(65535)

    iface.receive(fragment(0, 65000, payload=payload), 0.0)
    assert iface.receive(fragment(65000, 65535, payload=payload), 0.0) is None

    assert iface.statistics().dropped == {"ipv4: reassembled datagram over 65535 bytes": 1}


def test_a_tcp_segment_in_fragments_is_delivered_whole():
    iface = interface()
    segment = TcpSegment(40000, 80, 1, 1, ACK, 1000)
    payload = tcp_header(segment, PEER, US, [DATA]) + DATA
    frames = [
        ip_frame(
            payload[start:end],
            protocol=PROTOCOL_TCP,
            ident=5,
            fragment_offset=start,
            more_fragments=end < len(payload),
        )
        for start, end in ((0, 1480), (1480, len(payload)))
    ]

    assert iface.receive(frames[1], 0.0) is None
    packet = iface.receive(frames[0], 0.0)

    assert isinstance(packet, TcpIngress)
    assert bytes(packet.segment.payload) == DATA


def test_our_own_fragments_reassemble_into_the_datagram_we_sent():
    sender = resolved(interface(mac=MAC_PEER, address=PEER, mtu=576), mac=MAC_US, address=US)
    receiver = interface()
    data = bytes(range(251)) * 40  # 10040 bytes: 19 fragments
    udp = udp_payload(PEER, US, 1234, 4321, data)

    assert sender.send_ip(
        US, PROTOCOL_UDP, [udp[:8], memoryview(udp)[8:]], 1.0, dont_fragment=False
    )
    frames = [memoryview(b"".join(bytes(part) for part in parts)) for parts in sender.frames()]
    assert len(frames) == 19
    packets = [receiver.receive(frame, 1.1) for frame in reversed(frames)]

    assert packets[:-1] == [None] * 18
    assert isinstance(packets[-1], UdpIngress)
    assert bytes(packets[-1].datagram.payload) == data
    assert (packets[-1].datagram.src_port, packets[-1].datagram.dst_port) == (1234, 4321)
