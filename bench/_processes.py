"""Stopping a server a benchmark started: ask, wait, then insist."""

from __future__ import annotations

import signal
import subprocess


def stop(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    signum: int = signal.SIGTERM,
    timeout: float = 10.0,
) -> None:
    """Send ``signum`` to ``process`` if it still runs, wait up to ``timeout``
    seconds for it to exit, then kill it; it has been reaped on return."""
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
