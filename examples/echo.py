"""An echo server on every shard: what each connection sends comes back.

Run it from the repository root::

    .venv/bin/python -m examples.echo --smp 2 --port 7000
    .venv/bin/python -m examples.echo --smp 2 --port 7000 --balance least-connections

and talk to it with ``nc localhost 7000`` (Ctrl-C stops the server). With
``--port 0`` the kernel picks a free port; the first line printed says which.

Each shard listens on the same port with its own ``SO_REUSEPORT`` socket,
and the kernel spreads the connections between them (``--balance
least-connections`` instead has shard 0 accept every connection and hand it
to the shard with the fewest open). A connection stays on the shard that
serves it: the handler below runs in that shard's process, on its CPU, and
shares nothing with the others.

The handler echoes without allocating per read: ``receive_into`` fills one
buffer of its own, and ``send_all`` sends a view of the bytes just read.
"""

from __future__ import annotations

import argparse
import functools
from typing import Literal

import shardio
import shardio_net
import shardio_net.native

BUFFER_SIZE = 65536


async def echo(stream: shardio_net.SocketStream) -> None:
    """Send back everything received, until the client closes its side."""
    buffer = bytearray(BUFFER_SIZE)
    view = memoryview(buffer)
    while count := await stream.receive_into(buffer):
        await stream.send_all(view[:count])


async def main(
    network: argparse.Namespace,
    port: int,
    host: str | None,
    balance: Literal["reuseport", "least-connections"],
) -> None:
    stack = await shardio_net.native.start_stack(network)
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(
            shardio_net.serve_tcp, echo, port, host=host, shards="all", balance=balance
        )
        addresses = await nursery.start(serve)
        where = ", ".join(
            f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}" for a in addresses
        )
        print(
            f"echo server on {shardio.shard_count()} shard(s), {stack}, listening on {where}",
            flush=True,
        )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.echo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smp", type=int, default=None, help="shards (default: one per CPU)")
    parser.add_argument("--port", type=int, default=7000, help="TCP port (0: any free one)")
    parser.add_argument("--host", default=None, help="local address (default: all, IPv4 and IPv6)")
    parser.add_argument(
        "--balance",
        choices=["reuseport", "least-connections"],
        default="reuseport",
        help="how connections are spread over the shards",
    )
    shardio_net.native.add_stack_arguments(parser)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_arguments()
    try:
        shardio.run(
            main, arguments, arguments.port, arguments.host, arguments.balance, shards=arguments.smp
        )
    except KeyboardInterrupt:
        print("stopped", flush=True)
