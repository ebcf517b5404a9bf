import math

import shardio

sent = 0  # module globals: on the producer's shard, the producer's own
end = None


async def produce(send):
    global sent, end
    sent, end = 0, send
    async with send:
        for number in range(50):
            await send.send(number)
            sent += 1


def progress():
    return sent, end.statistics().tasks_waiting_send


async def main():
    in_order = []
    for size in (0, 1, 8, math.inf):
        send, receive = shardio.open_channel(size)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(produce, send, shard=1)
            await shardio.sleep(0.2)  # nobody receives for a while
            ahead, waiting = await shardio.run_on(1, progress)
            buffered = receive.statistics().current_buffer_used
            in_order.append([value async for value in receive] == list(range(50)))
        print(
            f"{f'max_buffer_size={size}:':<20} {ahead:>2} of 50 sent before anyone received, "
            f"{buffered:>2} buffered on shard 0, senders waiting on shard 1: {waiting}"
        )
    print("then every value arrived, in order:", all(in_order))


shardio.run(main, shards=2)
