"""The reply to a segment that reaches no connection (RFC 9293 3.10.7.1).

A segment for a port nobody listens on, or that a listener cannot take (an
ACK for a connection it does not have), is answered with a RST built so that
the sender will accept it -- its sequence number is one the sender expects:

* the segment had ACK: ``<SEQ=SEG.ACK><CTL=RST>``;
* otherwise: ``<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`` (SEG.LEN counts
  SYN and FIN);
* the segment was itself a RST: no reply, ever (two stacks must not answer
  each other's RSTs forever).

The interface uses this for closed ports (an ICMP port unreachable is UDP's
answer; TCP's is this RST), the listener for non-SYN segments.
"""

from __future__ import annotations

from ..wire.tcp import ACK, FIN, RST, SYN, TcpSegment

__all__ = ["reset_for"]


def reset_for(segment: TcpSegment) -> TcpSegment | None:
    """The RST answering ``segment`` (ports swapped), or None for a RST."""
    flags = segment.flags
    if flags & RST:
        return None
    if flags & ACK:
        return TcpSegment(segment.dst_port, segment.src_port, segment.ack, 0, RST, 0)
    length = len(segment.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    return TcpSegment(
        segment.dst_port,
        segment.src_port,
        0,
        (segment.seq + length) & 0xFFFF_FFFF,
        RST | ACK,
        0,
    )
