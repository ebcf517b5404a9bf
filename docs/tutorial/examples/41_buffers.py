import ctypes
import os
import tempfile

import shardio
import shardio_disk


def address(buf):
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


async def main(directory):
    buf = shardio_disk.aligned_buffer(64 * 1024)
    print(f"{buf.nbytes} bytes, writable: {not buf.readonly}, zeroed: {not any(buf)}")
    print("address aligned to 4096:", address(buf) % 4096 == 0)

    # Slices share the memory (and keep it alive): no copies.
    second_half = buf[32 * 1024 :]
    second_half[:5] = b"hello"
    print("the slice wrote into the buffer:", bytes(buf[32 * 1024 : 32 * 1024 + 5]))

    path = os.path.join(directory, "data")
    async with await shardio_disk.open_dma(path, "r") as f:
        before = shardio_disk.statistics()
        total = 0
        for pos in range(0, 1024 * 1024, buf.nbytes):
            total += await f.read_into(pos, buf)  # the same buffer, read into again and again
        after = shardio_disk.statistics()
    print(f"read {total} bytes with {after.submitted - before.submitted} reads into one buffer")
    print("last block starts with", bytes(buf[:4]))


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    with open(os.path.join(directory, "data"), "wb") as plain:  # 1 MiB, the usual way
        plain.write(bytes(range(256)) * 4096)
    shardio.run(main, directory)
