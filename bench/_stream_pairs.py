"""What P1 and P2 share: a connected pair of streams on each stack, and a CPU clock.

Both ends of a connection live in the one measuring process, on one shard
and one CPU, so a figure counts *both* ends' work:

- native: ``shardio_net.native.simulated_pair()`` with no faults, no latency
  and no rate limit, under the run's real clock; the client on 10.0.0.1, the
  server on 10.0.0.2, both stacks' pumps in this shard. The link's own work
  (joining a frame's parts, queueing it for the other port) is counted: it
  stands for what a NIC and its driver would do.
- posix: ``shardio_net`` streams over loopback (127.0.0.1), the kernel's TCP.
  The kernel's work for both ends is in this process's system time: on
  loopback the receiving side's softirq runs in the sender's context when the
  sender's system call re-enables bottom halves, and this machine's kernel
  charges softirq time to the task it interrupts (no
  ``CONFIG_IRQ_TIME_ACCOUNTING``; with it, some kernel work would go
  uncounted and the posix figure per CPU second would flatter the kernel).

The figures are **per CPU second** of the process (``time.process_time()``:
user and system time, every thread), because the native stack is a CPU
budget -- part 2 runs one per shard, next to the application -- and because
CPU time is what a shared, loaded machine measures best; wall-clock rates are
reported beside them. Both workloads run for a budget of CPU time rather than
a fixed amount of work, so that the fast kernel stack and the slow Python one
are each timed over a comparable span.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer


class Stream(Protocol):
    """What the workloads use of a stream: ``SocketStream`` and ``NativeStream`` both have it."""

    async def send_all(self, data: bytes) -> None: ...
    async def send_eof(self) -> None: ...
    async def receive_into(self, buffer: Buffer) -> int: ...
    async def aclose(self) -> None: ...


NATIVE_CLIENT = "10.0.0.1"
NATIVE_SERVER = "10.0.0.2"
PORT = 5001

cpu_clock = time.process_time
"""User plus system CPU time of the whole process, in seconds."""


async def native_streams() -> tuple[Stream, Stream]:
    """(client, server): a connection between two native stacks on a clean simulated link."""
    from shardio_net.native import simulated_pair

    client_stack, server_stack = simulated_pair(NATIVE_CLIENT, NATIVE_SERVER)
    [listener] = await server_stack.open_tcp_listeners(PORT)
    client = await client_stack.open_tcp_stream(NATIVE_SERVER, PORT)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def posix_streams() -> tuple[Stream, Stream]:
    """(client, server): a connection over loopback, through the kernel's TCP."""
    import shardio_net

    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    client = await shardio_net.open_tcp_stream("127.0.0.1", port)
    server = await listener.accept()
    await listener.aclose()
    return client, server
