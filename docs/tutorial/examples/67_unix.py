import functools
import os
import tempfile

import shardio
import shardio_net


async def hello(stream):
    await stream.send_all(b"hello from shard %d" % shardio.current_shard())


async def main():
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "server.sock")
        async with shardio.open_nursery() as nursery:
            serve = functools.partial(shardio_net.serve_unix, hello, path)
            await nursery.start(serve)
            print("socket file exists while serving:", os.path.exists(path))
            async with await shardio_net.open_unix_socket(path) as stream:
                print((await stream.receive_some()).decode())
            nursery.cancel_scope.cancel()
        print("socket file removed when serving stopped:", not os.path.exists(path))


shardio.run(main)
