import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def query(seconds):
    deadline = shardio.current_effective_deadline()
    try:
        await shardio.sleep(seconds)
    except shardio.Cancelled as cancelled:
        say(f"query cancelled, source={cancelled.source!r}")
        raise
    return deadline


async def main():
    say(f"no deadline here, and there: {await shardio.run_on(1, query, 0)}")

    with shardio.move_on_after(5):
        mine = shardio.current_effective_deadline()
        theirs = await shardio.run_on(1, query, 0)
        say(f"the remote task ran under this deadline: {theirs == mine}")

    start = shardio.current_time()
    with shardio.move_on_after(0.5) as scope:
        await shardio.run_on(1, query, 10)
    elapsed = shardio.current_time() - start
    say(f"move_on_after(0.5) caught the cancellation: {scope.cancelled_caught}, at {elapsed:.1f} s")

    try:
        with shardio.fail_after(0.5):
            await shardio.run_on(1, query, 10)
    except shardio.TooSlowError:
        say("fail_after(0.5) raised TooSlowError")


shardio.run(main, shards=2)
