"""The DHCP service of a NativeStack: a sans-io client on the stack's UDP port 68.

:meth:`NativeStack.dhcp` makes a :class:`~shardio_net.native.dhcp.DhcpClient`
and one system task of the stack's shard that drives it, as dhclient drives
its state machine from a socket:

* the task holds the stack's UDP port 68 (an ordinary ``NativeUDPSocket``):
  what servers send there goes to ``client.receive``;
* it sleeps until a datagram comes or the client's deadline, then calls
  ``client.on_timer``;
* it applies the client's events to the stack *before* it sends the
  datagrams that follow them (the order the client requires): a lease
  obtained gives the stack its address, prefix and gateway
  (:meth:`NativeStack.configure`, only when one of them changed, so a
  renewal that changes nothing leaves the connections alone); a lease lost
  takes the address away; then the caller's ``on_change`` hears of it;
* it sends the client's datagrams to port 67 through the same socket: with
  no address they leave from 0.0.0.0 to 255.255.255.255 (the interface
  allows nothing else then, see ``iface/interface.py``), with a lease from
  the leased address, to the server (renewing) or the broadcast (rebinding).

The task is a *system* task, like the pump: the lease is kept (renewed,
rebound, given up) while the run lasts, whatever the user's tasks do, and
ends with the stack (its socket is closed, the receive fails). The first
``dhcp()`` call waits for the first lease; cancelled before one came, it
stops the client (and frees port 68), so a timeout around it leaves nothing
running.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, final

import shardio
from shardio import lowlevel

from .dhcp.client import DhcpClient, DhcpConfig, Lease, LeaseLost, LeaseObtained
from .dhcp.message import CLIENT_PORT, SERVER_PORT
from .wire.ipv4 import format_address

if TYPE_CHECKING:
    from ._stack import NativeStack
    from ._udp import NativeUDPSocket

__all__ = ["DhcpService"]

LOGGER = logging.getLogger("shardio_net.native")

#: What a lease change is told to: the new lease, or None when it was lost.
OnChange = Callable[[Lease | None], Awaitable[object]]


@final
class DhcpService:
    """One stack's DHCP client and the task that runs it (see the module docs)."""

    __slots__ = (
        "_bound",
        "_first",
        "_on_change",
        "_socket",
        "_stack",
        "_stopped",
        "client",
        "lease",
    )

    def __init__(
        self,
        stack: NativeStack,
        socket: NativeUDPSocket,
        config: DhcpConfig | None,
        seed: int | None,
        on_change: OnChange | None,
    ) -> None:
        self._stack = stack
        self._socket = socket
        self._on_change = on_change
        #: The client (its state and statistics).
        self.client = DhcpClient(
            stack.device.mac,
            shardio.current_time(),
            config=config,
            rng=random.Random(seed),
        )
        #: The lease held now; None before the first and after one is lost.
        self.lease: Lease | None = None
        self._first: Lease | None = None
        self._bound = shardio.Event()
        self._stopped = False

    @classmethod
    async def start(
        cls,
        stack: NativeStack,
        config: DhcpConfig | None,
        seed: int | None,
        on_change: OnChange | None,
    ) -> DhcpService:
        """Bind port 68 of ``stack`` and start the client's task."""
        socket = await stack.open_udp_socket(port=CLIENT_PORT)
        service = cls(stack, socket, config, seed, on_change)
        lowlevel.spawn_system_task(service._run, name=f"<{stack.name} DHCP client>")
        return service

    async def wait_bound(self) -> Lease:
        """Wait for the first lease. Cancelled before it comes, the client stops."""
        try:
            await self._bound.wait()
        except BaseException:
            if self._first is None:
                self.stop()
            raise
        if self._first is None:  # the stack closed first
            raise shardio.ClosedResourceError(f"{self._stack.name} closed before a DHCP lease came")
        return self._first

    @property
    def running(self) -> bool:
        """Whether the client still runs (not stopped, the stack not closed)."""
        return not self._stopped

    def stop(self) -> None:
        """End the client: its task ends, port 68 is free (the address stays)."""
        self._stopped = True
        self._socket.close()
        self._bound.set()

    async def _run(self) -> None:
        client = self.client
        socket = self._socket
        try:
            while True:
                await self._apply(client.events())
                for out in client.datagrams():
                    await socket.sendto(out.payload, (format_address(out.destination), SERVER_PORT))
                with shardio.move_on_at(client.next_deadline()) as timer:
                    payload, _ = await socket.recvfrom(65536)
                now = shardio.current_time()
                if timer.cancelled_caught:
                    client.on_timer(now)
                else:
                    client.receive(payload, now)
        except shardio.ClosedResourceError:
            pass  # stopped, or the stack closed
        except Exception:
            LOGGER.exception("%s: the DHCP client failed", self._stack.name)
        finally:
            self._stopped = True
            self._bound.set()

    async def _apply(self, events: list[LeaseObtained | LeaseLost]) -> None:
        stack = self._stack
        for event in events:
            old = self.lease
            if isinstance(event, LeaseObtained):
                lease = event.lease
                if old is None or (old.address, old.prefix_length, old.gateway) != (
                    lease.address,
                    lease.prefix_length,
                    lease.gateway,
                ):
                    stack.configure(
                        format_address(lease.address),
                        prefix_length=lease.prefix_length,
                        gateway=None if lease.gateway is None else format_address(lease.gateway),
                    )
                self.lease = lease
                if self._first is None:
                    self._first = lease
                    self._bound.set()
            else:
                self.lease = None
                stack.configure(None)
            if self._on_change is not None:
                try:
                    await self._on_change(self.lease)
                except Exception:
                    # The caller's bug must not end the lease's upkeep.
                    LOGGER.exception("%s: on_change of the DHCP client raised", stack.name)
