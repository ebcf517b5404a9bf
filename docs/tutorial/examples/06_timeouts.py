import shardio


async def main():
    with shardio.move_on_after(0.5) as scope:
        await shardio.sleep(2)
        print("never printed")
    print("move_on_after(0.5) around a 2 s sleep: cancelled_caught =", scope.cancelled_caught)

    with shardio.move_on_after(2) as scope:
        await shardio.sleep(0.5)
    print("move_on_after(2) around a 0.5 s sleep: cancelled_caught =", scope.cancelled_caught)

    try:
        with shardio.fail_after(0.5):
            await shardio.sleep(2)
    except shardio.TooSlowError as exc:
        print("fail_after(0.5) raised TooSlowError:", exc)

    deadline = shardio.current_time() + 0.5
    with shardio.move_on_at(deadline):
        await shardio.sleep(2)
    print("move_on_at ended the block", round(shardio.current_time() - deadline, 1), "s late")


shardio.run(main)
