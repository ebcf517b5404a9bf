"""TCP segments (RFC 9293) with their options: the seam between the wire and
the connection state machine (``shardio_net.native.tcp``).

A segment is a 20-byte header -- ports, sequence and acknowledgment numbers,
data offset, flags, window, checksum, urgent pointer -- then up to 40 bytes of
options, then the data. :class:`TcpSegment` holds the fields *as on the wire*:
``window`` is the raw 16-bit field (scaling it is the connection's business),
``ack`` is given whether or not the ACK flag is set, flags are a bit mask of
the constants below. The checksum covers the IPv4 pseudo-header, the header and
the data; parsing verifies it, emitting computes it, and neither exposes it.

**Options** (RFC 9293 3.2, RFC 7323, RFC 2018):

====================  ====  ======  =========================================
option                kind  length  field of :class:`TcpSegment`
====================  ====  ======  =========================================
end of option list    0     1       (parsing stops)
no-operation          1     1       (padding)
maximum segment size  2     4       ``mss`` (SYN only)
window scale          3     3       ``window_scale`` (SYN only; over 14 is 14)
SACK permitted        4     2       ``sack_permitted`` (SYN only)
SACK                  5     2+8n    ``sack_blocks``: n (left, right) edges
timestamps            8     10      ``timestamp``: (TSval, TSecr)
====================  ====  ======  =========================================

Parsing is strict about lengths and lenient about meaning, like smoltcp's: an
option whose length byte is missing, below 2 or past the header, or a known
option of the wrong length, makes the segment :class:`Malformed` (Linux
instead stops reading options there, or ignores the one option; dropping the
segment is the safer of the two for a stack that trusts what it parsed).
Unknown kinds are skipped by their length. MSS, window scale and SACK-permitted
count only in a SYN: in any other segment they are checked and then ignored,
as RFC 9293 and RFC 7323 2.2 say and Linux does, so the connection never sees
them there. A window scale above 14 is read as 14 (RFC 7323 2.3). The last of
two copies of an option wins.

**Emitting** writes the options in Linux's layout, each group a multiple of 4
bytes so no padding is needed: MSS; timestamps behind SACK-permitted or two
NOPs; SACK-permitted behind two NOPs when there are no timestamps; one NOP and
the window scale; two NOPs and the SACK blocks. A kernel's SYN, parsed and
emitted again, is byte for byte what the kernel sent (the tests check this on
one captured from Linux). The emitter refuses, with ``ValueError``, what it
could only send wrongly: SYN-only options without SYN, a window scale above
14, more than 4 SACK blocks, or options over 40 bytes (timestamps leave room
for 3 SACK blocks).

**Speed.** A data segment carries no options or timestamps only; both parse
and emit on a path of their own (one ``struct`` call for the header and the
timestamps), and the emitter sums the header's words as ints instead of
packing, summing and packing again. The checksum of the payload parts is the C
helper's (see :mod:`.checksum`); the payload is never copied.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ._views import EMPTY
from .checksum import ones_sum, pseudo_header_sum, sum_parts, verify
from .errors import Malformed

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "EMPTY",
    "FIN",
    "HEADER_LENGTH",
    "MAX_OPTIONS_LENGTH",
    "MAX_SACK_BLOCKS",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "TcpSegment",
    "parse_tcp",
    "tcp_header",
    "tcp_header_length",
]

# Flag bits, as on the wire (the low byte of the 13th and 14th header bytes).
#: No more data from the sender.
FIN = 0x01
#: Synchronize sequence numbers.
SYN = 0x02
#: Reset the connection.
RST = 0x04
#: Push: deliver the data now.
PSH = 0x08
#: The acknowledgment field is significant.
ACK = 0x10
#: The urgent pointer is significant.
URG = 0x20
#: ECN-Echo (RFC 3168).
ECE = 0x40
#: Congestion window reduced (RFC 3168).
CWR = 0x80

#: The length of a header without options.
HEADER_LENGTH = 20
#: The most option bytes a header holds (a data offset of 15 words).
MAX_OPTIONS_LENGTH = 40
#: The most SACK blocks an option holds (4 fill 34 of the 40 bytes).
MAX_SACK_BLOCKS = 4

_PROTOCOL_TCP = 6
_EOL = 0
_NOP = 1
_MSS = 2
_WS = 3
_SACK_PERMITTED = 4
_SACK = 5
_TIMESTAMPS = 8
_MAX_WINDOW_SCALE = 14

# ports, seq, ack, data offset << 4, flags, window, checksum, urgent
_HEADER = struct.Struct("!HHIIBBHHH")
# The same and the options of a data segment: NOP, NOP, timestamps.
_HEADER_TS = struct.Struct("!HHIIBBHHHIII")
_NOP_NOP_TS = 0x0101080A
_SACK_PERMITTED_TS = 0x0402080A
_U16 = struct.Struct("!H")
_U32_PAIR = struct.Struct("!II")
_U32_TRIPLE = struct.Struct("!III")


@attrs.define(slots=True, eq=False)
class TcpSegment:
    """A TCP segment's header fields and options, and its data.

    Parsed, ``payload`` is a view into the frame. The emitter ignores it: the
    data's parts are given to :func:`tcp_header` separately.
    """

    src_port: int
    dst_port: int
    #: 0 .. 2**32-1.
    seq: int
    #: Meaningful only with ACK in ``flags``.
    ack: int
    #: A bit mask of FIN, SYN, RST, PSH, ACK, URG, ECE, CWR.
    flags: int
    #: The raw 16-bit field, not scaled (the connection scales it).
    window: int
    urgent: int = 0
    #: The MSS option (SYN only).
    mss: int | None = None
    #: The window scale option's shift count (SYN only), at most 14.
    window_scale: int | None = None
    #: The SACK-permitted option (SYN only).
    sack_permitted: bool = False
    #: The SACK option: (left, right) edges, at most 4.
    sack_blocks: tuple[tuple[int, int], ...] = ()
    #: The timestamps option: (TSval, TSecr).
    timestamp: tuple[int, int] | None = None
    payload: memoryview = EMPTY


def parse_tcp(
    data: memoryview, src_addr: int, dst_addr: int, *, verify_checksum: bool = True
) -> TcpSegment:
    """Parse a TCP segment (an IPv4 payload) sent from *src_addr* to
    *dst_addr* (ints, for the pseudo-header); the payload is a view into
    *data*. Raises :class:`Malformed`.

    ``verify_checksum=False`` skips the checksum (for a device that has
    verified it already).
    """
    length = len(data)
    if length < HEADER_LENGTH:
        raise Malformed("tcp: shorter than 20 bytes")
    header_length = data[12] >> 4 << 2
    if header_length < HEADER_LENGTH:
        raise Malformed("tcp: header length < 20")
    if header_length > length:
        raise Malformed("tcp: header length > bytes received")
    if verify_checksum and not verify(
        data, pseudo_header_sum(src_addr, dst_addr, _PROTOCOL_TCP, length)
    ):
        raise Malformed("tcp: bad checksum")
    # Hot path: a data segment has no options, or timestamps behind two NOPs.
    if header_length == 32:
        src_port, dst_port, seq, ack, _, flags, window, _, urgent, kinds, tsval, tsecr = (
            _HEADER_TS.unpack_from(data)
        )
        if kinds == _NOP_NOP_TS:
            if src_port == 0 or dst_port == 0:
                raise Malformed("tcp: port 0")
            return TcpSegment(
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                urgent,
                None,
                None,
                False,
                (),
                (tsval, tsecr),
                data[32:],
            )
    src_port, dst_port, seq, ack, _, flags, window, _, urgent = _HEADER.unpack_from(data)
    if src_port == 0 or dst_port == 0:
        raise Malformed("tcp: port 0")
    if header_length == HEADER_LENGTH:
        return TcpSegment(
            src_port, dst_port, seq, ack, flags, window, urgent, payload=data[HEADER_LENGTH:]
        )
    mss, window_scale, sack_permitted, sack_blocks, timestamp = _parse_options(
        data, header_length, flags & SYN != 0
    )
    return TcpSegment(
        src_port,
        dst_port,
        seq,
        ack,
        flags,
        window,
        urgent,
        mss,
        window_scale,
        sack_permitted,
        sack_blocks,
        timestamp,
        data[header_length:],
    )


def _parse_options(
    data: memoryview, end: int, syn: bool
) -> tuple[int | None, int | None, bool, tuple[tuple[int, int], ...], tuple[int, int] | None]:
    """The options between byte 20 and *end*: MSS, window scale,
    SACK-permitted, SACK blocks, timestamps."""
    mss: int | None = None
    window_scale: int | None = None
    sack_permitted = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None
    i = HEADER_LENGTH
    while i < end:
        kind = data[i]
        if kind == _EOL:
            break
        if kind == _NOP:
            i += 1
            continue
        if i + 1 == end:
            raise Malformed("tcp: option without its length byte")
        length = data[i + 1]
        if length < 2:
            raise Malformed("tcp: option length < 2")
        if i + length > end:
            raise Malformed("tcp: option runs past the header")
        if kind == _TIMESTAMPS:
            if length != 10:
                raise Malformed("tcp: timestamps option length is not 10")
            timestamp = _U32_PAIR.unpack_from(data, i + 2)
        elif kind == _SACK:
            if (length - 2) & 7 or length == 2:
                raise Malformed("tcp: SACK option length is not 2 + 8n")
            edges = struct.unpack_from(f"!{(length - 2) >> 2}I", data, i + 2)
            sack_blocks = tuple(zip(edges[::2], edges[1::2], strict=True))
        elif kind == _MSS:
            if length != 4:
                raise Malformed("tcp: MSS option length is not 4")
            if syn:
                mss = _U16.unpack_from(data, i + 2)[0]
        elif kind == _WS:
            if length != 3:
                raise Malformed("tcp: window scale option length is not 3")
            if syn:
                window_scale = min(data[i + 2], _MAX_WINDOW_SCALE)
        elif kind == _SACK_PERMITTED:
            if length != 2:
                raise Malformed("tcp: SACK-permitted option length is not 2")
            if syn:
                sack_permitted = True
        i += length
    return mss, window_scale, sack_permitted, sack_blocks, timestamp


def tcp_header_length(segment: TcpSegment) -> int:
    """The length of the header :func:`tcp_header` emits for *segment*,
    options included: what a segment's MSS budget must leave room for."""
    return HEADER_LENGTH + _options_length(segment)


def _options_length(segment: TcpSegment) -> int:
    length = 0
    if segment.mss is not None:
        length += 4
    if segment.timestamp is not None:
        length += 12
    elif segment.sack_permitted:
        length += 4
    if segment.window_scale is not None:
        length += 4
    if segment.sack_blocks:
        length += 4 + 8 * len(segment.sack_blocks)
    return length


def tcp_header(
    segment: TcpSegment, src_addr: int, dst_addr: int, payload: Sequence[Buffer]
) -> bytes:
    """The header of *segment* with its options, carrying the *payload* parts:
    the checksum covers the pseudo-header (from *src_addr* to *dst_addr*), the
    header and every part. The parts are sent after the header and not copied;
    ``segment.payload`` is not used.

    Raises ``ValueError`` for options that cannot be sent (see the module's
    notes), ``struct.error`` for a field out of its range.
    """
    payload_sum, payload_length = sum_parts(payload)
    flags = segment.flags
    timestamp = segment.timestamp
    src_port = segment.src_port
    dst_port = segment.dst_port
    seq = segment.seq
    ack = segment.ack
    window = segment.window
    urgent = segment.urgent
    # The sum of the payload and of the header's words that do not depend on
    # the options; the offset/flags word, the pseudo-header and the options
    # are added below.
    total = (
        payload_sum
        + src_port
        + dst_port
        + (seq >> 16)
        + (seq & 0xFFFF)
        + (ack >> 16)
        + (ack & 0xFFFF)
        + window
        + urgent
    )
    if (
        segment.mss is None
        and segment.window_scale is None
        and not segment.sack_permitted
        and not segment.sack_blocks
    ):
        # Hot path: a data segment, with no options or timestamps only.
        if timestamp is None:
            total += (20 << 10 | flags) + pseudo_header_sum(
                src_addr, dst_addr, _PROTOCOL_TCP, 20 + payload_length
            )
            while total > 0xFFFF:
                total = (total & 0xFFFF) + (total >> 16)
            return _HEADER.pack(
                src_port, dst_port, seq, ack, 5 << 4, flags, window, ~total & 0xFFFF, urgent
            )
        tsval, tsecr = timestamp
        total += (
            (32 << 10 | flags)
            + pseudo_header_sum(src_addr, dst_addr, _PROTOCOL_TCP, 32 + payload_length)
            + 0x0101
            + 0x080A
            + (tsval >> 16)
            + (tsval & 0xFFFF)
            + (tsecr >> 16)
            + (tsecr & 0xFFFF)
        )
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        return _HEADER_TS.pack(
            src_port,
            dst_port,
            seq,
            ack,
            8 << 4,
            flags,
            window,
            ~total & 0xFFFF,
            urgent,
            _NOP_NOP_TS,
            tsval,
            tsecr,
        )
    options = _options(segment)
    header_length = HEADER_LENGTH + len(options)
    total += (
        (header_length << 10 | flags)
        + pseudo_header_sum(src_addr, dst_addr, _PROTOCOL_TCP, header_length + payload_length)
        + ones_sum(options)
    )
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    header = _HEADER.pack(
        src_port, dst_port, seq, ack, header_length << 2, flags, window, ~total & 0xFFFF, urgent
    )
    return header + options


def _options(segment: TcpSegment) -> bytes:
    """The option bytes of *segment*, in Linux's layout."""
    parts: list[bytes] = []
    syn_only = segment.mss is not None or segment.window_scale is not None
    if (syn_only or segment.sack_permitted) and not segment.flags & SYN:
        raise ValueError("MSS, window scale and SACK-permitted are sent only in a SYN")
    if segment.mss is not None:
        parts.append(struct.pack("!BBH", _MSS, 4, segment.mss))
    if segment.timestamp is not None:
        kinds = _SACK_PERMITTED_TS if segment.sack_permitted else _NOP_NOP_TS
        parts.append(_U32_TRIPLE.pack(kinds, *segment.timestamp))
    elif segment.sack_permitted:
        parts.append(b"\x01\x01\x04\x02")
    if segment.window_scale is not None:
        if not 0 <= segment.window_scale <= _MAX_WINDOW_SCALE:
            raise ValueError(f"a window scale is 0..14 (RFC 7323), got {segment.window_scale}")
        parts.append(bytes((_NOP, _WS, 3, segment.window_scale)))
    blocks = segment.sack_blocks
    if blocks:
        if len(blocks) > MAX_SACK_BLOCKS:
            raise ValueError(f"a SACK option holds at most 4 blocks, got {len(blocks)}")
        edges = [edge for block in blocks for edge in block]
        parts.append(
            bytes((_NOP, _NOP, _SACK, 2 + 8 * len(blocks))) + struct.pack(f"!{len(edges)}I", *edges)
        )
    options = b"".join(parts)
    if len(options) > MAX_OPTIONS_LENGTH:
        raise ValueError(
            f"the options take {len(options)} bytes, at most 40 fit "
            "(with timestamps, send at most 3 SACK blocks)"
        )
    return options
