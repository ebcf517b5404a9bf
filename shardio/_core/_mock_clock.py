"""MockClock: a clock for tests, which runs at any rate and can jump."""

from __future__ import annotations

import time
from math import inf

from ._run import Clock
from ._state import GLOBAL_RUN_CONTEXT


class MockClock(Clock):
    """A virtual clock for deterministic tests (single shard only).

    Virtual time starts at 0 and advances ``rate`` virtual seconds per real
    second (default 0: frozen). :meth:`jump` moves it forward by hand. With
    ``autojump_threshold`` set, whenever every task has been blocked for that
    many *real* seconds, the clock jumps straight to the next deadline -- so a
    test full of ``sleep(3600)`` runs in milliseconds, in the same order it
    would in real time. ``autojump_threshold=0`` is the usual choice.

    Pass it to :func:`shardio.run` as ``clock=``.
    """

    def __init__(self, rate: float = 0.0, autojump_threshold: float = inf) -> None:
        self._real_clock = time.perf_counter
        self._real_base = 0.0
        self._virtual_base = 0.0
        self._rate = 0.0
        self.rate = rate
        self.autojump_threshold = autojump_threshold

    def __repr__(self) -> str:
        return f"<MockClock, time={self.current_time():.7f}, rate={self._rate} @ {id(self):#x}>"

    @property
    def rate(self) -> float:
        """Virtual seconds per real second; writable, ``>= 0``."""
        return self._rate

    @rate.setter
    def rate(self, new_rate: float) -> None:
        if new_rate < 0:
            raise ValueError(f"rate must be >= 0, not {new_rate}")
        real = self._real_clock()
        self._virtual_base = self._real_to_virtual(real)
        self._real_base = real
        self._rate = float(new_rate)

    @property
    def autojump_threshold(self) -> float:
        """Real seconds of idleness after which time jumps to the next deadline."""
        return self._autojump_threshold

    @autojump_threshold.setter
    def autojump_threshold(self, new_threshold: float) -> None:
        if new_threshold < 0:
            raise ValueError(f"autojump_threshold must be >= 0, not {new_threshold}")
        self._autojump_threshold = float(new_threshold)
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        if runner is not None and runner.clock is self:
            runner.clock_autojump_threshold = self._autojump_threshold

    def _real_to_virtual(self, real: float) -> float:
        return self._virtual_base + self._rate * (real - self._real_base)

    def start_clock(self) -> None:
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        if runner is not None and runner.clock is self:
            runner.clock_autojump_threshold = self._autojump_threshold

    def current_time(self) -> float:
        return self._real_to_virtual(self._real_clock())

    def deadline_to_sleep_time(self, deadline: float) -> float:
        virtual_timeout = deadline - self.current_time()
        if virtual_timeout <= 0:
            return 0.0
        if self._rate > 0:
            return virtual_timeout / self._rate
        return 999999999.0

    def jump(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (``>= 0``)."""
        if seconds < 0:
            raise ValueError("time cannot go backwards: jump() needs seconds >= 0")
        self._virtual_base += seconds
