"""ICMP for IPv4 (RFC 792): echo request and reply, destination unreachable,
time exceeded.

Every message is 4 bytes of type, code and checksum (over the whole message),
4 bytes whose meaning depends on the type, and a body:

- **Echo request / reply** (types 8 and 0): identifier and sequence number,
  then any data, which a reply returns unchanged.
- **Destination unreachable** (type 3): 16 unused bits and, for code 4
  (fragmentation needed and DF set), the next-hop MTU (RFC 1191); the body
  quotes the original datagram's IP header and at least its first 8 bytes of
  payload (RFC 792; RFC 1812 4.3.2.3 lets routers quote more) -- for TCP and
  UDP, enough to hold both ports, so the stack can find the connection.
- **Time exceeded** (type 11): 32 unused bits, then the same quote.

The parser checks an error's quote as far as the stack needs it -- a whole
IPv4 header followed by at least 8 bytes -- and gives it parsed as
``original`` (an :class:`Ipv4Packet` whose payload is the quoted bytes). The
quoted header's total length describes the original datagram, not the quote,
and its checksum is not verified (Linux does not either). Any other type
(redirect, timestamp, parameter problem...) is :class:`Malformed` with the
reason ``"icmpv4: unsupported type"``: the stack acts on none of them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ._views import EMPTY
from .checksum import internet_checksum, verify
from .errors import Malformed
from .ipv4 import _HEADER as _IPV4_HEADER
from .ipv4 import Ipv4Packet

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CODE_FRAGMENTATION_NEEDED",
    "CODE_HOST_UNREACHABLE",
    "CODE_NET_UNREACHABLE",
    "CODE_PORT_UNREACHABLE",
    "CODE_PROTOCOL_UNREACHABLE",
    "CODE_REASSEMBLY_TIME_EXCEEDED",
    "CODE_TTL_EXCEEDED",
    "DESTINATION_UNREACHABLE",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "HEADER_LENGTH",
    "TIME_EXCEEDED",
    "Icmpv4Message",
    "icmpv4_header",
    "parse_icmpv4",
]

#: The length of the ICMP header: type, code, checksum, and 4 bytes by type.
HEADER_LENGTH = 8

#: Type of an echo reply.
ECHO_REPLY = 0
#: Type of a destination unreachable message.
DESTINATION_UNREACHABLE = 3
#: Type of an echo request.
ECHO_REQUEST = 8
#: Type of a time exceeded message.
TIME_EXCEEDED = 11

#: Destination unreachable: no route to the network.
CODE_NET_UNREACHABLE = 0
#: Destination unreachable: the host does not answer (ARP failed).
CODE_HOST_UNREACHABLE = 1
#: Destination unreachable: the host does not speak the IP protocol.
CODE_PROTOCOL_UNREACHABLE = 2
#: Destination unreachable: nothing listens on the UDP port.
CODE_PORT_UNREACHABLE = 3
#: Destination unreachable: the datagram needs fragmenting and has DF set.
CODE_FRAGMENTATION_NEEDED = 4
#: Time exceeded: the TTL reached zero in transit.
CODE_TTL_EXCEEDED = 0
#: Time exceeded: the fragments of a datagram did not all arrive in time.
CODE_REASSEMBLY_TIME_EXCEEDED = 1

_HEADER = struct.Struct("!BBHI")
# The part of an error's quote the stack needs: the IP header, 8 bytes more.
_QUOTE_MINIMUM = 8


@attrs.define(slots=True)
class Icmpv4Message:
    """An ICMP message of one of the four supported types.

    ``ident`` and ``seq`` belong to echo messages, ``next_hop_mtu`` to
    destination unreachable (code 4); they are 0 for other types. ``payload``
    is the echo data, or the quoted original datagram of an error (a view,
    parsed). ``original`` is that quote, parsed; ``None`` for echo messages.
    The emitter uses neither: the body's parts are given to it separately.
    """

    type: int
    code: int = 0
    ident: int = 0
    seq: int = 0
    next_hop_mtu: int = 0
    payload: memoryview = EMPTY
    original: Ipv4Packet | None = None


def parse_icmpv4(data: memoryview, *, verify_checksum: bool = True) -> Icmpv4Message:
    """Parse an ICMP message (an IPv4 payload); views into *data*. Raises
    :class:`Malformed`."""
    if len(data) < HEADER_LENGTH:
        raise Malformed("icmpv4: shorter than 8 bytes")
    if verify_checksum and not verify(data):
        raise Malformed("icmpv4: bad checksum")
    icmp_type, code, _, rest = _HEADER.unpack_from(data)
    body = data[HEADER_LENGTH:]
    if icmp_type in (ECHO_REQUEST, ECHO_REPLY):
        return Icmpv4Message(icmp_type, code, rest >> 16, rest & 0xFFFF, 0, body)
    if icmp_type == DESTINATION_UNREACHABLE:
        return Icmpv4Message(icmp_type, code, 0, 0, rest & 0xFFFF, body, _parse_quote(body))
    if icmp_type == TIME_EXCEEDED:
        return Icmpv4Message(icmp_type, code, 0, 0, 0, body, _parse_quote(body))
    raise Malformed("icmpv4: unsupported type")


def _parse_quote(body: memoryview) -> Ipv4Packet:
    """The original datagram quoted by an error: a whole header, 8 bytes more."""
    length = len(body)
    if length < 20:
        raise Malformed("icmpv4: quoted header shorter than 20 bytes")
    version_ihl, tos, total, ident, flags_offset, ttl, protocol, _, src, dst = (
        _IPV4_HEADER.unpack_from(body)
    )
    if version_ihl >> 4 != 4:
        raise Malformed("icmpv4: quoted header is not IPv4")
    header_length = (version_ihl & 0x0F) << 2
    if header_length < 20:
        raise Malformed("icmpv4: quoted header length < 20")
    if total < header_length:
        raise Malformed("icmpv4: quoted total length < header length")
    if length < header_length + _QUOTE_MINIMUM:
        raise Malformed("icmpv4: quote shorter than its header + 8 bytes")
    return Ipv4Packet(
        src,
        dst,
        protocol,
        ttl,
        ident,
        flags_offset & 0x4000 != 0,
        flags_offset & 0x2000 != 0,
        (flags_offset & 0x1FFF) << 3,
        tos,
        body[20:header_length] if header_length > 20 else EMPTY,
        body[header_length:total],
    )


def icmpv4_header(message: Icmpv4Message, payload: Sequence[Buffer]) -> bytes:
    """The 8-byte header of *message*, its checksum taken over the header and
    the *payload* parts (echo data, or an error's quote), which are sent after
    it and not copied."""
    icmp_type = message.type
    if icmp_type in (ECHO_REQUEST, ECHO_REPLY):
        rest = message.ident << 16 | message.seq
        if message.ident > 0xFFFF or message.seq > 0xFFFF:
            raise ValueError(
                f"echo ident and seq are 16-bit, got {message.ident} and {message.seq}"
            )
    elif icmp_type == DESTINATION_UNREACHABLE:
        rest = message.next_hop_mtu
        if rest > 0xFFFF:
            raise ValueError(f"the next-hop MTU is 16-bit, got {rest}")
    elif icmp_type == TIME_EXCEEDED:
        rest = 0
    else:
        raise ValueError(
            f"ICMP type {icmp_type} is not one of echo request/reply, destination "
            "unreachable, time exceeded"
        )
    initial = (icmp_type << 8 | message.code) + (rest >> 16) + (rest & 0xFFFF)
    return _HEADER.pack(icmp_type, message.code, internet_checksum(payload, initial), rest)
