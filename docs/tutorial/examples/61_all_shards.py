import collections
import functools

import shardio
import shardio_net


async def which_shard(stream):
    await stream.send_all(b"%d" % shardio.current_shard())
    await stream.receive_some()  # hold the connection until the client closes it


async def count_shards(port, connections):
    """Open `connections` connections at once; count the shards that answer."""
    streams = [await shardio_net.open_tcp_stream("127.0.0.1", port) for _ in range(connections)]
    served_by = collections.Counter([int(await s.receive_some()) for s in streams])
    for stream in streams:
        await stream.aclose()
    return sorted(served_by.items())


async def main():
    for balance in ("reuseport", "least-connections"):
        async with shardio.open_nursery() as nursery:
            serve = functools.partial(
                shardio_net.serve_tcp,
                which_shard,
                0,
                host="127.0.0.1",
                shards="all",
                balance=balance,
            )
            [(_, port)] = await nursery.start(serve)
            counts = await count_shards(port, 40)
            if balance == "reuseport":
                # The kernel's hash decides: both shards, in varying shares.
                print(f"{balance}: served by shards {[shard for shard, _ in counts]}")
            else:
                print(f"{balance}: (shard, connections) = {counts}")
            nursery.cancel_scope.cancel()


shardio.run(main, shards=2)
