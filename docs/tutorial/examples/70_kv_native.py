import functools

import shardio
import shardio_net
from kv_protocol import KVClient, serve_kv
from shardio_net.native import simulated_pair


async def session(stream):
    client = KVClient(stream)
    await client.set(b"greeting", b"hello")
    print("  GET greeting ->", await client.get(b"greeting"))
    print("  GET missing ->", await client.get(b"missing"))


async def main():
    print("over the kernel's TCP, on loopback:")
    async with shardio.open_nursery() as nursery:
        handler = functools.partial(serve_kv, {})
        serve = functools.partial(shardio_net.serve_tcp, handler, 0, host="127.0.0.1")
        [(_, port)] = await nursery.start(serve)
        async with await shardio_net.open_tcp_stream("127.0.0.1", port) as stream:
            await session(stream)
        nursery.cancel_scope.cancel()

    print("over two native stacks on a simulated link:")
    a, b = simulated_pair("10.0.0.1", "10.0.0.2")
    async with shardio.open_nursery() as nursery:
        await nursery.start(b.serve_tcp, functools.partial(serve_kv, {}), 7000)
        async with await a.open_tcp_stream("10.0.0.2", 7000) as stream:
            print("  from", stream.getsockname(), "to", stream.getpeername())
            await session(stream)
        nursery.cancel_scope.cancel()


shardio.run(main)
