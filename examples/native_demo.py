"""Try the native stack in one command: httpd on every shard, over a TAP device.

Run it as root from the repository root (``make native-demo`` does)::

    .venv/bin/python -m examples.native_demo [--smp 2] [--seconds 5]

What it does, step by step (each step is printed as it happens):

1. moves itself into a new network namespace -- nothing it does touches the
   machine's own network, and everything it makes is gone when it exits;
2. makes a persistent multi-queue TAP device ``tap0`` and gives the kernel's
   side of it the address 10.99.0.1/24::

       ip tuntap add dev tap0 mode tap multi_queue
       ip addr add 10.99.0.1/24 dev tap0
       ip link set tap0 up

3. starts ``examples/httpd.py`` on the native stack, one stack per shard,
   each on its own queue of ``tap0``, at 10.99.0.2::

       python -m examples.httpd --smp 2 --port 8080 --network-stack native \\
           --tap-device tap0 --host-ipv4-addr 10.99.0.2 --gw-ipv4-addr 10.99.0.1

4. from the kernel's side, fetches a page with ``curl`` and loads the server
   with ``wrk`` (each skipped, saying so, if it is not installed);
5. stops the server with Ctrl-C (SIGINT), as a user would.

Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for the device)
and /dev/net/tun.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys

KERNEL = "10.99.0.1"
STACK = "10.99.0.2"
PORT = 8080
_CLONE_NEWNET = 0x40000000


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def enter_new_network_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        sys.exit(
            f"cannot make a network namespace ({os.strerror(error)}): run this as root "
            "(it needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.native_demo", description=__doc__)
    parser.add_argument("--smp", type=int, default=2, help="shards (default 2)")
    parser.add_argument("--seconds", type=int, default=5, help="how long wrk runs (default 5)")
    arguments = parser.parse_args()
    if not os.path.exists("/dev/net/tun"):
        sys.exit("/dev/net/tun does not exist: this kernel (or container) has no TUN/TAP")
    if shutil.which("ip") is None:
        sys.exit("the 'ip' command is missing: apt-get install iproute2")

    step("a network namespace of our own")
    enter_new_network_namespace()
    run("ip", "link", "set", "lo", "up")

    step(f"a multi-queue TAP device, the kernel's side at {KERNEL}/24")
    run("ip", "tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
    with open("/proc/sys/net/ipv6/conf/tap0/disable_ipv6", "w") as knob:
        knob.write("1")
    run("ip", "addr", "add", f"{KERNEL}/24", "dev", "tap0")
    run("ip", "link", "set", "tap0", "up")

    step(f"httpd on {arguments.smp} shards, on the native stack at {STACK}")
    command = [
        sys.executable, "-m", "examples.httpd", "--smp", str(arguments.smp),
        "--port", str(PORT), "--network-stack", "native", "--tap-device", "tap0",
        "--host-ipv4-addr", STACK, "--gw-ipv4-addr", KERNEL,
    ]  # fmt: skip
    print("$ python", " ".join(command[1:]), flush=True)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        print(server.stdout.readline().rstrip(), flush=True)

        step("curl from the kernel's side")
        if shutil.which("curl"):
            run("curl", "-s", "-i", f"http://{STACK}:{PORT}/")
            print(flush=True)
            run("curl", "-s", f"http://{STACK}:{PORT}/shard")
            print(flush=True)
        else:
            print("curl is not installed (apt-get install curl): skipped", flush=True)

        step(f"wrk from the kernel's side, {arguments.seconds} s, 64 connections")
        if shutil.which("wrk"):
            run("wrk", "-t1", "-c64", f"-d{arguments.seconds}s", f"http://{STACK}:{PORT}/")
        else:
            print("wrk is not installed (apt-get install wrk): skipped", flush=True)
    finally:
        step("Ctrl-C stops the server")
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=30)
        print(rest.rstrip(), flush=True)
    print("\nthe namespace and tap0 go away with this process", flush=True)


if __name__ == "__main__":
    main()
