import time

import shardio


def nothing():
    return None


async def measure():
    for _ in range(5000):  # warm up
        await shardio.run_on(1, nothing)
    samples = []
    for _ in range(5000):
        start = time.perf_counter()
        await shardio.run_on(1, nothing)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] * 1e6, samples[len(samples) * 99 // 100] * 1e6

    # CPU time of each shard during one second: idle, then with a call every millisecond.
    cpu_0, cpu_1 = time.process_time(), await shardio.run_on(1, time.process_time)
    await shardio.sleep(1)
    idle_0 = time.process_time() - cpu_0
    idle_1 = await shardio.run_on(1, time.process_time) - cpu_1
    cpu_0, cpu_1 = time.process_time(), await shardio.run_on(1, time.process_time)
    start = time.perf_counter()
    while time.perf_counter() - start < 1:
        await shardio.run_on(1, nothing)
        await shardio.sleep(0.001)
    wall = time.perf_counter() - start
    busy_0 = (time.process_time() - cpu_0) / wall
    busy_1 = (await shardio.run_on(1, time.process_time) - cpu_1) / wall
    return (
        f"round trip p50 {p50:4.1f} us, p99 {p99:5.1f} us | CPU of shards 0 and 1: "
        f"idle {idle_0:3.0%} {idle_1:3.0%}, a call per ms {busy_0:3.0%} {busy_1:3.0%}"
    )


for idle_poll_us in (200, 50, 0):
    result = shardio.run(measure, shards=2, idle_poll_us=idle_poll_us)
    print(f"idle_poll_us={idle_poll_us:<3} {result}")
