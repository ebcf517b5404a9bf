import os

import shardio


def cpus_of_this_shard():
    return sorted(os.sched_getaffinity(0))


async def cpus_of_every_shard():
    return [await shardio.run_on(shard, cpus_of_this_shard) for shard in range(2)]


mask = sorted(os.sched_getaffinity(0))
print("this process may run on 2 CPUs or more:", len(mask) >= 2)

pinned = shardio.run(cpus_of_every_shard, shards=2)
print("default: shard 0 on the first CPU:", pinned[0] == mask[:1])
print("         shard 1 on the second:", pinned[1] == mask[1:2])

chosen = shardio.run(cpus_of_every_shard, shards=2, cpus=[mask[1], mask[0]])
print("cpus=[second, first]: shard 0 on the second CPU:", chosen[0] == [mask[1]])

free = shardio.run(cpus_of_every_shard, shards=2, cpus=False)
print("cpus=False: both shards may run on every CPU:", free == [mask, mask])

print("after run(), this thread's mask is restored:", sorted(os.sched_getaffinity(0)) == mask)
