import functools

import httpx

import shardio
import shardio_net.asgi


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b'{"shard": %d, "path": "%s"}' % (shardio.current_shard(), scope["path"].encode())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def client(port):
    # A plain blocking client, as any other program would be.
    shards = set()
    while len(shards) < 2:  # new connections until both shards have answered
        response = httpx.get(f"http://127.0.0.1:{port}/hello", headers={"connection": "close"})
        shards.add(response.json()["shard"])
    print("answered by shards", sorted(shards), "with", response.json()["path"])
    print("content-length:", response.headers["content-length"])


async def main():
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.asgi.serve, app, port=0)
        addresses = await nursery.start(serve)
        port = addresses[0][1]
        await shardio.to_thread.run_sync(client, port)
        nursery.cancel_scope.cancel()  # a graceful stop, as Ctrl-C would


shardio.run(main, shards=2)
