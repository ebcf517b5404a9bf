import os

import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def consume_then_crash(receive):
    for _ in range(3):
        await shardio.sleep(0.1)  # a slow consumer
        say(f"received {await receive.receive()}")
    await shardio.sleep(0.1)
    os._exit(3)  # stands in for a segfault in C code, or the OOM killer


async def main():
    send, receive = shardio.open_channel(2)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(consume_then_crash, receive, shard=1)
        number = 0
        try:
            while True:
                await send.send(number)
                number += 1
        except shardio.ShardCrashed as exc:
            say(f"sending {number} raised {exc!r}")
            raise


try:
    shardio.run(main, shards=2)
except shardio.ShardCrashed as exc:
    print(f"shardio.run raised {exc!r}")
