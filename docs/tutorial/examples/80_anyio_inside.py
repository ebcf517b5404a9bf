import anyio

import shardio


async def fetch_all(urls):
    """Library code written with AnyIO: it knows nothing of shardio."""
    send, receive = anyio.create_memory_object_stream[str](10)
    results = []

    async def fetch(url):
        await anyio.sleep(0.01 * len(url))  # stands in for the network
        await send.send(f"{url}: done")

    async with anyio.create_task_group() as tg, send, receive:
        for url in urls:
            tg.start_soon(fetch, url)
        for _ in urls:
            results.append(await receive.receive())
    return results


async def main():
    print(await fetch_all(["a", "bb", "ccc"]))
    # AnyIO's cancel scopes are shardio's: a shardio deadline reaches into AnyIO code.
    with shardio.move_on_after(0.015) as scope:
        await fetch_all(["x", "slow-one"])
    print("cancelled by shardio's deadline:", scope.cancelled_caught)
    cancelled = anyio.get_cancelled_exc_class()
    print("AnyIO's cancellation is shardio's:", cancelled is shardio.Cancelled)


shardio.run(main)
