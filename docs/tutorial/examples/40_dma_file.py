import os
import tempfile

import shardio
import shardio_disk


async def main(directory):
    path = os.path.join(directory, "data")
    async with await shardio_disk.open_dma(path, "w+") as f:
        a = f.alignment
        powers_of_two = all(n & (n - 1) == 0 for n in (a.memory, a.read, a.write))
        print("alignment (memory, read, write) in powers of two:", powers_of_two)

        block = shardio_disk.aligned_buffer(8192)
        block[:] = b"0123456789abcdef" * 512
        print("write_at(0, 8 KiB) wrote", await f.write_at(0, block), "bytes")
        data = await f.read_at(4096, a.read)  # one block, wherever it is
        print(f"read_at(4096, alignment.read) starts with {data[:16]}")

        await f.truncate(4100)  # any size: truncate needs no alignment
        back = await f.read_at(0, 8192)
        print(f"after truncate(4100): size {await f.size()}, read_at(0, 8192) got {len(back)}")

        try:
            await f.write_at(1, block)
        except ValueError as exc:
            print("write_at(1, ...) raised", type(exc).__name__, "before any system call")
        size = await f.size()
    print(f"the file holds {size} bytes; closed: {f.closed}")


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, directory)
