"""ReceiveBuffer: received bytes waiting for a protocol parser, without copies.

A parser reads a stream in chunks that have nothing to do with its frames:
a line may arrive in three pieces, or ten lines in one. The usual remedy,
``buffer += chunk`` then ``line, buffer = buffer.split(b"\\r\\n", 1)``,
copies everything it still holds on every frame it takes (quadratic on a
pipelined burst), and copies every chunk once more on arrival.

A :class:`ReceiveBuffer` is one ``bytearray`` with a *read offset* and a
*write offset*::

    [ consumed ........ | unread ............ | free ............ ]
    0                 start                  end            capacity

* Filling: :meth:`reserve` hands out a writable memoryview of the free
  tail, for ``stream.receive_into(view)`` to write into directly (the
  kernel copies into place, and that is the only copy); :meth:`commit`
  then marks the bytes written as unread. :meth:`append` copies in bytes
  from ``receive_some`` instead, and :meth:`receive_from` does whichever the
  stream supports.
* Parsing: :meth:`find` and :meth:`take_until` search the unread bytes in
  place (``bytearray.find`` with offsets, no slicing), and :meth:`take`,
  :meth:`take_until` and :meth:`peek` return memoryviews of them: taking a
  frame moves the read offset and copies nothing. :meth:`take_until`
  remembers how far it has searched, so a frame trickling in a byte at a
  time is still searched once overall, not once per byte.
* Making room happens only when filling: when the free tail is too small,
  the unread bytes move to the front (compaction, one ``memmove`` of what is
  unread -- usually a partial frame), or, if they fill most of the buffer,
  to a new one twice as large. An empty buffer just resets its offsets, and
  one that grew large goes back to its initial size once empty.

The price of handing out views is a rule: **a view returned by** ``take``,
``take_until``, ``peek`` **or** ``reserve`` **is valid until the next call
that fills the buffer** (``reserve``, ``append``, ``receive_from``), since
that may move or overwrite the bytes it shows. To keep bytes longer, copy
them (``bytes(view)``, or :meth:`take_bytes`). The buffer enforces the rule:
filling *releases* the views it handed out, so a stale view raises
``ValueError`` when used instead of silently showing other bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from shardio.abc import ReceiveStream

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["ReceiveBuffer"]

#: The capacity of a new buffer. Small, because a server holds one per
#: connection; a buffer grows when a frame needs it.
DEFAULT_CAPACITY = 16384


@final
class ReceiveBuffer:
    """Received bytes waiting to be parsed; see the module docs for the model.

    ``capacity`` is the initial size of the storage; it grows as needed (so
    a protocol parser must enforce its own limits on frame sizes), and
    shrinks back when the buffer empties.

    A typical line-protocol loop::

        buffer = ReceiveBuffer()
        while True:
            while (line := buffer.take_until(b"\\r\\n")) is not None:
                handle(line)          # a memoryview, valid until the next fill
            if not await buffer.receive_from(stream):
                break                 # end-of-file
    """

    __slots__ = (
        "_buffer",
        "_end",
        "_initial",
        "_least_receive",
        "_lent",
        "_reserved",
        "_searched",
        "_start",
    )

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._initial = capacity
        # What receive_from makes room for when not told.
        self._least_receive = max(1, capacity // 4)
        self._buffer = bytearray(capacity)
        self._start = 0
        self._end = 0
        # Views handed out since the last fill, released by the next one.
        self._lent: list[memoryview] = []
        # How many bytes the last reserve() handed out and commit() may claim.
        self._reserved = 0
        # take_until's memory: (delimiter, offset from start already searched).
        self._searched: tuple[bytes, int] = (b"", 0)

    def __len__(self) -> int:
        """How many unread bytes the buffer holds."""
        return self._end - self._start

    def __bool__(self) -> bool:
        return self._end > self._start

    def __bytes__(self) -> bytes:
        """A copy of the unread bytes."""
        return bytes(self._buffer[self._start : self._end])

    def __repr__(self) -> str:
        return f"<shardio_net.ReceiveBuffer {len(self)} unread, capacity {self.capacity}>"

    @property
    def capacity(self) -> int:
        """The size of the current storage (unread bytes plus room)."""
        return len(self._buffer)

    # -- filling --------------------------------------------------------------

    def _lend(self, view: memoryview) -> memoryview:
        self._lent.append(view)
        return view

    def _make_room(self, size: int) -> None:
        """Release the lent views, then make at least ``size`` bytes of free
        tail, moving or reallocating the unread bytes if needed."""
        # Hot path (once per receive): try/except rather than a context
        # manager per view, and the common case -- nothing unread, room
        # enough -- returns after a few comparisons.
        lent = self._lent
        if lent:
            for view in lent:
                try:
                    view.release()
                except BufferError:
                    # A view something else holds a buffer of cannot be
                    # released; the rule still holds, unenforced, for that one.
                    pass
            lent.clear()
        self._reserved = 0
        unread = self._end - self._start
        if not unread:
            self._start = self._end = 0
            if len(self._buffer) > 4 * self._initial and size <= self._initial:
                self._buffer = bytearray(self._initial)
        if len(self._buffer) - self._end >= size:
            return
        if unread + size <= len(self._buffer) and unread <= len(self._buffer) // 2:
            # Compact. Moving at most half the buffer to free at least half
            # of it keeps the copying linear in the bytes that pass through.
            with memoryview(self._buffer) as whole:
                whole[:unread] = whole[self._start : self._end]
        else:
            grown = bytearray(max(2 * len(self._buffer), unread + size))
            grown[:unread] = memoryview(self._buffer)[self._start : self._end]
            self._buffer = grown
        self._start, self._end = 0, unread

    def reserve(self, size: int = 1) -> memoryview:
        """A writable memoryview of at least ``size`` free bytes, for a
        ``receive_into`` to fill; then call :meth:`commit` with the count.

        The view may be larger than ``size`` (it is the whole free tail).
        Views lent earlier become invalid.
        """
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self._make_room(size)
        end = self._end
        view = memoryview(self._buffer)
        if end:
            view = view[end:]
        self._reserved = len(view)
        self._lent.append(view)
        return view

    def commit(self, count: int) -> None:
        """Mark ``count`` bytes at the start of the view from :meth:`reserve`
        as received. May be called several times, for consecutive parts."""
        if not 0 <= count <= self._reserved:
            raise ValueError(
                f"commit({count}): only {self._reserved} reserved bytes are left to commit"
            )
        self._end += count
        self._reserved -= count

    def append(self, data: Buffer) -> None:
        """Copy ``data`` (any bytes-like object) in after the unread bytes.
        Views lent earlier become invalid."""
        if not self._lent and isinstance(data, bytes | bytearray):
            # Fast path: nothing to release, and no cast needed.
            size = len(data)
            if len(self._buffer) - self._end < size:
                self._make_room(size)
            self._buffer[self._end : self._end + size] = data
            self._end += size
            return
        with memoryview(data) as given, given.cast("B") as raw:
            size = len(raw)
            self._make_room(size)
            self._buffer[self._end : self._end + size] = raw
        self._end += size

    async def receive_from(self, stream: ReceiveStream, max_bytes: int | None = None) -> int:
        """Receive once from ``stream`` into the buffer; return how many
        bytes arrived (0 at end-of-file).

        Uses the stream's ``receive_into`` when it has one (a
        :class:`~shardio_net.SocketStream` or :class:`~shardio_net.TLSStream`
        writes straight into the free tail), else ``receive_some``. Asks for
        at most ``max_bytes`` (default: the whole free tail, after making it
        at least a quarter of the initial capacity). Views lent earlier
        become invalid.
        """
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        receive_into = getattr(stream, "receive_into", None)
        if receive_into is None:
            data = await stream.receive_some(max_bytes)
            self.append(data)
            return len(data)
        # Hot path (once per receive). The view of the free tail is never
        # handed out, so it is not lent: it is released as soon as the
        # stream has written into it.
        self._make_room(max_bytes or self._least_receive)
        end = self._end
        view = memoryview(self._buffer)
        if end or max_bytes is not None:
            view = view[end : None if max_bytes is None else end + max_bytes]
        try:
            count: int = await receive_into(view)
        finally:
            try:
                view.release()
            except BufferError:
                pass  # the stream kept a view of it; the rule is unenforced
        self._end = end + count
        return count

    # -- looking --------------------------------------------------------------

    def find(self, delimiter: bytes, start: int = 0) -> int:
        """Where ``delimiter`` first occurs in the unread bytes, at or after
        offset ``start``, as an offset from the first unread byte; -1 if it
        does not."""
        if start < 0:
            raise ValueError(f"start must not be negative, not {start}")
        found = self._buffer.find(delimiter, self._start + start, self._end)
        return found - self._start if found >= 0 else -1

    def startswith(self, prefix: bytes) -> bool:
        """Whether the unread bytes start with ``prefix``."""
        return self._buffer.startswith(prefix, self._start, self._end)

    def peek(self, count: int | None = None) -> memoryview:
        """A view of the first ``count`` unread bytes (default: all),
        leaving them unread."""
        if count is not None and count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        end = self._end if count is None else min(self._end, self._start + count)
        return self._lend(memoryview(self._buffer)[self._start : end])

    # -- taking ---------------------------------------------------------------

    def _consume(self, count: int) -> None:
        self._start += count
        self._searched = (b"", 0)

    def take(self, count: int) -> memoryview:
        """Consume the first ``count`` unread bytes and return a view of them.

        Raises :class:`ValueError` if fewer than ``count`` bytes are unread
        (check ``len(buffer)`` first).
        """
        if not 0 <= count <= len(self):
            raise ValueError(f"take({count}): only {len(self)} bytes are unread")
        view = memoryview(self._buffer)[self._start : self._start + count]
        self._consume(count)
        return self._lend(view)

    def take_bytes(self, count: int) -> bytes:
        """Like :meth:`take`, but return a copy, which stays valid."""
        # Hot path (an HTTP request head, a piece of a body): no method
        # calls, and the view to copy from is a temporary, released as soon
        # as the copy is made, with no context manager to enter and leave.
        start = self._start
        end = start + count
        if not start <= end <= self._end:
            raise ValueError(f"take_bytes({count}): only {len(self)} bytes are unread")
        data = bytes(memoryview(self._buffer)[start:end])
        self._start = end
        self._searched = (b"", 0)
        return data

    def take_until(self, delimiter: bytes) -> memoryview | None:
        """Consume the bytes up to and including the first ``delimiter``, and
        return a view of them *without* the delimiter; ``None`` (consuming
        nothing) if the delimiter has not arrived yet.

        Searching resumes where the last unsuccessful call for the same
        delimiter stopped.
        """
        if not delimiter:
            raise ValueError("the delimiter must not be empty")
        searched_delimiter, searched = self._searched
        start = searched if searched_delimiter == delimiter else 0
        found = self.find(delimiter, start)
        if found < 0:
            self._searched = (delimiter, max(0, len(self) - len(delimiter) + 1))
            return None
        view = memoryview(self._buffer)[self._start : self._start + found]
        self._consume(found + len(delimiter))
        return self._lend(view)

    def skip(self, count: int) -> None:
        """Consume and discard the first ``count`` unread bytes."""
        if not 0 <= count <= self._end - self._start:
            raise ValueError(f"skip({count}): only {len(self)} bytes are unread")
        self._start += count
        self._searched = (b"", 0)

    def clear(self) -> None:
        """Discard every unread byte."""
        self._consume(len(self))
