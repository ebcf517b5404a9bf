"""UDP (RFC 768): ports, length, and the checksum with the pseudo-header.

The 8-byte header holds the two ports, the datagram's length (header
included) and a checksum over the pseudo-header, the header and the data.
Over IPv4 the checksum is optional: a zero field means the sender computed
none, so none is checked; a sender whose computed checksum is zero sends
0xffff instead, the same value in one's-complement arithmetic.

**Checks.** :class:`Malformed` if the datagram is shorter than 8 bytes, its
length field is under 8 or over the bytes received, its checksum (when there
is one) is wrong, or its destination port is 0 (no socket can listen there;
the source port may be 0, meaning "no reply expected"). Bytes after the
length field's end are ignored, as IPv4 ignores the link's padding.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ._views import EMPTY
from .checksum import pseudo_header_sum, sum_parts, verify
from .errors import Malformed

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["HEADER_LENGTH", "UdpDatagram", "parse_udp", "udp_header"]

#: The length of the UDP header.
HEADER_LENGTH = 8

_PROTOCOL_UDP = 17
_HEADER = struct.Struct("!HHHH")


@attrs.define(slots=True)
class UdpDatagram:
    """A UDP datagram's ports, and its data (a view when parsed; not used by
    the emitter, which takes the data's parts separately)."""

    src_port: int
    dst_port: int
    payload: memoryview = EMPTY


def parse_udp(
    data: memoryview, src_addr: int, dst_addr: int, *, verify_checksum: bool = True
) -> UdpDatagram:
    """Parse a UDP datagram (an IPv4 payload) sent from *src_addr* to
    *dst_addr* (ints, for the pseudo-header); the payload is a view into
    *data*. Raises :class:`Malformed`."""
    if len(data) < HEADER_LENGTH:
        raise Malformed("udp: shorter than 8 bytes")
    src_port, dst_port, length, checksum = _HEADER.unpack_from(data)
    if length < HEADER_LENGTH:
        raise Malformed("udp: length field < 8")
    if length > len(data):
        raise Malformed("udp: length field > bytes received")
    if dst_port == 0:
        raise Malformed("udp: destination port 0")
    if checksum and verify_checksum:
        datagram = data[:length] if length < len(data) else data
        if not verify(datagram, pseudo_header_sum(src_addr, dst_addr, _PROTOCOL_UDP, length)):
            raise Malformed("udp: bad checksum")
    return UdpDatagram(src_port, dst_port, data[HEADER_LENGTH:length])


def udp_header(
    datagram: UdpDatagram, src_addr: int, dst_addr: int, payload: Sequence[Buffer]
) -> bytes:
    """The 8-byte header of *datagram* carrying the *payload* parts, with its
    checksum over the pseudo-header, the header and every part (the parts are
    sent after it and not copied). Raises ``ValueError`` if the datagram would
    exceed 65535 bytes."""
    payload_sum, payload_length = sum_parts(payload)
    length = HEADER_LENGTH + payload_length
    if length > 0xFFFF:
        raise ValueError(f"a UDP datagram is at most 65535 bytes, this one would be {length}")
    src_port = datagram.src_port
    dst_port = datagram.dst_port
    total = (
        pseudo_header_sum(src_addr, dst_addr, _PROTOCOL_UDP, length)
        + src_port
        + dst_port
        + length
        + payload_sum
    )
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    # A computed 0 is sent as 0xffff: 0 in the field means "no checksum".
    return _HEADER.pack(src_port, dst_port, length, ~total & 0xFFFF or 0xFFFF)
