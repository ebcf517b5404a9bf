"""Helpers for the interface tests: addresses, frames a peer would send, and
the frames an interface produced, parsed back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from shardio_net.native.iface import Interface, InterfaceConfig
from shardio_net.native.wire.arp import REPLY, REQUEST, ArpPacket, arp_header, parse_arp
from shardio_net.native.wire.ethernet import (
    BROADCAST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    EthernetFrame,
    ethernet_header,
    parse_ethernet,
)
from shardio_net.native.wire.icmpv4 import (
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
    ipv4_header,
    parse_address,
    parse_ipv4,
)
from shardio_net.native.wire.tcp import TcpSegment, tcp_header
from shardio_net.native.wire.udp import UdpDatagram, udp_header

MAC_US = bytes.fromhex("020000000001")
MAC_PEER = bytes.fromhex("020000000002")
MAC_OTHER = bytes.fromhex("020000000003")
MAC_GATEWAY = bytes.fromhex("0200000000fe")
US = parse_address("10.0.0.1")
PEER = parse_address("10.0.0.2")
OTHER = parse_address("10.0.0.3")
GATEWAY = parse_address("10.0.0.254")
SUBNET_BROADCAST = parse_address("10.0.0.255")
FAR = parse_address("192.0.2.7")
ZERO_MAC = b"\x00" * 6


def interface(now: float = 0.0, **overrides: Any) -> Interface:
    """An interface at 10.0.0.1/24 (MAC_US), gateway 10.0.0.254, without
    the gratuitous ARP unless asked, and with nothing in its output."""
    settings: dict[str, Any] = {
        "mac": MAC_US,
        "address": US,
        "prefix_length": 24,
        "gateway": GATEWAY,
        "gratuitous_arp": False,
    }
    settings.update(overrides)
    return Interface(InterfaceConfig(**settings), now)


def arp_frame(
    operation: int,
    sender_mac: bytes,
    sender_ip: int,
    target_ip: int,
    *,
    target_mac: bytes = ZERO_MAC,
    eth_dst: bytes | None = None,
    eth_src: bytes | None = None,
) -> memoryview:
    """An ARP packet in a frame (to broadcast for a request, to the target
    MAC for a reply, unless ``eth_dst`` says; from the sender's MAC unless
    ``eth_src`` says)."""
    if eth_dst is None:
        eth_dst = BROADCAST if operation == REQUEST else target_mac
    body = arp_header(ArpPacket(operation, sender_mac, sender_ip, target_mac, target_ip))
    source = sender_mac if eth_src is None else eth_src
    return memoryview(ethernet_header(EthernetFrame(eth_dst, source, ETHERTYPE_ARP)) + body)


def arp_reply(sender_mac: bytes, sender_ip: int) -> memoryview:
    """``sender_ip is at sender_mac``, to us."""
    return arp_frame(REPLY, sender_mac, sender_ip, US, target_mac=MAC_US)


def ip_frame(
    payload: bytes,
    *,
    protocol: int,
    src: int = PEER,
    dst: int = US,
    src_mac: bytes = MAC_PEER,
    dst_mac: bytes = MAC_US,
    **fields: Any,
) -> memoryview:
    """An IPv4 packet carrying ``payload`` in a frame; ``fields`` go to the
    IPv4 header (ttl, ident, more_fragments, fragment_offset...)."""
    header = ipv4_header(Ipv4Packet(src, dst, protocol, **fields), len(payload))
    return memoryview(
        ethernet_header(EthernetFrame(dst_mac, src_mac, ETHERTYPE_IPV4)) + header + payload
    )


def udp_payload(src: int, dst: int, src_port: int, dst_port: int, data: bytes) -> bytes:
    """A UDP datagram's bytes, with its checksum."""
    return udp_header(UdpDatagram(src_port, dst_port), src, dst, [data]) + data


def udp_frame(data: bytes, *, src: int = PEER, dst: int = US, **kwargs: Any) -> memoryview:
    """A UDP datagram from port 5000 to port 7 in a frame."""
    return ip_frame(
        udp_payload(src, dst, 5000, 7, data), protocol=PROTOCOL_UDP, src=src, dst=dst, **kwargs
    )


def tcp_frame(
    segment: TcpSegment, data: bytes = b"", *, src: int = PEER, dst: int = US, **kwargs: Any
) -> memoryview:
    """A TCP segment in a frame."""
    payload = tcp_header(segment, src, dst, [data]) + data
    return ip_frame(payload, protocol=PROTOCOL_TCP, src=src, dst=dst, **kwargs)


def echo_request_payload(ident: int, seq: int, data: bytes) -> bytes:
    """An ICMP echo request's bytes."""
    return icmpv4_header(Icmpv4Message(ECHO_REQUEST, 0, ident, seq), [data]) + data


def echo_request_frame(ident: int, seq: int, data: bytes, **kwargs: Any) -> memoryview:
    """An ICMP echo request in a frame."""
    return ip_frame(echo_request_payload(ident, seq, data), protocol=PROTOCOL_ICMP, **kwargs)


@attrs.frozen
class Sent:
    """A frame an interface produced, joined and parsed: ``ethernet``, and
    ``arp`` or ``ip`` (with ``icmp`` for ICMP)."""

    raw: bytes
    ethernet: EthernetFrame
    arp: ArpPacket | None = None
    ip: Ipv4Packet | None = None
    icmp: Icmpv4Message | None = None


def sent(frames: Sequence[Sequence[Any]]) -> list[Sent]:
    """Join and parse frames from ``Interface.frames()``."""
    result = []
    for parts in frames:
        raw = b"".join(bytes(part) for part in parts)
        ethernet = parse_ethernet(memoryview(raw))
        if ethernet.ethertype == ETHERTYPE_ARP:
            result.append(Sent(raw, ethernet, arp=parse_arp(ethernet.payload)))
            continue
        ip = parse_ipv4(ethernet.payload)
        icmp = parse_icmpv4(ip.payload) if ip.protocol == PROTOCOL_ICMP else None
        result.append(Sent(raw, ethernet, ip=ip, icmp=icmp))
    return result


def drain(iface: Interface) -> list[Sent]:
    """What ``iface`` has produced since the last call, parsed."""
    return sent(iface.frames())


def resolved(iface: Interface, mac: bytes = MAC_PEER, address: int = PEER) -> Interface:
    """``iface`` after it learned ``address -> mac`` from a request for us
    (and with its reply drained)."""
    iface.receive(arp_frame(REQUEST, mac, address, iface.config.address), 0.0)
    iface.frames()
    return iface
