"""The ARP cache: neighbours' MACs, the frames waiting for them, and the ARP protocol.

To put a datagram on the link the interface needs the next hop's Ethernet
address, which ARP (RFC 826) finds: a broadcast "who has 10.0.0.2?" that the
owner answers. This file keeps what is known, asks for what is not, and
answers the questions others ask about us. It follows what Linux does, since
Linux is the peer on the other side of a TAP device (``net/ipv4/arp.c``,
``net/core/neighbour.c``), simplified where a simpler rule serves a host
with one address on one link.

Entries
-------
An entry is one neighbour's IPv4 address, and one of:

* **incomplete** -- no MAC yet. Created by the first datagram to an unknown
  on-link next hop: a broadcast request goes out at once and again every
  ``arp_retry_interval`` seconds, ``arp_retries`` times more; the datagrams
  sent meanwhile wait in the entry's *pending queue* (at most
  ``arp_pending_limit``: when it is full the oldest is dropped, as Linux
  drops the head of ``arp_queue``). The answer sends them, in the order they
  were queued. No answer after the last request: the entry is removed, its
  frames dropped and counted ("arp: no reply"), and the next datagram to that
  address starts again from the first request.
* **reachable** -- a MAC learned less than ``arp_entry_lifetime`` seconds
  ago. Frames go to it, and that is all.
* **stale** -- the lifetime has passed. Frames still go to the MAC (it is
  almost always right, and a busy TCP flow must not stall on a cache
  refresh), but the first use starts a *probe*: unicast requests to that MAC,
  ``arp_retries + 1`` of them at the retry interval, as Linux's PROBE state
  sends ``ucast_solicit`` ones. An answer makes the entry reachable again;
  none removes it, and the next datagram resolves from scratch with
  broadcasts. A stale entry nobody uses costs nothing and sends nothing.
  (Linux waits 5 s in a DELAY state first, for TCP to confirm the neighbour
  with its ACKs; the stack gives no such confirmations, so we probe at once.)

The cache holds at most ``arp_cache_limit`` entries. A new one that does
not fit first sweeps away the stale entries that are not probing; if none
are, it evicts the resolved entry that went stale first; if every entry is
incomplete, the datagram is dropped ("arp: cache full").

Learning
--------
From an ARP packet with sender ``S`` (MAC ``M``) and target ``T``, as Linux
does with ``arp_accept`` off (its default):

* a **request for our address** creates or updates ``S -> M`` -- whoever
  asks is about to talk to us, and our answers would otherwise need a
  request of their own -- and is answered with a unicast reply to ``M``;
* a **reply** for our address updates an entry we have (incomplete ones
  included: that is how a resolution ends), but creates none: an unsolicited
  reply is not trusted with a new entry;
* any other packet -- a request for another host, a gratuitous ARP (an
  announcement: a request with ``S == T``) -- updates an entry we have and
  creates none, so a neighbour that changes its MAC and announces it is
  followed at once.

Refused, and counted: a sender MAC that is a group address; a sender address
not in our subnet, or a broadcast one; and a sender claiming our own address
with another MAC (an address conflict: RFC 5227 calls for a defence, which we
leave to the operator). An RFC 5227 probe -- a request from 0.0.0.0 --
teaches nothing, but a probe for our address is answered, as Linux answers
it, so the prober sees the address is taken.

An interface with no address yet (0.0.0.0, waiting for DHCP) takes no part
in ARP: it answers nothing (a probe for 0.0.0.0 must not be answered),
learns nothing and announces nothing; every ARP packet is dropped ("arp: no
address yet"). When it gets an address (or another one), the cache starts
empty -- the old entries may belong to another subnet -- the frames still
waiting are dropped ("arp: address changed"), and the new address is
announced.

At start the interface announces its address with one gratuitous ARP (RFC
5227's announcement: a broadcast request with ``S == T`` = our address and a
zero target MAC), as Linux does when an address is added, so that
neighbours holding an old MAC for it update.

Buffers
-------
A resolved neighbour's Ethernet header (its MAC, ours, type IPv4) is made
once, when it is learned; sending to it is a dict lookup and a compare of
``now`` with the entry's expiry (:meth:`NeighborCache.header`, the hot path).
A datagram queued while its next hop resolves is copied, header and payload
joined into one ``bytes``: the caller's parts may change once ``send_ip``
returns, and the queue may hold them for seconds. Only the slow path pays it.

Timers
------
Incomplete and probing entries have a deadline (their next request). They
go in a heap, ``(deadline, sequence, entry)``; an item is acted on only if
its entry is still in the cache with that deadline, so nothing is removed
from the heap when an entry is resolved or dropped -- the stale item is
skipped when it comes up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from math import inf
from typing import TYPE_CHECKING, final

from ..wire.arp import REPLY, REQUEST, ArpPacket, arp_header
from ..wire.ethernet import BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4
from .config import InterfaceConfig
from .route import Routes

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["NeighborCache"]

_ZERO_MAC = b"\x00" * 6
_IPV4 = ETHERTYPE_IPV4.to_bytes(2, "big")
_ARP = ETHERTYPE_ARP.to_bytes(2, "big")


@final
class _Neighbor:
    """One entry: see the module docs for its states."""

    __slots__ = ("address", "deadline", "expires", "header", "mac", "pending", "requests_left")

    def __init__(self, address: int) -> None:
        self.address = address
        #: None while incomplete.
        self.mac: bytes | None = None
        #: The Ethernet header of an IPv4 frame to it (b"" while incomplete).
        self.header = b""
        #: When the MAC goes stale.
        self.expires = -inf
        #: When the next request is due; inf when none is outstanding.
        self.deadline = inf
        self.requests_left = 0
        #: IPv4 datagrams (header and payload joined) waiting for the MAC.
        self.pending: deque[bytes] = deque()


@final
class NeighborCache:
    """The ARP cache and protocol of one interface; see the module docs.

    Frames it sends (requests, replies, released datagrams) go to ``emit``,
    drops to ``drop`` (a reason), both the interface's.
    """

    __slots__ = (
        "_address",
        "_announcement",
        "_entries",
        "_eth_prefix",
        "_lifetime",
        "_limit",
        "_mac",
        "_pending_limit",
        "_retries",
        "_retry_interval",
        "_routes",
        "_sequence",
        "_timers",
        "drop",
        "emit",
        "replies_received",
        "replies_sent",
        "requests_received",
        "requests_sent",
        "resolution_failures",
    )

    def __init__(
        self,
        config: InterfaceConfig,
        routes: Routes,
        emit: Callable[[list[Buffer]], None],
        drop: Callable[[str], None],
    ) -> None:
        self._mac = config.mac
        self._address = config.address
        self._routes = routes
        self._lifetime = config.arp_entry_lifetime
        self._retry_interval = config.arp_retry_interval
        self._retries = config.arp_retries
        self._pending_limit = config.arp_pending_limit
        self._limit = config.arp_cache_limit
        self._eth_prefix = config.mac + _IPV4
        self._entries: dict[int, _Neighbor] = {}
        self._timers: list[tuple[float, int, _Neighbor]] = []
        self._sequence = 0
        self.emit = emit
        self.drop = drop
        self.requests_sent = self.replies_sent = 0
        self.requests_received = self.replies_received = 0
        self.resolution_failures = 0
        self._announcement = arp_header(
            ArpPacket(REQUEST, config.mac, config.address, _ZERO_MAC, config.address)
        )

    # -- sending ------------------------------------------------------------

    def header(self, address: int, now: float) -> bytes | None:
        """The Ethernet header for an IPv4 frame to the on-link ``address``,
        or ``None`` if it is not resolved (then :meth:`enqueue` the datagram).
        A stale entry starts a probe and is still used."""
        # Hot path: every datagram sent to a neighbour.
        entry = self._entries.get(address)
        if entry is None or entry.mac is None:
            return None
        if now >= entry.expires and entry.deadline == inf:
            entry.requests_left = self._retries
            self._request(entry, entry.mac, now)
        return entry.header

    def enqueue(self, address: int, datagram: bytes, now: float) -> bool:
        """Queue ``datagram`` (IPv4 header and payload) for ``address``,
        which has no MAC yet; the first one starts resolving it. False if the
        cache has no room for another entry (counted)."""
        entry = self._entries.get(address)
        if entry is None:
            entry = self._new_entry(address, now)
            if entry is None:
                self.drop("arp: cache full")
                return False
            entry.requests_left = self._retries
            self._request(entry, BROADCAST, now)
        pending = entry.pending
        if len(pending) >= self._pending_limit:
            pending.popleft()
            self.drop("arp: pending queue full (oldest frame dropped)")
        pending.append(datagram)
        return True

    def announce(self) -> None:
        """Send a gratuitous ARP for our address (see the module docs)."""
        self.requests_sent += 1
        self.emit([BROADCAST + self._mac + _ARP + self._announcement])

    def reconfigure(self, config: InterfaceConfig, routes: Routes) -> None:
        """Take ``config``'s address and ``routes``: the cache starts empty
        (waiting frames dropped, counted). The caller announces the address."""
        self._address = config.address
        self._routes = routes
        self._announcement = arp_header(
            ArpPacket(REQUEST, config.mac, config.address, _ZERO_MAC, config.address)
        )
        for entry in self._entries.values():
            for _ in entry.pending:
                self.drop("arp: address changed")
        self._entries.clear()
        self._timers.clear()

    # -- receiving ----------------------------------------------------------

    def receive(self, packet: ArpPacket, now: float) -> None:
        """Learn from ``packet`` and answer it, as the module docs say."""
        operation = packet.operation
        if operation == REQUEST:
            self.requests_received += 1
        else:
            self.replies_received += 1
        sender = packet.sender_ip
        sender_mac = packet.sender_mac
        target = packet.target_ip
        address = self._address
        if not address:
            self.drop("arp: no address yet")
            return
        if sender_mac[0] & 1:
            self.drop("arp: group address as sender MAC")
            return
        if sender == address:
            if sender_mac != self._mac:
                self.drop("arp: another host claims our address")
            return
        if sender == 0:
            # An RFC 5227 probe: answer one for our address, learn nothing.
            if operation == REQUEST and target == address:
                self._reply(sender_mac, 0)
            else:
                self.drop("arp: probe for another address")
            return
        routes = self._routes
        if sender & routes.netmask != routes.network or routes.is_broadcast(sender):
            self.drop("arp: sender not in our subnet")
            return
        if target == address:
            self._learn(sender, sender_mac, now, create=operation == REQUEST)
            if operation == REQUEST:
                self._reply(sender_mac, sender)
        elif not self._learn(sender, sender_mac, now, create=False):
            self.drop("arp: for another host")

    # -- timers -------------------------------------------------------------

    def next_deadline(self) -> float:
        """When the next ARP request is due (inf: none)."""
        timers = self._timers
        entries = self._entries
        while timers:
            when, _, entry = timers[0]
            if entries.get(entry.address) is entry and entry.deadline == when:
                return when
            heappop(timers)
        return inf

    def on_timer(self, now: float) -> None:
        """Send the requests that are due; give up on addresses that had
        their last."""
        timers = self._timers
        entries = self._entries
        while timers and timers[0][0] <= now:
            when, _, entry = heappop(timers)
            if entries.get(entry.address) is not entry or entry.deadline != when:
                continue
            if entry.requests_left > 0:
                entry.requests_left -= 1
                self._request(entry, BROADCAST if entry.mac is None else entry.mac, now)
                continue
            del entries[entry.address]
            self.resolution_failures += 1
            for _ in entry.pending:
                self.drop("arp: no reply")
            entry.pending.clear()

    # -- looking at it ------------------------------------------------------

    @property
    def entries(self) -> int:
        """Entries in the cache, incomplete ones included."""
        return len(self._entries)

    @property
    def pending_frames(self) -> int:
        """Datagrams waiting for a MAC, over all incomplete entries."""
        return sum(len(entry.pending) for entry in self._entries.values())

    # -- inside -------------------------------------------------------------

    def _learn(self, address: int, mac: bytes, now: float, *, create: bool) -> bool:
        """Set ``address -> mac``, reachable from ``now``; send what waited
        for it. Returns whether there is now an entry (``create=False``
        updates one we have, or does nothing)."""
        entry = self._entries.get(address)
        if entry is None:
            if not create:
                return False
            entry = self._new_entry(address, now)
            if entry is None:
                self.drop("arp: cache full")
                return False
        if entry.mac != mac:
            entry.mac = mac
            entry.header = mac + self._eth_prefix
        entry.expires = now + self._lifetime
        entry.deadline = inf
        entry.requests_left = 0
        pending = entry.pending
        if pending:
            header = entry.header
            emit = self.emit
            for datagram in pending:
                emit([header, datagram])
            pending.clear()
        return True

    def _new_entry(self, address: int, now: float) -> _Neighbor | None:
        entries = self._entries
        if len(entries) >= self._limit:
            self._make_room(now)
            if len(entries) >= self._limit:
                return None
        entry = entries[address] = _Neighbor(address)
        return entry

    def _make_room(self, now: float) -> None:
        """Remove the stale entries that are not probing; failing that, the
        resolved entry that went stale first. Only when the cache is full: a
        sweep over every entry."""
        entries = self._entries
        resolved = [entry for entry in entries.values() if entry.mac is not None]
        stale = [entry for entry in resolved if now >= entry.expires and entry.deadline == inf]
        if not stale and resolved:
            stale = [min(resolved, key=lambda entry: entry.expires)]
        for entry in stale:
            del entries[entry.address]

    def _request(self, entry: _Neighbor, destination: bytes, now: float) -> None:
        """Ask for ``entry``'s MAC (broadcast, or unicast to probe a stale
        one) and set the next retry."""
        self.requests_sent += 1
        self.emit(
            [
                destination
                + self._mac
                + _ARP
                + arp_header(ArpPacket(REQUEST, self._mac, self._address, _ZERO_MAC, entry.address))
            ]
        )
        deadline = entry.deadline = now + self._retry_interval
        self._sequence += 1
        heappush(self._timers, (deadline, self._sequence, entry))

    def _reply(self, mac: bytes, address: int) -> None:
        self.replies_sent += 1
        self.emit(
            [
                mac
                + self._mac
                + _ARP
                + arp_header(ArpPacket(REPLY, self._mac, self._address, mac, address))
            ]
        )
