import shardio


async def child(name, seconds):
    print(f"{name}: started")
    await shardio.sleep(seconds)
    print(f"{name}: done after {seconds} s")


async def main():
    start = shardio.current_time()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(child, "A", 1.0)
        nursery.start_soon(child, "B", 0.5)
        print("main: both children are scheduled; the block now waits for them")
    print(f"main: the nursery block ended after {shardio.current_time() - start:.1f} s")


shardio.run(main)
