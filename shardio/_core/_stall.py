"""The stall detector: report a shard whose scheduler stopped turning.

Cooperative scheduling has one failure mode that no exception reports: a
task that runs for a long time without reaching a checkpoint freezes its
whole shard -- no other task runs, no I/O is polled, no message is read.
Seastar calls this a *reactor stall* and logs it with a backtrace; so does
shardio, when ``shardio.run(..., stall_threshold=seconds)`` is given.

A watchdog thread looks at the scheduler every quarter of the threshold.
The scheduler counts its passes and marks when it blocks waiting for I/O
(waiting is not a stall). If the count has not moved for longer than the
threshold and the scheduler is not waiting, the watchdog logs a warning on
the ``shardio.stall`` logger with the stack of the main thread *at that
moment* -- which is the code that is hogging the shard -- once per stall.
The cost on the scheduler is one counter increment and two flag stores per
pass; nothing per task step.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._run import Runner

logger = logging.getLogger("shardio.stall")


class StallDetector:
    def __init__(self, runner: Runner, threshold: float, shard: int) -> None:
        if threshold <= 0:
            raise ValueError(f"stall_threshold must be > 0 seconds, not {threshold}")
        self._runner = runner
        self._threshold = threshold
        self._shard = shard
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="shardio stall detector", daemon=True
        )

    def start(self) -> None:
        self._main = threading.get_ident()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        runner = self._runner
        seen_pass = -1
        since = time.monotonic()
        reported = -1
        while not self._stop.wait(self._threshold / 4):
            passes = runner.passes
            now = time.monotonic()
            if passes != seen_pass or runner.waiting_for_io:
                seen_pass, since = passes, now
                continue
            stalled = now - since
            if stalled >= self._threshold and reported != passes:
                reported = passes
                frame = sys._current_frames().get(self._main or 0)
                stack = "".join(traceback.format_stack(frame)) if frame else "(no stack)"
                logger.warning(
                    "shard %d stalled: no scheduling pass for %.0f ms (stall_threshold %.0f ms); "
                    "a task is running without reaching a checkpoint. It is here:\n%s",
                    self._shard,
                    stalled * 1e3,
                    self._threshold * 1e3,
                    stack,
                )
