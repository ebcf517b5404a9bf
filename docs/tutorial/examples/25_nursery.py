import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def crawl(site, seconds):
    try:
        await shardio.sleep(seconds)
    except shardio.Cancelled:
        say(f"crawl of {site} cancelled")
        raise
    if site.endswith(".invalid"):
        raise LookupError(f"no such site: {site}")
    say(f"crawled {site}")


async def cache(*, task_status=shardio.TASK_STATUS_IGNORED):
    entries = {"greeting": "hello"}  # lives on the cache's shard only
    task_status.started(f"cache ready on shard {shardio.current_shard()}, {len(entries)} entry")
    try:
        await shardio.sleep_forever()
    finally:
        say("cache closed")


async def main():
    sites = ["a.example", "b.example", "c.example", "d.example"]
    async with shardio.open_nursery() as nursery:
        for number, site in enumerate(sites):
            nursery.start_soon(crawl, site, 0.1 * (number + 1), shard=number % 2)
    say("all four crawls are done")

    async with shardio.open_nursery() as nursery:
        say(await nursery.start(cache, shard=1))
        say(f"the nursery's children: {[task.name for task in nursery.child_tasks]}")
        nursery.cancel_scope.cancel()

    try:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(crawl, "e.example", 10)
            nursery.start_soon(crawl, "f.invalid", 0.2, shard=1)
    except* LookupError as group:
        say(f"the nursery raised {group.exceptions}")

    try:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(crawl, "g.example", 10, shard=1)
            nursery.start_soon(crawl, "h.invalid", 0.2)
    except* LookupError as group:
        say(f"the nursery raised {group.exceptions}")


shardio.run(main, shards=2)
