"""A network namespace of this program's own, with a multi-queue TAP device in it.

enter() moves the whole process into a new network namespace, then runs the
commands that section 2 types by hand. The shards that shardio.run forks
afterwards are in the namespace too. Nothing outside it is touched, and it
goes away -- with tap0 and its address -- when the program exits.

Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for the device)
and /dev/net/tun.
"""

import ctypes
import os
import subprocess
import sys

KERNEL = "10.99.0.1"  # the kernel's side of the TAP device
STACK = "10.99.0.2"  # the native stack's address
CLONE_NEWNET = 0x40000000


def enter(device="tap0"):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        error = os.strerror(ctypes.get_errno())
        sys.exit(f"cannot make a network namespace ({error}): run this as root")
    for command in [
        "ip link set lo up",
        f"ip tuntap add dev {device} mode tap multi_queue",
        f"sysctl -q -w net.ipv6.conf.{device}.disable_ipv6=1",
        f"ip addr add {KERNEL}/24 dev {device}",
        f"ip link set {device} up",
    ]:
        subprocess.run(command.split(), check=True)
