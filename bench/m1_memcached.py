"""M1: examples/memcached on 2 shards under memcaslap, against memcached 1.6 ``-t 2``; ops/s.

``size`` is the measured memcaslap run in seconds (each trial first warms up
with two seconds of memcaslap). The load is the same for every server:
``memcaslap -c 64 -T 2``, its default mix (nine gets for one set, keys and
values of its default sizes), over TCP on 127.0.0.1; the figure is the
operations per second memcaslap reports.

The servers, each started fresh for the trial in a subprocess:

- shardio: ``python -m examples.memcached --smp 2``: a shard per CPU, each
  pinned to its CPU (shardio's default), keys sharded between them, the
  connections on both;
- shardio-durable: the same with ``--data-dir`` (a fresh directory under
  ``SHARDIO_BENCH_DIR``, default /var/tmp/shardio-bench): every set is
  acknowledged only once its log record is on disk (group commit) -- for
  reference, as memcached keeps nothing;
- memcached: ``memcached -t 2`` (two worker threads, not pinned);
- uvloop, asyncio: the same server written for asyncio streams
  (:mod:`bench._memcached_asyncio`: the same parser and engine, one cache,
  one process), on uvloop's loop and on the default one.

Pinning: the machines here have two CPUs and both shards use them, so no CPU
is left for the load generator. memcaslap therefore runs unpinned, and so
do the servers' processes apart from shardio's shards: the harness's
``--cpu`` pin is lifted for everything this benchmark starts. Client and
server compete for the same two CPUs, alike for every implementation.

Before any load, each server must answer a ``set`` and a ``get`` with the
very bytes memcached sends. memcaslap and memcached must be installed
(``apt-get install memcached libmemcached-tools``); without them the
implementations that need them are skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._processes import stop
from ._spec import Benchmark, Figures, Implementation, Metric, Target

_ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64
THREADS = 2
WARM_UP_SECONDS = 2
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0
_CHECK = (
    b"set m1:check 5 0 3\r\nabc\r\nget m1:check\r\n",
    b"STORED\r\nVALUE m1:check 5 3\r\nabc\r\nEND\r\n",
)
_TPS = re.compile(r"Run time: [\d.]+s Ops: (\d+) TPS: (\d+)")


def _all_cpus() -> None:
    """In a child, before exec: undo the harness's pinning."""
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def _server(command: Sequence[str], port: int) -> Iterator[None]:
    """Run ``command`` (a server listening on ``port``) until the block ends."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            cwd=_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            preexec_fn=_all_cpus,
        )
        try:
            try:
                _wait_for_port(process, port)
            except RuntimeError as error:
                errors.seek(0)
                tail = errors.read().decode(errors="replace").strip().splitlines()[-5:]
                message = f"{command[0]} did not start: {error}\n" + "\n".join(tail)
                raise RuntimeError(message) from None
            yield
        finally:
            stop(process, signal.SIGTERM, _STOP_TIMEOUT)


def _check_answers(port: int) -> None:
    """The server answers a set and a get exactly as memcached does."""
    request, expected = _CHECK
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        answer = b""
        while len(answer) < len(expected):
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk
    if answer != expected:
        raise RuntimeError(f"the server answered {answer!r}, not {expected!r}")


def _memcaslap(port: int, seconds: int) -> float:
    """Run memcaslap once against the server; the operations per second."""
    command = [
        "memcaslap",
        "-s",
        f"127.0.0.1:{port}",
        f"-c{CONNECTIONS}",
        f"-T{THREADS}",
        f"-t{seconds}s",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_all_cpus,
        timeout=seconds + 60,
    )
    match = _TPS.search(done.stdout)
    if done.returncode != 0 or match is None:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"memcaslap failed ({done.returncode}): " + "\n".join(tail))
    return float(match.group(2))


def _load(command: Sequence[str], port: int, seconds: int) -> Figures:
    with _server(command, port):
        _check_answers(port)
        _memcaslap(port, WARM_UP_SECONDS)
        return {"rate": _memcaslap(port, seconds)}


def _ours(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "examples.memcached", "--smp", "2", "-p", str(port),
            "-l", "127.0.0.1", *options]  # fmt: skip


def shardio_memcached(seconds: int) -> Figures:
    """examples/memcached, two shards."""
    port = _free_port()
    return _load(_ours(port), port, seconds)


def shardio_durable_memcached(seconds: int) -> Figures:
    """examples/memcached, two shards, with a data directory."""
    base = Path(os.environ.get("SHARDIO_BENCH_DIR", "/var/tmp/shardio-bench"))
    base.mkdir(parents=True, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="m1-data-", dir=base)
    try:
        port = _free_port()
        return _load(_ours(port, "--data-dir", directory), port, seconds)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def memcached(seconds: int) -> Figures:
    """memcached 1.6 with two worker threads."""
    port = _free_port()
    command = ["memcached", "-p", str(port), "-l", "127.0.0.1", "-t", "2", "-U", "0"]
    if os.geteuid() == 0:
        command += ["-u", "root"]  # memcached refuses to run as root otherwise
    return _load(command, port, seconds)


def _asyncio_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "bench._memcached_asyncio", *options]


def _asyncio_load(seconds: int, *options: str) -> Figures:
    port = _free_port()
    return _load([*_asyncio_command(*options), "--port", str(port)], port, seconds)


def uvloop_memcached(seconds: int) -> Figures:
    """The asyncio-streams server on uvloop."""
    return _asyncio_load(seconds, "--uvloop")


def asyncio_memcached(seconds: int) -> Figures:
    """The asyncio-streams server on asyncio's default loop."""
    return _asyncio_load(seconds)


_LOAD = ("memcaslap",)

BENCHMARK = Benchmark(
    name="M1",
    title="examples/memcached on 2 shards, memcaslap -c64 -T2 (90% get), vs memcached -t 2",
    metrics=(Metric("rate", "ops/s"),),
    implementations=(
        Implementation("shardio", shardio_memcached, requires_programs=_LOAD),
        Implementation("shardio-durable", shardio_durable_memcached, requires_programs=_LOAD),
        Implementation("memcached", memcached, requires_programs=(*_LOAD, "memcached")),
        Implementation(
            "uvloop", uvloop_memcached, requires_modules=("uvloop",), requires_programs=_LOAD
        ),
        Implementation("asyncio", asyncio_memcached, requires_programs=_LOAD),
    ),
    targets=(Target("memcached", 0.5),),
    size=10,
    quick_size=2,
)
