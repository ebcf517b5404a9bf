"""Loading an HTTP server with wrk: start it, check its answer, warm up, measure, stop.

:func:`requests_per_second` is all of N1's and N2's measuring. The server is
one of :mod:`bench._http_servers`, started as ``python -m
bench._http_servers NAME`` in a subprocess of its own: it inherits this
process's CPU pinning (N1: the CPU the harness pinned the trial to) unless
its options pin it elsewhere (N2's ``--cpus``). wrk runs under ``taskset``
on the CPUs it is given, so that it competes with the server for a CPU only
where the caller chose so.

Before any load, the server must answer one request, then two pipelined
ones, with exactly :data:`~bench._http_servers.RESPONSE` each: every
implementation is checked to send the same bytes. Then wrk runs for one
second to warm up (connections made, caches and allocators warm, the CPU's
frequency up), and again for the measured ``seconds``. A run in which wrk
saw a non-2xx response or a connect, read or write error is an error, not a
figure. Requests wrk gave up on after ``--timeout`` (10 s) are not: on a
shared machine another tenant can stall the server that long, and the rate
already counts them as lost.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._http_servers import RESPONSE
from ._processes import stop

__all__ = ["requests_per_second"]

_ROOT = Path(__file__).resolve().parent.parent
_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_WARM_UP_SECONDS = 1
_STOP_TIMEOUT = 10.0


def requests_per_second(
    server: str,
    *,
    seconds: int,
    connections: int,
    threads: int,
    wrk_cpus: Sequence[int],
    server_options: Sequence[str] = (),
) -> float:
    """Start ``server`` (with ``server_options``), load it with ``wrk
    -t<threads> -c<connections>`` pinned to ``wrk_cpus`` for ``seconds``
    after a warm-up, stop it, and return the requests per second wrk saw."""
    with _running(server, server_options) as port:
        _check_answers(port)
        _wrk(port, _WARM_UP_SECONDS, connections, threads, wrk_cpus)
        return _wrk(port, seconds, connections, threads, wrk_cpus)


@contextlib.contextmanager
def _running(server: str, options: Sequence[str]) -> Iterator[int]:
    """Run the server until the block ends (then SIGTERM it); yield its port."""
    command = [sys.executable, "-m", "bench._http_servers", server, *options]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            command, cwd=_ROOT, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.startswith("port "):
                process.wait(_STOP_TIMEOUT)
                errors.seek(0)
                tail = "\n".join(errors.read().strip().splitlines()[-5:])
                raise RuntimeError(f"server {server} did not start: {line!r}\n{tail}")
            yield int(line.split()[1])
        finally:
            stop(process, signal.SIGTERM, _STOP_TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()


def _receive_exactly(client: socket.socket, size: int) -> bytes:
    received = b""
    while len(received) < size:
        chunk = client.recv(size - len(received))
        if not chunk:
            break
        received += chunk
    return received


def _check_answers(port: int, host: str = "127.0.0.1") -> None:
    """The server answers one request, then two pipelined, with RESPONSE each."""
    with socket.create_connection((host, port), timeout=10) as client:
        for count in (1, 2):
            client.sendall(_REQUEST * count)
            answer = _receive_exactly(client, len(RESPONSE) * count)
            if answer != RESPONSE * count:
                raise RuntimeError(
                    f"the server answered {count} request(s) with {answer!r}, "
                    f"not {RESPONSE * count!r}"
                )


def _wrk(
    port: int,
    seconds: int,
    connections: int,
    threads: int,
    cpus: Sequence[int],
    host: str = "127.0.0.1",
) -> float:
    """Run wrk once against ``host``; the requests per second it reports."""
    command = [
        "taskset",
        "-c",
        ",".join(map(str, cpus)),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout=10s",
        f"http://{host}:{port}/",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    output = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    if "Non-2xx or 3xx responses" in output:
        raise RuntimeError(f"wrk saw error responses:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", output)
    if errors is not None and any(int(count) for count in errors.groups()):
        raise RuntimeError(f"wrk saw socket errors: {errors.group(0)}")
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match.group(1))
