import warnings

import anyio
import sniffio
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

# Starlette 1.x prefers httpx2 for its TestClient and warns about httpx.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

import shardio  # noqa: E402, F401  (importing shardio is what lets AnyIO find it)


async def ticks(request):
    async def body():
        for i in range(3):
            await anyio.sleep(0.01)
            yield f"tick {i} on {sniffio.current_async_library()}\n"

    return StreamingResponse(body(), media_type="text/plain")


app = Starlette(routes=[Route("/ticks", ticks)])

# The app runs in a shardio run, in a thread of its own (an AnyIO blocking portal).
with TestClient(app, backend="shardio") as client, client.stream("GET", "/ticks") as response:
    for line in response.iter_lines():
        print(line)
