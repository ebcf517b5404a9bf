import shardio


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def take_two(receive):
    taken = [await receive.receive(), await receive.receive()]
    say(f"took {taken}; the channel lives on shard {receive.statistics().receiving_shard}")
    return receive  # a result travels too: the receive end moves back


async def squares(requests):
    async with requests:
        async for number, reply in requests:  # each request carries a send end
            async with reply:
                await reply.send(number * number)


async def ask(requests, number):
    reply_send, reply_receive = shardio.open_channel(1)
    await requests.send((number, reply_send))  # the reply's send end goes with it
    async with reply_receive:
        say(f"{number} squared is {await reply_receive.receive()}")


async def main():
    send, receive = shardio.open_channel(10)
    for word in ["apple", "banana", "cherry", "damson"]:
        await send.send(word)
    moved_back = await shardio.run_on(1, take_two, receive)
    try:
        receive.receive_nowait()
    except shardio.ClosedResourceError as exc:
        say(f"the end that was passed: {exc}")
    await send.send("elderberry")
    send.close()
    say(f"the rest, back on shard 0: {[value async for value in moved_back]}")

    requests_send, requests_receive = shardio.open_channel(4)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(squares, requests_receive, shard=1)
        async with requests_send:
            for number in (3, 4, 5):
                await ask(requests_send, number)


shardio.run(main, shards=2)
