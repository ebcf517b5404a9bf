import functools

import httpx
import pytest
from fastapi import FastAPI

import shardio
import shardio_net.asgi
from shardio_net.http_client import AsyncHTTPTransport

app = FastAPI()


@app.post("/double")
async def double(numbers: list[int]):
    return [2 * n for n in numbers]


@pytest.mark.shardio(shards=2)
async def test_the_app_on_two_shards_over_real_sockets():
    async with shardio.open_nursery() as nursery:
        [(_, port), *_] = await nursery.start(
            functools.partial(shardio_net.asgi.serve, app, port=0)
        )
        async with httpx.AsyncClient(
            transport=AsyncHTTPTransport(), base_url=f"http://127.0.0.1:{port}"
        ) as client:
            assert (await client.post("/double", json=[1, 2])).json() == [2, 4]
            assert (await client.post("/double", json=["x"])).status_code == 422
        nursery.cancel_scope.cancel()
