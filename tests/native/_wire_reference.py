"""Independent reference computations for the wire tests.

The Internet checksum here is RFC 1071's definition taken literally -- join
the bytes, pad an odd end, add the 16-bit big-endian words with end-around
carry, complement -- sharing no code with ``wire.checksum`` (no C, no partial
sums, no byte-swapping tricks), so the tests compare the stack's checksums
with a second, obviously correct computation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable


def reference_sum(data: bytes) -> int:
    """RFC 1071's one's-complement sum of *data*, word by word."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def reference_checksum(*parts: bytes) -> int:
    """The checksum field's value for the concatenation of *parts*."""
    return ~reference_sum(b"".join(parts)) & 0xFFFF


def pseudo_header(src: int, dst: int, protocol: int, length: int) -> bytes:
    """The 12-byte IPv4 pseudo-header of RFC 768 and RFC 9293 3.1."""
    return struct.pack("!IIBBH", src, dst, 0, protocol, length)


def joined(parts: Iterable[bytes | bytearray | memoryview]) -> bytes:
    """The parts as one ``bytes``."""
    return b"".join(bytes(part) for part in parts)
