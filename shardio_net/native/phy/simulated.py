"""A simulated Ethernet: devices joined in memory, timed by the callers' clock.

:class:`SimulatedLink` is a segment that any number of
:class:`SimulatedDevice` ports attach to; two ports make a cable, more make
a switch (frames go to the port whose device has the destination MAC) or,
with ``switched=False``, a hub (every frame to every other port). It is what
``shardio_net.native.simulated_pair`` builds its two stacks on, and what a
test of a protocol under a faulty network wraps in fault injectors.

What a frame goes through
-------------------------
``transmit(frames, now)`` on a port, for each frame in order:

1. The parts are joined into one ``bytes`` (the frame's own memory from now
   on; a frame given as one ``bytes`` part is kept as it is). A frame longer
   than ``mtu + 14`` is dropped and counted (``dropped_oversize``), as a NIC
   drops a giant; one shorter than an Ethernet header (``dropped_runt``) too.
2. With a ``rate``, it is serialized on the sending port's uplink (see
   ``_serializer.py``): it leaves once the frames before it have, ``size /
   rate`` seconds after it started, or is dropped if the port's queue is full
   (``dropped_queue_full``). Without one it leaves at ``now``.
3. It arrives ``latency`` seconds after it left, at every destination port:
   the receiving device's ``receive(now)`` returns it from then on.
   Destinations: on a hub every other port; on a switch the port with the
   destination MAC, or every other port for a broadcast or multicast
   address or a MAC no port has (a switch floods unknown unicast). A frame
   a port sends to its own MAC goes nowhere.
4. Each destination's waker is called once per ``transmit`` call, after the
   whole batch is queued.

Order: a port's frames leave in the order sent and all take the same latency,
so they arrive in that order (unless ``latency`` is lowered while they fly);
frames from several ports to one are merged by arrival time, ties in the
order they were queued. Reordering is a fault, and faults are
:class:`~shardio_net.native.phy.faults.FaultInjector`'s: the link itself is
perfect but for its latency, its rate and its MTU. It draws no random
numbers, so its output is a function of its inputs alone.

Time is only ever the ``now`` the callers pass (see ``device.py``): under a
``MockClock`` a run is reproducible to the byte. A link lives in one shard,
and every port is used from that shard's thread; nothing here is shared
across processes.

Speed
-----
``transmit`` and ``receive`` are the hot path (every frame of every
simulated test and of the stack-to-stack benchmarks goes through them) and
are written for it: locals for attribute lookups, one ``heapq`` operation per
frame and destination, the join skipped when the frame is already ``bytes``,
wakers called once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappop, heappush
from math import inf
from typing import TYPE_CHECKING, final

import attrs

from shardio import ClosedResourceError

from ._serializer import Serializer, check_rate
from .device import ETHERNET_HEADER_LENGTH, Waker, check_mac, check_mtu

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_QUEUE_BYTES",
    "SimulatedDevice",
    "SimulatedDeviceStatistics",
    "SimulatedLink",
]

#: A rate-limited port's queue, in bytes, unless told otherwise: about a
#: hundred full-size frames, the order of a small router's buffer per port.
DEFAULT_QUEUE_BYTES = 151_400


_FIXED = attrs.setters.frozen


def _check_latency(latency: object) -> float:
    if not isinstance(latency, int | float) or isinstance(latency, bool):
        raise TypeError(f"latency must be a number of seconds, not {latency!r}")
    if not 0 <= latency < inf:
        raise ValueError(f"latency must be a finite number of seconds >= 0, not {latency}")
    return float(latency)


@final
@attrs.define(eq=False, slots=True, repr=False)
class SimulatedLink:
    """An Ethernet segment in memory; see the module docs.

    ``latency`` (seconds) is the one-way delay of every frame, ``rate``
    (bytes per second, ``None`` for unlimited) the speed of each port's
    uplink, ``queue_bytes`` the queue in front of it, ``mtu`` the IP MTU of
    every port, and ``switched`` chooses a switch (by MAC) over a hub.
    Attach devices with :meth:`attach`.
    """

    #: One-way delay of every frame, in seconds; may be changed as frames
    #: flow: it applies to frames sent from then on (lowered, it lets them
    #: overtake the frames in flight, as a shorter route would).
    latency: float = attrs.field(default=0.0, kw_only=True, converter=_check_latency)
    #: Each port's uplink speed in bytes per second; ``None``: unlimited.
    rate: float | None = attrs.field(default=None, kw_only=True, on_setattr=_FIXED)
    #: The bytes a port's uplink queues before it drops (with ``rate``).
    queue_bytes: int = attrs.field(default=DEFAULT_QUEUE_BYTES, kw_only=True, on_setattr=_FIXED)
    #: The IP MTU of every port.
    mtu: int = attrs.field(default=1500, kw_only=True, converter=check_mtu, on_setattr=_FIXED)
    #: True: a switch, frames to the port with their destination MAC; False: a hub.
    switched: bool = attrs.field(default=True, kw_only=True, on_setattr=_FIXED)
    _ports: list[SimulatedDevice] = attrs.field(factory=list, init=False)
    _by_mac: dict[bytes, SimulatedDevice] = attrs.field(factory=dict, init=False)
    _attached: int = attrs.field(default=0, init=False)
    # Tie-break for frames due at the same time: the order they were queued.
    _sequence: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        check_rate(self.rate, self.queue_bytes, self.mtu + ETHERNET_HEADER_LENGTH)
        if not isinstance(self.switched, bool):
            raise TypeError(f"switched must be True or False, not {self.switched!r}")

    def __repr__(self) -> str:
        kind = "switch" if self.switched else "hub"
        return (
            f"<SimulatedLink {kind}, {len(self._ports)} ports, latency={self.latency}, "
            f"rate={self.rate}, mtu={self.mtu}>"
        )

    @property
    def devices(self) -> tuple[SimulatedDevice, ...]:
        """The attached devices, in the order they were attached."""
        return tuple(self._ports)

    def attach(self, mac: bytes | None = None) -> SimulatedDevice:
        """A new port on this link, with its device.

        ``mac`` defaults to a locally administered address numbered by
        attachment, ``02:00:00:00:00:01``, ``...:02``, ...; a MAC already
        on the link is a ``ValueError`` (a switch could not tell them apart).
        """
        self._attached += 1
        if mac is None:
            mac = b"\x02\x00\x00\x00" + self._attached.to_bytes(2, "big")
        else:
            mac = check_mac(mac)
            if mac[0] & 1:
                raise ValueError(
                    f"{mac.hex(':')} is a group (multicast) address; a device's MAC is "
                    "unicast: its first byte is even"
                )
            if mac in self._by_mac:
                raise ValueError(
                    f"MAC {mac.hex(':')} is already attached to this link; give each device "
                    "its own (or leave mac=None for a fresh one)"
                )
        serializer = None if self.rate is None else Serializer(self.rate, self.queue_bytes)
        device = SimulatedDevice(self, mac, serializer)
        self._ports.append(device)
        self._by_mac[mac] = device
        self._update_routes()
        return device

    def _detach(self, device: SimulatedDevice) -> None:
        self._ports.remove(device)
        del self._by_mac[device.mac]
        self._update_routes()

    def _update_routes(self) -> None:
        for device in self._ports:
            device._others = tuple(other for other in self._ports if other is not device)
            device._by_mac = self._by_mac if self.switched else None


@attrs.frozen
class SimulatedDeviceStatistics:
    """What a :class:`SimulatedDevice` has carried and dropped."""

    #: Frames this port put on the link, and their bytes.
    frames_sent: int
    bytes_sent: int
    #: Frames :meth:`SimulatedDevice.receive` returned, and their bytes.
    frames_received: int
    bytes_received: int
    #: Frames arrived or on their way, not yet returned by ``receive``.
    frames_queued: int
    #: Frames this port dropped: longer than ``mtu + 14`` bytes.
    dropped_oversize: int
    #: Frames this port dropped: shorter than an Ethernet header.
    dropped_runt: int
    #: Frames this port dropped because its uplink queue was full.
    dropped_queue_full: int


@final
class SimulatedDevice:
    """One port of a :class:`SimulatedLink`: a :class:`~.device.Device`.

    Made by :meth:`SimulatedLink.attach`. Received frames are read-only
    views of ``bytes``; see ``device.py`` for the ownership rules.
    """

    __slots__ = (
        "_by_mac",
        "_bytes_received",
        "_bytes_sent",
        "_dropped_oversize",
        "_dropped_queue_full",
        "_dropped_runt",
        "_frames_received",
        "_frames_sent",
        "_inbox",
        "_link",
        "_max_frame",
        "_others",
        "_serializer",
        "_waker",
        "mac",
        "mtu",
    )

    def __init__(self, link: SimulatedLink, mac: bytes, serializer: Serializer | None) -> None:
        #: This device's Ethernet address.
        self.mac = mac
        #: The link's IP MTU.
        self.mtu = link.mtu
        self._link: SimulatedLink | None = link
        self._max_frame = link.mtu + ETHERNET_HEADER_LENGTH
        self._serializer = serializer
        # Frames on their way here: (arrival time, link sequence, frame).
        self._inbox: list[tuple[float, int, bytes]] = []
        self._waker: Waker | None = None
        # Routing, kept by the link: every other port, and (switch only) MAC -> port.
        self._others: tuple[SimulatedDevice, ...] = ()
        self._by_mac: dict[bytes, SimulatedDevice] | None = None
        self._frames_sent = self._bytes_sent = 0
        self._frames_received = self._bytes_received = 0
        self._dropped_oversize = self._dropped_runt = self._dropped_queue_full = 0

    def __repr__(self) -> str:
        state = "closed" if self._link is None else f"{len(self._inbox)} frames queued"
        return f"<SimulatedDevice {self.mac.hex(':')}, {state}>"

    @property
    def link(self) -> SimulatedLink | None:
        """The link this device is attached to; ``None`` once closed."""
        return self._link

    def receive(self, now: float) -> list[memoryview]:
        """Every frame that has arrived by ``now``, in arrival order."""
        # Hot path: once per stack pass.
        inbox = self._inbox
        if not inbox or inbox[0][0] > now:
            if self._link is None:
                raise ClosedResourceError("this simulated device was closed")
            return []
        frames = []
        size = 0
        while inbox and inbox[0][0] <= now:
            frame = heappop(inbox)[2]
            size += len(frame)
            frames.append(memoryview(frame))
        self._frames_received += len(frames)
        self._bytes_received += size
        return frames

    def transmit(self, frames: Sequence[Sequence[Buffer]], now: float) -> None:
        """Put ``frames`` on the link, in order (see the module docs for what
        happens to each); wake each destination once."""
        # Hot path: once per stack pass, the loop once per frame.
        link = self._link
        if link is None:
            raise ClosedResourceError("this simulated device was closed")
        max_frame = self._max_frame
        serializer = self._serializer
        latency = link.latency
        others = self._others
        by_mac = self._by_mac
        sequence = link._sequence
        sent = sent_bytes = 0
        woken: list[SimulatedDevice] = []
        try:
            for parts in frames:
                if len(parts) == 1 and type(parts[0]) is bytes:
                    frame: bytes = parts[0]
                else:
                    frame = b"".join(parts)
                size = len(frame)
                if size > max_frame:
                    self._dropped_oversize += 1
                    continue
                if size < ETHERNET_HEADER_LENGTH:
                    self._dropped_runt += 1
                    continue
                if serializer is None:
                    arrival = now + latency
                else:
                    left = serializer.admit(size, now)
                    if left is None:
                        self._dropped_queue_full += 1
                        continue
                    arrival = left + latency
                sent += 1
                sent_bytes += size
                destinations = others
                if by_mac is not None:
                    # Broadcast, multicast (no port has a group address) and
                    # unknown unicast all miss, and flood.
                    port = by_mac.get(frame[:6])
                    if port is self:
                        continue
                    if port is not None:
                        destinations = (port,)
                for port in destinations:
                    sequence += 1
                    heappush(port._inbox, (arrival, sequence, frame))
                    if port not in woken:
                        woken.append(port)
        finally:
            link._sequence = sequence
            self._frames_sent += sent
            self._bytes_sent += sent_bytes
            for port in woken:
                waker = port._waker
                if waker is not None:
                    waker()

    def next_deadline(self) -> float:
        """When the next frame on its way here arrives (``inf``: none is)."""
        inbox = self._inbox
        return inbox[0][0] if inbox else inf

    def set_waker(self, waker: Waker | None) -> None:
        """Call ``waker()`` after each ``transmit`` that queued frames here."""
        self._waker = waker

    def close(self) -> None:
        """Leave the link: frames on their way here are lost, later ones go
        elsewhere (or nowhere). Idempotent."""
        link = self._link
        if link is None:
            return
        self._link = None
        link._detach(self)
        self._inbox.clear()
        self._others = ()
        self._by_mac = None
        self._waker = None

    def statistics(self) -> SimulatedDeviceStatistics:
        """Counters of what this port carried and dropped."""
        return SimulatedDeviceStatistics(
            frames_sent=self._frames_sent,
            bytes_sent=self._bytes_sent,
            frames_received=self._frames_received,
            bytes_received=self._bytes_received,
            frames_queued=len(self._inbox),
            dropped_oversize=self._dropped_oversize,
            dropped_runt=self._dropped_runt,
            dropped_queue_full=self._dropped_queue_full,
        )
