"""N3: N1's HTTP load on the native stack over TAP, against the kernel's over veth.

``examples/httpd.py`` on one shard, run as its users run it, on the native
stack with Seastar's flags (``--network-stack native --tap-device tap0
--host-ipv4-addr 10.99.0.2 --gw-ipv4-addr 10.99.0.1``), its one queue of a
multi-queue TAP device whose kernel side is 10.99.0.1; and the same command
on the posix stack, in a network namespace of its own reached over a veth
pair (10.99.0.1 to 10.99.0.2). The trial makes both networks itself
(:mod:`bench._netns`, :mod:`bench._stack_runs`): nothing outside its
namespaces is touched, and they go with it.

The load is N1's: ``wrk -t1 -c64``, keep-alive, ``GET /`` answered with
N1's response bytes (checked, one request and two pipelined, before any
load), one second of warm-up and ``size`` seconds measured. wrk runs on the
kernel's side, in the client namespace, pinned to the CPU after the
trial's; the server inherits the trial's CPU. Figures: wrk's requests per
second, and the server process's CPU time (user and system, from /proc)
over the measured run per request. With TAP, the kernel's receiving of what
the stack writes runs in the server's ``write`` calls, and with veth the
same holds for what the server's kernel stack sends: both are charged to
the server, alike.

The target is native >= 0.5x posix. Skipped, with the reason, without
root, /dev/net/tun, ``ip`` or wrk.
"""

from __future__ import annotations

import os

from ._netns import STACK_ADDRESS, missing_privileges
from ._spec import Benchmark, Figures, Implementation, Metric, Target
from ._stack_runs import Stack, cpu_seconds, serving
from ._wrk import _check_answers, _wrk

CONNECTIONS = 64
PORT = 8080
_WARM_UP_SECONDS = 1


def _wrk_cpu() -> int:
    """The CPU after the lowest one this process may run on, wrapping."""
    here = min(os.sched_getaffinity(0))
    return (here + 1) % (os.cpu_count() or 1)


def _load(stack: Stack, seconds: int) -> Figures:
    cpus = [_wrk_cpu()]
    with serving(stack, "examples.httpd", "--port", str(PORT)) as server:
        _check_answers(PORT, STACK_ADDRESS)
        _wrk(PORT, _WARM_UP_SECONDS, CONNECTIONS, 1, cpus, STACK_ADDRESS)
        before = cpu_seconds(server.pid)
        rate = _wrk(PORT, seconds, CONNECTIONS, 1, cpus, STACK_ADDRESS)
        used = cpu_seconds(server.pid) - before
    return {"rate": rate, "cpu": used / (rate * seconds) * 1e6}


def native_http(seconds: int) -> Figures:
    """examples/httpd.py on the native stack, its queue of tap0."""
    return _load("native", seconds)


def posix_http(seconds: int) -> Figures:
    """examples/httpd.py on the kernel's stack, over a veth pair."""
    return _load("posix", seconds)


_WRK = ("wrk", "taskset")

BENCHMARK = Benchmark(
    name="N3",
    title="N1's HTTP load on examples/httpd.py, one shard: native over TAP vs posix over veth",
    metrics=(Metric("rate", "req/s"), Metric("cpu", "us CPU/req", better="lower")),
    implementations=(
        Implementation("native", native_http, requires_programs=_WRK, requires=missing_privileges),
        Implementation("posix", posix_http, requires_programs=_WRK, requires=missing_privileges),
    ),
    targets=(Target("posix", 0.5),),
    size=5,
    quick_size=1,
    subject="native",
)
