import shardio


async def produce(send, name, count):
    async with send:
        for number in range(count):
            await send.send((name, number))


async def main():
    send, receive = shardio.open_channel(16)
    async with shardio.open_nursery() as nursery:
        for shard in range(3):
            clone = send.clone()  # one send end per producer
            nursery.start_soon(produce, clone, f"producer-{shard}", 1000, shard=shard)
        send.close()  # the original: the clones keep the channel open
        received = [value async for value in receive]

    print(f"{len(received)} values received, none twice: {len(set(received)) == len(received)}")
    for shard in range(3):
        mine = [number for name, number in received if name == f"producer-{shard}"]
        in_order = mine == list(range(1000))
        print(f"producer-{shard}: {len(mine)} values, in the order sent: {in_order}")


shardio.run(main, shards=3, cpus=False)  # three shards, even on a two-CPU machine
