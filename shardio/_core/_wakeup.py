"""A self-pipe that wakes the scheduler out of its I/O wait.

Used by signals (``signal.set_wakeup_fd`` writes to it from C, so a Ctrl-C
interrupts ``epoll_wait`` even before any Python code runs) and by
:meth:`Token.run_sync_soon` from other threads. A socketpair rather than an
eventfd, because the signal machinery writes single bytes.
"""

from __future__ import annotations

import signal
import socket


class WakeupSocketpair:
    def __init__(self) -> None:
        self.wakeup_sock, self.write_sock = socket.socketpair()
        self.wakeup_sock.setblocking(False)
        self.write_sock.setblocking(False)
        self._old_wakeup_fd: int | None = None

    def wakeup_thread_and_signal_safe(self) -> None:
        try:
            self.write_sock.send(b"\x00")
        except BlockingIOError:
            pass  # already full: a wakeup is pending anyway

    def drain(self) -> None:
        try:
            while True:
                self.wakeup_sock.recv(2**16)
        except BlockingIOError:
            pass

    def wakeup_on_signals(self) -> None:
        try:
            self._old_wakeup_fd = signal.set_wakeup_fd(
                self.write_sock.fileno(), warn_on_full_buffer=False
            )
        except ValueError:
            self._old_wakeup_fd = None  # not the main thread: no signal wakeups

    def close(self) -> None:
        if self._old_wakeup_fd is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
            self._old_wakeup_fd = None
        self.wakeup_sock.close()
        self.write_sock.close()
