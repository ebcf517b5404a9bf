"""Routing for one subnet and a default gateway, and the address checks that go with it.

An interface here has one IPv4 address in one subnet, and maybe a gateway in
that subnet: the routing table of a host on one LAN, Linux's two routes
``10.0.0.0/24 dev tap0`` and ``default via 10.0.0.254``. Sending, the next
hop of a destination is

* the destination itself if it is in the subnet (on the link: ARP finds it);
* the link's broadcast if it is the limited broadcast 255.255.255.255 or the
  subnet's directed broadcast (no ARP: the frame goes to ff:ff:ff:ff:ff:ff);
* the gateway for anything else, if there is one;
* nowhere otherwise, and also for destinations a host never routes: 0.0.0.0,
  loopback (127/8: the stack has no loopback device), multicast (224/4: it
  joins no groups) and its own address. :meth:`Routes.unroutable` says which,
  for the drop counters.

Receiving, a datagram is for us if its destination is our address, or a
broadcast one (limited or the subnet's); anything else is another host's and
dropped, since a host does not forward (RFC 1122 3.3.4). Its source is
*martian* -- an address no packet can honestly come from -- if it is 0.0.0.0,
a broadcast or multicast address, loopback, or our own address: Linux drops
those (``ip_route_input_slow``), and so do we, before anything answers them.

An interface with no address yet (0.0.0.0, waiting for DHCP) has no subnet
and no gateway: the limited broadcast is its only destination, and the
reason for every other is "no address yet".

Addresses are ints; the checks are a few integer comparisons, on the hot path
of every datagram sent and received.
"""

from __future__ import annotations

from typing import final

from .config import InterfaceConfig

__all__ = ["BROADCAST_HOP", "LIMITED_BROADCAST", "UNROUTABLE", "Routes"]

#: 255.255.255.255.
LIMITED_BROADCAST = 0xFFFFFFFF
#: :meth:`Routes.next_hop` for a broadcast destination: the link's broadcast.
BROADCAST_HOP = -1
#: :meth:`Routes.next_hop` for a destination with no route.
UNROUTABLE = -2


@final
class Routes:
    """The next hop of a destination and the address checks, for one config."""

    __slots__ = ("address", "gateway", "netmask", "network", "subnet_broadcast")

    def __init__(self, config: InterfaceConfig) -> None:
        self.address = config.address
        self.netmask = config.netmask
        self.network = config.network
        self.gateway = config.gateway
        # A /31 or /32 has no directed broadcast; 255.255.255.255 stands in
        # (it is a broadcast anyway), so the checks need no second test.
        broadcast = config.broadcast
        self.subnet_broadcast = LIMITED_BROADCAST if broadcast is None else broadcast
        if not config.address:
            # No address: nothing is on the link (a /32 of 0.0.0.0), nothing has a route.
            self.netmask = 0xFFFFFFFF
            self.network = 0
            self.subnet_broadcast = LIMITED_BROADCAST

    def next_hop(self, dst: int) -> int:
        """The address to resolve for ``dst``: ``dst`` on the link, the
        gateway off it; :data:`BROADCAST_HOP` or :data:`UNROUTABLE`."""
        # Hot path: a few integer compares.
        top = dst >> 24
        if top == 0 or top == 127 or top >> 4 == 0xE:
            return UNROUTABLE
        if dst & self.netmask == self.network:
            if dst == self.address:
                return UNROUTABLE
            if dst == self.subnet_broadcast:
                return BROADCAST_HOP
            return dst
        if dst == LIMITED_BROADCAST:
            return BROADCAST_HOP
        gateway = self.gateway
        return UNROUTABLE if gateway is None else gateway

    def unroutable(self, dst: int) -> str:
        """Why ``next_hop(dst)`` is :data:`UNROUTABLE`: a drop reason."""
        top = dst >> 24
        if not self.address:
            return "route: no address yet (only 255.255.255.255)"
        if dst == self.address:
            return "route: our own address (no loopback)"
        if top == 0:
            return "route: destination in 0.0.0.0/8"
        if top == 127:
            return "route: loopback destination (no loopback)"
        if top >> 4 == 0xE:
            return "route: multicast destination (no groups)"
        return "route: no route (off the subnet, no gateway)"

    def is_broadcast(self, address: int) -> bool:
        """Whether ``address`` is the limited or the subnet's broadcast."""
        return address == LIMITED_BROADCAST or address == self.subnet_broadcast

    def is_martian_source(self, src: int) -> bool:
        """Whether no datagram can honestly come from ``src``."""
        top = src >> 24
        return (
            top == 0
            or top == 127
            or top >> 4 == 0xE
            or src == LIMITED_BROADCAST
            or src == self.subnet_broadcast
            or src == self.address
        )
