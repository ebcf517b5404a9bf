import operator
from collections import Counter

import shardio

closed = []  # a module global: one list per shard


class HitCounter:
    """Counts the pages served by one shard. One instance per shard."""

    def __init__(self, site):
        self.site = site
        self.shard = shardio.current_shard()  # built on its own shard
        self.hits = Counter()

    def hit(self, page):
        self.hits[page] += 1
        return self.hits[page]

    def total(self):
        return self.hits.total()

    async def aclose(self):
        closed.append(f"{self.site} on shard {self.shard}: {dict(self.hits)}")


async def serve(counter, pages):
    for page in pages:
        counter.local().hit(page)  # this shard's instance: no message, no lock


def closed_here():
    return closed


async def main():
    async with shardio.sharded(HitCounter, "example.org") as counter:
        print("built on shards", await counter.invoke_on_all(lambda c: c.shard))
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(serve, counter, ["/", "/about", "/"])
            nursery.start_soon(serve, counter, ["/", "/docs", "/docs", "/"], shard=1)
        print("shard 0's instance:", dict(counter.local().hits))
        print("shard 1 counts '/' once more:", await counter.invoke_on(1, HitCounter.hit, "/"))
        print("hits per shard:", await counter.invoke_on_all(HitCounter.total))
        print("all hits:", await counter.map_reduce(HitCounter.total, operator.add, 0))
        merged = await counter.map_reduce(lambda c: c.hits, operator.add, Counter())
        print("per page, over all shards:", dict(merged))
    for shard in range(2):
        print("closed:", *await shardio.run_on(shard, closed_here))


shardio.run(main, shards=2)
