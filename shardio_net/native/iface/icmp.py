"""ICMP errors the interface sends: when it may, what it quotes, how often.

An ICMP error (destination unreachable, time exceeded) tells a sender why
its datagram went nowhere. The interface sends three: *protocol unreachable*
for an IP protocol the stack does not speak, *port unreachable* when the
stack asks (a UDP datagram no socket wants: only the stack knows its ports),
and *reassembly time exceeded* when a datagram's fragments stop coming.

When not to (RFC 1122 3.2.2, RFC 1812 4.3.2.7; Linux's ``icmp_send``)
-----------------------------------------------------------------------
An error is never sent about a datagram that was

* sent to a broadcast address (one datagram would draw an error from every
  host on the link);
* from a martian source (0.0.0.0, broadcast, multicast, loopback, ours):
  there is nobody honest to tell;
* a fragment other than the first (the first, or the whole datagram, is
  answered once; the others would repeat it);
* an ICMP error itself (two hosts could otherwise answer each other's errors
  forever; errors about echo messages are fine).

Each refusal is counted under its reason.

What it quotes
--------------
The original datagram's IPv4 header and as much of its payload as keeps the
error within 576 bytes (RFC 1812 4.3.2.3: "as much of the original datagram
as possible without the length of the ICMP datagram exceeding 576 bytes",
which is what Linux sends): enough for the sender to find its socket from
the ports. The header is emitted again from the parsed fields -- the same
bytes, for a datagram that came in one frame, since every field is kept --
and the payload quoted is a view of the original.

How often
---------
A token bucket, as Linux's global ``icmp_msgs_per_sec`` and
``icmp_msgs_burst``: ``icmp_error_rate`` tokens a second, at most
``icmp_error_burst`` saved up, one per error. A port scan, or a peer
hammering a closed UDP port, gets errors at that rate and no faster; the
rest are counted ("icmpv4: error rate limited") and not sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from ..wire.icmpv4 import ECHO_REPLY, ECHO_REQUEST
from ..wire.ipv4 import PROTOCOL_ICMP, Ipv4Packet, ipv4_header
from .route import Routes

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["QUOTE_LIMIT", "TokenBucket", "error_refusal", "quote"]

#: The most bytes of the original datagram (header included) an error
#: quotes: 576 less the error's IPv4 and ICMP headers.
QUOTE_LIMIT = 576 - 20 - 8


def error_refusal(packet: Ipv4Packet, routes: Routes) -> str | None:
    """Why no ICMP error may be sent about ``packet`` (a drop reason), or
    ``None`` if one may."""
    if packet.dst != routes.address:
        return "icmpv4: no error about a datagram to a broadcast address"
    if routes.is_martian_source(packet.src):
        return "icmpv4: no error to a martian source"
    if packet.fragment_offset:
        return "icmpv4: no error about a fragment other than the first"
    if packet.protocol == PROTOCOL_ICMP:
        payload = packet.payload
        if not payload or payload[0] not in (ECHO_REQUEST, ECHO_REPLY):
            return "icmpv4: no error about an ICMP error"
    return None


def quote(packet: Ipv4Packet) -> list[Buffer]:
    """The body of an error about ``packet``: its header and the start of
    its payload, as parts (the payload a view, not copied)."""
    header = ipv4_header(packet, len(packet.payload))
    return [header, packet.payload[: QUOTE_LIMIT - len(header)]]


@final
class TokenBucket:
    """``rate`` tokens a second, ``burst`` at most; full at ``now``."""

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Take a token if there is one."""
        tokens = self._tokens + (now - self._updated) * self._rate
        self._updated = now
        if tokens > self._burst:
            tokens = self._burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
