"""The README's multi-shard example: one nursery, children on two shards, one deadline.

Run it from the repository root: ``.venv/bin/python -m examples.hello_shards``.
It needs two CPUs, as shards are pinned one per CPU.
"""

import os

import shardio


def say(message: str) -> None:
    # Each shard is a process with its own stdout buffer: flush, so that the
    # lines of both shards come out in the order they were printed.
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def fetch(name: str, seconds: float) -> None:
    say(f"{name}: started, needs {seconds} s")
    try:
        await shardio.sleep(seconds)  # stands in for real work
    except shardio.Cancelled:
        say(f"{name}: cancelled")
        raise
    say(f"{name}: finished")


async def main() -> None:
    pid = await shardio.run_on(1, os.getpid)  # calls os.getpid() on shard 1
    say(f"shard 1 is another process: {pid != os.getpid()}")
    with shardio.move_on_after(1.0):  # one deadline, for the work on both shards
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(fetch, "local", 0.25)
            nursery.start_soon(fetch, "fast", 0.5, shard=1)
            nursery.start_soon(fetch, "slow", 5.0, shard=1)  # will not make it
    say("the nursery is done, so nothing it started runs anywhere")


if __name__ == "__main__":
    shardio.run(main, shards=2)
