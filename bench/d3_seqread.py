"""D3: sequential 1 MiB O_DIRECT reads at queue depth 8 through a 1 GiB
file (wrapping at its end), one shard; the figure is MiB/s.

- shardio: 8 tasks, each a loop of ``DmaFile.read_into`` of the next 1 MiB
  block of the file (a shared counter hands the blocks out in order) into
  its own aligned buffer.
- fio: ``--ioengine=io_uring --direct=1 --rw=read --bs=1m --iodepth=8``
  on the same file, on the same CPU.

``size`` is the measured time in seconds; see ``bench/_disk.py`` for the file.
"""

from __future__ import annotations

from ._disk import fio_reads, shardio_reads
from ._spec import Benchmark, Figures, Implementation, Metric, Target

BLOCK = 1 << 20
DEPTH = 8


def shardio_seqread(seconds: int) -> Figures:
    """8 tasks reading the file's 1 MiB blocks in order with ``DmaFile.read_into``."""
    return shardio_reads(seconds, block=BLOCK, depth=DEPTH, sequential=True)


def fio_seqread(seconds: int) -> Figures:
    """fio, io_uring engine, O_DIRECT, 1 MiB blocks, iodepth 8."""
    return fio_reads(seconds, block=BLOCK, depth=DEPTH, sequential=True)


BENCHMARK = Benchmark(
    name="D3",
    title="sequential 1 MiB O_DIRECT reads, queue depth 8, 1 GiB file, one shard",
    metrics=(Metric("bandwidth", "MiB/s"),),
    implementations=(
        Implementation("shardio", shardio_seqread),
        Implementation("fio", fio_seqread, requires_programs=("fio",)),
    ),
    targets=(Target("fio", 0.95),),
    size=3,
    quick_size=1,
)
