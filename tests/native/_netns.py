"""Network namespaces for the TAP tests: the kernel on the other side of the wire.

A TAP test needs a kernel side -- an address, sockets, ``ping``'s peer --
that touches nothing outside the test. :func:`network_namespace` moves the
*calling thread* into a fresh network namespace (``unshare(CLONE_NEWNET)``:
only the thread, not the process) and back when the block ends (``setns``
on a descriptor of the old one). Everything made from that thread in the
block belongs to the new namespace: TAP devices, sockets (which keep their
namespace whichever thread uses them later), the processes it starts (``ip``,
``tcpdump``), the shards ``shardio.run`` forks, and threads it starts. The
namespace goes when the last of them does, with every device in it: a
crashed test leaves nothing behind. Addresses are the plan's: the kernel at
10.99.0.1/24, the native stack at 10.99.0.2.

The tests need root's powers -- CAP_SYS_ADMIN for the namespace,
CAP_NET_ADMIN for devices -- and /dev/net/tun. Without them
:func:`require_tap` skips with the reason, except under CI
(``SHARDIO_REQUIRE_OUTSIDE_PROGRAMS``), where it fails: CI runs them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator

import pytest

KERNEL_ADDRESS = "10.99.0.1"
STACK_ADDRESS = "10.99.0.2"
PREFIX = 24

_CLONE_NEWNET = 0x40000000
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21

_libc = ctypes.CDLL(None, use_errno=True)


def _capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def missing_privileges() -> str | None:
    """Why this process cannot run the TAP tests, or None if it can."""
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (modprobe tun) to make TAP devices"
    capabilities = _capabilities()
    missing = [
        name
        for name, bit in (("CAP_NET_ADMIN", _CAP_NET_ADMIN), ("CAP_SYS_ADMIN", _CAP_SYS_ADMIN))
        if not capabilities >> bit & 1
    ]
    if missing:
        return f"needs {' and '.join(missing)} (root) to make a network namespace and TAP devices"
    return None


def require_tap() -> None:
    """Skip the test (fail it under CI) if this process may not make
    network namespaces and TAP devices."""
    reason = missing_privileges()
    if reason is None:
        return
    if os.environ.get("SHARDIO_REQUIRE_OUTSIDE_PROGRAMS"):
        pytest.fail(f"{reason}; CI runs the TAP tests as root", pytrace=False)
    pytest.skip(reason)


def ip(*args: str) -> str:
    """Run ``ip ARGS`` (in the calling thread's namespace); its output."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def network_namespace() -> Iterator[None]:
    """Run the block in a new network namespace with its loopback up."""
    require_tap()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(_CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"unshare(CLONE_NEWNET): {os.strerror(error)}")
        try:
            ip("link", "set", "lo", "up")
            yield
        finally:
            if _libc.setns(home, _CLONE_NEWNET) != 0:
                error = ctypes.get_errno()
                # Carrying on in the test's namespace would run every later
                # test there: stop the whole session instead.
                os.write(
                    2,
                    f"setns back to the test's network namespace: {os.strerror(error)}\n".encode(),
                )
                os._exit(70)
    finally:
        os.close(home)


def configure_kernel_side(name: str, *, mtu: int | None = None) -> None:
    """Give the TAP ``name`` the kernel's address 10.99.0.1/24 and bring it
    up (IPv6 off, so no router solicitations cross the wire)."""
    with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as knob:
        knob.write("1")
    if mtu is not None:
        ip("link", "set", name, "mtu", str(mtu))
    ip("addr", "add", f"{KERNEL_ADDRESS}/{PREFIX}", "dev", name)
    ip("link", "set", name, "up")


def mac_of(name: str) -> bytes:
    """The Ethernet address of interface ``name`` (the kernel's side of a TAP)."""
    words = ip("-o", "link", "show", name).split()
    return bytes.fromhex(words[words.index("link/ether") + 1].replace(":", ""))
