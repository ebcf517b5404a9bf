import os
import signal

import shardio

shard_pids = []


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def worker(name):
    try:
        await shardio.sleep_forever()
    except shardio.Cancelled as cancelled:
        say(f"{name}: {cancelled}")
        raise


async def main(signum):
    shard_pids.append(await shardio.run_on(1, os.getpid))
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(worker, "local worker")
        nursery.start_soon(worker, "remote worker", shard=1)
        await shardio.sleep(0.2)
        os.kill(os.getpid(), signum)  # Ctrl-C, or a service manager stopping us
        await shardio.sleep(10)


for signum in (signal.SIGINT, signal.SIGTERM):
    try:
        shardio.run(main, signum, shards=2)
    except (KeyboardInterrupt, SystemExit) as exc:
        print(f"shardio.run raised {exc!r}")
        print("shard 1's process is gone:", not os.path.exists(f"/proc/{shard_pids[-1]}"))
