"""python -m shardio_net.asgi, run as a user runs it: a process of its own,
stopped with Ctrl-C (SIGINT to its process group) or SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]


class Lines:
    """The lines a stream of the server brings, read by a thread of their own
    (so that waiting for one never misses lines already read ahead)."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)
        self.queue.put("")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Take lines until one matches ``pattern``."""
        while True:
            line = self.queue.get(timeout=timeout)
            assert line, f"the server ended before a line matching {pattern!r}"
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def rest(self) -> str:
        """Every line still to come, once the server has ended."""
        lines = []
        while line := self.queue.get(timeout=60):
            lines.append(line)
        return "".join(lines)


@contextmanager
def server(*arguments: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "shardio_net.asgi", *arguments, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job
        env={**os.environ, **(env or {})},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def _port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    return int(Lines(process.stdout).wait_for(r"http://127\.0\.0\.1:(\d+)").group(1))


def test_ctrl_c_lets_every_request_in_flight_finish_on_every_shard() -> None:
    with server("tests.asgi._apps:slow", "--smp", "2", env={"SLOW_SECONDS": "1.0"}) as process:
        port = _port(process)
        assert process.stderr is not None
        errors = Lines(process.stderr)
        results: dict[int, tuple[int, bytes]] = {}

        def request(number: int) -> None:
            response = httpx.get(f"http://127.0.0.1:{port}/slow?{number}", timeout=30)
            results[number] = (response.status_code, response.content)

        clients = [threading.Thread(target=request, args=(n,)) for n in range(8)]
        for client in clients:
            client.start()
        for _ in clients:  # every request has reached the application
            errors.wait_for(r"^started \d+$")
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        for client in clients:
            client.join(30)
        assert process.wait(30) == 0
        rest = errors.rest()
    assert results == {n: (200, b"one,two,three") for n in range(8)}
    assert "lifespan shutdown on shard 0" in rest
    assert "lifespan shutdown on shard 1" in rest


def test_sigterm_stops_the_server_with_status_0() -> None:
    with server("tests.asgi._apps:hello", "--smp", "1") as process:
        port = _port(process)
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, World!"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_a_factory_is_called_on_every_shard() -> None:
    with server("tests.asgi._apps:make_echo", "--factory", "--smp", "2") as process:
        port = _port(process)
        response = httpx.get(f"http://127.0.0.1:{port}/f")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert response.json()["path"] == "/f"


def test_an_application_that_cannot_be_found_is_refused_with_status_1() -> None:
    for name, message in [
        ("tests.asgi._apps:nothing", "has no attribute 'nothing'"),
        ("no_such_module:app", "could not import module 'no_such_module'"),
        ("tests.asgi._apps", 'must be given as "module:attribute"'),
    ]:
        finished = subprocess.run(
            [sys.executable, "-m", "shardio_net.asgi", name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert finished.returncode == 1
        assert message in finished.stderr


def test_a_failed_lifespan_startup_ends_the_server_with_status_3() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "shardio_net.asgi", "tests.asgi._apps:startup_fails", "--smp", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 3
    assert "no database here" in finished.stderr
