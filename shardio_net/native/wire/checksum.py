"""The Internet checksum (RFC 1071), over several buffers, with a pseudo-header.

IPv4, ICMP, UDP and TCP all protect their bytes with the same sum: the 16-bit
one's-complement sum of the data read as big-endian 16-bit words (an odd last
byte padded with a zero), complemented. A receiver sums everything *including*
the checksum field; the result is 0xffff when nothing changed. UDP and TCP also
sum a *pseudo-header* that is never sent (source and destination address, the
protocol number, the segment's length: RFC 768, RFC 9293 3.1), so a segment
delivered to the wrong address fails its checksum.

Three facts from RFC 1071 section 2 let the sum be taken in pieces, which is
how a segment is sent here: the header is a small ``bytes`` and the payload is
one or more views of the application's buffers, never joined into one buffer.

- **Any grouping**: the sum is associative and commutative, so the sum of the
  whole is the sum of the parts' sums, folded (the carries above bit 16 added
  back in until none are left).
- **Byte order**: swapping the two bytes of every word swaps the two bytes of
  the sum. A part that starts at an odd offset of the whole is read with every
  byte in the other half of its words, so its sum is added byte-swapped.
- **Incremental**: a partial sum is just an int; :func:`pseudo_header_sum`
  gives the pseudo-header's and :func:`internet_checksum` takes it as its
  ``initial`` value.

**Why C.** The sum runs over every byte received and every byte sent, so it
sets the ceiling on a Python stack's throughput. The fastest pure-Python sum
found uses the fact that 2**16 is 1 modulo 0xffff, so the whole buffer read as
one big integer is congruent to the sum of its words:
``int.from_bytes(data, "big") % 0xffff``. On a 1460-byte payload (one
full-sized segment) it takes 2.8 us of CPU time here; summing an
``array("H")`` takes 9.6 us and a word-by-word loop 64 us. The C helper
(``_checksum.c``, compiled by cffi at install) takes 0.35 us for the same
payload, call included, of which 0.29 us is cffi's cost of the call and of
getting a pointer from a ``memoryview`` (``ffi.from_buffer``); the loop itself
is 0.06 us. On a 20-byte header the two are close (0.23 us in Python, 0.28 us
in C), so one path is kept: C for every buffer. Emitters sum their own header
words as ints, from the field values, rather than pay for a second C call.
The figures, and how they were taken, are in docs/design/native-stack.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._checksum_c import ffi, lib

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "internet_checksum",
    "ones_sum",
    "pseudo_header_sum",
    "sum_parts",
    "verify",
]

_sum = lib.shardio_ones_sum
_from_buffer = ffi.from_buffer


def ones_sum(data: Buffer) -> int:
    """The one's-complement sum of *data*'s big-endian 16-bit words, folded to
    16 bits (an odd last byte counts as the high byte of a word).

    0 only for data that is all zero bytes (or empty), 1..0xffff otherwise.
    """
    # Hot path: bytes go to C as they are, anything else through a cffi view.
    if type(data) is bytes:
        return _sum(data, len(data))  # type: ignore[no-any-return]
    view = _from_buffer(data)
    return _sum(view, len(view))  # type: ignore[no-any-return]


def pseudo_header_sum(src_addr: int, dst_addr: int, protocol: int, length: int) -> int:
    """The (unfolded) sum of the IPv4 pseudo-header of a UDP or TCP segment.

    *src_addr* and *dst_addr* are IPv4 addresses as ints, *protocol* the IP
    protocol number, *length* the length of the UDP datagram or TCP segment,
    header included. Pass it as ``initial`` to :func:`internet_checksum` or
    :func:`verify`.
    """
    return (
        (src_addr >> 16)
        + (src_addr & 0xFFFF)
        + (dst_addr >> 16)
        + (dst_addr & 0xFFFF)
        + protocol
        + length
    )


def sum_parts(parts: Iterable[Buffer]) -> tuple[int, int]:
    """The one's-complement sum of the concatenation of *parts* (not folded),
    and its length in bytes.

    The parts are summed where they are (nothing is joined); a part that starts
    at an odd offset of the whole is accounted for. An emitter whose header's
    sum depends on the payload's length (UDP, TCP: the pseudo-header) gets both
    in one pass.
    """
    total = 0
    length = 0
    for part in parts:
        # Hot path: one C call per part; the parity of the offset it starts at.
        if type(part) is bytes:
            n = len(part)
            s = _sum(part, n)
        else:
            view = _from_buffer(part)
            n = len(view)
            s = _sum(view, n)
        if length & 1:
            s = ((s & 0xFF) << 8) | (s >> 8)
        total += s
        length += n
    return total, length


def internet_checksum(parts: Iterable[Buffer], initial: int = 0) -> int:
    """The value for a checksum field: the complemented one's-complement sum of
    the concatenation of *parts*, plus the partial sum *initial*.

    The checksum field itself must be zero in the parts.
    """
    total = initial + sum_parts(parts)[0]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def verify(data: Buffer, initial: int = 0) -> bool:
    """Whether *data*, checksum field included, sums (with the partial sum
    *initial*, e.g. a pseudo-header's) to 0xffff: the receiver's check."""
    total = initial + ones_sum(data)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF
