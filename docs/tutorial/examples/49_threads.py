import os
import tempfile

import shardio
import shardio_disk

# Force the thread pool, as if io_uring were unavailable (a seccomp filter,
# kernel.io_uring_disabled, a kernel older than 5.6).
os.environ["SHARDIO_DISK_BACKEND"] = "threads"


async def main(directory):
    path = os.path.join(directory, "data")
    async with await shardio_disk.open_file(path, "w+") as f:
        await f.write("the same API, on threads\n")
        await f.seek(0)
        print(repr(await f.readline()))
    async with await shardio_disk.open_dma(path, "r+") as f:
        buf = shardio_disk.aligned_buffer(4096)
        buf[:5] = b"DMA: "
        await f.write_at(0, buf)
        print((await f.read_at(0, 4096))[:5])
    stats = shardio_disk.statistics()
    print(f"backend: {stats.backend}, io_uring_enter calls: {stats.syscalls}")


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, directory)
