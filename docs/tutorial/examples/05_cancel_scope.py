import shardio


async def cancel_later(scope, seconds):
    await shardio.sleep(seconds)
    scope.cancel("no longer needed")


async def main():
    async with shardio.open_nursery() as nursery:
        with shardio.CancelScope() as scope:
            nursery.start_soon(cancel_later, scope, 0.5)
            try:
                await shardio.sleep(10)
            except Exception:
                print("never printed: Cancelled is not an Exception")
            except shardio.Cancelled as cancelled:
                print("sleep raised Cancelled:", cancelled.source, "-", cancelled.reason)
                raise
            print("never printed either: the rest of the block is skipped")
        print("after the block; cancelled_caught =", scope.cancelled_caught)

    with shardio.CancelScope() as outer:
        with shardio.CancelScope() as inner:
            outer.cancel()
            await shardio.sleep(1)
        print("never printed: inner did not catch the Cancelled, it was not cancelled")
    print("outer caught it:", outer.cancelled_caught, "| inner:", inner.cancelled_caught)


shardio.run(main)
