import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def transfer(name):
    try:
        await shardio.sleep(10)
    except shardio.Cancelled as cancelled:
        say(f"{name}: {cancelled}")
        with shardio.move_on_after(1, shield=True):
            await shardio.sleep(0.3)  # roll back, release a lock, tell a peer...
            say(f"{name} rolled back")
        raise
    return f"{name} done"


async def caller(name):
    try:
        await shardio.run_on(1, transfer, name)
    finally:
        say(f"the call to {name} has returned")


async def main():
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(caller, "transfer-1")
        await shardio.sleep(0.2)
        say("cancelling")
        nursery.cancel_scope.cancel()
    say("the nursery is done: nothing is left running on shard 1")

    with shardio.CancelScope() as outer:
        outer.cancel()
        with shardio.CancelScope(shield=True), shardio.move_on_after(0.2) as inner:
            await shardio.run_on(1, transfer, "transfer-2")
    say(f"shielded call: ended by its own deadline: {inner.cancelled_caught}")


shardio.run(main, shards=2)
