import shardio


async def worker(name):
    try:
        await shardio.sleep(10)
    except shardio.Cancelled as cancelled:
        print(f"{name}: cancelled because {cancelled.reason}")
        raise


async def faulty():
    await shardio.sleep(0.5)
    raise KeyError("config")


async def check_config():
    raise KeyError("config")


async def main():
    try:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(worker, "worker-1")
            nursery.start_soon(worker, "worker-2")
            nursery.start_soon(faulty)
    except* KeyError as group:
        print("caught", repr(group))

    try:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(check_config)
            raise ValueError("the block failed too")
    except* KeyError as group:
        print("KeyError handler got", group.exceptions)
    except* ValueError as group:
        print("ValueError handler got", group.exceptions)


shardio.run(main)
