import functools
import socket

import shardio
import shardio_net
import tap_namespace
from shardio_net.native import installed, start_tap_stacks
from tap_namespace import KERNEL, STACK

SIZE = 32 << 20
results = []  # on shard 0: what each connection's handler reported


def report(line):
    results.append(line)


async def sink(stream):
    """Read everything, then report what the connection saw, to shard 0."""
    buffer = bytearray(1 << 16)
    while await stream.receive_into(buffer):
        pass
    tcp = stream.statistics()
    line = (
        f"  the connection, on shard {shardio.current_shard()}: {tcp.bytes_received} bytes "
        f"in {tcp.segments_received} segments; {tcp.segments_sent} sent (ACKs)"
    )
    await shardio.run_on(0, report, line)


def kernel_client():
    with socket.create_connection((STACK, 7000)) as sock:
        sock.sendall(bytes(SIZE))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # until the stack closes its side


def stack_figures():
    stack = installed()
    figures, device = stack.statistics(), stack.statistics().device
    return (
        f"  shard {shardio.current_shard()}'s stack: {figures.frames_received} frames in, "
        f"{device.large_frames_received} of them over the MTU, "
        f"{device.partial_checksums} with partial checksums;\n"
        f"    {figures.forwarded} forwarded to the other shard, {figures.injected} from it, "
        f"dropped {figures.interface.dropped}"
    )


async def main(offloads):
    await start_tap_stacks(
        "tap0", STACK, gateway=KERNEL, checksum_offload=offloads, lro=offloads, tso=offloads
    )
    async with shardio.open_nursery() as nursery:
        await nursery.start(functools.partial(shardio_net.serve_tcp, sink, 7000, shards="all"))
        start = shardio.current_time()
        await shardio.to_thread.run_sync(kernel_client)
        elapsed = shardio.current_time() - start
        while not results:
            await shardio.sleep(0.01)
        nursery.cancel_scope.cancel()
    print(f"offloads {'on' if offloads else 'off'}: {SIZE / elapsed / 1e6:.0f} MB/s")
    print(results.pop())
    for shard in range(shardio.shard_count()):
        print(await shardio.run_on(shard, stack_figures))


tap_namespace.enter()
shardio.run(main, True, shards=2)
shardio.run(main, False, shards=2)
