"""What :meth:`Interface.receive` hands up: a packet for the transport layer.

Everything the interface can finish itself -- ARP, echo requests, fragments
still waiting for the rest, frames for other hosts, malformed frames -- ends
inside it and ``receive`` returns ``None``. What needs the stack's sockets is
returned as one of four values:

* :class:`TcpIngress` -- a TCP segment sent to our address in a frame sent
  to our MAC (Linux drops TCP that arrives in a broadcast frame, and TCP to a
  broadcast address, and so do we);
* :class:`UdpIngress` -- a UDP datagram to our address or to a broadcast
  address (``dst`` says which: a socket bound to a port receives both);
* :class:`IcmpErrorIngress` -- a destination unreachable or time exceeded
  message about a TCP segment or UDP datagram *we* sent, with the addresses
  and ports of the quoted original, so the stack can find the socket;
* :class:`EchoReplyIngress` -- the answer to a ping we sent.

Payloads are views of the frame the packet arrived in (no copy); a datagram
that came in fragments is the one exception: its payload is the bytes the
fragments were joined into. ``ip`` is the IPv4 packet -- for a reassembled
datagram, one made from its first fragment's header, with the fragment
fields cleared -- which the stack gives back to
:meth:`Interface.send_icmp_unreachable` to refuse a datagram.

These are plain slots classes (attrs, not frozen: a frozen class pays for
every field it sets, and one of these is made per packet on the hot path);
the stack reads them and changes nothing.
"""

from __future__ import annotations

import attrs

from ..wire.ipv4 import Ipv4Packet
from ..wire.tcp import TcpSegment
from ..wire.udp import UdpDatagram

__all__ = ["EchoReplyIngress", "IcmpErrorIngress", "Ingress", "TcpIngress", "UdpIngress"]


@attrs.define(slots=True, eq=False)
class TcpIngress:
    """A TCP segment for us: from ``src`` to ``dst`` (our address)."""

    src: int
    dst: int
    segment: TcpSegment
    ip: Ipv4Packet


@attrs.define(slots=True, eq=False)
class UdpIngress:
    """A UDP datagram for us: from ``src`` to ``dst`` (our address, or the
    limited or the subnet's broadcast address)."""

    src: int
    dst: int
    datagram: UdpDatagram
    ip: Ipv4Packet


@attrs.define(slots=True, eq=False)
class IcmpErrorIngress:
    """An ICMP error about a TCP segment or UDP datagram we sent.

    ``src`` reported it (the destination host, or a router on the way) to
    ``dst`` (our address). ``type`` is ``wire.icmpv4.DESTINATION_UNREACHABLE``
    or ``TIME_EXCEEDED``; ``code`` the reason (``CODE_PORT_UNREACHABLE``...);
    ``next_hop_mtu`` is meaningful for ``CODE_FRAGMENTATION_NEEDED`` only.
    The quoted original was ``protocol`` (``PROTOCOL_TCP`` or ``_UDP``) from
    ``local_addr:local_port`` (ours) to ``remote_addr:remote_port``.
    """

    src: int
    dst: int
    type: int
    code: int
    next_hop_mtu: int
    protocol: int
    local_addr: int
    local_port: int
    remote_addr: int
    remote_port: int
    ip: Ipv4Packet


@attrs.define(slots=True, eq=False)
class EchoReplyIngress:
    """An echo reply from ``src``: the answer to a ping sent with
    :meth:`Interface.send_echo_request` (``ident``, ``seq`` and ``data`` as
    the request had them, if the peer behaves)."""

    src: int
    dst: int
    ident: int
    seq: int
    data: memoryview
    ip: Ipv4Packet


#: What :meth:`Interface.receive` returns when a packet needs the stack.
Ingress = TcpIngress | UdpIngress | IcmpErrorIngress | EchoReplyIngress
