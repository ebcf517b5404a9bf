import functools
import re
import tempfile

import shardio
from kv_protocol import KVClient, serve_kv
from shardio.testing import MockClock
from shardio_net.native import simulated_pair


async def outage(link_to_server, seconds):
    link_to_server.loss = 1.0  # every frame towards the server is lost...
    await shardio.sleep(seconds)
    link_to_server.loss = 0.0  # ...until the network heals


async def main(path):
    a, b = simulated_pair(delay=0.001, seed=2)
    async with shardio.open_nursery() as nursery:
        await nursery.start(b.serve_tcp, functools.partial(serve_kv, {}), 7000)
        with a.capture(path):  # every frame the client's stack sends and receives
            async with await a.open_tcp_stream("10.0.0.2", 7000) as stream:
                client = KVClient(stream)
                await client.set(b"k", b"v")
                nursery.start_soon(outage, b.device, 1.0)
                value = await client.get(b"k")
                print(f"GET k -> {value} at {shardio.current_time():.3f} s")
            await shardio.sleep(1)  # let both sides finish closing
        nursery.cancel_scope.cancel()
    # The capture is complete; read it back with tcpdump.
    command = ["tcpdump", "-r", path, "-nn", "-tt", "tcp"]
    tcpdump = await shardio.run_process(command, capture_stdout=True, capture_stderr=True)
    for line in tcpdump.stdout.decode().splitlines():
        # Keep the time, the addresses, the flags and the length of each segment.
        time, addresses, flags, length = re.match(
            r"(\S+) IP (.*?): Flags \[(.*?)\].*length (\d+)", line
        ).groups()
        print(f"{time}  {addresses:32} [{flags}] {length}")


with tempfile.TemporaryDirectory() as directory:
    shardio.run(main, f"{directory}/kv.pcap", clock=MockClock(autojump_threshold=0))
