"""Shared-memory rings between shards, and the doorbell that wakes a sleeping shard.

The C side is ``_ring.c`` (compiled by cffi at install time); this module maps
the shared area, lays the rings out in it, and wraps the calls.

Layout
------
One anonymous ``MAP_SHARED`` mapping, created before the shards are forked,
so every shard sees it at the same address. It holds, for ``n`` shards:

* ``n`` control blocks of one cache line each: shard ``i``'s ``sleeping`` word;
* ``n * (n - 1)`` rings, one per ordered pair ``(src, dst)``: single producer
  (shard ``src``), single consumer (shard ``dst``).

Each shard also has an eventfd (its *doorbell*), created before the fork too,
and registered in that shard's epoll set.

Memory ordering
---------------
A ring has a ``tail`` (bytes ever written, advanced by the producer only) and
a ``head`` (bytes ever consumed, advanced by the consumer only), each on its
own cache line so the two sides do not false-share. The producer copies a
record into the free space and then *release*-stores the new tail; the
consumer *acquire*-loads the tail before reading the bytes below it. So the
consumer never sees a tail without the bytes it covers. Symmetrically the
consumer release-stores ``head`` after it is done with a record, and the
producer acquire-loads ``head`` before reusing that space. Nothing else is
shared, so no locks and no read-modify-write atomics are needed on the
message path: on x86 both stores are plain ``mov`` instructions.

Sleeping without losing a wakeup
--------------------------------
A shard with nothing to do blocks in ``epoll_wait``; a shard that sends to it
must then ring its doorbell (write its eventfd). Ringing on every message
would cost a syscall per message, so the sender rings only when the receiver
says it sleeps. The danger is the classic lost wakeup: the receiver checks its
rings (empty), a sender publishes and sees "not sleeping", then the receiver
goes to sleep with a message waiting. The protocol is Dekker's:

* receiver: ``sleeping = 1``; full fence; look at every inbound ring; sleep
  only if all are empty (otherwise ``sleeping = 0`` and keep working);
* sender: publish the tail; full fence; if ``sleeping`` is 1, swap it to 0
  and write the eventfd.

With a sequentially consistent fence between each side's store and its load,
the two loads cannot both miss the other side's store: either the receiver
sees the new tail and does not sleep, or the sender sees ``sleeping == 1`` and
rings. The swap to 0 means that of many senders only one rings per sleep.
A busy receiver never sets the flag, so a busy pair of shards exchanges
messages without a single syscall.

The same protocol runs in reverse when a ring is full: the producer sets the
ring's ``producer_waiting``, fences, and re-checks the space; the consumer,
after freeing space, fences and, if the flag is set, rings the producer.

Records
-------
A record is ``[length:u32][flags:u32][payload]``, 8-byte aligned, never split
across the end of the ring (a WRAP marker sends the consumer back to offset 0).
A payload larger than a quarter of the ring travels as fragments (``FRAGMENT``
on all but the last); the consumer reassembles them. The consumer reads a payload in
place, through a buffer pointing into the shared mapping, and releases it
with ``pop`` once it has decoded it -- no copy on the receiving side.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from ._ring_c import ffi, lib

#: Flag of a record that is one fragment of a larger payload, not the last.
FRAGMENT = 1

_CACHELINE = 64
DEFAULT_RING_CAPACITY = 1 << 20


class Ring:
    """One direction between two shards. ``push`` is for the producer shard
    only; ``peek``/``pop`` for the consumer shard only."""

    __slots__ = ("dst", "fragment_size", "ptr", "src")

    def __init__(self, ptr: Any, src: int, dst: int) -> None:
        self.ptr = ptr
        self.src = src
        self.dst = dst
        # A quarter of the ring: large payloads stream through in pieces
        # while the consumer drains, instead of waiting for half a ring.
        self.fragment_size = (int(lib.ring_max_record(ptr)) + 8) // 2 - 8

    @property
    def max_record(self) -> int:
        return int(lib.ring_max_record(self.ptr))

    @property
    def used(self) -> int:
        """Bytes written and not yet consumed."""
        return int(lib.ring_used(self.ptr))

    def push(self, payload: bytes, flags: int = 0) -> bool:
        """Append one record; False if it does not fit now."""
        result = lib.ring_push(self.ptr, payload, len(payload), flags)
        if result < 0:
            raise ValueError(
                f"a {len(payload)}-byte record exceeds the ring's limit of {self.max_record}; "
                "split it into fragments"
            )
        return bool(result)

    def push_from(self, payload: bytes | memoryview, offset: int = 0) -> int:
        """Push ``payload[offset:]``, as fragments if it is large, as far as
        the ring has room; return the offset reached (``len(payload)`` when
        all of it is in). The producer calls again later with that offset:
        the consumer reassembles fragments across as many passes as needed,
        so a payload may be larger than the ring itself."""
        size = len(payload)
        if not size:
            raise ValueError("a ring record needs a non-empty payload")
        if offset == 0 and size <= self.fragment_size:
            return size if lib.ring_push(self.ptr, ffi.from_buffer(payload), size, 0) else 0
        view = memoryview(payload)
        step = self.fragment_size
        while offset < size:
            piece = view[offset : offset + step]
            flags = 0 if offset + len(piece) == size else FRAGMENT
            if not lib.ring_push(self.ptr, ffi.from_buffer(piece), len(piece), flags):
                break
            offset += len(piece)
        return offset

    def want_space(self, size: int) -> bool:
        """The producer found the ring full: ask to be woken when ``size``
        bytes fit. True if they already fit (retry instead of sleeping)."""
        return bool(lib.ring_want_space(self.ptr, size))

    def peek(self) -> tuple[memoryview, int] | None:
        """The next record's payload (a view into shared memory) and flags."""
        data = _PEEK_DATA
        flags = _PEEK_FLAGS
        length = lib.ring_peek(self.ptr, data, flags)
        if length < 0:
            return None
        return memoryview(ffi.buffer(data[0], length)), int(flags[0])

    def pop(self, length: int) -> bool:
        """Release the record of ``length`` bytes; True if the producer waits
        for space and its doorbell must be rung."""
        return bool(lib.ring_pop(self.ptr, length))

    def __repr__(self) -> str:
        return f"<Ring {self.src}->{self.dst}, {self.used} bytes queued>"


_PEEK_DATA = ffi.new("const char **")
_PEEK_FLAGS = ffi.new("uint32_t *")


class SharedArea:
    """The shared mapping and doorbells for a run with ``nshards`` shards.

    Create it before forking; every shard then uses the same object.
    """

    def __init__(self, nshards: int, ring_capacity: int = DEFAULT_RING_CAPACITY) -> None:
        if ring_capacity < 4096 or ring_capacity & (ring_capacity - 1):
            raise ValueError(f"ring_capacity must be a power of two >= 4096, not {ring_capacity}")
        self.nshards = nshards
        self.ring_capacity = ring_capacity
        header = int(lib.ring_header_size())
        self._ring_stride = header + ring_capacity
        self._control_size = nshards * _CACHELINE
        npairs = nshards * (nshards - 1)
        size = self._control_size + npairs * self._ring_stride
        self._map = mmap.mmap(-1, max(size, mmap.PAGESIZE), flags=mmap.MAP_SHARED)
        self._base = ffi.from_buffer(self._map)
        self._rings: dict[tuple[int, int], Ring] = {}
        index = 0
        for src in range(nshards):
            for dst in range(nshards):
                if src == dst:
                    continue
                ptr = ffi.cast(
                    "ring_header *", self._base + self._control_size + index * self._ring_stride
                )
                lib.ring_init(ptr, ring_capacity)
                self._rings[src, dst] = Ring(ptr, src, dst)
                index += 1
        self.doorbells = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(nshards)]
        self._closed = False

    def ring(self, src: int, dst: int) -> Ring:
        return self._rings[src, dst]

    def sleeping_flag(self, shard: int) -> Any:
        return ffi.cast("uint32_t *", self._base + shard * _CACHELINE)

    def inbound_array(self, shard: int) -> tuple[Any, list[Ring]]:
        """A C array of the rings into ``shard`` (for one-call polling), and the rings."""
        rings = [self._rings[src, shard] for src in range(self.nshards) if src != shard]
        array = ffi.new("ring_header *[]", [r.ptr for r in rings])
        return array, rings

    def ring_doorbell(self, shard: int) -> None:
        os.eventfd_write(self.doorbells[shard], 1)

    def close(self) -> None:
        """Unmap and close the doorbells (in the shard that calls it)."""
        if self._closed:
            return
        self._closed = True
        self._rings.clear()
        ffi.release(self._base)
        self._map.close()
        for fd in self.doorbells:
            os.close(fd)


def set_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies."""
    if lib.set_parent_death_signal(signum) != 0:
        raise OSError(ffi.errno, os.strerror(ffi.errno))
