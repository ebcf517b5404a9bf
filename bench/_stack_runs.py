"""Running a server on the native stack over TAP, or the kernel's over veth.

What N3 and N4 share. :func:`serving` builds the trial's network
(:mod:`bench._netns`) -- a client namespace, and in it ``tap0`` for the
native stack or a veth pair to a server namespace for the posix stack --
starts ``python -m MODULE ARGS`` as the server on one shard, with Seastar's
flags for the native stack::

    --smp 1 --network-stack native --tap-device tap0 \\
        --host-ipv4-addr 10.99.0.2 --gw-ipv4-addr 10.99.0.1

and on the posix stack the same command without them, in the server
namespace whose veth end is 10.99.0.2. Either way the server is at
10.99.0.2 for the client, which runs in the calling thread (its sockets, and
the programs it starts, in the client namespace). The server inherits the
trial's CPU pinning. It must print a line containing ``listening on`` once
it serves (the examples do); at the end of the block it gets Ctrl-C
(SIGINT), as a user stops it, and is killed if it has not exited 10 s
later. Its stderr is kept in a temporary file and its tail is in the error
if it does not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs

from ._netns import (
    KERNEL_ADDRESS,
    STACK_ADDRESS,
    VETH_CLIENT,
    client_namespace,
    tap_link,
    veth_link,
)
from ._processes import stop

__all__ = ["NATIVE_FLAGS", "Server", "Stack", "cpu_seconds", "serving"]

_ROOT = Path(__file__).resolve().parent.parent
_STOP_TIMEOUT = 10.0

Stack = Literal["native", "posix"]

#: Seastar's flags that put an example on the native stack over ``tap0``.
NATIVE_FLAGS = (
    "--network-stack", "native", "--tap-device", "tap0",
    "--host-ipv4-addr", STACK_ADDRESS, "--gw-ipv4-addr", KERNEL_ADDRESS,
)  # fmt: skip


@attrs.frozen
class Server:
    """A running server: its process id, and the client's side of its link."""

    pid: int
    #: The kernel's interface towards the server, in the client namespace
    #: (``tap0`` or ``veth0``): its counters are the link's frames.
    link: str


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(stack: Stack, module: str, *arguments: str) -> Iterator[Server]:
    """Run ``python -m module arguments`` on ``stack``, one shard, reachable
    at 10.99.0.2 from the calling thread, for the block."""
    command = [sys.executable, "-m", module, *arguments, "--smp", "1"]
    with (
        client_namespace(),
        contextlib.ExitStack() as exits,
        tempfile.TemporaryFile("w+") as errors,
    ):

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(
                command, cwd=_ROOT, stdout=subprocess.PIPE, stderr=errors, text=True
            )

        if stack == "native":
            link = tap_link()
            command += NATIVE_FLAGS
            process = start()
        else:
            inside = exits.enter_context(veth_link())
            link = VETH_CLIENT
            process = inside(start)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if "listening on" not in line:
                process.kill()
                process.wait()
                errors.seek(0)
                tail = "\n".join(errors.read().strip().splitlines()[-5:])
                raise RuntimeError(f"{module} did not start on the {stack} stack: {line!r}\n{tail}")
            yield Server(process.pid, link)
        finally:
            stop(process, signal.SIGINT, _STOP_TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()
