"""N4's server: bulk bytes in, bulk bytes out, and its own statistics.

``python -m bench._bulk_server [--port 5001] [--smp 1] [--no-offloads] [stack
flags]`` takes Seastar's network-stack flags
(``shardio_net.native.add_stack_arguments``), so the same program runs on the
posix stack or the native one (with the TAP device's offloads, or with
``--no-offloads`` none: every frame at most the MTU), serves on
every shard (``serve_tcp(shards="all")``), prints ``bulk server ...
listening on ...`` once it does, and stops on Ctrl-C. Each connection
starts with a command, one letter and an 8-byte big-endian count:

- ``R n``: the server receives until end-of-file (``receive_into`` a 1 MiB
  ``bytearray``, the one copy), then sends the number of bytes it got (8
  bytes) and closes; ``n`` is ignored;
- ``S n``: the server sends ``n`` bytes (one 1 MiB ``bytes`` object, again
  and again: the native stack holds it by reference and copies nothing until
  its frames are written), then ``send_eof`` and closes;
- ``T 0``: the server sends its statistics as one JSON object and closes.

The statistics are this process's CPU time (``getrusage``: user and system,
the kernel's work done in its system calls included) and its network
counters: on the native stack the shard's stack and TAP queue (frames and
bytes each way, large frames, passes of the stack's pump, reads that hit
the budget); on the posix stack the TCP segments the kernel counted in the
server's namespace (``InSegs``/``OutSegs`` of /proc/net/snmp). One shard:
with more, each shard would answer for itself.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
from pathlib import Path
from typing import Any

import shardio
import shardio_net
import shardio_net.native

CHUNK = 1 << 20
_COMMAND = 9


async def _receive_exactly(stream: shardio_net.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise EOFError("the client closed before its command was complete")
        data += chunk
    return data


def statistics() -> dict[str, Any]:
    """This process's CPU time and network counters (see the module docs)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures: dict[str, Any] = {"cpu": usage.ru_utime + usage.ru_stime}
    stack = shardio_net.native.installed()
    if stack is None:
        lines = [line.split() for line in Path("/proc/self/net/snmp").read_text().splitlines()]
        names, values = [line for line in lines if line[0] == "Tcp:"]
        tcp = dict(zip(names[1:], map(int, values[1:]), strict=True))
        figures["segments_received"] = tcp["InSegs"]
        figures["segments_sent"] = tcp["OutSegs"]
        return figures
    stats = stack.statistics()
    device = stats.device
    figures.update(
        segments_received=stats.frames_received,
        segments_sent=stats.frames_transmitted,
        passes=stats.passes,
        frames_received=device.frames_received,
        frames_sent=device.frames_sent,
        bytes_received=device.bytes_received,
        bytes_sent=device.bytes_sent,
        large_frames_received=device.large_frames_received,
        large_frames_sent=device.large_frames_sent,
        receive_budget_exhausted=device.receive_budget_exhausted,
    )
    return figures


async def serve_bulk(stream: shardio_net.SocketStream) -> None:
    """One connection: a command, then its transfer (see the module docs)."""
    try:
        command = await _receive_exactly(stream, _COMMAND)
        kind, count = command[:1], int.from_bytes(command[1:], "big")
        if kind == b"R":
            received = 0
            buffer = bytearray(CHUNK)
            while got := await stream.receive_into(buffer):
                received += got
            await stream.send_all(received.to_bytes(8, "big"))
        elif kind == b"S":
            chunk = bytes(CHUNK)
            while count >= CHUNK:
                await stream.send_all(chunk)
                count -= CHUNK
            if count:
                await stream.send_all(chunk[:count])
            await stream.send_eof()
        elif kind == b"T":
            await stream.send_all(json.dumps(statistics()).encode())
    finally:
        await stream.aclose()


async def main(network: argparse.Namespace, port: int) -> None:
    if network.network_stack == "native" and network.no_offloads:
        await shardio_net.native.start_tap_stacks(
            network.tap_device,
            network.host_ipv4_addr,
            gateway=network.gw_ipv4_addr,
            checksum_offload=False,
            tso=False,
            lro=False,
        )
        stack = f"native stack on {network.tap_device}, offloads off"
    else:
        stack = await shardio_net.native.start_stack(network)
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.serve_tcp, serve_bulk, port, shards="all")
        addresses = await nursery.start(serve)
        where = ", ".join(f"{a[0]}:{a[1]}" for a in addresses)
        print(f"bulk server on {stack}, listening on {where}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench._bulk_server", description=__doc__)
    parser.add_argument("--port", type=int, default=5001, help="TCP port")
    parser.add_argument("--smp", type=int, default=1, help="shards (default 1)")
    parser.add_argument(
        "--no-offloads",
        action="store_true",
        help="native stack: no checksum offload, TSO or large segments in (MTU-sized frames)",
    )
    shardio_net.native.add_stack_arguments(parser)
    arguments = parser.parse_args()
    try:
        shardio.run(main, arguments, arguments.port, shards=arguments.smp)
    except KeyboardInterrupt:
        pass
