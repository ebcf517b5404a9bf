"""shardio_disk: direct (O_DIRECT) file I/O on io_uring, one ring per shard,
buffered async files, file streams, async paths, and wrapped file objects.

This module only re-exports the public names; see each for its docs.
"""

from ._backend import DiskStatistics
from ._buffered import BufferedFile
from ._buffers import aligned_buffer
from ._choice import backend, statistics
from ._dma import Alignment, DmaFile, DmaFileStatistics, open_dma
from ._iobase import AsyncFile
from ._open import open_file
from ._path import Path
from ._raw import RawFile
from ._streams import FileInputStream, FileOutputStream, FileStreamStatistics
from ._text import TextFile
from ._wrap import AsyncIOWrapper, wrap_file

__all__ = [
    "Alignment",
    "AsyncFile",
    "AsyncIOWrapper",
    "BufferedFile",
    "DiskStatistics",
    "DmaFile",
    "DmaFileStatistics",
    "FileInputStream",
    "FileOutputStream",
    "FileStreamStatistics",
    "Path",
    "RawFile",
    "TextFile",
    "aligned_buffer",
    "backend",
    "open_dma",
    "open_file",
    "statistics",
    "wrap_file",
]
