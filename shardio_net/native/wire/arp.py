"""ARP (RFC 826) for IPv4 over Ethernet: requests and replies.

An ARP packet is 28 bytes: hardware type 1 (Ethernet), protocol type 0x0800
(IPv4), address lengths 6 and 4, the operation, then the sender's and the
target's MAC and IPv4 addresses. Any other hardware or protocol type, address
length or operation (RARP's 3 and 4, InARP's 8 and 9) is :class:`Malformed`
here: the stack resolves IPv4 on Ethernet and nothing else. Bytes after the 28
(the padding of a minimum-size Ethernet frame) are ignored.

A gratuitous ARP (RFC 5227's announcement) is an ordinary request whose sender
and target IPv4 addresses are both the sender's; nothing here tells it apart.
"""

from __future__ import annotations

import struct

import attrs

from .errors import Malformed

__all__ = ["LENGTH", "REPLY", "REQUEST", "ArpPacket", "arp_header", "parse_arp"]

#: The operation of a request ("who has target_ip?").
REQUEST = 1
#: The operation of a reply ("sender_ip is at sender_mac").
REPLY = 2
#: The length of an ARP packet for IPv4 over Ethernet.
LENGTH = 28

# htype, ptype, hlen, plen, op, sha, spa, tha, tpa
_PACKET = struct.Struct("!HHBBH6sI6sI")
# The first 6 bytes for IPv4 over Ethernet.
_PREFIX = b"\x00\x01\x08\x00\x06\x04"


@attrs.define(slots=True)
class ArpPacket:
    """An ARP request or reply: MACs as 6-byte ``bytes``, IPv4 addresses as ints.

    In a request, ``target_mac`` is what the sender put there (zeros, usually).
    """

    operation: int
    sender_mac: bytes
    sender_ip: int
    target_mac: bytes
    target_ip: int


def parse_arp(data: memoryview) -> ArpPacket:
    """Parse an ARP packet (an Ethernet payload); raises :class:`Malformed`."""
    if len(data) < LENGTH:
        raise Malformed("arp: shorter than 28 bytes")
    if data[:6] != _PREFIX:
        raise Malformed("arp: not IPv4 over Ethernet")
    _, _, _, _, operation, sender_mac, sender_ip, target_mac, target_ip = _PACKET.unpack_from(data)
    if operation != REQUEST and operation != REPLY:
        raise Malformed("arp: operation is neither request nor reply")
    return ArpPacket(operation, sender_mac, sender_ip, target_mac, target_ip)


def arp_header(packet: ArpPacket) -> bytes:
    """The whole 28-byte ARP packet (ARP has no payload beyond its header)."""
    if len(packet.sender_mac) != 6 or len(packet.target_mac) != 6:
        raise ValueError(
            f"MAC addresses are 6 bytes, got {len(packet.sender_mac)} (sender) "
            f"and {len(packet.target_mac)} (target)"
        )
    return _PACKET.pack(
        1,
        0x0800,
        6,
        4,
        packet.operation,
        packet.sender_mac,
        packet.sender_ip,
        packet.target_mac,
        packet.target_ip,
    )
