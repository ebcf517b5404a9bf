"""A1: an ASGI "Hello, World!", keep-alive, ``wrk -t1 -c64``, one core; requests/s.

Two applications: a raw ASGI callable and a Starlette application (one
route), each served by ``shardio_net.asgi`` on one shard and by its peers on
one worker: uvicorn (uvloop + httptools) and hypercorn (trio worker); and by
``shardio-httptools``, the same shardio server with httptools parsing the
requests instead of shardio_net's parser -- the measurement that chose the
parser. The servers are in :mod:`bench._asgi_servers`.

``size`` is the measured wrk run in seconds for each application (each
warms up with one more second of wrk first). The server runs in a
subprocess pinned, like the trial, to the harness's CPU, and wrk, with one
thread and 64 keep-alive connections, to the next CPU, as N1 does. Besides
wrk's rate, the trial reads the server's CPU time (user and system, from
/proc) over the measured run and reports it per request: on a shared
machine the rate moves with whatever else runs on the server's CPU, while
the CPU time a request costs moves much less. The target is >= 1x uvicorn
for both applications.

wrk must be installed (``apt-get install wrk``); the Starlette application
on shardio needs AnyIO's ``shardio`` backend.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ._processes import stop
from ._spec import Benchmark, Figures, Implementation, Metric, Target
from ._wrk import _wrk

CONNECTIONS = 64
_ROOT = Path(__file__).resolve().parent.parent
_WARM_UP_SECONDS = 1
_APPS = ("raw", "starlette")


def _wrk_cpu() -> int:
    here = min(os.sched_getaffinity(0))
    return (here + 1) % (os.cpu_count() or 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server(server: str, app: str) -> Iterator[tuple[int, int]]:
    """Run ``server`` with ``app`` until the block ends; yield (pid, port)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._asgi_servers", server, app, str(port)],
        cwd=_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                tail = "\n".join(process.stderr.read().strip().splitlines()[-5:])
                raise RuntimeError(f"{server} did not start:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as client:
                    client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    answer = b""
                    while b"Hello, World!" not in answer:
                        chunk = client.recv(4096)
                        if not chunk:
                            raise RuntimeError(f"{server} did not answer 'Hello, World!'")
                        answer += chunk
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server} did not listen within 30 s") from None
                time.sleep(0.1)
        yield process.pid, port
    finally:
        stop(process)
        if process.stderr is not None:
            process.stderr.close()


def _load(server: str, seconds: int) -> Figures:
    if server.startswith("shardio"):
        import importlib.util

        import shardio  # noqa: F401  (installs the finder of AnyIO's backend)

        if importlib.util.find_spec("anyio._backends._shardio") is None:
            raise RuntimeError("Starlette on shardio needs AnyIO's shardio backend (issue 16)")
    figures: dict[str, float] = {}
    cpus = [_wrk_cpu()]
    for app in _APPS:
        with _server(server, app) as (pid, port):
            _wrk(port, _WARM_UP_SECONDS, CONNECTIONS, 1, cpus)
            before = _cpu_seconds(pid)
            rate = _wrk(port, seconds, CONNECTIONS, 1, cpus)
            used = _cpu_seconds(pid) - before
        figures[app] = rate
        figures[f"{app}_cpu"] = used / (rate * seconds) * 1e6
    return figures


def shardio_asgi(seconds: int) -> Figures:
    """shardio_net.asgi on one shard."""
    return _load("shardio", seconds)


def shardio_httptools_asgi(seconds: int) -> Figures:
    """shardio_net.asgi on one shard, requests parsed by httptools."""
    return _load("shardio-httptools", seconds)


def uvicorn_asgi(seconds: int) -> Figures:
    """uvicorn, one worker, uvloop and httptools."""
    return _load("uvicorn", seconds)


def hypercorn_asgi(seconds: int) -> Figures:
    """hypercorn's trio worker."""
    return _load("hypercorn", seconds)


_WRK = ("wrk", "taskset")
_SHARDIO_MODULES = ("starlette",)

BENCHMARK = Benchmark(
    name="A1",
    title="ASGI hello world (raw and Starlette), keep-alive, wrk -t1 -c64, one core",
    metrics=(
        Metric("raw", "req/s"),
        Metric("starlette", "req/s"),
        Metric("raw_cpu", "us CPU/req", better="lower"),
        Metric("starlette_cpu", "us CPU/req", better="lower"),
    ),
    implementations=(
        Implementation(
            "shardio", shardio_asgi, requires_modules=_SHARDIO_MODULES, requires_programs=_WRK
        ),
        Implementation(
            "shardio-httptools",
            shardio_httptools_asgi,
            requires_modules=(*_SHARDIO_MODULES, "httptools"),
            requires_programs=_WRK,
        ),
        Implementation(
            "uvicorn",
            uvicorn_asgi,
            requires_modules=("uvicorn", "uvloop", "httptools", "starlette"),
            requires_programs=_WRK,
        ),
        Implementation(
            "hypercorn",
            hypercorn_asgi,
            requires_modules=("hypercorn", "trio", "starlette"),
            requires_programs=_WRK,
        ),
    ),
    targets=(Target("uvicorn", 1.0, "raw"), Target("uvicorn", 1.0, "starlette")),
    size=4,
    quick_size=1,
)
