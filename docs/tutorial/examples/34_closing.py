import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def send_three(send):
    async with send:
        for number in range(3):
            await send.send(number)


async def take_five(receive):
    async with receive:  # leaving the block closes the only receive end
        taken = [await receive.receive() for _ in range(5)]
        say(f"took {taken}, and closes the receive end")


async def main():
    send, receive = shardio.open_channel(10)
    await shardio.run_on(1, send_three, send.clone())  # sends 3 values, closes its clone
    say(f"received {[receive.receive_nowait() for _ in range(3)]}")
    try:
        receive.receive_nowait()
    except shardio.WouldBlock:
        say("nothing more for now, but shard 0 still holds a send end: WouldBlock")
    await send.send(3)
    send.close()
    say(f"after the last send end closed: {[value async for value in receive]}, then the end")
    try:
        await send.send(4)
    except shardio.ClosedResourceError as exc:
        say(f"sending on a closed end: ClosedResourceError: {exc}")

    send, receive = shardio.open_channel(2)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(take_five, receive, shard=1)
        sent = 0
        try:
            while True:
                await send.send(sent)
                sent += 1
        except shardio.BrokenResourceError as exc:
            say(f"the producer's send raised BrokenResourceError: {exc}")
        say(f"it had sent 5 values or more before that: {sent >= 5}")


shardio.run(main, shards=2)
