import functools
import hashlib
import random
import socket
import threading

import shardio
import shardio_net
import tap_namespace
from shardio_net.native import installed, start_tap_stacks
from shardio_net.native.phy import FaultInjector
from tap_namespace import KERNEL, STACK

SIZE = 4 << 20


def lossy(tap):
    """Wrap this shard's queue of tap0: 3 % of the frames lost each way."""
    seed = 2 * shardio.current_shard()
    incoming = FaultInjector(tap, loss=0.03, seed=seed)  # what the kernel sends us
    return FaultInjector(incoming, direction="transmit", loss=0.03, seed=seed + 1)


async def echo(stream):
    buffer = bytearray(1 << 16)
    while count := await stream.receive_into(buffer):
        await stream.send_all(memoryview(buffer)[:count])


def kernel_client():
    """Send SIZE random bytes, read the echo back; is it intact?"""
    payload = random.randbytes(SIZE)
    received = hashlib.sha256()
    with socket.create_connection((STACK, 7000)) as sock:

        def send():  # while the echo comes back: else both sides could fill up and wait
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        while data := sock.recv(1 << 20):
            received.update(data)
        sender.join()
    return received.digest() == hashlib.sha256(payload).digest()


def injector_figures():
    transmit = installed().device  # the outer injector, then the inner one
    return transmit.inner.statistics(), transmit.statistics()


async def main():
    await start_tap_stacks(
        "tap0",
        STACK,
        gateway=KERNEL,
        checksum_offload=False,  # an injector needs frames the stack verifies
        lro=False,
        tso=False,
        device_wrapper=lossy,
    )
    async with shardio.open_nursery() as nursery:
        await nursery.start(functools.partial(shardio_net.serve_tcp, echo, 7000, shards="all"))
        intact = await shardio.to_thread.run_sync(kernel_client)
        print(f"{SIZE >> 20} MiB echoed through 3 % loss each way, intact: {intact}")
        nursery.cancel_scope.cancel()
    for shard in range(shardio.shard_count()):
        incoming, outgoing = await shardio.run_on(shard, injector_figures)
        print(
            f"shard {shard}: lost {incoming.lost} of {incoming.frames_in} frames in, "
            f"{outgoing.lost} of {outgoing.frames_in} out"
        )


tap_namespace.enter()
shardio.run(main, shards=2)
