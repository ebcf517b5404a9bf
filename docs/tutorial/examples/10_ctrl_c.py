import os
import signal

import shardio


async def worker():
    try:
        await shardio.sleep_forever()
    except shardio.Cancelled as cancelled:
        print("worker: cleaning up, source =", cancelled.source)
        raise


async def main():
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await shardio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C
        await shardio.sleep(10)
        print("never printed")


try:
    shardio.run(main)
except KeyboardInterrupt:
    print("shardio.run() raised KeyboardInterrupt, after every task had unwound")
