"""A real memcached for the differential tests: started on a free loopback
port, talked to over a plain socket, stopped afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MEMCACHED", "converse", "free_port", "real_memcached"]

MEMCACHED = shutil.which("memcached")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def real_memcached(*args: str) -> Iterator[int]:
    """Run ``memcached`` on a free port (one thread, no UDP); yield the port."""
    assert MEMCACHED is not None
    port = free_port()
    command = [MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "1", *args]
    command += ["-u", "root"]  # refused when running as root otherwise; ignored if not root
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None:
                    assert process.stderr is not None
                    message = process.stderr.read().decode(errors="replace")
                    raise RuntimeError(f"memcached did not start: {message}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("memcached did not accept connections in 5 s") from None
                time.sleep(0.01)
        yield port
    finally:
        process.kill()
        process.wait(5)
        if process.stderr is not None:
            process.stderr.close()


def converse(port: int, script: bytes, *, until: bytes | None, quiet: float = 0.3) -> bytes:
    """Send ``script`` in one write; read replies until they end with
    ``until``, the server closes, or (``until=None``) it stays quiet for
    ``quiet`` seconds."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(script)
        sock.settimeout(quiet if until is None else 5.0)
        received = b""
        while until is None or not received.endswith(until):
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                break
            if not data:
                break
            received += data
        return received
