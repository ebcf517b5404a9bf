"""Aligned buffers for direct I/O, and the arena they come from.

O_DIRECT moves data between the device and the caller's memory without the
page cache, so the memory must be aligned (``DmaFile.alignment.memory``,
512 or 4096 bytes). :func:`aligned_buffer` gives such memory as a writable
:class:`memoryview`; it is freed when the last view of it goes away.

Buffers come from one arena per process (``_arena.c``: a buddy allocator
over an anonymous mapping). Each shard's io_uring registers the whole arena
as one fixed buffer (IORING_REGISTER_BUFFERS), so reads and writes into
arena memory go out as READ_FIXED / WRITE_FIXED: the kernel pinned those
pages once, at registration, instead of pinning and unpinning them on every
I/O. Registered pages count against RLIMIT_MEMLOCK (unless the process has
CAP_IPC_LOCK), so the arena is sized to fit in half that limit, and where
registration still fails the same buffers work unregistered.

Requests the arena cannot serve (larger than it, or while it is full) get
plain aligned heap memory: as correct, a little slower per I/O.
"""

from __future__ import annotations

import resource

from ._uring_c import ffi, lib

#: The arena's size when the memlock limit does not constrain it.
ARENA_BYTES = 16 << 20
_MIN_ARENA_BYTES = 1 << 20
_CAP_IPC_LOCK = 14
DEFAULT_ALIGNMENT = 4096

_arena_ready = False


def _can_lock_memory() -> bool:
    """Whether the process has CAP_IPC_LOCK (registered buffers are then
    not charged against RLIMIT_MEMLOCK)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_IPC_LOCK & 1)
    except OSError:
        pass
    return False


def arena_size_for_limits() -> int:
    """The arena size that the memlock limit lets every shard register."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY or _can_lock_memory():
        return ARENA_BYTES
    size = _MIN_ARENA_BYTES
    while size * 2 <= soft // 2 and size * 2 <= ARENA_BYTES:
        size *= 2
    return size


def ensure_arena() -> None:
    """Create this process's arena, once (forked shards inherit it)."""
    global _arena_ready
    if _arena_ready:
        return
    _arena_ready = True
    # A failure (no memory for the mapping) leaves no arena: every buffer
    # then comes from the heap.
    lib.dma_arena_init(arena_size_for_limits())


def arena_span() -> tuple[int, int]:
    """The arena's address and size (0, 0 if there is none)."""
    ensure_arena()
    return int(ffi.cast("uintptr_t", lib.dma_arena_base())), int(lib.dma_arena_size())


def _check_alignment(alignment: int) -> None:
    if alignment < 1 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, not {alignment}")


def allocate(size: int, alignment: int, *, zero: bool) -> memoryview:
    """``size`` bytes aligned to ``alignment``, as a writable memoryview
    that owns the memory."""
    ensure_arena()
    pointer = lib.dma_alloc(size, alignment, int(zero))
    if pointer == ffi.NULL:
        raise MemoryError(f"cannot allocate a {size}-byte buffer aligned to {alignment}")
    owner = ffi.gc(pointer, lib.dma_free, size)
    return memoryview(ffi.buffer(owner, size))


def aligned_buffer(size: int, alignment: int | None = None) -> memoryview:
    """A zero-filled, writable buffer of ``size`` bytes for direct I/O.

    Its address is a multiple of ``alignment`` (default 4096, enough for any
    device; pass ``f.alignment.memory`` for the least a file needs). Slices
    of it share its memory; it is freed when the last view is released.
    Buffers from the shard's arena are registered with its io_uring, which
    makes their I/O cheaper for the kernel.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    if alignment is None:
        alignment = DEFAULT_ALIGNMENT
    _check_alignment(alignment)
    return allocate(size, alignment, zero=True)
