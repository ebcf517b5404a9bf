import contextlib
import functools

import httpx
from fastapi import FastAPI, Request

import shardio
import shardio_net.asgi
from shardio_net.http_client import AsyncHTTPTransport


@contextlib.asynccontextmanager
async def lifespan(app):
    # Runs on every shard, before it accepts a connection; what it yields is
    # the state each of that shard's requests sees.
    connections = {"opened_on": shardio.current_shard()}  # a database pool, say
    yield {"pool": connections}
    # ... and this after the shard's last connection is gone.


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def where(request: Request):
    return {"pool_of_shard": request.state.pool["opened_on"], "shard": shardio.current_shard()}


async def main():
    async with shardio.open_nursery() as nursery:
        [(_, port), *_] = await nursery.start(
            functools.partial(shardio_net.asgi.serve, app, port=0)
        )
        seen = set()
        async with httpx.AsyncClient(transport=AsyncHTTPTransport()) as client:
            while len(seen) < 2:
                response = await client.get(
                    f"http://127.0.0.1:{port}/", headers={"connection": "close"}
                )
                answer = response.json()
                assert answer["pool_of_shard"] == answer["shard"]
                seen.add(answer["shard"])
        print("every request used its own shard's pool, on shards", sorted(seen))
        nursery.cancel_scope.cancel()


shardio.run(main, shards=2)
