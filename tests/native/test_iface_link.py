"""Two interfaces back to back on a simulated link, through a fault injector:
pings and UDP datagrams, ARP with its first request lost, fragments through
a network that duplicates and reorders. Time is the ``now`` the driver
advances from one deadline to the next, as a stack's task would."""

from __future__ import annotations

from math import inf

import attrs

from shardio_net.native.iface import EchoReplyIngress, Interface, InterfaceConfig, UdpIngress
from shardio_net.native.phy import Device, FaultInjector, SimulatedLink
from shardio_net.native.wire.arp import REQUEST, parse_arp
from shardio_net.native.wire.ethernet import ETHERTYPE_ARP, parse_ethernet
from shardio_net.native.wire.ipv4 import PROTOCOL_UDP

from ._iface import PEER, US, udp_payload


@attrs.define
class Host:
    """An interface on a device, driven the way the stack drives it; what
    ``receive`` hands up is kept in ``inbox`` as (time, packet)."""

    device: Device
    iface: Interface
    inbox: list[tuple[float, object]] = attrs.field(factory=list)
    #: Every frame this host's device delivered, as bytes.
    heard: list[bytes] = attrs.field(factory=list)

    def deadline(self) -> float:
        return min(self.device.next_deadline(), self.iface.next_deadline())

    def step(self, now: float) -> None:
        for frame in self.device.receive(now):
            self.heard.append(bytes(frame))
            packet = self.iface.receive(frame, now)
            if packet is not None:
                self.inbox.append((now, packet))
        if now >= self.iface.next_deadline():
            self.iface.on_timer(now)
        self.flush(now)

    def flush(self, now: float) -> None:
        frames = self.iface.frames()
        if frames:
            self.device.transmit(frames, now)


def run(hosts: list[Host], until: float) -> None:
    """Step every host at every deadline up to ``until``."""
    while (now := min(host.deadline() for host in hosts)) <= until:
        assert now < inf
        for host in hosts:
            host.step(now)


def pair(
    *, latency: float = 0.001, mtu: int = 1500, both_ways: bool = False, seed: int = 0, **faults
) -> tuple[Host, Host, FaultInjector]:
    """Host a (10.0.0.1) and host b (10.0.0.2) on a link; b's receive path
    goes through a fault injector made with ``faults`` (returned), and a's
    too (seeded apart) if ``both_ways``."""
    link = SimulatedLink(latency=latency, mtu=mtu)
    device_a: Device = link.attach()
    if both_ways:
        device_a = FaultInjector(device_a, seed=seed + 1, **faults)
    injector = FaultInjector(link.attach(), seed=seed, **faults)
    a = Host(device_a, Interface(InterfaceConfig(mac=device_a.mac, address=US, mtu=mtu), 0.0))
    b = Host(injector, Interface(InterfaceConfig(mac=injector.mac, address=PEER, mtu=mtu), 0.0))
    a.flush(0.0)
    b.flush(0.0)
    return a, b, injector


def replies(host: Host) -> list[int]:
    return [packet.seq for _, packet in host.inbox if isinstance(packet, EchoReplyIngress)]


def udp_received(host: Host) -> list[bytes]:
    return [
        bytes(packet.datagram.payload) for _, packet in host.inbox if isinstance(packet, UdpIngress)
    ]


def send_udp(host: Host, dst: int, data: bytes, now: float) -> bool:
    src = host.iface.config.address
    datagram = udp_payload(src, dst, 4000, 5000, data)
    return host.iface.send_ip(dst, PROTOCOL_UDP, [datagram], now, dont_fragment=False)


def test_a_ping_across_the_link_is_answered_after_arp_resolves_both_ways():
    a, b, _ = pair()
    run([a, b], 0.5)  # the gratuitous ARPs cross

    assert a.iface.send_echo_request(PEER, 1, 1, b"hello", 1.0)
    a.flush(1.0)
    run([a, b], 2.0)

    assert replies(a) == [1]
    [(_, reply)] = a.inbox
    assert bytes(reply.data) == b"hello"
    stats_a, stats_b = a.iface.statistics(), b.iface.statistics()
    # a asked for b; b learned a from that request, so it needed no request of its own.
    assert stats_a.arp_requests_sent == 2  # the gratuitous ARP and the request for b
    assert stats_b.arp_requests_sent == 1  # its gratuitous ARP only
    assert stats_b.echo_replies_sent == 1
    # Each heard the other's gratuitous ARP: "for another host", nothing
    # learned from it (neither knew the other yet), counted.
    assert stats_a.dropped == stats_b.dropped == {"arp: for another host": 1}


def test_a_lost_first_arp_request_is_retried_and_the_ping_gets_through():
    a, b, injector = pair(loss=1.0)
    run([a, b], 0.5)
    a.iface.send_echo_request(PEER, 1, 1, b"x", 1.0)
    a.flush(1.0)
    run([a, b], 1.5)
    assert injector.statistics().lost == 2  # a's gratuitous ARP and its first request
    assert replies(a) == []

    injector.loss = 0.0
    run([a, b], 3.0)

    assert replies(a) == [1]
    requests = [
        parse_arp(frame.payload)
        for frame in map(parse_ethernet, b.heard)
        if frame.ethertype == ETHERTYPE_ARP
    ]
    assert [(r.operation, r.target_ip) for r in requests] == [(REQUEST, PEER)]
    assert a.iface.statistics().arp_requests_sent == 3


def test_pings_and_udp_both_ways_through_duplication_reordering_and_jitter():
    a, b, _ = pair(
        duplicate=0.2,
        reorder=0.2,
        reorder_delay=0.025,
        delay=0.002,
        jitter=0.003,
        seed=7,
        both_ways=True,
    )
    run([a, b], 0.5)
    now = 1.0
    for number in range(50):
        a.iface.send_echo_request(PEER, 9, number, number.to_bytes(2, "big"), now)
        send_udp(a, PEER, b"a->b %d" % number, now)
        send_udp(b, US, b"b->a %d" % number, now)
        a.flush(now)
        b.flush(now)
        now += 0.01
        run([a, b], now)
    run([a, b], now + 5.0)

    assert set(replies(a)) == set(range(50))
    assert set(udp_received(b)) == {b"a->b %d" % n for n in range(50)}
    assert set(udp_received(a)) == {b"b->a %d" % n for n in range(50)}
    # The network did reorder and duplicate, both ways.
    for host in (a, b):
        numbers = [int(data.split()[1]) for data in udp_received(host)]
        assert numbers != sorted(numbers)
        assert len(numbers) > len(set(numbers))


def test_large_datagrams_go_in_fragments_and_arrive_whole_through_a_bad_network():
    a, b, _ = pair(duplicate=0.1, reorder=0.3, delay=0.001, jitter=0.002, seed=3, mtu=576)
    run([a, b], 0.5)
    payloads = [bytes([n]) * (1000 + 997 * n) for n in range(8)]
    now = 1.0
    for payload in payloads:
        assert send_udp(a, PEER, payload, now)
        a.flush(now)
        now += 0.05
        run([a, b], now)
    run([a, b], now + 5.0)

    assert set(udp_received(b)) == set(payloads)
    stats = b.iface.statistics()
    assert stats.datagrams_reassembled >= len(payloads)
    assert stats.dropped.get("ipv4: duplicate fragment", 0) > 0
    # A duplicate that comes after its datagram completed starts one that
    # never will: it waits out the reassembly timeout, then goes.
    run([a, b], now + 40.0)
    stats = b.iface.statistics()
    assert stats.reassembly_timeouts > 0
    assert (stats.reassembly_datagrams, stats.reassembly_memory) == (0, 0)


def test_with_loss_only_whole_datagrams_arrive_and_the_rest_time_out():
    a, b, _ = pair(loss=0.1, seed=11, mtu=576)
    run([a, b], 0.5)
    # Make sure a knows b (ARP may itself be lost: retries cover it).
    a.iface.send_echo_request(PEER, 1, 0, b"", 0.5)
    a.flush(0.5)
    run([a, b], 5.0)
    payloads = [bytes([n]) * 3000 for n in range(20)]
    for number, payload in enumerate(payloads):
        now = 5.0 + number * 0.01
        send_udp(a, PEER, payload, now)
        a.flush(now)
        run([a, b], now)
    run([a, b], 100.0)

    received = udp_received(b)
    stats = b.iface.statistics()
    assert 0 < len(received) < len(payloads)
    assert set(received) <= set(payloads)
    assert stats.reassembly_timeouts == len(payloads) - len(received)
    assert stats.reassembly_memory == 0
