"""Our server as a separate process (``python -m examples.memcached``), the
way its users run it: started on a kernel-chosen port, stopped with Ctrl-C
(and checked to exit cleanly), or killed outright."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

__all__ = ["ServerProcess", "running_server"]

ROOT = Path(__file__).resolve().parents[2]


@attrs.define(eq=False)
class ServerProcess:
    """A running server: its process (shard 0) and the port it listens on."""

    process: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, *args: str) -> ServerProcess:
        """Start the server on 127.0.0.1, port 0; return once it listens."""
        command = [sys.executable, "-m", "examples.memcached", "-p", "0", "-l", "127.0.0.1"]
        process = subprocess.Popen(
            [*command, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match is None:
            process.kill()
            process.wait()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {process.stderr.read()}")
        return cls(process, int(match.group(1)))

    def stop(self) -> str:
        """Ctrl-C; check the exit status is 0; return what it wrote to stderr."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        stderr = self._close()
        assert code == 0, stderr
        return stderr

    def wait_for_exit(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the server to stop by itself; its exit status, and what
        it wrote to stderr."""
        code = self.process.wait(timeout)
        return code, self._close()

    def kill(self) -> str:
        """SIGKILL shard 0 (its shards die with it); return once every
        shard process is gone, with what the server wrote to stderr."""
        children = self._children()
        self.process.kill()
        self.process.wait()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{child}").exists() for child in children):
            assert time.monotonic() < deadline, "a shard outlived shard 0"
            time.sleep(0.01)
        return self._close()

    def _children(self) -> list[int]:
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(child) for child in text.split()]

    def _close(self) -> str:
        assert self.process.stdout is not None and self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return stderr


@contextmanager
def running_server(*args: str) -> Iterator[int]:
    """Start the server; yield its port; stop it with Ctrl-C and check it
    exits cleanly."""
    server = ServerProcess.start(*args)
    try:
        yield server.port
    finally:
        if server.process.poll() is None:
            server.stop()
