import warnings

import anyio
from fastapi import Depends, FastAPI

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

import shardio  # noqa: E402

app = FastAPI()


async def shard():
    await anyio.sleep(0)
    return shardio.current_shard()


@app.get("/square/{n}")
async def square(n: int, shard: int = Depends(shard)):
    return {"n": n, "square": n * n, "shard": shard}


@app.post("/total")
def total(numbers: list[int]):
    # A plain def: FastAPI runs it in a worker thread (anyio.to_thread: shardio's).
    return {"total": sum(numbers)}


with TestClient(app, backend="shardio") as client:
    print(client.get("/square/12").json())
    print(client.post("/total", json=[1, 2, 3]).json())
    print(client.get("/square/twelve").status_code)
