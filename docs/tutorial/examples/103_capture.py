import functools
import re
import socket
import tempfile

import shardio
import shardio_net
import tap_namespace
from shardio_net.native import installed, start_tap_stacks
from tap_namespace import KERNEL, STACK


async def greet(stream):
    name = await stream.receive_some()
    await stream.send_all(b"hello, " + name)


def kernel_client():
    with socket.create_connection((STACK, 7000), source_address=(KERNEL, 40000)) as sock:
        sock.sendall(b"kernel")
        reply = sock.recv(100)
        sock.recv(100)  # b"": the stack closed its side first
        return reply


async def main(path):
    await start_tap_stacks("tap0", STACK, gateway=KERNEL)
    async with shardio.open_nursery() as nursery:
        await nursery.start(functools.partial(shardio_net.serve_tcp, greet, 7000))
        with installed().capture(path):  # every frame this shard's stack sends and receives
            print("the kernel's client got", await shardio.to_thread.run_sync(kernel_client))
            await shardio.sleep(0.5)  # let both sides finish closing
        nursery.cancel_scope.cancel()
    tcpdump = await shardio.run_process(
        ["tcpdump", "-r", path, "-nn", "tcp"], capture_stdout=True, capture_stderr=True
    )
    for line in tcpdump.stdout.decode().splitlines():
        # The addresses, the flags and the length of each segment, but for pure
        # ACKs: whether one leaves alone or with the next data varies by run.
        addresses, flags, length = re.search(
            r" IP (.*?): Flags \[(.*?)\].*length (\d+)", line
        ).groups()
        if flags != "." or length != "0":
            print(f"  {addresses:34} [{flags}] {length}")


tap_namespace.enter()
with tempfile.TemporaryDirectory() as directory:
    shardio.run(main, f"{directory}/session.pcap", shards=1)
