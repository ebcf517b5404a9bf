import shardio


async def service(name, *, task_status=shardio.TASK_STATUS_IGNORED):
    print(f"{name}: warming up")
    await shardio.sleep(0.5)  # e.g. bind a socket, load a cache
    task_status.started(f"{name} is ready")
    print(f"{name}: serving")
    await shardio.sleep_forever()


async def broken_service(*, task_status=shardio.TASK_STATUS_IGNORED):
    await shardio.sleep(0.1)
    raise OSError("address already in use")


async def main():
    async with shardio.open_nursery() as nursery:
        message = await nursery.start(service, "cache")
        print("main: start() returned", repr(message))
        try:
            await nursery.start(broken_service)
        except OSError as exc:
            print("main: start() raised", repr(exc))
        print("main: children now:", sorted(t.name for t in nursery.child_tasks))
        nursery.cancel_scope.cancel()  # stop the service, which would run forever
    print("main: done")


shardio.run(main)
