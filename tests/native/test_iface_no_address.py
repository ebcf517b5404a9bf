"""An interface with no address yet (0.0.0.0, waiting for DHCP), and one given
an address, another, or none by ``reconfigure``: what it sends, takes and
refuses, sans-io."""

from __future__ import annotations

import attrs
import pytest

from shardio_net.native.iface import InterfaceConfig, UdpIngress
from shardio_net.native.wire.arp import REQUEST
from shardio_net.native.wire.ethernet import BROADCAST
from shardio_net.native.wire.ipv4 import PROTOCOL_UDP, parse_address
from shardio_net.native.wire.tcp import SYN, TcpSegment
from shardio_net.native.wire.udp import UdpDatagram, udp_header

from ._iface import (
    MAC_OTHER,
    MAC_PEER,
    MAC_US,
    PEER,
    US,
    arp_frame,
    drain,
    echo_request_frame,
    interface,
    ip_frame,
    tcp_frame,
    udp_frame,
)

LIMITED = 0xFFFFFFFF
OFFERED = parse_address("10.0.0.57")


def _unconfigured(**overrides: object):
    return interface(address=0, gateway=None, **overrides)


def _udp(iface, dst: int, port: int = 68) -> bool:
    header = udp_header(UdpDatagram(port, 67), iface.config.address, dst, [b"hello"])
    return iface.send_ip(dst, PROTOCOL_UDP, [header, b"hello"], 0.0, dont_fragment=False)


def test_with_no_address_it_sends_to_the_limited_broadcast_from_0_0_0_0() -> None:
    iface = _unconfigured()
    assert _udp(iface, LIMITED)
    [frame] = drain(iface)
    assert frame.ethernet.dst == BROADCAST and frame.ethernet.src == MAC_US
    assert frame.ip is not None and (frame.ip.src, frame.ip.dst) == (0, LIMITED)


def test_with_no_address_every_other_destination_is_refused_and_counted() -> None:
    iface = _unconfigured()
    assert not _udp(iface, PEER)
    assert not _udp(iface, parse_address("192.0.2.7"))
    assert drain(iface) == []
    assert iface.statistics().dropped == {"route: no address yet (only 255.255.255.255)": 2}


def test_with_no_address_nothing_is_announced_and_no_arp_is_answered() -> None:
    iface = _unconfigured(gratuitous_arp=True)
    # A request for 0.0.0.0, an RFC 5227 probe for it, and one for a neighbour.
    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, 0), 0.0)
    iface.receive(arp_frame(REQUEST, MAC_PEER, 0, 0), 0.0)
    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, OFFERED), 0.0)
    assert drain(iface) == []
    assert iface.statistics().dropped == {"arp: no address yet": 3}
    assert iface.statistics().arp_entries == 0


def test_with_no_address_udp_to_our_mac_is_taken_whatever_its_destination() -> None:
    # A DHCP server may send its offer to the offered address, at our MAC.
    iface = _unconfigured()
    packet = iface.receive(udp_frame(b"offer", dst=OFFERED), 0.0)
    assert isinstance(packet, UdpIngress)
    assert (packet.src, packet.dst, bytes(packet.datagram.payload)) == (PEER, OFFERED, b"offer")
    broadcast = iface.receive(udp_frame(b"offer", dst=LIMITED, dst_mac=BROADCAST), 0.0)
    assert isinstance(broadcast, UdpIngress) and broadcast.dst == LIMITED


def test_with_no_address_all_else_to_a_unicast_address_is_dropped() -> None:
    iface = _unconfigured()
    assert iface.receive(udp_frame(b"not ours", dst=OFFERED, dst_mac=BROADCAST), 0.0) is None
    assert iface.receive(udp_frame(b"not ours", dst=OFFERED, dst_mac=MAC_OTHER), 0.0) is None
    syn = TcpSegment(5000, 80, 1, 0, SYN, 65535)
    assert iface.receive(tcp_frame(syn, dst=OFFERED), 0.0) is None
    assert iface.receive(echo_request_frame(1, 1, b"ping", dst=OFFERED), 0.0) is None
    assert iface.receive(ip_frame(b"?", protocol=99, dst=OFFERED), 0.0) is None
    assert drain(iface) == []  # no answers: no echo reply, no ICMP error
    assert iface.statistics().dropped == {
        "ethernet: for another host": 1,
        "ipv4: not our address": 4,
    }


def test_an_interface_with_no_address_has_no_gateway() -> None:
    with pytest.raises(ValueError, match="no address"):
        InterfaceConfig(mac=MAC_US, address=0, gateway=PEER)


def test_reconfigure_gives_an_address_announces_it_and_routes_by_it() -> None:
    iface = _unconfigured(gratuitous_arp=True)
    iface.reconfigure(attrs.evolve(iface.config, address=OFFERED, prefix_length=24))
    [announcement] = drain(iface)
    assert announcement.arp is not None
    assert announcement.arp.sender_ip == announcement.arp.target_ip == OFFERED
    # ARP for the new address is answered, and datagrams go out from it.
    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, OFFERED), 0.0)
    [reply] = drain(iface)
    assert reply.arp is not None and reply.arp.sender_ip == OFFERED
    assert _udp(iface, PEER)
    [frame] = drain(iface)
    assert frame.ip is not None and (frame.ip.src, frame.ip.dst) == (OFFERED, PEER)
    assert frame.ethernet.dst == MAC_PEER
    # A unicast datagram for another address is no longer taken.
    assert iface.receive(udp_frame(b"x", dst=parse_address("10.0.0.58")), 0.0) is None


def test_reconfigure_to_no_address_forgets_the_neighbours_and_their_waiting_frames() -> None:
    iface = interface()
    assert _udp(iface, PEER)  # waits for ARP
    drain(iface)
    iface.reconfigure(attrs.evolve(iface.config, address=0, gateway=None))
    assert iface.statistics().dropped == {"arp: address changed": 1}
    assert iface.statistics().arp_entries == 0
    assert drain(iface) == []
    assert not _udp(iface, PEER)
    assert iface.receive(udp_frame(b"x", dst=US), 0.0) is not None  # to our MAC: DHCP's way


def test_reconfigure_changes_only_the_address_prefix_and_gateway() -> None:
    iface = interface()
    with pytest.raises(ValueError, match="address, prefix_length and gateway only"):
        iface.reconfigure(attrs.evolve(iface.config, address=OFFERED, mtu=1400))
    with pytest.raises(ValueError, match="not in the interface's subnet"):
        attrs.evolve(iface.config, address=parse_address("192.168.0.2"))
    assert iface.config.address == US


def test_a_datagram_from_0_0_0_0_to_the_limited_broadcast_is_taken_as_linux_takes_it() -> None:
    # A DHCP client's DISCOVER, seen by a server on the native stack.
    iface = interface()
    packet = iface.receive(udp_frame(b"discover", src=0, dst=LIMITED, dst_mac=BROADCAST), 0.0)
    assert isinstance(packet, UdpIngress) and packet.src == 0
    # To any other destination, 0.0.0.0 is still a martian source.
    assert iface.receive(udp_frame(b"x", src=0, dst=US), 0.0) is None
    assert iface.statistics().dropped == {"ipv4: martian source": 1}
