import functools
import zlib

import httpx
from fastapi import FastAPI

import shardio
import shardio_net.asgi
from shardio_net.http_client import AsyncHTTPTransport


def owner(key):
    """The shard that holds ``key``: the same answer on every shard."""
    return zlib.crc32(key.encode()) % shardio.shard_count()


async def compute(key):
    await shardio.sleep(0.1)  # stands in for a database query
    return key.upper()


class Cache:
    """One part of the cache per shard; each key lives on its owner shard only."""

    def __init__(self):
        self.values = {}
        self.hits = self.misses = 0

    async def get(self, key):
        if key in self.values:
            self.hits += 1
        else:
            self.misses += 1
            self.values[key] = await compute(key)
        return self.values[key]

    def stats(self):
        return {"keys": len(self.values), "hits": self.hits, "misses": self.misses}


def make_app(cache):
    """Called once on every shard: each shard builds its own FastAPI app,
    all of them with the handle of the same sharded cache."""
    app = FastAPI()

    @app.get("/items/{key}")
    async def item(key: str):
        value = await cache.invoke_on(owner(key), Cache.get, key)
        return {"key": key, "value": value, "owner": owner(key)}

    @app.get("/stats")
    async def stats():
        per_shard = await cache.invoke_on_all(Cache.stats)
        return {name: sum(part[name] for part in per_shard) for name in per_shard[0]}

    return app


async def main():
    async with shardio.sharded(Cache) as cache, shardio.open_nursery() as nursery:
        serve = functools.partial(
            shardio_net.asgi.serve, functools.partial(make_app, cache), factory=True, port=0
        )
        [(_, port), *_] = await nursery.start(serve)
        async with httpx.AsyncClient(
            transport=AsyncHTTPTransport(), base_url=f"http://127.0.0.1:{port}"
        ) as client:
            for key in ["apple", "banana", "apple", "cherry", "banana"]:
                # A new connection each time: the kernel spreads them over the shards.
                response = await client.get(f"/items/{key}", headers={"connection": "close"})
                print(response.json())
            print((await client.get("/stats")).json())
        nursery.cancel_scope.cancel()


shardio.run(main, shards=2)
