"""D2: random 4 KiB O_DIRECT reads at queue depth 1 (one read at a time) on
a 1 GiB file, one shard; the figure is reads per second (IOPS).

The same implementations as D1 (see ``d1_randread.py``) with one task, or
``--iodepth=1``: here what counts is the latency each adds to a read.
"""

from __future__ import annotations

from ._disk import fio_reads, shardio_reads, trio_reads
from ._spec import Benchmark, Figures, Implementation, Metric, Target

BLOCK = 4096
DEPTH = 1


def shardio_randread(seconds: int) -> Figures:
    """One task reading random blocks with ``DmaFile.read_into``."""
    return shardio_reads(seconds, block=BLOCK, depth=DEPTH, sequential=False)


def fio_randread(seconds: int) -> Figures:
    """fio, io_uring engine, O_DIRECT, iodepth 1."""
    return fio_reads(seconds, block=BLOCK, depth=DEPTH, sequential=False)


def trio_randread(seconds: int) -> Figures:
    """One trio task, ``os.preadv`` on a worker thread."""
    return trio_reads(seconds, block=BLOCK, depth=DEPTH)


BENCHMARK = Benchmark(
    name="D2",
    title="random 4 KiB O_DIRECT reads, queue depth 1, 1 GiB file, one shard",
    metrics=(Metric("iops", "IOPS"),),
    implementations=(
        Implementation("shardio", shardio_randread),
        Implementation("fio", fio_randread, requires_programs=("fio",)),
        Implementation("trio", trio_randread, requires_modules=("trio",)),
    ),
    targets=(Target("fio", 0.8),),
    size=3,
    quick_size=1,
)
