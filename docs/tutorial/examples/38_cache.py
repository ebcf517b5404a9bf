import zlib

import shardio


def owner(key):
    """The shard that holds ``key``: the same answer on every shard, in every run."""
    return zlib.crc32(key.encode()) % shardio.shard_count()


async def compute(key):
    await shardio.sleep(0.1)  # stands in for a database query
    return key.upper()


class Cache:
    """One part of the cache per shard; each key lives on its owner shard only."""

    def __init__(self):
        self.values = {}
        self.computing = {}  # key -> an Event set when its value is ready
        self.hits = self.misses = 0

    async def get(self, key):
        if key in self.values:
            self.hits += 1
            return self.values[key]
        if key in self.computing:  # another caller is computing it: wait for them
            await self.computing[key].wait()
            return await self.get(key)
        self.misses += 1
        self.computing[key] = ready = shardio.Event()
        try:
            self.values[key] = await compute(key)
        finally:
            del self.computing[key]
            ready.set()
        return self.values[key]

    def stats(self):
        return {"keys": len(self.values), "hits": self.hits, "misses": self.misses}


async def lookup(cache, key):
    return await cache.invoke_on(owner(key), Cache.get, key)


async def main():
    keys = ["apple", "banana", "cherry", "damson"]
    results = {}
    async with shardio.sharded(Cache) as cache:
        async with shardio.open_nursery() as nursery:

            async def lookup_from(shard, key):
                results[key, shard] = await shardio.run_on(shard, lookup, cache, key)

            for key in keys:  # each key, looked up from both shards at once
                nursery.start_soon(lookup_from, 0, key)
                nursery.start_soon(lookup_from, 1, key)
        for key in keys:
            print(f"{key!r} (owner: shard {owner(key)}):", results[key, 0], results[key, 1])
        print("per shard:", await cache.invoke_on_all(Cache.stats))
        misses = await cache.map_reduce(lambda c: c.misses, lambda total, n: total + n, 0)
        print(f"{len(results)} lookups, {misses} computations")


shardio.run(main, shards=2)
