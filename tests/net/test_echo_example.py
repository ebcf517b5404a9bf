"""examples/echo.py serves on every shard and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_echo_example_echoes_on_two_shards_and_stops_on_ctrl_c() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.echo", "--smp", "2", "--port", "0", "--host", "127.0.0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()
        match = re.search(r"2 shard\(s\), posix stack, listening on 127\.0\.0\.1:(\d+)", first_line)
        assert match, first_line
        port = int(match.group(1))
        for index in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                message = b"message %d " % index * 1000
                client.sendall(message)
                client.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := client.recv(65536):
                    received += chunk
                assert received == message
        server.send_signal(signal.SIGINT)
        output, errors = server.communicate(timeout=10)
        assert server.returncode == 0, errors
        assert output.strip() == "stopped"
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
