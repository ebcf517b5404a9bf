import os

import shardio


def where_am_i():
    return shardio.current_shard(), os.getpid(), os.getppid()


async def main():
    print(f"main runs on shard {shardio.current_shard()} of {shardio.shard_count()}")
    _, my_pid, _ = where_am_i()
    for shard in range(shardio.shard_count()):
        index, pid, parent = await shardio.run_on(shard, where_am_i)
        if pid == my_pid:
            process = "this process"
        elif parent == my_pid:
            process = "a child of this process"
        else:
            process = "some other process"
        print(f"run_on({shard}, where_am_i) ran on shard {index}, in {process}")
    return "main's result"


print("shardio.run returned", repr(shardio.run(main, shards=2)))
