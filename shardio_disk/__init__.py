"""shardio_disk: direct (O_DIRECT) file I/O on io_uring, one ring per shard.

This module only re-exports the public names; see each for its docs.
"""

from ._backend import DiskStatistics
from ._buffers import aligned_buffer
from ._choice import backend, statistics
from ._dma import Alignment, DmaFile, open_dma

__all__ = [
    "Alignment",
    "DiskStatistics",
    "DmaFile",
    "aligned_buffer",
    "backend",
    "open_dma",
    "statistics",
]
