"""The interface: frames in, packets for the transport layer out, and back.

:class:`Interface` is smoltcp's ``iface``: everything between a device's
Ethernet frames and the stack's TCP connections and UDP sockets. It is
sans-io like ``tcp/``: no I/O, no clock, no shardio; the stack feeds it
frames and the time, and takes frames and packets from it::

    iface = Interface(config, now)                  # queues a gratuitous ARP
    packet = iface.receive(frame, now)              # TcpIngress | UdpIngress |
                                                    # IcmpErrorIngress | EchoReplyIngress | None
    iface.send_ip(dst, protocol, parts, now, *, ttl=None, dont_fragment=True) -> bool
    iface.send_icmp_unreachable(ip, code, now) -> bool
    iface.send_echo_request(dst, ident, seq, data, now) -> bool
    iface.frames() -> list[list[Buffer]]            # for one device.transmit() per pass
    iface.on_timer(now); iface.next_deadline()      # ARP retries, reassembly timeouts
    iface.count_dropped(reason); iface.statistics()
    iface.reconfigure(config)                       # another address, prefix, gateway

A stack's pass is: ``for frame in device.receive(now): dispatch(iface.receive(frame, now))``,
``iface.on_timer(now)`` if its deadline has come, the connections' output
through ``send_ip``, then ``device.transmit(iface.frames(), now)`` once.

Receiving
---------
A frame goes through these checks in order; the first that fails drops it
and counts it under its reason in ``statistics().dropped``:

1. Ethernet: at least a header, sent to our MAC or the broadcast address
   (a frame to another host, or to a multicast group -- we join none -- is
   not ours), from a unicast source, of type IPv4 or ARP.
2. ARP goes to the neighbour cache (``neighbor.py``), which learns from it
   and answers it.
3. IPv4 is parsed by ``wire.ipv4`` (version, lengths, header checksum);
   then it must be for us (our address, or the limited or subnet broadcast:
   a host does not forward) and from a source that is not martian (see
   ``route.py``) -- except 0.0.0.0 to 255.255.255.255, which is how a DHCP
   client with no address yet speaks, and which Linux takes too
   (``ip_route_input_slow`` checks a zero source after the limited
   broadcast). The TTL of a datagram delivered here is not checked:
   RFC 1122 3.2.1.7 forbids a host to drop a datagram for a low TTL.
   Options are accepted and ignored.
4. Fragments go to the reassembler (``reassembly.py``); the datagram goes
   on when it is whole.
5. By protocol: TCP (to our address, in a frame to our MAC: Linux drops TCP
   that is not for this host alone) and UDP are parsed with their checksum
   over the pseudo-header and returned; ICMP echo requests to our address
   are answered (those to a broadcast address ignored, as Linux does by
   default); echo replies and errors about our own TCP and UDP traffic are
   returned; any other protocol is answered with protocol unreachable.

Anything malformed at any layer is a ``wire.errors.Malformed``, caught here
and counted under its reason (``"tcp: bad checksum"``...): nothing a peer
sends makes ``receive`` raise. TCP segments to closed ports are the stack's
to answer (``tcp/reset.py``): they are delivered like any other.

Sending
-------
``send_ip`` routes the datagram (``route.py``: on the link, to the gateway,
or broadcast; nowhere is False and counted), adds its IPv4 header (our
address, a fresh 16-bit ident from a counter, the TTL) and the Ethernet
header of the next hop. A resolved next hop and the frame goes to the output
at once; an unresolved one and the datagram waits in the neighbour cache
while ARP asks (copied: see ``neighbor.py``). A datagram larger than the MTU
is split into fragments (each a multiple of 8 bytes but the last, the
payload cut into views, nothing copied) unless ``dont_fragment`` is set --
TCP never needs fragments, since it sizes its segments to the MTU -- in
which case it is refused: False, counted.

Frames are given as *parts* -- the Ethernet and IPv4 headers in one
``bytes``, then the caller's parts as they are -- for a vectored write. The
caller's parts are referenced, not copied, until the frame is handed to the
device: a caller must leave them unchanged until the ``frames()`` that
returns them has been transmitted (the device reads them before
``transmit`` returns). Frames produced while handling a received frame (ARP
replies, echo replies, ICMP errors) join the same output.

No address yet
--------------
An interface made with ``address=0`` has no address: a stack waiting for
its DHCP lease. A DHCP client must send before it has an address and take
answers sent to the address it is being offered, so such an interface

* sends only to the limited broadcast 255.255.255.255, from 0.0.0.0, in a
  broadcast frame; every other destination is refused ("route: no address
  yet") -- so no ICMP error ever leaves it;
* takes UDP in a frame to its MAC whatever the IPv4 destination -- a server
  may send its offer to the address it offers, to our MAC (RFC 2131 4.1,
  as dnsmasq does after writing that address into its ARP table) -- and
  UDP to a broadcast address, as always; TCP, ICMP and anything else to a
  unicast address that is not ours is dropped as "ipv4: not our address";
* takes no part in ARP and announces nothing (``neighbor.py``).

:meth:`Interface.reconfigure` gives it an address when the lease is bound
(or another one, or takes it away when the lease is lost): the routes are
made anew, the ARP cache starts empty (its waiting frames dropped and
counted), and the new address is announced with a gratuitous ARP. Counters
and reassembly carry on.

Speed
-----
Two paths are the hot ones and are written for speed: a TCP segment
arriving for us (``receive``: one ``struct`` unpack of the Ethernet header,
the wire parsers, integer compares, one ingress object), and a datagram sent
to a resolved neighbour (``send_ip``: a route by mask and compare, a dict
lookup for the neighbour's prepared Ethernet header, the IPv4 header from a
reused template packet, one list for the frame). Everything else is written
for the reader.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, final

import attrs

from ..wire.arp import parse_arp
from ..wire.errors import Malformed
from ..wire.ethernet import (
    BROADCAST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    parse_ethernet,
)
from ..wire.icmpv4 import (
    CODE_PROTOCOL_UNREACHABLE,
    CODE_REASSEMBLY_TIME_EXCEEDED,
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    TIME_EXCEEDED,
    Icmpv4Message,
    icmpv4_header,
    parse_icmpv4,
)
from ..wire.ipv4 import (
    HEADER_LENGTH as IPV4_HEADER_LENGTH,
)
from ..wire.ipv4 import (
    PROTOCOL_ICMP,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    Ipv4Packet,
    ipv4_header,
    parse_ipv4,
)
from ..wire.tcp import parse_tcp
from ..wire.udp import parse_udp
from .config import InterfaceConfig
from .icmp import TokenBucket, error_refusal, quote
from .ingress import EchoReplyIngress, IcmpErrorIngress, Ingress, TcpIngress, UdpIngress
from .neighbor import NeighborCache
from .reassembly import Reassembler
from .route import BROADCAST_HOP, Routes

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Interface", "InterfaceStatistics"]

_ETHERNET = struct.Struct("!6s6sH")
_PORTS = struct.Struct("!HH")
_ETHERNET_HEADER_LENGTH = 14
# The most payload a datagram can carry: its total length field is 16 bits.
_MAX_PAYLOAD = 0xFFFF - IPV4_HEADER_LENGTH


@attrs.frozen
class InterfaceStatistics:
    """What an :class:`Interface` has received, sent and dropped."""

    #: Frames given to :meth:`Interface.receive`, and their bytes.
    frames_received: int
    bytes_received: int
    #: Frames produced for the device, and their bytes.
    frames_sent: int
    bytes_sent: int
    #: What was dropped, by reason (``"arp: no reply"``, ``"tcp: bad
    #: checksum"``...; malformed packets' reasons are the parsers'): a
    #: received frame once, under the first reason it met; a datagram that
    #: could not be sent; an ICMP error not sent (``"icmpv4: ..."``: about a
    #: broadcast, rate limited...), besides the frame that called for it.
    dropped: dict[str, int]
    #: ARP requests and replies sent and received (gratuitous ARP counts
    #: as a request sent).
    arp_requests_sent: int
    arp_replies_sent: int
    arp_requests_received: int
    arp_replies_received: int
    #: Addresses given up on: no reply to any request (incomplete) or to
    #: the probes of a stale entry.
    arp_resolution_failures: int
    #: Entries in the ARP cache now (incomplete ones included), and the
    #: datagrams waiting in them for a MAC.
    arp_entries: int
    arp_pending_frames: int
    #: Fragments received, datagrams made whole from them, datagrams that
    #: timed out, and incomplete ones held now with the frame bytes they hold.
    fragments_received: int
    datagrams_reassembled: int
    reassembly_timeouts: int
    reassembly_datagrams: int
    reassembly_memory: int
    #: Fragments sent, for datagrams larger than the MTU.
    fragments_sent: int
    #: Echo requests received and answered, echo replies received (to our pings).
    echo_requests_received: int
    echo_replies_sent: int
    echo_replies_received: int
    #: ICMP errors sent (protocol/port unreachable, reassembly time
    #: exceeded) and received (all, delivered or not).
    icmp_errors_sent: int
    icmp_errors_received: int


@final
class Interface:
    """One Ethernet interface with one IPv4 address; see the module docs.

    ``Interface(config, now)`` starts it at ``now`` (and queues a
    gratuitous ARP if ``config.gratuitous_arp``).
    """

    __slots__ = (
        "_address",
        "_broadcast_header",
        "_bytes_received",
        "_bytes_sent",
        "_dropped",
        "_echo_replies_received",
        "_echo_replies_sent",
        "_echo_requests_received",
        "_fragments_sent",
        "_frames_received",
        "_frames_sent",
        "_icmp_errors_received",
        "_icmp_errors_sent",
        "_icmp_tokens",
        "_ident",
        "_mac",
        "_max_payload",
        "_neighbors",
        "_output",
        "_reassembler",
        "_routes",
        "_template",
        "_ttl",
        "_verify",
        "config",
    )

    def __init__(self, config: InterfaceConfig, now: float) -> None:
        if not isinstance(config, InterfaceConfig):
            raise TypeError(f"Interface takes an InterfaceConfig, not {config!r}")
        #: The configuration it was made with.
        self.config = config
        self._mac = config.mac
        self._address = config.address
        self._ttl = config.ttl
        self._verify = config.verify_checksums
        self._max_payload = config.mtu - IPV4_HEADER_LENGTH
        self._routes = routes = Routes(config)
        self._broadcast_header = BROADCAST + config.mac + ETHERTYPE_IPV4.to_bytes(2, "big")
        self._output: list[list[Buffer]] = []
        self._frames_received = self._bytes_received = 0
        self._frames_sent = self._bytes_sent = 0
        self._dropped: dict[str, int] = {}
        self._fragments_sent = 0
        self._echo_requests_received = self._echo_replies_sent = 0
        self._echo_replies_received = 0
        self._icmp_errors_sent = self._icmp_errors_received = 0
        self._ident = 0
        # Filled in per datagram sent: a header from a reused object.
        self._template = Ipv4Packet(config.address, 0, 0, config.ttl)
        self._icmp_tokens = TokenBucket(config.icmp_error_rate, config.icmp_error_burst, now)
        self._neighbors = NeighborCache(config, routes, self._emit, self.count_dropped)
        self._reassembler = Reassembler(
            config.reassembly_timeout, config.reassembly_memory, self.count_dropped
        )
        if config.gratuitous_arp and config.address:
            self._neighbors.announce()

    def __repr__(self) -> str:
        address = self._address
        return (
            f"<Interface {self._mac.hex(':')} {address >> 24}.{address >> 16 & 0xFF}."
            f"{address >> 8 & 0xFF}.{address & 0xFF}/{self.config.prefix_length}>"
        )

    # -- receiving ----------------------------------------------------------

    def receive(self, frame: memoryview, now: float) -> Ingress | None:
        """Handle one received Ethernet frame; return what the stack must
        see (see the module docs), or ``None``. Never raises for anything
        in the frame."""
        # Hot path: a TCP segment for us runs straight through (constants
        # inlined: 14 is the Ethernet header, 0x0800 IPv4, 6 TCP, 17 UDP).
        size = len(frame)
        self._frames_received += 1
        self._bytes_received += size
        if size < 14:
            self.count_dropped("ethernet: frame shorter than 14 bytes")
            return None
        dst_mac, src_mac, ethertype = _ETHERNET.unpack_from(frame)
        to_us = dst_mac == self._mac
        if not to_us and dst_mac != BROADCAST:
            self.count_dropped(
                "ethernet: multicast destination (no groups joined)"
                if dst_mac[0] & 1
                else "ethernet: for another host"
            )
            return None
        if src_mac[0] & 1:
            self.count_dropped("ethernet: group address as source")
            return None
        verify = self._verify
        try:
            if ethertype == 0x0800:
                packet = parse_ipv4(frame[14:], verify_checksum=verify)
                dst = packet.dst
                src = packet.src
                address = self._address
                routes = self._routes
                # With no address yet, UDP to our MAC is ours whatever its
                # destination: a DHCP offer (see "No address yet").
                if (
                    dst != address
                    and not routes.is_broadcast(dst)
                    and (address or not to_us or packet.protocol != 17)
                ):
                    self.count_dropped("ipv4: not our address")
                    return None
                # 0.0.0.0 to 255.255.255.255 is a DHCP client's: taken, as Linux does.
                if routes.is_martian_source(src) and (src or dst != 0xFFFFFFFF):
                    self.count_dropped("ipv4: martian source")
                    return None
                if packet.more_fragments or packet.fragment_offset:
                    whole = self._reassembler.add(packet, size, now)
                    if whole is None:
                        return None
                    packet = whole
                protocol = packet.protocol
                if protocol == 6:
                    if not to_us or dst != address:
                        self.count_dropped("tcp: not sent to our address alone")
                        return None
                    return TcpIngress(
                        src,
                        dst,
                        parse_tcp(packet.payload, src, dst, verify_checksum=verify),
                        packet,
                    )
                if protocol == 17:
                    return UdpIngress(
                        src,
                        dst,
                        parse_udp(packet.payload, src, dst, verify_checksum=verify),
                        packet,
                    )
                if protocol == PROTOCOL_ICMP:
                    return self._receive_icmp(packet, now)
                self.count_dropped("ipv4: unsupported protocol")
                self._send_icmp_error(
                    DESTINATION_UNREACHABLE, CODE_PROTOCOL_UNREACHABLE, packet, now
                )
                return None
            if ethertype == ETHERTYPE_ARP:
                self._neighbors.receive(parse_arp(frame[_ETHERNET_HEADER_LENGTH:]), now)
                return None
            # Raises Malformed with wire's reason for VLAN tags and 802.3 frames.
            parse_ethernet(frame)
            self.count_dropped(
                "ethernet: IPv6 is not supported"
                if ethertype == ETHERTYPE_IPV6
                else "ethernet: unsupported EtherType"
            )
            return None
        except Malformed as error:
            self.count_dropped(error.reason)
            return None

    def _receive_icmp(self, packet: Ipv4Packet, now: float) -> Ingress | None:
        message = parse_icmpv4(packet.payload, verify_checksum=self._verify)
        kind = message.type
        for_us = packet.dst == self._address
        if kind == ECHO_REQUEST:
            if not for_us:
                self.count_dropped("icmpv4: echo request to a broadcast address (ignored)")
                return None
            self._echo_requests_received += 1
            data = message.payload
            reply = Icmpv4Message(ECHO_REPLY, 0, message.ident, message.seq)
            if self.send_ip(
                packet.src,
                PROTOCOL_ICMP,
                [icmpv4_header(reply, (data,)), data],
                now,
                dont_fragment=False,
            ):
                self._echo_replies_sent += 1
            return None
        if kind == ECHO_REPLY:
            if not for_us:
                self.count_dropped("icmpv4: echo reply to a broadcast address")
                return None
            self._echo_replies_received += 1
            return EchoReplyIngress(
                packet.src, packet.dst, message.ident, message.seq, message.payload, packet
            )
        # Destination unreachable or time exceeded: the parser checked the quote.
        self._icmp_errors_received += 1
        original = message.original
        assert original is not None
        if not for_us:
            self.count_dropped("icmpv4: error to a broadcast address")
            return None
        if original.src != self._address:
            self.count_dropped("icmpv4: error about a datagram we did not send")
            return None
        protocol = original.protocol
        if protocol != PROTOCOL_TCP and protocol != PROTOCOL_UDP:
            self.count_dropped("icmpv4: error about neither TCP nor UDP")
            return None
        quoted = original.payload
        if original.fragment_offset or len(quoted) < 4:
            self.count_dropped("icmpv4: error quoting no ports")
            return None
        local_port, remote_port = _PORTS.unpack_from(quoted)
        return IcmpErrorIngress(
            packet.src,
            packet.dst,
            kind,
            message.code,
            message.next_hop_mtu,
            protocol,
            original.src,
            local_port,
            original.dst,
            remote_port,
            packet,
        )

    # -- sending ------------------------------------------------------------

    def send_ip(
        self,
        dst: int,
        protocol: int,
        parts: Sequence[Buffer],
        now: float,
        *,
        ttl: int | None = None,
        dont_fragment: bool = True,
        segmented: bool = False,
    ) -> bool:
        """Send the datagram made of ``parts`` (the IP payload: a transport
        header and data) to ``dst`` with IP ``protocol``, from our address.

        True if it went to the output, or waits for the next hop's MAC;
        False (counted) if there is no route to ``dst``, or if it is larger
        than the MTU and ``dont_fragment`` is set. The parts are referenced
        until the frame is transmitted (see the module docs). ``ttl``
        overrides the configured TTL. ``segmented``: a TCP segment the
        device will cut into MTU-sized ones (segmentation offload), sent
        whole however large.
        """
        # Hot path: a datagram to a resolved neighbour.
        if ttl is None:
            ttl = self._ttl
        elif not 0 < ttl < 256:
            raise ValueError(f"ttl must be from 1 to 255, not {ttl}")
        if not 0 <= protocol < 256:
            raise ValueError(f"an IP protocol number is from 0 to 255, not {protocol}")
        hop = self._routes.next_hop(dst)
        if hop >= 0:
            ethernet = self._neighbors.header(hop, now)
        elif hop == BROADCAST_HOP:
            ethernet = self._broadcast_header
        else:
            self.count_dropped(self._routes.unroutable(dst))
            return False
        length = 0
        for part in parts:
            length += len(part)  # type: ignore[arg-type]
        if length > self._max_payload and not segmented:
            if length > _MAX_PAYLOAD:
                raise ValueError(
                    f"an IPv4 datagram carries at most {_MAX_PAYLOAD} bytes after its header, "
                    f"not {length}"
                )
            if dont_fragment:
                self.count_dropped("ipv4: datagram over the MTU with don't-fragment set")
                return False
            return self._send_fragments(dst, hop, ethernet, protocol, parts, length, ttl, now)
        ident = self._ident = (self._ident + 1) & 0xFFFF
        template = self._template
        template.dst = dst
        template.protocol = protocol
        template.ttl = ttl
        template.ident = ident
        template.dont_fragment = dont_fragment
        template.more_fragments = False
        template.fragment_offset = 0
        header = ipv4_header(template, length)
        if ethernet is None:
            return self._neighbors.enqueue(hop, header + b"".join(parts), now)
        self._output.append([ethernet + header, *parts])
        self._frames_sent += 1
        self._bytes_sent += _ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + length
        return True

    def _send_fragments(
        self,
        dst: int,
        hop: int,
        ethernet: bytes | None,
        protocol: int,
        parts: Sequence[Buffer],
        length: int,
        ttl: int,
        now: float,
    ) -> bool:
        """Send a datagram of ``length`` bytes as fragments of at most the
        MTU, cutting the parts into views."""
        step = self._max_payload & ~7
        ident = self._ident = (self._ident + 1) & 0xFFFF
        views = []
        for part in parts:
            view = memoryview(part)
            views.append(view if view.format == "B" else view.cast("B"))
        offset = 0
        index = 0  # the part the next fragment starts in
        skip = 0  # bytes of that part already sent
        sent = True
        while offset < length:
            size = min(step, length - offset)
            pieces: list[Buffer] = []
            need = size
            while need:
                view = views[index]
                piece = view[skip : skip + need]
                if piece:
                    pieces.append(piece)
                need -= len(piece)
                skip += len(piece)
                if skip == len(view):
                    index += 1
                    skip = 0
            header = ipv4_header(
                Ipv4Packet(
                    self._address,
                    dst,
                    protocol,
                    ttl,
                    ident,
                    False,
                    offset + size < length,
                    offset,
                ),
                size,
            )
            self._fragments_sent += 1
            if ethernet is None:
                sent = self._neighbors.enqueue(hop, header + b"".join(pieces), now) and sent
            else:
                self._output.append([ethernet + header, *pieces])
                self._frames_sent += 1
                self._bytes_sent += _ETHERNET_HEADER_LENGTH + len(header) + size
            offset += size
        return sent

    def no_route(self, dst: int) -> str | None:
        """Why a datagram to ``dst`` cannot leave as a unicast (no route,
        our own address, loopback, a broadcast), or None if it can: for
        refusing a connection at once rather than retrying into a drop."""
        hop = self._routes.next_hop(dst)
        if hop >= 0:
            return None
        if hop == BROADCAST_HOP:
            return "route: a broadcast destination"
        return self._routes.unroutable(dst)

    def send_echo_request(self, dst: int, ident: int, seq: int, data: Buffer, now: float) -> bool:
        """Ping ``dst``: an echo request with ``ident``, ``seq`` (16-bit each)
        and ``data``; the reply comes back from :meth:`receive` as an
        :class:`EchoReplyIngress`. Returns what :meth:`send_ip` does."""
        if not (0 <= ident <= 0xFFFF and 0 <= seq <= 0xFFFF):
            raise ValueError(f"ident and seq are 16-bit (0 to 65535), not {ident} and {seq}")
        header = icmpv4_header(Icmpv4Message(ECHO_REQUEST, 0, ident, seq), (data,))
        return self.send_ip(dst, PROTOCOL_ICMP, [header, data], now, dont_fragment=False)

    def send_icmp_unreachable(self, ip: Ipv4Packet, code: int, now: float) -> bool:
        """Answer the received datagram ``ip`` with an ICMP destination
        unreachable (``code``: ``wire.icmpv4.CODE_PORT_UNREACHABLE`` for a
        UDP port nobody listens on). Sent only where RFC 1122 allows (not
        about a broadcast, a martian source, a later fragment, an ICMP error)
        and the rate limit has room; returns whether it was sent (a refusal
        is counted under its reason)."""
        if not 0 <= code <= 15:
            raise ValueError(f"a destination unreachable code is from 0 to 15, not {code}")
        return self._send_icmp_error(DESTINATION_UNREACHABLE, code, ip, now)

    def _send_icmp_error(self, kind: int, code: int, original: Ipv4Packet, now: float) -> bool:
        refusal = error_refusal(original, self._routes)
        if refusal is not None:
            self.count_dropped(refusal)
            return False
        if not self._icmp_tokens.take(now):
            self.count_dropped("icmpv4: error rate limited")
            return False
        body = quote(original)
        header = icmpv4_header(Icmpv4Message(kind, code), body)
        if not self.send_ip(original.src, PROTOCOL_ICMP, [header, *body], now, dont_fragment=False):
            return False
        self._icmp_errors_sent += 1
        return True

    def frames(self) -> list[list[Buffer]]:
        """The frames produced since the last call, each as parts, oldest
        first: give them to one ``device.transmit()``."""
        output = self._output
        self._output = []
        return output

    def _emit(self, parts: list[Buffer]) -> None:
        """Put a whole frame (given as parts) on the output."""
        self._output.append(parts)
        self._frames_sent += 1
        for part in parts:
            self._bytes_sent += len(part)  # type: ignore[arg-type]

    # -- the address ----------------------------------------------------------

    def reconfigure(self, config: InterfaceConfig) -> None:
        """Take ``config``'s address, prefix length and gateway: an address
        at last (a DHCP lease was bound), another one, or none (``address``
        0: the lease was lost). Make ``config`` with
        ``attrs.evolve(iface.config, address=..., ...)``: its other settings
        must be the interface's (``ValueError`` otherwise). The ARP cache
        starts empty and the new address is announced (see "No address yet")."""
        if not isinstance(config, InterfaceConfig):
            raise TypeError(f"reconfigure takes an InterfaceConfig, not {config!r}")
        old = self.config
        if (
            attrs.evolve(
                config,
                address=old.address,
                prefix_length=old.prefix_length,
                gateway=old.gateway,
            )
            != old
        ):
            raise ValueError(
                "reconfigure changes an interface's address, prefix_length and gateway only; "
                "its other settings are fixed when it is made"
            )
        self.config = config
        self._address = config.address
        self._routes = routes = Routes(config)
        self._template = Ipv4Packet(config.address, 0, 0, config.ttl)
        self._neighbors.reconfigure(config, routes)
        if config.gratuitous_arp and config.address:
            self._neighbors.announce()

    # -- time ---------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """Do what is due by ``now``: ARP retries and give-ups, reassembly
        timeouts (and their ICMP time exceeded). Call it when ``now >=
        next_deadline()``; calling it earlier does nothing."""
        self._neighbors.on_timer(now)
        for first in self._reassembler.on_timer(now):
            self._send_icmp_error(TIME_EXCEEDED, CODE_REASSEMBLY_TIME_EXCEEDED, first, now)

    def next_deadline(self) -> float:
        """When :meth:`on_timer` next has work (``math.inf``: none)."""
        arp = self._neighbors.next_deadline()
        reassembly = self._reassembler.next_deadline()
        return arp if arp < reassembly else reassembly

    # -- counting -----------------------------------------------------------

    def count_dropped(self, reason: str) -> None:
        """Count a drop under ``reason`` (a short fixed string, such as
        ``"udp: no socket"``): for the drops the stack decides, so that every
        drop shows in one table."""
        dropped = self._dropped
        dropped[reason] = dropped.get(reason, 0) + 1

    def statistics(self) -> InterfaceStatistics:
        """A snapshot of the counters."""
        neighbors = self._neighbors
        reassembler = self._reassembler
        return InterfaceStatistics(
            frames_received=self._frames_received,
            bytes_received=self._bytes_received,
            frames_sent=self._frames_sent,
            bytes_sent=self._bytes_sent,
            dropped=dict(self._dropped),
            arp_requests_sent=neighbors.requests_sent,
            arp_replies_sent=neighbors.replies_sent,
            arp_requests_received=neighbors.requests_received,
            arp_replies_received=neighbors.replies_received,
            arp_resolution_failures=neighbors.resolution_failures,
            arp_entries=neighbors.entries,
            arp_pending_frames=neighbors.pending_frames,
            fragments_received=reassembler.fragments_received,
            datagrams_reassembled=reassembler.datagrams_reassembled,
            reassembly_timeouts=reassembler.timeouts,
            reassembly_datagrams=reassembler.datagrams_waiting,
            reassembly_memory=reassembler.memory,
            fragments_sent=self._fragments_sent,
            echo_requests_received=self._echo_requests_received,
            echo_replies_sent=self._echo_replies_sent,
            echo_replies_received=self._echo_replies_received,
            icmp_errors_sent=self._icmp_errors_sent,
            icmp_errors_received=self._icmp_errors_received,
        )
