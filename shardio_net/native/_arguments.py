"""Seastar's network-stack flags, for any shardio_net program's command line.

``--network-stack native|posix`` (posix by default), ``--tap-device``,
``--host-ipv4-addr``, ``--netmask-ipv4-addr``, ``--gw-ipv4-addr`` and
``--dhcp`` (which leases all three from a DHCP server), with Seastar's
meanings and defaults. A program adds them with
:func:`add_stack_arguments` and, once its run has started, calls
:func:`start_stack` with the parsed arguments: on ``native`` that starts a
native stack on every shard over the TAP device and installs it, so the
program's own shardio_net calls (``serve_tcp``, ``open_tcp_stream``...)
need no change.
"""

from __future__ import annotations

import argparse
import ipaddress

from ._on_shards import start_tap_stacks

__all__ = ["add_stack_arguments", "start_stack"]


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Add Seastar's network-stack flags to ``parser`` (a group of its own)."""
    group = parser.add_argument_group(
        "network stack", "which TCP/IP stack serves the program (Seastar's flags)"
    )
    group.add_argument(
        "--network-stack",
        choices=("posix", "native"),
        default="posix",
        help="posix: the kernel's sockets (default); native: shardio's own stack on a TAP "
        "device, one queue per shard",
    )
    group.add_argument(
        "--tap-device", default="tap0", help="the TAP device of the native stack (default tap0)"
    )
    group.add_argument(
        "--host-ipv4-addr",
        default="192.168.122.2",
        help="the native stack's IPv4 address (default 192.168.122.2)",
    )
    group.add_argument(
        "--netmask-ipv4-addr",
        default="255.255.255.0",
        help="its subnet mask (default 255.255.255.0)",
    )
    group.add_argument(
        "--gw-ipv4-addr",
        default="192.168.122.1",
        help="its default gateway (default 192.168.122.1)",
    )
    group.add_argument(
        "--dhcp",
        action="store_true",
        help="lease the address, netmask and gateway from a DHCP server instead",
    )


def _prefix_length(netmask: str) -> int:
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    except ValueError:
        raise ValueError(
            f"--netmask-ipv4-addr {netmask!r} is not a netmask (like 255.255.255.0)"
        ) from None


async def start_stack(arguments: argparse.Namespace) -> str:
    """Start the stack the parsed ``arguments`` ask for; returns what it is
    (``"posix stack"``, ``"native stack on tap0 at 10.99.0.2"``).

    ``posix`` does nothing: the kernel's sockets are shardio_net's default.
    ``native`` starts a native stack on every shard (see
    :func:`~shardio_net.native.start_tap_stacks`) and installs it. Call it
    once, from the run's main task, before serving.
    """
    if arguments.network_stack == "posix":
        return "posix stack"
    if arguments.dhcp:
        [address, *_] = await start_tap_stacks(arguments.tap_device, None, dhcp=True)
        return f"native stack on {arguments.tap_device} at {address} (DHCP)"
    gateway = arguments.gw_ipv4_addr or None
    await start_tap_stacks(
        arguments.tap_device,
        arguments.host_ipv4_addr,
        prefix_length=_prefix_length(arguments.netmask_ipv4_addr),
        gateway=gateway,
    )
    return f"native stack on {arguments.tap_device} at {arguments.host_ipv4_addr}"
