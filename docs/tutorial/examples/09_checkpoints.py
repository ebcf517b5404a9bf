import time

import shardio
from shardio import lowlevel


def crunch(seconds):
    """Burn CPU without ever yielding: ordinary synchronous Python."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def number_cruncher(with_checkpoints):
    chunks = 0
    with shardio.move_on_after(0.25):
        for _ in range(10):
            crunch(0.1)
            chunks += 1
            if with_checkpoints:
                await lowlevel.checkpoint()
    return chunks


async def take_turns(name):
    for step in range(1, 4):
        print(f"{name}{step}", end=" ")
        await lowlevel.checkpoint()


async def returns_at_once():
    return "no trap reached"


async def main():
    print("chunks done without checkpoints:", await number_cruncher(False))
    print("chunks done with checkpoints:   ", await number_cruncher(True))

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(take_turns, "A")
        nursery.start_soon(take_turns, "B")
    print()

    with shardio.CancelScope() as scope:
        scope.cancel()
        print("awaiting a plain coroutine:", await returns_at_once())
        await lowlevel.cancel_shielded_checkpoint()
        print("cancel_shielded_checkpoint() did not raise")
        await lowlevel.checkpoint_if_cancelled()
        print("never printed")
    print("checkpoint_if_cancelled() raised; cancelled_caught =", scope.cancelled_caught)


shardio.run(main)
