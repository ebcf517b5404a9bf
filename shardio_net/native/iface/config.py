"""InterfaceConfig: the interface's address, subnet, gateway and limits, frozen, checked once.

An interface may start with no address: ``address=0`` (0.0.0.0, as DHCP
spells "no address yet", RFC 1122 3.2.1.3) for a stack that waits for a
DHCP lease; it then has no gateway, and the prefix length means nothing until
``Interface.reconfigure`` gives it an address.

The defaults are Linux's where Linux has one (TTL 64, a 30 s reassembly
timeout and 4 MiB of reassembly memory like ``ipfrag_time`` and
``ipfrag_high_thresh``, 1 s between ARP requests, 1024 neighbours like
``gc_thresh3``, 1000 ICMP errors a second with a burst of 50 like
``icmp_msgs_per_sec`` and ``icmp_msgs_burst``). Addresses are ints, as
everywhere in the stack: ``wire.ipv4.parse_address("10.0.0.1")`` makes one.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from ..phy.device import MAX_MTU, MIN_MTU

__all__ = ["InterfaceConfig"]


def _positive(unit: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 < value < math.inf
        ):
            raise ValueError(
                f"InterfaceConfig.{attribute.name} must be a positive, finite number of "
                f"{unit}, not {value!r}"
            )

    return check


_seconds = _positive("seconds")


def _int_in(least: int, most: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            raise ValueError(
                f"InterfaceConfig.{attribute.name} must be an integer from {least} to {most}, "
                f"not {value!r}"
            )

    return check


def _mac(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bytes) or len(value) != 6:
        raise ValueError(
            f"InterfaceConfig.mac must be 6 bytes (wire.ethernet.parse_mac('02:00:00:00:00:01') "
            f"makes them), not {value!r}"
        )
    if value[0] & 1:
        raise ValueError(
            f"InterfaceConfig.mac {value.hex(':')} is a group (multicast) address; an "
            "interface's MAC is unicast: its first byte is even"
        )


def _address(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(
            f"InterfaceConfig.{attribute.name} must be an IPv4 address as an int "
            f"(wire.ipv4.parse_address('10.0.0.1') makes one), not {value!r}"
        )


def _optional_address(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _address(instance, attribute, value)


def _format(address: int) -> str:
    return f"{address >> 24}.{address >> 16 & 0xFF}.{address >> 8 & 0xFF}.{address & 0xFF}"


@attrs.frozen
class InterfaceConfig:
    """The settings of an :class:`~shardio_net.native.iface.Interface`.

    Times in seconds, sizes in bytes, addresses as ints, the MAC as 6 bytes.
    """

    #: The interface's Ethernet address (the device's).
    mac: bytes = attrs.field(validator=_mac)
    #: The interface's IPv4 address; 0 (0.0.0.0): none yet -- it takes only
    #: UDP, for DHCP, and sends only to 255.255.255.255 (see ``interface.py``).
    address: int = attrs.field(validator=_address)
    #: The subnet's prefix length: 24 for 10.0.0.0/24. Addresses in the
    #: subnet are on the link (resolved with ARP); others go to the gateway.
    prefix_length: int = attrs.field(default=24, validator=_int_in(0, 32))
    #: The default gateway, an address in the subnet; ``None``: only the
    #: subnet is reachable.
    gateway: int | None = attrs.field(default=None, validator=_optional_address)
    #: The IP MTU: the largest datagram sent in one frame.
    mtu: int = attrs.field(default=1500, validator=_int_in(MIN_MTU, MAX_MTU))
    #: The TTL of the datagrams the interface sends (unless told otherwise).
    ttl: int = attrs.field(default=64, validator=_int_in(1, 255))
    #: How long a learned neighbour's MAC is trusted; after that, using it
    #: sends a unicast ARP request to confirm it (frames still go to it).
    arp_entry_lifetime: float = attrs.field(default=60.0, validator=_seconds)
    #: The time between ARP requests for an address that does not answer.
    arp_retry_interval: float = attrs.field(default=1.0, validator=_seconds)
    #: ARP requests sent again, after the first, before an address is given
    #: up (its queued frames dropped): 1 + arp_retries requests in all.
    arp_retries: int = attrs.field(default=3, validator=_int_in(0, 1000))
    #: Frames queued per address while it is being resolved; when more come,
    #: the oldest is dropped (as Linux does).
    arp_pending_limit: int = attrs.field(default=64, validator=_int_in(1, 1_000_000))
    #: Neighbour entries, resolved and pending, kept at most.
    arp_cache_limit: int = attrs.field(default=1024, validator=_int_in(1, 1_000_000))
    #: How long the fragments of a datagram wait for the rest.
    reassembly_timeout: float = attrs.field(default=30.0, validator=_seconds)
    #: The bytes of frames held by incomplete datagrams at most (each
    #: fragment is charged the whole frame it keeps alive).
    reassembly_memory: int = attrs.field(default=4 * 1024 * 1024, validator=_int_in(MIN_MTU, 2**40))
    #: Announce the address with a gratuitous ARP when the interface starts.
    gratuitous_arp: bool = True
    #: Verify IPv4, ICMP, UDP and TCP checksums (off only for a device that
    #: has verified them already).
    verify_checksums: bool = True
    #: ICMP errors sent per second at most, on average (a token bucket).
    icmp_error_rate: float = attrs.field(default=1000.0, validator=_positive("errors a second"))
    #: ICMP errors sent in a burst at most (the bucket's depth).
    icmp_error_burst: int = attrs.field(default=50, validator=_int_in(1, 1_000_000))

    @property
    def netmask(self) -> int:
        """The subnet mask as an int (0xFFFFFF00 for a /24)."""
        return (0xFFFFFFFF << (32 - self.prefix_length)) & 0xFFFFFFFF

    @property
    def network(self) -> int:
        """The subnet's first address."""
        return self.address & self.netmask

    @property
    def broadcast(self) -> int | None:
        """The subnet's directed broadcast address; ``None`` for a /31 or a
        /32, which have none (RFC 3021)."""
        if self.prefix_length > 30:
            return None
        return self.network | (~self.netmask & 0xFFFFFFFF)

    def __attrs_post_init__(self) -> None:
        address = self.address
        text = _format(address)
        if address == 0:
            if self.gateway is not None:
                raise ValueError(
                    f"InterfaceConfig.gateway {_format(self.gateway)} given to an interface with "
                    "no address (0.0.0.0): it has no subnet to reach a gateway in; give the "
                    "gateway with the address"
                )
            return
        if address == 0xFFFFFFFF or address >> 28 == 0xE or address >> 24 == 127:
            raise ValueError(
                f"InterfaceConfig.address {text} is not a unicast host address "
                "(255.255.255.255, multicast and loopback addresses are not; 0.0.0.0 means "
                "no address yet)"
            )
        if self.prefix_length <= 30 and address in (self.network, self.broadcast):
            raise ValueError(
                f"InterfaceConfig.address {text} is the network or broadcast address of its "
                f"/{self.prefix_length} subnet; give a host address"
            )
        gateway = self.gateway
        if gateway is not None:
            if gateway & self.netmask != self.network:
                raise ValueError(
                    f"InterfaceConfig.gateway {_format(gateway)} is not in the interface's "
                    f"subnet {_format(self.network)}/{self.prefix_length}: a gateway must be "
                    "reachable on the link"
                )
            if gateway == address or (
                self.prefix_length <= 30 and gateway in (self.network, self.broadcast)
            ):
                raise ValueError(
                    f"InterfaceConfig.gateway {_format(gateway)} must be another host of the "
                    "subnet, not the interface's own address, nor the network's or its "
                    "broadcast address"
                )
