import os
import tempfile

import shardio
import shardio_disk

BLOCK = 4096


async def reader(f, blocks, found):
    buf = shardio_disk.aligned_buffer(BLOCK)
    for index in blocks:
        await f.read_into(index * BLOCK, buf)
        found[index] = buf[0]


async def main(directory):
    async with await shardio_disk.open_dma(os.path.join(directory, "data"), "r") as f:
        # 32 tasks, 8 reads each: up to 32 reads in flight on one shard.
        found = {}
        async with shardio.open_nursery() as nursery:
            for task in range(32):
                nursery.start_soon(reader, f, range(task, 256, 32), found)
        print("every block read:", found == {index: index for index in range(256)})
        print("most reads in flight at once:", f.statistics().peak_in_flight)

        # read_many: ranges of any size and offset, merged when close together.
        requests = [(index * BLOCK + 100, 10) for index in range(0, 24, 3)]
        requests.append((200 * BLOCK + 4000, 200))  # far away, across two blocks
        before = shardio_disk.statistics().submitted
        pieces = await f.read_many(requests)
        reads = shardio_disk.statistics().submitted - before
        print(f"{len(requests)} ranges read with {reads} reads:")
        print("  first bytes of each:", [piece[0] for piece in pieces])
        print("  the last one spans blocks", pieces[-1][:1] + pieces[-1][-1:])


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    with open(os.path.join(directory, "data"), "wb") as plain:  # block i is full of byte i
        for index in range(256):
            plain.write(bytes([index]) * BLOCK)
    shardio.run(main, directory)
