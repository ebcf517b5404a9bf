import os
import pickle
import tempfile

import shardio
import shardio_disk


async def write_my_part(directory, count):
    """On each shard: a file of its own, written through its own ring."""
    shard = shardio.current_shard()
    path = os.path.join(directory, f"part-{shard}")
    out = shardio_disk.FileOutputStream(await shardio_disk.open_dma(path, "w"))
    async with out:
        for number in range(shard, count, shardio.shard_count()):
            await out.send_all(f"{number}\n".encode())
    return shard, out.statistics().bytes


async def main(directory):
    async with shardio.open_nursery() as nursery:
        for shard in range(shardio.shard_count()):
            nursery.start_soon(shardio.run_on, shard, write_my_part, directory, 1000)
    numbers = []
    for shard in range(shardio.shard_count()):
        path = os.path.join(directory, f"part-{shard}")
        stream = shardio_disk.FileInputStream(await shardio_disk.open_dma(path, "r"))
        async with stream:
            data = b"".join([chunk async for chunk in stream])
        mine = [int(line) for line in data.split()]
        numbers += mine
        print(f"part-{shard}: {len(data)} bytes, {len(mine)} numbers")
    print("all of 0..999, once each:", sorted(numbers) == list(range(1000)))

    # A file belongs to the shard that opened it: its I/O runs on that ring.
    async with await shardio_disk.open_dma(os.path.join(directory, "part-0"), "r") as f:
        try:
            pickle.dumps(f)
        except TypeError as exc:
            print("TypeError:", str(exc).split(";")[0])


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, directory, shards=2)
