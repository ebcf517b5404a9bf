import functools
import socket
import threading

import shardio
import shardio_net
import tap_namespace
from shardio_net.native import start_tap_stacks
from tap_namespace import KERNEL, STACK


async def which_shard(stream):
    await stream.send_all(b"%d" % shardio.current_shard())


def kernel_clients(count):
    """The kernel's side: plain sockets, one connection after another."""
    answers = []
    for _ in range(count):
        with socket.create_connection((STACK, 7000)) as sock:
            answers.append(int(sock.recv(10)))
    return answers


def kernel_server(listener):
    """The kernel's side: a plain socket server that says who called."""
    while True:
        sock, (host, _) = listener.accept()
        with sock:
            sock.sendall(f"hello, {host}".encode())


async def call_the_kernel():
    stream = await shardio_net.open_tcp_stream(KERNEL, 9000)
    async with stream:
        reply = await stream.receive_some()
    return shardio.current_shard(), type(stream).__name__, reply


async def main():
    addresses = await start_tap_stacks("tap0", STACK, gateway=KERNEL)
    print("a native stack on each shard, at", addresses)
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.serve_tcp, which_shard, 7000, shards="all")
        print("serving on", await nursery.start(serve))
        answers = await shardio.to_thread.run_sync(kernel_clients, 40)
        print(f"{len(answers)} kernel connections answered, by shards {sorted(set(answers))}")
        nursery.cancel_scope.cancel()

    listener = socket.create_server((KERNEL, 9000))
    threading.Thread(target=kernel_server, args=(listener,), daemon=True).start()
    for shard in range(shardio.shard_count()):
        where, kind, reply = await shardio.run_on(shard, call_the_kernel)
        print(f"shard {where}, a {kind}, got {reply!r}")


tap_namespace.enter()
shardio.run(main, shards=2)
