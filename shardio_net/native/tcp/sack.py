"""The sender's SACK scoreboard (RFC 2018, RFC 6675).

The receiver reports, in SACK blocks, which ranges above the cumulative ACK
it holds. The scoreboard is the union of everything reported: a sorted list
of disjoint ``[start, end)`` ranges of absolute sequence numbers (see
``seq.py``), all above ``SND.UNA``. Ranges merge as blocks arrive and are cut
away from below as the cumulative ACK advances. A receiver that *reneges*
(drops data it had SACKed) is legal (RFC 2018 section 8); the connection
detects it by the one thing a reneging receiver cannot hide -- a SACKed range
starting exactly at the cumulative ACK -- and clears the scoreboard.

What loss recovery asks of the scoreboard (RFC 6675 section 4):

* ``sacked`` -- how many bytes above SND.UNA are SACKed;
* :meth:`sacked_between` -- the same over a range (for the pipe estimate);
* :meth:`lost_edge` -- ``IsLost()``: a byte is deemed lost when more than
  ``(DupThresh - 1) * SMSS`` SACKed bytes lie above it. The set of lost bytes
  is then everything un-SACKed below one edge, which this returns;
* :meth:`next_hole` -- ``NextSeg()``'s search: the first un-SACKed range at
  or above a point (HighRxt) and below a limit;
* ``high`` -- HighSACK, the end of the highest SACKed byte.

A scoreboard rarely holds more than a few dozen ranges (one per loss in the
window), so lists and linear scans are the fast choice; only the cumulative
cut happens per ACK, and it touches the first range.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Scoreboard"]


class Scoreboard:
    """SACKed ranges above the cumulative ACK; see the module docs."""

    __slots__ = ("_ranges", "sacked")

    def __init__(self) -> None:
        # [start, end) pairs, sorted and disjoint (touching ranges are merged).
        self._ranges: list[list[int]] = []
        #: SACKed bytes in all.
        self.sacked = 0

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The SACKed ranges, lowest first (a copy)."""
        return [(start, end) for start, end in self._ranges]

    @property
    def high(self) -> int:
        """HighSACK: the end of the highest SACKed range (0 if none)."""
        return self._ranges[-1][1] if self._ranges else 0

    def clear(self) -> None:
        """Forget every SACKed range (the receiver reneged)."""
        self._ranges.clear()
        self.sacked = 0

    def starts_at(self, seq: int) -> bool:
        """Whether a SACKed range begins exactly at ``seq``."""
        return bool(self._ranges) and self._ranges[0][0] == seq

    def add(self, blocks: Iterable[tuple[int, int]]) -> int:
        """Merge SACK blocks (absolute, already validated to lie above SND.UNA
        and at or below SND.NXT); return how many bytes are newly SACKed."""
        before = self.sacked
        ranges = self._ranges
        for start, end in blocks:
            if end <= start:
                continue
            # Find the first range that ends at or after start (could merge).
            i = 0
            n = len(ranges)
            while i < n and ranges[i][1] < start:
                i += 1
            if i == n or ranges[i][0] > end:
                ranges.insert(i, [start, end])
                self.sacked += end - start
                continue
            # Merge [start, end) with ranges[i] and every following one it reaches.
            j = i
            new_start = min(start, ranges[i][0])
            new_end = end
            removed = 0
            while j < n and ranges[j][0] <= end:
                new_end = max(new_end, ranges[j][1])
                removed += ranges[j][1] - ranges[j][0]
                j += 1
            ranges[i:j] = [[new_start, new_end]]
            self.sacked += (new_end - new_start) - removed
        return self.sacked - before

    def advance(self, una: int) -> None:
        """The cumulative ACK moved to ``una``: drop everything below it."""
        ranges = self._ranges
        while ranges and ranges[0][0] < una:
            first = ranges[0]
            if first[1] <= una:
                self.sacked -= first[1] - first[0]
                del ranges[0]
            else:
                self.sacked -= una - first[0]
                first[0] = una
                break

    def sacked_between(self, start: int, end: int) -> int:
        """SACKed bytes within ``[start, end)``."""
        total = 0
        for s, e in self._ranges:
            if e <= start:
                continue
            if s >= end:
                break
            total += min(e, end) - max(s, start)
        return total

    def lost_edge(self, threshold: int, una: int) -> int:
        """IsLost as an edge: every un-SACKed byte below the returned sequence
        number has more than ``threshold`` SACKed bytes above it (RFC 6675
        section 4, the byte criterion). Returns ``una`` when nothing is lost."""
        above = 0
        for s, e in reversed(self._ranges):
            size = e - s
            if above + size > threshold:
                # Bytes below e - (threshold - above) have > threshold above them.
                return max(una, e - (threshold - above))
            above += size
        return una

    def is_sacked(self, seq: int) -> bool:
        """Whether the byte ``seq`` is SACKed."""
        for s, e in self._ranges:
            if seq < s:
                return False
            if seq < e:
                return True
        return False

    def next_hole(self, seq: int, limit: int) -> tuple[int, int] | None:
        """The first un-SACKed range ``[start, end)`` with ``seq <= start``
        and ``start < limit`` (``end`` is cut at ``limit``), or None."""
        for s, e in self._ranges:
            if e <= seq:
                continue
            if s <= seq:
                # seq is SACKed: the hole, if any, starts where this range ends.
                seq = e
                continue
            return (seq, min(s, limit)) if seq < limit else None
        return (seq, limit) if seq < limit else None
