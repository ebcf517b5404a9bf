import anyio
import sniffio

import shardio


async def main(greeting):
    # A program written for AnyIO; only the backend name says where it runs.
    print(greeting, "from", sniffio.current_async_library())
    # shardio's own API is available too: this run has two shards.
    shard = await shardio.run_on(1, shardio.current_shard)
    print("shard_count:", shardio.shard_count(), "- run_on(1, ...) ran on shard", shard)


anyio.run(main, "hello", backend="shardio", backend_options={"shards": 2, "cpus": False})
