"""IPv4 (RFC 791): the header, its checksum, fragmentation fields, addresses.

**Checks.** A packet is :class:`Malformed` if it is shorter than 20 bytes, its
version is not 4, its header length (IHL) is under 20 bytes, its total length
is under its header length or over the bytes received (a truncated packet), its
header checksum is wrong, or it is a fragment that would end past byte 65535
of its datagram (the "ping of death"). Bytes past the total length are the
link's padding (a minimum-size Ethernet frame) and are not part of the payload.

**Options** (IHL over 5) are accepted and not interpreted: their bytes are
exposed as ``options`` (a view) and the payload starts after them. The stack
sends none; Linux ignores most of them too, and the ones it acts on (source
routing, record route) are for routers.

**Fragmentation fields** are exposed as they are: ``ident``,
``dont_fragment``, ``more_fragments`` and ``fragment_offset`` *in bytes* (the
field counts 8-byte units). Reassembly is the interface's job. The reserved
flag bit (RFC 791's bit 0, RFC 3514's "evil bit") is ignored, as Linux does.

**Addresses** are ints (``0x0A000001`` for 10.0.0.1): cheap to compare, hash
and mask, and what the pseudo-header sums. :func:`parse_address` and
:func:`format_address` convert from and to dotted quads.

The emitter computes the header checksum from the field values (ten 16-bit
words, summed as ints), which is faster than packing the header, summing the
bytes and packing it again.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

from ._views import EMPTY
from .checksum import ones_sum, verify
from .errors import Malformed

__all__ = [
    "HEADER_LENGTH",
    "PROTOCOL_ICMP",
    "PROTOCOL_TCP",
    "PROTOCOL_UDP",
    "Ipv4Packet",
    "format_address",
    "ipv4_header",
    "parse_address",
    "parse_ipv4",
]

#: The length of a header without options.
HEADER_LENGTH = 20
#: IP protocol number of ICMP.
PROTOCOL_ICMP = 1
#: IP protocol number of TCP.
PROTOCOL_TCP = 6
#: IP protocol number of UDP.
PROTOCOL_UDP = 17

_DF = 0x4000
_MF = 0x2000
# version/IHL, TOS, total length, ident, flags/fragment offset, TTL, protocol,
# checksum, source, destination
_HEADER = struct.Struct("!BBHHHBBHII")


@attrs.define(slots=True)
class Ipv4Packet:
    """An IPv4 header's fields, and the payload after it.

    Parsed, ``payload`` is a view of the packet's payload (up to its total
    length) and ``options`` a view of the raw options (empty without). To
    emit, give the fields; ``options`` are sent as given (a multiple of 4
    bytes, at most 40); ``payload`` is not used (its length is an argument
    of :func:`ipv4_header`, the bytes are sent after the header).
    """

    src: int
    dst: int
    protocol: int
    ttl: int = 64
    ident: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    #: In bytes from the start of the datagram's payload: a multiple of 8.
    fragment_offset: int = 0
    #: The type-of-service byte: DSCP << 2 | ECN.
    tos: int = 0
    options: memoryview = EMPTY
    payload: memoryview = EMPTY

    @property
    def header_length(self) -> int:
        """The header's length in bytes, options included."""
        return HEADER_LENGTH + len(self.options)


def parse_ipv4(data: memoryview, *, verify_checksum: bool = True) -> Ipv4Packet:
    """Parse an IPv4 packet (an Ethernet payload); payload and options are
    views into *data*. Raises :class:`Malformed`.

    ``verify_checksum=False`` skips the header checksum (for a device that
    has verified it already).
    """
    length = len(data)
    if length < HEADER_LENGTH:
        raise Malformed("ipv4: shorter than 20 bytes")
    version_ihl, tos, total, ident, flags_offset, ttl, protocol, _, src, dst = _HEADER.unpack_from(
        data
    )
    if version_ihl >> 4 != 4:
        raise Malformed("ipv4: version is not 4")
    header_length = (version_ihl & 0x0F) << 2
    if header_length < HEADER_LENGTH:
        raise Malformed("ipv4: header length < 20")
    if total < header_length:
        raise Malformed("ipv4: total length < header length")
    if total > length:
        raise Malformed("ipv4: total length > bytes received")
    if verify_checksum and not verify(data[:header_length]):
        raise Malformed("ipv4: bad checksum")
    fragment_offset = (flags_offset & 0x1FFF) << 3
    if fragment_offset + total - header_length > 0xFFFF:
        raise Malformed("ipv4: fragment ends past byte 65535")
    return Ipv4Packet(
        src,
        dst,
        protocol,
        ttl,
        ident,
        flags_offset & _DF != 0,
        flags_offset & _MF != 0,
        fragment_offset,
        tos,
        data[HEADER_LENGTH:header_length] if header_length > HEADER_LENGTH else EMPTY,
        data[header_length:total],
    )


def ipv4_header(packet: Ipv4Packet, payload_length: int) -> bytes:
    """The header of *packet* followed by *payload_length* bytes of payload,
    with its checksum. Raises ``ValueError`` for options of a bad length, a
    fragment offset that is not a multiple of 8, or a packet over 65535 bytes.
    """
    options = packet.options
    header_length = HEADER_LENGTH + len(options)
    if options and (len(options) & 3 or header_length > 60):
        raise ValueError(f"IPv4 options must be a multiple of 4 bytes, at most 40: {len(options)}")
    total = header_length + payload_length
    if total > 0xFFFF:
        raise ValueError(f"an IPv4 packet is at most 65535 bytes, this one would be {total}")
    offset = packet.fragment_offset
    if offset & 7:
        raise ValueError(f"a fragment offset is a multiple of 8 bytes, got {offset}")
    flags_offset = offset >> 3
    if packet.dont_fragment:
        flags_offset |= _DF
    if packet.more_fragments:
        flags_offset |= _MF
    version_ihl = 0x40 | header_length >> 2
    src = packet.src
    dst = packet.dst
    tos = packet.tos
    ttl = packet.ttl
    protocol = packet.protocol
    # Hot path: the checksum from the field values, the header packed once.
    total_sum = (
        (version_ihl << 8 | tos)
        + total
        + packet.ident
        + flags_offset
        + (ttl << 8 | protocol)
        + (src >> 16)
        + (src & 0xFFFF)
        + (dst >> 16)
        + (dst & 0xFFFF)
    )
    if options:
        total_sum += ones_sum(options)
    while total_sum > 0xFFFF:
        total_sum = (total_sum & 0xFFFF) + (total_sum >> 16)
    header = _HEADER.pack(
        version_ihl,
        tos,
        total,
        packet.ident,
        flags_offset,
        ttl,
        protocol,
        ~total_sum & 0xFFFF,
        src,
        dst,
    )
    if options:
        return header + bytes(options)
    return header


def parse_address(text: str) -> int:
    """``"10.0.0.1"`` -> ``0x0A000001``; ``ValueError`` for anything but a dotted quad."""
    try:
        return int(ipaddress.IPv4Address(text))
    except ipaddress.AddressValueError as error:
        raise ValueError(f"not an IPv4 address (like 10.0.0.1): {text!r}: {error}") from None


def format_address(address: int) -> str:
    """``0x0A000001`` -> ``"10.0.0.1"``."""
    if not 0 <= address <= 0xFFFFFFFF:
        raise ValueError(f"an IPv4 address is an int in 0..2**32-1, got {address}")
    return f"{address >> 24}.{address >> 16 & 0xFF}.{address >> 8 & 0xFF}.{address & 0xFF}"
