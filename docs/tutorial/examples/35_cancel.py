import random

import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def impatient(send):
    with shardio.move_on_after(0.1) as scope:
        await send.send("too early")  # nobody receives yet
    say(f"the first send was cancelled: {scope.cancelled_caught}")
    await send.send("in time")


async def unlucky(send, count):
    # Sends 0, 1, 2, ... under random timeouts, and retries a send that was cancelled.
    rng = random.Random(7)
    cancelled = number = 0
    async with send:
        while number < count:
            with shardio.move_on_after(rng.choice([0, 1e-5, 1e-4, 1])) as scope:
                await send.send(number)
            if scope.cancelled_caught:
                cancelled += 1  # not sent: send it again
            else:
                number += 1
    return cancelled


async def main():
    send, receive = shardio.open_channel(0)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(impatient, send, shard=1)
        await shardio.sleep(0.3)
        say(f"received {await receive.receive()!r}")

    send, receive = shardio.open_channel(2)
    cancelled = []
    async with shardio.open_nursery() as nursery:

        async def producer():
            cancelled.append(await shardio.run_on(1, unlucky, send, 20_000))

        nursery.start_soon(producer)
        received = [value async for value in receive]
    say(f"received 0 to 19999, each once, in order: {received == list(range(20_000))}")
    say(f"although many sends were cancelled and retried: {cancelled[0] > 1000}")


shardio.run(main, shards=2)
