import functools

import anyio

import shardio


async def checksum(data):
    """AnyIO code: hashes in a worker thread, under a deadline."""
    import hashlib

    with anyio.fail_after(5):
        digest = await anyio.to_thread.run_sync(hashlib.sha256, data)
    return shardio.current_shard(), digest.hexdigest()[:12]


async def on_shard(shard, data, results):
    results.append(await shardio.run_on(shard, checksum, data))


async def main():
    results = []
    async with shardio.open_nursery() as nursery:
        for shard in range(shardio.shard_count()):
            nursery.start_soon(functools.partial(on_shard, shard, b"x" * 1000, results))
    for shard, digest in sorted(results):
        print(f"shard {shard}: {digest}")


shardio.run(main, shards=2, cpus=False)
