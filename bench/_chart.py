"""The one chart for the whole set: ``results/summary.png``.

It is drawn from the ``results/*.json`` files, not from the run that just
finished, so running one benchmark redraws the chart with the latest figures
of every benchmark (each panel says when its figures were taken). A panel per
benchmark; a bar per peer (and metric, when there are several) whose height
is the median ratio, oriented so that higher is better for shardio; a whisker
from the lowest to the highest per-round ratio; a black tick at the target;
a dashed line at parity. It draws on a bare :class:`~matplotlib.figure.Figure`
with an Agg canvas: no pyplot, so no GUI backend and no global figure state.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import _registry
from ._report import RESULTS_DIR

_MET, _MISSED, _NO_TARGET = "#2e8b57", "#c0392b", "#7f8c8d"


def _load_results() -> list[dict[str, Any]]:
    """The results file of every known benchmark that has one, in benchmark order."""
    results = []
    for name in _registry.names():
        path = RESULTS_DIR / f"{name}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
    return results


def _panel(axes: Axes, result: dict[str, Any]) -> None:
    """Draw one benchmark's ratios on ``axes``."""
    ratios = result["ratios"]
    several_metrics = len(result["metrics"]) > 1
    labels = [r["peer"] + (f"\n{r['metric']}" if several_metrics else "") for r in ratios]
    heights = [r["median"] for r in ratios]
    colours = [_NO_TARGET if r["met"] is None else (_MET if r["met"] else _MISSED) for r in ratios]
    whiskers = [
        [r["median"] - r["min"] for r in ratios],
        [r["max"] - r["median"] for r in ratios],
    ]
    xs = range(len(ratios))
    axes.bar(xs, heights, color=colours, yerr=whiskers, capsize=4, width=0.6)
    for x, r in zip(xs, ratios, strict=True):
        axes.annotate(
            f"{r['median']:.2f}x",
            (x, r["max"]),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
        if r["target"] is not None:
            axes.hlines(r["target"], x - 0.4, x + 0.4, colors="black", linewidth=2)
    axes.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(list(xs), labels)
    top = max([1.0] + [r["max"] for r in ratios] + [r["target"] or 0 for r in ratios])
    axes.set_ylim(0, math.ceil(top * 1.15))
    definitions = ", ".join(sorted({m["ratio"] for m in result["metrics"]}))
    axes.set_ylabel(f"ratio ({definitions})")
    when = result["machine"]["date"][:16].replace("T", " ")
    quick = ", QUICK" if result["quick"] else ""
    title = textwrap.fill(f"{result['benchmark']}: {result['title']}", 40)
    axes.set_title(f"{title}\n{when} UTC, {result['rounds']} rounds{quick}", fontsize=9)


def draw_summary() -> Path | None:
    """Draw ``results/summary.png`` from the results files; ``None`` if there are none."""
    results = [r for r in _load_results() if r["ratios"]]
    if not results:
        return None
    columns = min(len(results), 3)
    rows = math.ceil(len(results) / columns)
    figure = Figure(figsize=(4.5 * columns, 4.2 * rows))
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, result in zip(grid.flat, results, strict=False):
        _panel(axes, result)
    for axes in list(grid.flat)[len(results) :]:
        axes.set_visible(False)
    machine = results[-1]["machine"]
    python = machine["python"].split()[0]
    figure.suptitle(
        f"shardio vs peers (> 1: shardio better; black tick: target)  -  "
        f"{machine['cpu_model']}, {machine['cpu_count']} CPUs, Python {python}",
        fontsize=10,
    )
    figure.tight_layout()
    path = RESULTS_DIR / "summary.png"
    figure.savefig(path, dpi=110)
    return path
