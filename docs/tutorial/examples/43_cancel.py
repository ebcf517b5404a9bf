import os
import tempfile

import shardio
import shardio_disk
from shardio import lowlevel

SIZE = 32 * 1024 * 1024


async def cancel_soon(scope):
    await lowlevel.checkpoint()  # by now the read is in the kernel
    scope.cancel()


async def main(directory):
    async with await shardio_disk.open_dma(os.path.join(directory, "data"), "r") as f:
        buf = shardio_disk.aligned_buffer(SIZE)
        async with shardio.open_nursery() as nursery:
            with shardio.CancelScope() as scope:
                nursery.start_soon(cancel_soon, scope)
                await f.read_into(0, buf)  # 32 MiB from the device
        print("the read was cancelled:", scope.cancelled_caught)
        # It returned only once the kernel was done with the buffer:
        print("operations still in flight:", shardio_disk.statistics().in_flight)
        snapshot = bytes(buf)
        await shardio.sleep(0.1)
        print("nothing wrote into the buffer since:", bytes(buf) == snapshot)
        del buf  # safe: no device will write here any more

        # Cancelled before it starts, an operation never reaches the kernel.
        with shardio.CancelScope() as scope:
            scope.cancel()
            before = shardio_disk.statistics().submitted
            await f.read_at(0, 4096)
        print(
            "a read cancelled in advance was submitted:",
            shardio_disk.statistics().submitted != before,
        )


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    with open(os.path.join(directory, "data"), "wb") as plain:
        plain.write(os.urandom(SIZE))
    shardio.run(main, directory)
