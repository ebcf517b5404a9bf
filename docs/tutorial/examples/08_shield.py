import shardio


async def save_state(name):
    await shardio.sleep(0.3)  # e.g. flush a file, tell a peer goodbye
    print(f"{name}: state saved")


async def careless(name):
    try:
        await shardio.sleep(10)
    finally:
        print(f"{name}: saving state...")
        await save_state(name)  # raises Cancelled at once: we are still cancelled


async def careful(name):
    try:
        await shardio.sleep(10)
    finally:
        print(f"{name}: saving state...")
        with shardio.move_on_after(1, shield=True) as cleanup:
            await save_state(name)
        if cleanup.cancelled_caught:
            print(f"{name}: gave up saving after 1 s")


async def main():
    with shardio.move_on_after(0.2):
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(careless, "careless")
            nursery.start_soon(careful, "careful")
    print("both workers have exited")


shardio.run(main)
