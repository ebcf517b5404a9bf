"""One native stack per shard: the shard's stack, flow ownership, forwarding.

Seastar runs one stack per shard, each on its own queue of the NIC, and so
does shardio: every shard opens its own queue of one multi-queue TAP device
(:func:`start_tap_stacks`) and runs a :class:`NativeStack` on it with the
same address and MAC. Nothing is shared; what the shards must agree on is
who owns each connection.

Ownership
---------
A connection belongs to the shard ``owner(local port, remote address,
remote port)`` -- a fixed hash of the 4-tuple, the same on every shard. The
kernel decides which queue a frame of a flow comes out of: by its own hash,
or, once one of our queues has written a frame of that flow, by *flow
learning* (the TAP driver remembers which queue last sent a flow and sends
the flow's frames there). So:

* a connection this shard opens picks a local port that it owns: its SYN
  leaves by this shard's queue, the kernel learns the flow, and the replies
  come back here;
* a SYN from the kernel arrives on whichever queue the kernel's hash
  chose. If that shard owns the 4-tuple it answers; else it forwards the
  frame to the owner, which answers on its own queue, and the kernel learns
  the flow there;
* a segment that arrives anywhere else (the kernel forgets a flow it has not
  seen for a few seconds, and hashes it again) is forwarded to its owner
  over the shard rings, as Seastar forwards when the NIC's hash disagrees.

Forwarded frames travel as ``bytes`` in a batch per destination, by a
forwarder task per stack (``run_on`` of a synchronous function that queues
them for the owner's pump). With flow learning they are rare; the stack
counts them (``forwarded``, ``injected`` in its statistics).

ARP frames are handled where they arrive and copied to every other shard
(each shard's interface keeps its own neighbour cache, and a reply to one
shard's request may come out of another's queue). UDP datagrams for a port
not open on the shard they reach go to shard 0, where single-instance
services such as the DHCP client run.

The shard's stack
-----------------
:func:`install` makes a stack *the* native stack of its shard for the rest
of the run (a run variable: each shard, each run, its own). shardio_net's
``open_tcp_stream``, ``open_tcp_listeners`` and ``serve_tcp`` then use it
instead of the kernel's sockets, so code written on shardio_net runs on
either stack unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import shardio
from shardio import lowlevel

from .._native_route import NATIVE_STACK, installed_native_stack

if TYPE_CHECKING:
    from ._stack import NativeStack
    from .dhcp.client import Lease
    from .phy.device import Device
    from .phy.tap import TapDevice
    from .tcp.config import TcpConfig

__all__ = ["ShardGroup", "install", "installed", "start_tap_stacks"]

# The stacks of this shard that belong to a group, by group name.
_MEMBERS: lowlevel.RunVar[dict[str, NativeStack] | None] = lowlevel.RunVar(
    "shardio_net.native groups", None
)

_GOLDEN = 0x9E3779B1  # Knuth's multiplicative hash constant


def install(stack: NativeStack | None) -> None:
    """Make ``stack`` this shard's native stack for the rest of the run
    (``None``: the kernel's sockets again). shardio_net's
    ``open_tcp_stream``, ``open_tcp_listeners`` and ``serve_tcp`` then use it."""
    NATIVE_STACK.set(stack)


def installed() -> NativeStack | None:
    """This shard's native stack, if one is installed in this run."""
    return installed_native_stack()


class ShardGroup:
    """What one shard's stack knows of the stacks on the other shards."""

    __slots__ = ("_outbox", "_pending", "_stack", "count", "index", "name")

    def __init__(self, name: str, stack: NativeStack) -> None:
        #: The group's name (the TAP device's), the same on every shard.
        self.name = name
        self.index = shardio.current_shard()
        self.count = shardio.shard_count()
        self._stack = stack
        # Frames to forward, per destination shard, and the forwarder's wake-up.
        self._outbox: dict[int, list[bytes]] = defaultdict(list)
        self._pending = lowlevel.ParkingLot()
        members = _MEMBERS.get()
        if members is None:
            members = {}
            _MEMBERS.set(members)
        members[name] = stack

    def owner(self, local_port: int, remote_address: int, remote_port: int) -> int:
        """The shard that owns the connection: a fixed hash of the 4-tuple."""
        key = (remote_address ^ (remote_port << 16) ^ local_port) & 0xFFFF_FFFF
        return ((key * _GOLDEN) & 0xFFFF_FFFF) * self.count >> 32

    def forward(self, shard: int, frame: memoryview) -> None:
        """Send ``frame`` to ``shard``'s stack (batched by the forwarder)."""
        self._outbox[shard].append(bytes(frame))
        self._pending.unpark_all()

    def broadcast(self, frame: memoryview) -> None:
        """Send a copy of ``frame`` to every other shard's stack."""
        data = bytes(frame)
        for shard in range(self.count):
            if shard != self.index:
                self._outbox[shard].append(data)
        self._pending.unpark_all()

    async def run_forwarder(self) -> None:
        """The task that carries forwarded frames to the other shards."""
        while True:
            while not any(self._outbox.values()):
                await self._pending.park()
            batches = {shard: frames for shard, frames in self._outbox.items() if frames}
            self._outbox.clear()
            for shard, frames in batches.items():
                await shardio.run_on(shard, _inject, self.name, frames)


def _inject(group: str, frames: list[bytes]) -> None:
    """On the owner's shard: queue frames another shard forwarded."""
    members = _MEMBERS.get()
    stack = None if members is None else members.get(group)
    if stack is not None:
        stack._inject(frames)


async def start_tap_stacks(
    device: str,
    address: str | None,
    *,
    prefix_length: int = 24,
    gateway: str | None = None,
    dhcp: bool = False,
    tcp: TcpConfig | None = None,
    checksum_offload: bool = True,
    tso: bool = True,
    lro: bool = True,
    device_wrapper: Callable[[TapDevice], Device] | None = None,
) -> list[str]:
    """Start a native stack on every shard of the run, each on its own
    queue of the multi-queue TAP device ``device``, with IPv4 ``address``
    (or, with ``dhcp``, the one a DHCP server leases: shard 0 runs the
    client and gives every shard's stack the lease's address, prefix and
    gateway, at the start and whenever they change)
    and install each as its shard's stack (see :func:`install`). Returns
    the address, per shard.

    The device is attached if it exists (``ip tuntap add dev NAME mode tap
    multi_queue``), else created (CAP_NET_ADMIN), and then gone with the run.

    ``device_wrapper``, if given, is called on each shard with that shard's
    queue and the stack runs on the device it returns: a
    :class:`~shardio_net.native.phy.FaultInjector` around it, say (which
    needs ``checksum_offload=False, lro=False, tso=False``) or a
    :class:`~shardio_net.native.phy.PcapWriter` recording it.
    It travels to every shard, so it must be picklable (a function of a
    module, or a ``functools.partial`` of one).
    """
    if dhcp and address is not None:
        raise ValueError("give the stack an address, or dhcp=True to lease one, not both")
    if not dhcp and address is None:
        raise ValueError("give the stack an address, or dhcp=True to lease one")
    addresses = []
    for shard in range(shardio.shard_count()):
        addresses.append(
            await shardio.run_on(
                shard,
                _start_here,
                device,
                address,
                prefix_length,
                gateway,
                tcp,
                (checksum_offload, tso, lro),
                device_wrapper,
            )
        )
    if dhcp:
        leased = await shardio.run_on(0, _lease_on_shard_0)
        addresses = [leased] * len(addresses)
    return addresses


async def _lease_on_shard_0() -> str:
    """Shard 0's part of ``dhcp=True``: run the client; each lease (and its
    loss) reaches every other shard's stack."""
    from .wire.ipv4 import format_address

    stack = installed_native_stack()
    assert stack is not None
    lease = await stack.dhcp(on_change=_spread_lease)
    return format_address(lease.address)


async def _spread_lease(lease: Lease | None) -> None:
    from .wire.ipv4 import format_address

    if lease is None:
        settings: tuple[str | None, int, str | None] = (None, 24, None)
    else:
        gateway = None if lease.gateway is None else format_address(lease.gateway)
        settings = (format_address(lease.address), lease.prefix_length, gateway)
    for shard in range(1, shardio.shard_count()):
        await shardio.run_on(shard, _configure_here, *settings)


def _configure_here(address: str | None, prefix_length: int, gateway: str | None) -> None:
    stack = installed_native_stack()
    if stack is not None:
        stack.configure(address, prefix_length=prefix_length, gateway=gateway)


async def _start_here(
    device: str,
    address: str | None,
    prefix_length: int,
    gateway: str | None,
    tcp: TcpConfig | None,
    offloads: tuple[bool, bool, bool],
    device_wrapper: Callable[[TapDevice], Device] | None,
) -> str:
    from ._stack import NativeStack
    from .phy.tap import TapDevice
    from .wire.ipv4 import format_address

    checksum_offload, tso, lro = offloads
    tap = TapDevice(device, checksum_offload=checksum_offload, tso=tso, lro=lro)
    stack = NativeStack(
        tap if device_wrapper is None else device_wrapper(tap),
        address,
        prefix_length=prefix_length,
        gateway=gateway if address is not None else None,  # a lease brings its own
        tcp=tcp,
        name=f"native stack {device} shard {shardio.current_shard()}",
        group=device,
    )
    install(stack)
    return format_address(stack.address)
