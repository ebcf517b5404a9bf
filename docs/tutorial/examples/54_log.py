import os
import tempfile

import shardio
from memcache_log import Log


async def main(path):
    log, found = await Log.open(path)
    print(f"a new log: {len(found)} records")
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(log.run)

        async def client(i):  # a change, then its reply: only once it is on disk
            await log.wait_durable(log.append(b"set key%d" % i))

        async with shardio.open_nursery() as clients:
            for i in range(100):
                clients.start_soon(client, i)
        print(f"100 changes acknowledged; fewer fdatasyncs than that: {log.commits < 100}")
        nursery.cancel_scope.cancel()
    end = log.end
    await log.file.aclose()

    # A crash in the middle of a write leaves half a record after the last one.
    with open(path, "r+b") as file:
        file.truncate(end)
        file.seek(end)
        file.write(b"\x40\x00\x00\x00\x12\x34\x56\x78half a rec")
    log, found = await Log.open(path)
    print(f"reopened: {len(found)} records, from {found[0]!r} to {found[-1]!r}")
    print(f"the torn record is cut off: {os.path.getsize(path) == log.end}")
    await log.file.aclose()


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, os.path.join(directory, "shard-0.log"))
