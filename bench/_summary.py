"""From raw per-round figures to the numbers a benchmark reports.

A peer's figure is the median of its rounds, shown with the lowest and
highest round so the noise is visible. A ratio is *not* the ratio of two
medians: each round gives one ratio (shardio's figure of that round against
the peer's of the same round, which ran seconds apart under the same load),
and the reported ratio is the median of those. Rounds are paired by their
index; an implementation that failed takes part in no statistics.
"""

from __future__ import annotations

import statistics

import attrs

from ._harness import Measurement
from ._spec import Metric, Target


@attrs.frozen
class Spread:
    """The median of some rounds, and the lowest and highest of them."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        """The spread of ``values`` (at least one)."""
        return cls(statistics.median(values), min(values), max(values))


@attrs.frozen
class Comparison:
    """shardio against one peer on one metric: the per-round ratios and their median."""

    peer: str
    metric: Metric
    label: str
    per_round: tuple[float, ...]
    ratio: Spread
    target: Target | None

    @property
    def met(self) -> bool | None:
        """Whether the median ratio reaches the target; ``None`` without a target."""
        return None if self.target is None else self.ratio.median >= self.target.ratio


@attrs.frozen
class Summary:
    """A measurement with its statistics: figures per implementation and metric."""

    measurement: Measurement
    figures: dict[str, dict[str, Spread]]
    comparisons: tuple[Comparison, ...]

    def comparison(self, peer: str, metric: Metric) -> Comparison | None:
        """The comparison of shardio with ``peer`` on ``metric``, if both ran."""
        for comparison in self.comparisons:
            if comparison.peer == peer and comparison.metric == metric:
                return comparison
        return None


def summarise(measurement: Measurement) -> Summary:
    """Compute the medians, spreads and ratios of ``measurement``."""
    benchmark = measurement.benchmark
    ok = {name: run for name, run in measurement.runs.items() if run.status == "ok" and run.rounds}
    figures = {
        name: {m.name: Spread.of([r[m.name] for r in run.rounds]) for m in benchmark.metrics}
        for name, run in ok.items()
    }
    comparisons: list[Comparison] = []
    subject = ok.get(benchmark.subject)
    if subject is not None:
        for peer in ok.values():
            if peer is subject:
                continue
            for metric in benchmark.metrics:
                per_round = tuple(
                    metric.ratio(mine[metric.name], theirs[metric.name])
                    for mine, theirs in zip(subject.rounds, peer.rounds, strict=False)
                )
                comparisons.append(
                    Comparison(
                        peer=peer.name,
                        metric=metric,
                        label=metric.ratio_label(benchmark.subject, peer.name),
                        per_round=per_round,
                        ratio=Spread.of(list(per_round)),
                        target=benchmark.target_for(peer.name, metric),
                    )
                )
    return Summary(measurement, figures, tuple(comparisons))
