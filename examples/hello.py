"""The README's first example: a nursery, a deadline, and a cancellation.

Run it from the repository root: ``.venv/bin/python -m examples.hello``.
"""

import shardio


async def fetch(name: str, seconds: float) -> None:
    print(f"{name}: started, needs {seconds} s")
    try:
        await shardio.sleep(seconds)  # stands in for real work: a query, a download...
    except shardio.Cancelled:
        print(f"{name}: cancelled")
        raise  # always let Cancelled propagate; the cancelled scope catches it
    print(f"{name}: finished")


async def main() -> None:
    start = shardio.current_time()
    with shardio.move_on_after(1.0) as deadline:  # the block gets one second
        async with shardio.open_nursery() as nursery:  # children live inside this block
            nursery.start_soon(fetch, "fast", 0.25)
            nursery.start_soon(fetch, "medium", 0.5)
            nursery.start_soon(fetch, "slow", 5.0)  # will not make it
        # Reached when every child has finished -- or been cancelled.
    elapsed = shardio.current_time() - start
    print(f"deadline hit: {deadline.cancelled_caught}, after {elapsed:.1f} s")


if __name__ == "__main__":
    shardio.run(main)
