import os

import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def worker(name):
    try:
        await shardio.sleep_forever()
    except shardio.Cancelled as cancelled:
        say(f"{name}: {cancelled}")
        raise


def buggy_extension():
    os._exit(3)  # stands in for a segfault in C code, or the OOM killer


async def main():
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(worker, "worker")
        await shardio.sleep(0.1)
        say("calling the buggy extension on shard 1")
        try:
            await shardio.run_on(1, buggy_extension)
        except shardio.ShardCrashed as exc:
            say(f"run_on raised {exc!r}")
            raise
    say("never printed")


try:
    shardio.run(main, shards=2)
except shardio.ShardCrashed as exc:
    print(f"shardio.run raised {exc!r}")
    print(f"shard={exc.shard} exitcode={exc.exitcode} signal={exc.signal}")
    print("it is a BrokenResourceError:", isinstance(exc, shardio.BrokenResourceError))
