"""D1: random 4 KiB O_DIRECT reads at queue depth 32 on a 1 GiB file, one
shard; the figure is reads per second (IOPS).

- shardio: 32 tasks, each a loop of ``DmaFile.read_into`` at a random
  aligned offset into its own registered buffer, on one shard's io_uring.
- fio: ``--ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=32``
  on the same file, on the same CPU.
- trio: 32 tasks, each a loop of ``trio.to_thread.run_sync(os.preadv, ...)``
  on an O_DIRECT descriptor with a page-aligned buffer.

``size`` is the measured time in seconds; see ``bench/_disk.py`` for the file.
"""

from __future__ import annotations

from ._disk import fio_reads, shardio_reads, trio_reads
from ._spec import Benchmark, Figures, Implementation, Metric, Target

BLOCK = 4096
DEPTH = 32


def shardio_randread(seconds: int) -> Figures:
    """32 tasks reading random blocks with ``DmaFile.read_into``."""
    return shardio_reads(seconds, block=BLOCK, depth=DEPTH, sequential=False)


def fio_randread(seconds: int) -> Figures:
    """fio, io_uring engine, O_DIRECT, iodepth 32."""
    return fio_reads(seconds, block=BLOCK, depth=DEPTH, sequential=False)


def trio_randread(seconds: int) -> Figures:
    """32 trio tasks, each ``os.preadv`` on a worker thread."""
    return trio_reads(seconds, block=BLOCK, depth=DEPTH)


BENCHMARK = Benchmark(
    name="D1",
    title="random 4 KiB O_DIRECT reads, queue depth 32, 1 GiB file, one shard",
    metrics=(Metric("iops", "IOPS"),),
    implementations=(
        Implementation("shardio", shardio_randread),
        Implementation("fio", fio_randread, requires_programs=("fio",)),
        Implementation("trio", trio_randread, requires_modules=("trio",)),
    ),
    targets=(Target("fio", 0.9), Target("trio", 20.0)),
    size=3,
    quick_size=1,
)
