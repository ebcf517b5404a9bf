"""What a benchmark module declares: its metrics, implementations and targets.

A benchmark is one workload run by several *implementations*: the subject
(shardio) and its peers (trio, asyncio, uvloop, multiprocessing, fio, ...).
An implementation is a plain function that runs the workload once at a given
size and returns one figure per metric. The harness calls it in a fresh,
pinned subprocess -- once to warm up, once timed -- so a module must import
the library an implementation uses *inside* that function, never at the top:
the child that measures trio must not have imported uvloop.

Ratios always read "how many times better shardio is", so that > 1 is good
whichever way the metric points: ``shardio / peer`` for a metric where higher
is better (a rate), ``peer / shardio`` where lower is better (a latency). A
target is the smallest acceptable ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import attrs

Better = Literal["higher", "lower"]

Figures = Mapping[str, float]
"""One trial's result: the figure for each metric, by metric name."""


@attrs.frozen
class Metric:
    """One figure a benchmark reports, e.g. a rate in tasks/s or a p99 in us."""

    name: str
    unit: str
    better: Better = "higher"

    def ratio(self, subject: float, peer: float) -> float:
        """How many times better ``subject`` is than ``peer`` on this metric."""
        return subject / peer if self.better == "higher" else peer / subject

    def format(self, value: float) -> str:
        """``value`` for a table: thousands grouped, three digits when small."""
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"

    def ratio_label(self, subject: str, peer: str) -> str:
        """The ratio as a fraction of names, e.g. ``shardio/trio``."""
        return f"{subject}/{peer}" if self.better == "higher" else f"{peer}/{subject}"


@attrs.frozen
class Implementation:
    """One way to run the workload: ``run(size)`` returns the figures of one trial.

    ``requires_modules`` and ``requires_programs`` name what must be importable
    or on ``PATH``; without them the implementation is skipped, with the reason.
    ``requires`` checks anything else (privileges, a device): it returns why
    the implementation cannot run here, or ``None`` if it can.
    """

    name: str
    run: Callable[[int], Figures]
    requires_modules: tuple[str, ...] = ()
    requires_programs: tuple[str, ...] = ()
    requires: Callable[[], str | None] | None = None


@attrs.frozen
class Target:
    """shardio must be at least ``ratio`` times better than ``peer`` on ``metric``.

    ``metric`` defaults to the benchmark's first metric.
    """

    peer: str
    ratio: float
    metric: str | None = None


@attrs.frozen
class Benchmark:
    """A workload, its implementations, and the ratios shardio must reach.

    ``size`` is the workload size passed to every implementation (tasks,
    checkpoints, messages, seconds: the module says which); ``quick_size``
    is the size for a smoke run. ``timeout`` bounds one subprocess, in seconds.
    """

    name: str
    title: str
    metrics: tuple[Metric, ...]
    implementations: tuple[Implementation, ...]
    targets: tuple[Target, ...]
    size: int
    quick_size: int
    subject: str = "shardio"
    timeout: float = 600.0

    def __attrs_post_init__(self) -> None:
        names = [impl.name for impl in self.implementations]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: implementation names repeat: {names}")
        if self.subject not in names:
            raise ValueError(f"{self.name}: the subject {self.subject!r} is not implemented")
        seen: set[tuple[str, str]] = set()
        for target in self.targets:
            if target.peer not in names or target.peer == self.subject:
                raise ValueError(f"{self.name}: target peer {target.peer!r} is not a peer")
            key = (target.peer, self.metric(target.metric).name)
            if key in seen:
                raise ValueError(f"{self.name}: two targets for {key}")
            seen.add(key)

    def metric(self, name: str | None) -> Metric:
        """The metric called ``name``; the first one for ``None``."""
        if name is None:
            return self.metrics[0]
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise ValueError(f"{self.name}: no metric {name!r}")

    def implementation(self, name: str) -> Implementation:
        """The implementation called ``name``."""
        for impl in self.implementations:
            if impl.name == name:
                return impl
        raise ValueError(f"{self.name}: no implementation {name!r}")

    def target_for(self, peer: str, metric: Metric) -> Target | None:
        """The target that compares shardio with ``peer`` on ``metric``, if any."""
        for target in self.targets:
            if target.peer == peer and self.metric(target.metric) == metric:
                return target
        return None
