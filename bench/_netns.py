"""The network the TAP benchmarks (N3, N4) build: namespaces, a TAP, a veth pair.

N3 and N4 compare the native stack over a multi-queue TAP device with the
kernel's stack over a veth pair, each reached from a kernel client in a
network namespace the trial makes itself, so that nothing outside it is
touched and nothing is left behind:

- the *client* namespace: :func:`client_namespace` moves the calling thread
  (the trial's only one) into a fresh network namespace with its loopback
  up, and back when the block ends. Everything made from it in the block
  lives there: sockets, the ``ip`` and ``wrk`` processes, the server
  subprocess. A namespace goes with the last process, socket or descriptor
  that holds it, devices and all, so a crashed trial leaves nothing.
- the native side: :func:`tap_link` makes a persistent multi-queue
  ``tap0`` in the client namespace, the kernel's side at 10.99.0.1/24; the
  server, started from the client namespace, opens its queue of it and
  answers as 10.99.0.2 from user space.
- the posix side: :func:`veth_link` makes a second namespace, the
  *server's*, and a veth pair between the two, 10.99.0.1/24 on the client's
  end and 10.99.0.2/24 on the server's; the block runs with a function that
  starts a process inside the server's namespace. Two namespaces, not one:
  with both addresses in one namespace the kernel would route between them
  over loopback, and the veth would carry nothing.

The addresses are the TAP tests' (``tests/native/_netns.py``, whose ideas
this module repeats: benchmarks import nothing from the tests). IPv6 is off
on both links, so no router solicitation or DAD crosses them. Without
/dev/net/tun, CAP_NET_ADMIN and CAP_SYS_ADMIN (root), or ``ip``,
:func:`missing_privileges` says why, and N3 and N4 are skipped with that
reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

__all__ = [
    "KERNEL_ADDRESS",
    "PREFIX",
    "STACK_ADDRESS",
    "TAP_NAME",
    "VETH_CLIENT",
    "VETH_SERVER",
    "client_namespace",
    "ip",
    "link_counters",
    "missing_privileges",
    "tap_link",
    "veth_link",
]

#: The kernel client's address, and the server's (native stack or veth end).
KERNEL_ADDRESS = "10.99.0.1"
STACK_ADDRESS = "10.99.0.2"
PREFIX = 24
TAP_NAME = "tap0"
VETH_CLIENT = "veth0"
VETH_SERVER = "veth1"

_CLONE_NEWNET = 0x40000000
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


def missing_privileges() -> str | None:
    """Why this process cannot build the benchmarks' network, or None if it can."""
    if shutil.which("ip") is None:
        return "program 'ip' is not on PATH (apt-get install iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (modprobe tun) to make a TAP device"
    capabilities = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            capabilities = int(line.split()[1], 16)
    missing = [
        name
        for name, bit in (("CAP_NET_ADMIN", _CAP_NET_ADMIN), ("CAP_SYS_ADMIN", _CAP_SYS_ADMIN))
        if not capabilities >> bit & 1
    ]
    if missing:
        return f"needs {' and '.join(missing)} (root) to make network namespaces and devices"
    return None


def ip(*args: str) -> str:
    """Run ``ip ARGS`` in the calling thread's namespace; its output."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns(CLONE_NEWNET): {os.strerror(error)}")


def _unshare() -> None:
    if _libc.unshare(_CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWNET): {os.strerror(error)}")


def _current() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def client_namespace() -> Iterator[None]:
    """Run the block in a new network namespace, its loopback up."""
    home = _current()
    try:
        _unshare()
        try:
            ip("link", "set", "lo", "up")
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _disable_ipv6(name: str) -> None:
    with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as knob:
        knob.write("1")


def _configure(name: str, address: str) -> None:
    _disable_ipv6(name)
    ip("addr", "add", f"{address}/{PREFIX}", "dev", name)
    ip("link", "set", name, "up")


def tap_link() -> str:
    """Make the persistent multi-queue ``tap0`` in this namespace, the
    kernel's side at 10.99.0.1/24 and up; its name."""
    ip("tuntap", "add", "dev", TAP_NAME, "mode", "tap", "multi_queue")
    _configure(TAP_NAME, KERNEL_ADDRESS)
    return TAP_NAME


@contextlib.contextmanager
def veth_link() -> Iterator[Callable[[Callable[[], T]], T]]:
    """A server namespace joined to this one by a veth pair (10.99.0.1 here,
    10.99.0.2 there). Yields ``inside(fn)``, which calls ``fn()`` with the
    thread in the server's namespace (to start the server there) and
    returns its result."""
    home = _current()
    server: int | None = None
    try:
        _unshare()
        try:
            server = _current()
            ip("link", "set", "lo", "up")
        finally:
            _setns(home)
        ip(
            "link", "add", VETH_CLIENT, "type", "veth",
            "peer", "name", VETH_SERVER, "netns", f"/proc/{os.getpid()}/fd/{server}",
        )  # fmt: skip
        _configure(VETH_CLIENT, KERNEL_ADDRESS)
        server_fd = server

        def inside(fn: Callable[[], T]) -> T:
            _setns(server_fd)
            try:
                return fn()
            finally:
                _setns(home)

        inside(lambda: _configure(VETH_SERVER, STACK_ADDRESS))
        yield inside
    finally:
        if server is not None:
            os.close(server)
        os.close(home)


def link_counters(name: str) -> tuple[int, int]:
    """Packets the kernel's side of link ``name`` (in the calling thread's
    namespace) has received and sent: skbs, so a segment the kernel or the
    native stack did not cut (TSO, GRO) counts once, as on the device."""
    # sysfs shows the namespace it was mounted in: ask rtnetlink instead.
    [link] = json.loads(ip("-s", "-j", "link", "show", name))
    stats = link["stats64"]
    return int(stats["rx"]["packets"]), int(stats["tx"]["packets"])
