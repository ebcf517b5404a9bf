import functools
import random
import time

import shardio
from kv_protocol import KVClient, serve_kv
from shardio.testing import MockClock
from shardio_net.native import simulated_pair


async def main():
    a, b = simulated_pair(
        delay=0.005,  # 5 ms each way
        jitter=0.002,  # plus up to 2 ms
        rate=1_000_000,  # 1 MB/s, with a queue that drops when full
        loss=0.05,  # 5 % of the frames lost...
        duplicate=0.01,  # ...1 % sent twice...
        reorder=0.05,  # ...5 % held back and overtaken...
        corrupt=0.01,  # ...and 1 % with a bit flipped
        seed=1,
    )
    rng = random.Random(1)
    values = {
        b"key%d" % i: rng.randbytes(rng.randrange(1, 2000)).hex().encode() for i in range(100)
    }
    values[b"big"] = b"x" * 200_000
    start, real_start = shardio.current_time(), time.perf_counter()
    async with shardio.open_nursery() as nursery:
        await nursery.start(b.serve_tcp, functools.partial(serve_kv, {}), 7000)
        async with await a.open_tcp_stream("10.0.0.2", 7000) as stream:
            client = KVClient(stream)
            for key, value in values.items():
                await client.set(key, value)
            intact = [await client.get(key) == value for key, value in values.items()]
            print(f"{sum(intact)} of {len(values)} values came back intact")
            print(f"simulated time: {shardio.current_time() - start:.1f} s")
            print(f"real time: {time.perf_counter() - real_start:.1f} s")
            tcp = stream.statistics()
        nursery.cancel_scope.cancel()

    # Each stack's injector impairs what comes *to* it: b's is the way to the server.
    to_server, to_client = b.device.statistics(), a.device.statistics()
    print("the network:      to the server  to the client")
    for name in ("frames_in", "lost", "duplicated", "reordered", "corrupted"):
        print(f"  {name:14} {getattr(to_server, name):15} {getattr(to_client, name):14}")
    print("the client's connection:")
    print(f"  segments sent {tcp.segments_sent}, of them retransmitted {tcp.retransmits}")
    print(f"  fast recoveries {tcp.fast_recoveries}, timeouts {tcp.timeouts}")
    print(f"  smoothed RTT {tcp.srtt * 1000:.1f} ms, congestion window {tcp.cwnd} bytes")
    print("dropped by the client's stack, by reason:")
    for reason, count in sorted(a.statistics().interface.dropped.items()):
        print(f"  {count:4}  {reason}")


shardio.run(main, clock=MockClock(autojump_threshold=0))
