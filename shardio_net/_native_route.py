"""Where shardio_net's TCP functions go: the kernel's sockets, or the shard's
native stack when one is installed (``shardio_net.native.install``).

The setting is a run variable -- each shard, each run, its own -- so a
program picks its stack once at start-up (the examples' ``--network-stack``)
and everything written on shardio_net follows.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

from shardio import lowlevel

from ._resolve import getaddrinfo

if TYPE_CHECKING:
    from .native._stack import NativeStack

__all__ = ["NATIVE_STACK", "installed_native_stack", "native_address"]

#: This shard's native stack, if one is installed in this run.
NATIVE_STACK: lowlevel.RunVar[NativeStack | None] = lowlevel.RunVar(
    "shardio_net.native stack", None
)


def installed_native_stack() -> NativeStack | None:
    """The native stack installed on this shard, or None (the kernel's sockets)."""
    try:
        return NATIVE_STACK.get()
    except RuntimeError:  # outside a run
        return None


async def native_address(host: str | bytes, port: int) -> str:
    """``host`` as the dotted IPv4 address the native stack takes: an
    address as it is, a name resolved (without blocking) to its first IPv4
    address. The native stack speaks IPv4 only."""
    text = host.decode() if isinstance(host, bytes) else host
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    infos = await getaddrinfo(text, port, socket.AF_INET, socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{text!r} has no IPv4 address, and the native stack speaks IPv4 only")
    return str(infos[0][4][0])
