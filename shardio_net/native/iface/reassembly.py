"""IPv4 reassembly: fragments held until their datagram is whole, in bounded memory.

A datagram larger than a link's MTU travels in fragments (RFC 791): each an
IPv4 packet with the datagram's ``ident``, its payload's offset in the
datagram (a multiple of 8 bytes), and the more-fragments flag on all but the
last. The receiver puts them together. Fragments are identified by
``(src, dst, protocol, ident)``; they may come in any order, duplicated, or
never.

How
---
A datagram being reassembled is a list of its fragments sorted by offset,
each ``(offset, end, payload view)``. The views are of the frames the
fragments came in: nothing is copied until the datagram is whole, when the
payloads are joined into one ``bytes`` -- the one copy, unavoidable, since the
layers above expect a datagram's payload in one buffer. It is whole when the
last fragment (more-fragments off) has said how long it is and the bytes held
add up to that length: overlaps are refused (below), so bytes held and bytes
covered are the same number. An insertion is a bisection and two
comparisons with the neighbours in the list. (RFC 815's hole list solves
the same problem for a reassembler that must keep overlapping data; refusing
overlaps makes the sorted list enough.)

Refused
-------
* **Overlapping fragments** drop the *whole* datagram, and are counted:
  overlaps are how fragment attacks hide a header from a firewall (RFC 1858)
  or make two stacks disagree on a datagram's content, no honest sender
  makes them, and Linux has dropped such datagrams since 2018 (RFC 5722 says
  the same for IPv6). An *exact* duplicate (same offset and end: the network
  duplicated a frame) is not an overlap: it is dropped alone, and the
  datagram continues, as Linux and RFC 5722's erratum do.
* A fragment that is not the last but whose length is not a multiple of 8
  (the next offset could not follow it), an empty fragment, a last fragment
  whose end differs from another last one's or lies before bytes already
  received, and a fragment past the known end: the fragment, or the datagram
  when its fragments contradict each other, dropped and counted.
* A datagram whose header and payload would exceed 65535 bytes once whole
  (the "ping of death"): dropped when complete, as Linux does.

Bounds
------
*Memory*: every fragment held is charged the size of the **whole frame** it
keeps alive (a view keeps all of its frame's memory), and the total stays
under ``reassembly_memory``. A fragment that does not fit evicts the oldest
incomplete datagrams until it does (never its own); one that does not fit
even alone is dropped with its datagram. Evicting the oldest, rather than
refusing new fragments as Linux does above ``ipfrag_high_thresh``, keeps a
flood of fragments that never complete from blocking every other datagram
for a whole timeout.

*Time*: a datagram is given ``reassembly_timeout`` seconds from its first
fragment (not refreshed by later ones, as Linux's ``ipfrag_time``); then it is
dropped and counted, and if its first fragment had come, the interface
answers with an ICMP time exceeded (code 1, RFC 792), as Linux does. The
datagrams are kept in a dict in the order they started, which is also the
order of their deadlines (time only goes forward), so the next deadline is
the first entry's and no heap is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from math import inf
from operator import itemgetter
from typing import final

from ..wire.ipv4 import Ipv4Packet

__all__ = ["Reassembler"]

_Key = tuple[int, int, int, int]
_offset_of = itemgetter(0)


@final
class _Datagram:
    __slots__ = ("charged", "deadline", "first", "fragments", "received", "total")

    def __init__(self, deadline: float) -> None:
        #: (offset, end, payload view), sorted by offset, never overlapping.
        self.fragments: list[tuple[int, int, memoryview]] = []
        #: Payload bytes held.
        self.received = 0
        #: The payload's length, once the last fragment has come; -1 before.
        self.total = -1
        #: Bytes of frames held, charged to the memory bound.
        self.charged = 0
        self.deadline = deadline
        #: The fragment at offset 0, once it has come.
        self.first: Ipv4Packet | None = None


_DUPLICATE = "ipv4: duplicate fragment"
_OVERLAP = "ipv4: overlapping fragments (datagram dropped)"
_PAST_END = "ipv4: fragment past the datagram's end"


def _place(datagram: _Datagram, offset: int, end: int, last: bool) -> int | str:
    """Where the fragment ``[offset, end)`` goes in ``datagram``'s list, or
    why it cannot join it: a duplicate (dropped alone) or a contradiction
    (the datagram is dropped)."""
    fragments = datagram.fragments
    total = datagram.total
    if last:
        if total >= 0 and total != end:
            return "ipv4: fragments disagree on the datagram's length"
        if fragments and fragments[-1][1] > end:
            return _PAST_END
    elif total >= 0 and end > total:
        return _PAST_END
    index = bisect_left(fragments, offset, key=_offset_of)
    if index < len(fragments):
        following = fragments[index]
        if following[0] == offset and following[1] == end:
            return _DUPLICATE
        if following[0] < end:
            return _OVERLAP
    if index and fragments[index - 1][1] > offset:
        return _OVERLAP
    return index


@final
class Reassembler:
    """Puts fragments together; see the module docs.

    Drops go to ``drop`` (a reason), the interface's counter.
    """

    __slots__ = (
        "_datagrams",
        "_limit",
        "_timeout",
        "datagrams_reassembled",
        "drop",
        "fragments_received",
        "memory",
        "timeouts",
    )

    def __init__(self, timeout: float, limit: int, drop: Callable[[str], None]) -> None:
        self._timeout = timeout
        self._limit = limit
        self._datagrams: dict[_Key, _Datagram] = {}
        self.drop = drop
        #: Bytes of frames held now.
        self.memory = 0
        self.fragments_received = 0
        self.datagrams_reassembled = 0
        self.timeouts = 0

    def add(self, packet: Ipv4Packet, frame_size: int, now: float) -> Ipv4Packet | None:
        """Take the fragment ``packet`` (which arrived in a frame of
        ``frame_size`` bytes); return its datagram if this made it whole."""
        self.fragments_received += 1
        payload = packet.payload
        offset = packet.fragment_offset
        length = len(payload)
        end = offset + length
        last = not packet.more_fragments
        if length == 0:
            self.drop("ipv4: empty fragment")
            return None
        if not last and length & 7:
            self.drop("ipv4: fragment length not a multiple of 8")
            return None
        key = (packet.src, packet.dst, packet.protocol, packet.ident)
        datagrams = self._datagrams
        datagram = datagrams.get(key)
        index = 0
        if datagram is not None:
            place = _place(datagram, offset, end, last)
            if isinstance(place, str):
                if place != _DUPLICATE:
                    self._discard(key)
                self.drop(place)
                return None
            index = place
        if self.memory + frame_size > self._limit:
            self._evict(frame_size, datagram)
            if self.memory + frame_size > self._limit:
                if datagram is not None:
                    self._discard(key)
                self.drop("ipv4: fragment over the reassembly memory")
                return None
        if datagram is None:
            datagram = datagrams[key] = _Datagram(now + self._timeout)
        fragments = datagram.fragments
        fragments.insert(index, (offset, end, payload))
        if last:
            datagram.total = end
        if offset == 0:
            datagram.first = packet
        datagram.received += length
        datagram.charged += frame_size
        self.memory += frame_size
        if datagram.received != datagram.total:
            return None
        del datagrams[key]
        self.memory -= datagram.charged
        first = datagram.first
        assert first is not None  # no overlaps, all bytes: offset 0 is there
        if first.header_length + datagram.total > 0xFFFF:
            self.drop("ipv4: reassembled datagram over 65535 bytes")
            return None
        self.datagrams_reassembled += 1
        whole = b"".join([fragment[2] for fragment in fragments])
        return Ipv4Packet(
            first.src,
            first.dst,
            first.protocol,
            first.ttl,
            first.ident,
            first.dont_fragment,
            False,
            0,
            first.tos,
            first.options,
            memoryview(whole),
        )

    def next_deadline(self) -> float:
        """When the oldest incomplete datagram times out (inf: none)."""
        for datagram in self._datagrams.values():
            return datagram.deadline
        return inf

    def on_timer(self, now: float) -> list[Ipv4Packet]:
        """Drop the datagrams whose time is up; return the first fragments of
        those that had one (for ICMP time exceeded)."""
        datagrams = self._datagrams
        expired: list[Ipv4Packet] = []
        while datagrams:
            key, datagram = next(iter(datagrams.items()))
            if datagram.deadline > now:
                break
            self._discard(key)
            self.timeouts += 1
            self.drop("ipv4: reassembly timed out")
            if datagram.first is not None:
                expired.append(datagram.first)
        return expired

    @property
    def datagrams_waiting(self) -> int:
        """Incomplete datagrams held now."""
        return len(self._datagrams)

    def _discard(self, key: _Key) -> None:
        self.memory -= self._datagrams.pop(key).charged

    def _evict(self, needed: int, keep: _Datagram | None) -> None:
        """Drop the oldest datagrams, other than ``keep``, until ``needed``
        bytes fit."""
        datagrams = self._datagrams
        limit = self._limit
        for key in [key for key, datagram in datagrams.items() if datagram is not keep]:
            if self.memory + needed <= limit:
                return
            self._discard(key)
            self.drop("ipv4: reassembly memory full (oldest datagram dropped)")
