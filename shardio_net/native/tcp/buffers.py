"""The two byte queues of a connection, both zero-copy.

**SendQueue** holds the caller's buffers by reference, as memoryviews, each
with the absolute sequence number of its first byte. Nothing is copied in:
``send()`` appends views. Nothing is copied out: a segment's payload is a
tuple of slices of those views (usually one; two or more where the segment
spans buffers), which the stack writes after the header in one vectored
write. A buffer is released -- its view dropped, the caller told -- once the
cumulative ACK passes its last byte; until then the caller must not modify
it (the connection may need to retransmit any of it). Finding the buffer of a
sequence number is a bisection over the start numbers (C code, O(log n)),
and released buffers leave the lists in batches, so each operation is cheap
whatever the number of buffers queued.

**ReassemblyQueue** holds out-of-order received data as the views it arrived
in (each a slice of a received frame), sorted, never overlapping: a segment
that overlaps what is held is cut to its new bytes first (slicing a view,
not copying). Alongside, it keeps the contiguous *blocks* the entries form,
which are what the connection reports in SACK options; blocks are few (one
per hole), entries many. When the next expected byte arrives, the entries it
makes contiguous come out in order, again as views. The queue is bounded by a
number of entries, because each one pins a whole frame: a segment that would
exceed the bound is refused (dropped, to be retransmitted), never an entry
already held -- dropping those would renege on SACKs already sent.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

__all__ = ["ReassemblyQueue", "SendQueue"]

_RELEASED = memoryview(b"")


class SendQueue:
    """The caller's buffers, held until acknowledged; see the module docs."""

    __slots__ = ("_first", "_starts", "_views", "end")

    def __init__(self, start: int) -> None:
        self._views: list[memoryview] = []
        self._starts: list[int] = []
        # Index of the oldest buffer still held; those before it are released.
        self._first = 0
        #: Sequence number after the last byte queued.
        self.end = start

    def __len__(self) -> int:
        """How many buffers are held."""
        return len(self._views) - self._first

    def append(self, view: memoryview) -> None:
        """Queue a (non-empty, byte-format) view after the others."""
        self._views.append(view)
        self._starts.append(self.end)
        self.end += len(view)

    def buffer_at(self, seq: int) -> tuple[memoryview, int]:
        """The held view containing the byte ``seq``, and the number of its first byte."""
        i = bisect_right(self._starts, seq, self._first) - 1
        return self._views[i], self._starts[i]

    def slices(self, seq: int, length: int) -> tuple[memoryview, ...]:
        """The payload for ``[seq, seq + length)``: slices of the held views.

        Hot path (every data segment sent): one bisection, one slice in the
        common case, and the whole view itself when the segment is the buffer.
        """
        i = bisect_right(self._starts, seq, self._first) - 1
        view = self._views[i]
        offset = seq - self._starts[i]
        size = len(view)
        if offset + length <= size:
            if offset == 0 and length == size:
                return (view,)
            return (view[offset : offset + length],)
        parts = [view[offset:]]
        length -= size - offset
        while length > 0:
            i += 1
            view = self._views[i]
            size = len(view)
            if size >= length:
                parts.append(view if size == length else view[:length])
                break
            parts.append(view)
            length -= size
        return tuple(parts)

    def release(self, una: int) -> tuple[int, int]:
        """Drop the buffers wholly below ``una``; return (count, bytes)."""
        views = self._views
        starts = self._starts
        first = self._first
        n = len(views)
        count = nbytes = 0
        while first < n:
            size = len(views[first])
            if starts[first] + size > una:
                break
            views[first] = _RELEASED
            nbytes += size
            count += 1
            first += 1
        if first > 64 and first * 2 >= n:
            del views[:first]
            del starts[:first]
            first = 0
        self._first = first
        return count, nbytes

    def release_all(self) -> tuple[int, int]:
        """Drop every buffer (the connection ended); return (count, bytes)."""
        views = self._views[self._first :]
        count = len(views)
        nbytes = sum(len(view) for view in views)
        self._views.clear()
        self._starts.clear()
        self._first = 0
        return count, nbytes


class ReassemblyQueue:
    """Out-of-order received data, as views, with its SACK blocks."""

    __slots__ = ("_blocks", "_ends", "_starts", "_views", "limit", "nbytes")

    def __init__(self, limit: int) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._views: list[memoryview] = []
        # Contiguous [start, end) blocks the entries form, sorted.
        self._blocks: list[list[int]] = []
        #: The most entries held.
        self.limit = limit
        #: Bytes held.
        self.nbytes = 0

    def __len__(self) -> int:
        """How many entries (segments, or parts of them) are held."""
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """The contiguous ranges held, lowest first."""
        return [(s, e) for s, e in self._blocks]

    @property
    def end(self) -> int:
        """The sequence number after the highest byte held (0 if empty)."""
        return self._ends[-1] if self._ends else 0

    def insert(self, start: int, view: memoryview) -> tuple[int, int] | None:
        """Hold ``view`` (whose first byte is ``start``); return the block that
        now contains it, or None if it brought nothing new or the queue is full."""
        starts = self._starts
        ends = self._ends
        end = start + len(view)
        i = bisect_left(starts, start)
        if i > 0 and ends[i - 1] > start:
            # The previous entry covers our beginning.
            cut = ends[i - 1] - start
            if cut >= len(view):
                return None
            view = view[cut:]
            start += cut
        pieces: list[tuple[int, memoryview]] = []
        j = i
        while start < end:
            if j < len(starts) and starts[j] < end:
                if starts[j] > start:
                    pieces.append((start, view[: starts[j] - start]))
                skip = ends[j] - start
                view = view[skip:] if skip < len(view) else _RELEASED
                start = ends[j]
                j += 1
            else:
                pieces.append((start, view))
                break
        if not pieces or len(starts) + len(pieces) > self.limit:
            return None
        for offset, (piece_start, piece) in enumerate(pieces):
            k = i + offset
            # Entries between pieces were skipped: place each one by bisection.
            k = bisect_left(starts, piece_start, k)
            starts.insert(k, piece_start)
            ends.insert(k, piece_start + len(piece))
            self._views.insert(k, piece)
            self.nbytes += len(piece)
        return self._merge_block(pieces[0][0], pieces[-1][0] + len(pieces[-1][1]))

    def _merge_block(self, start: int, end: int) -> tuple[int, int]:
        blocks = self._blocks
        i = 0
        n = len(blocks)
        while i < n and blocks[i][1] < start:
            i += 1
        j = i
        new_start, new_end = start, end
        while j < n and blocks[j][0] <= end:
            new_start = min(new_start, blocks[j][0])
            new_end = max(new_end, blocks[j][1])
            j += 1
        blocks[i:j] = [[new_start, new_end]]
        return new_start, new_end

    def pop_ready(self, rcv_nxt: int) -> tuple[list[memoryview], int]:
        """Take the entries that ``rcv_nxt`` makes contiguous, in order (trimmed
        of bytes below it); return them and the new next expected number."""
        starts = self._starts
        ends = self._ends
        views = self._views
        out: list[memoryview] = []
        k = 0
        n = len(starts)
        while k < n and starts[k] <= rcv_nxt:
            if ends[k] > rcv_nxt:
                view = views[k]
                cut = rcv_nxt - starts[k]
                out.append(view[cut:] if cut else view)
                rcv_nxt = ends[k]
            self.nbytes -= ends[k] - starts[k]
            k += 1
        if k:
            del starts[:k]
            del ends[:k]
            del views[:k]
        blocks = self._blocks
        while blocks and blocks[0][0] <= rcv_nxt:
            del blocks[0]
        return out, rcv_nxt
