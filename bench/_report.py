"""Reporting a benchmark: the table on the terminal and ``results/NAME.json``.

The JSON file keeps everything needed to judge the figures later: every raw
per-round figure, the medians and spreads, every per-round ratio, the
targets and whether they were met, and the machine they were taken on.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._summary import Spread, Summary

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    """The checked-out commit of this repository, ``+dirty`` when it has changes."""
    root = RESULTS_DIR.parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(distributions: list[str]) -> dict[str, Any]:
    """Where and when the figures were taken, and the versions of ``distributions``."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "git_commit": _git_commit(),
        "versions": {name: _version(name) for name in distributions},
    }


def _spread_json(spread: Spread) -> dict[str, float]:
    return {"median": spread.median, "min": spread.low, "max": spread.high}


def to_json(summary: Summary, machine: dict[str, Any]) -> dict[str, Any]:
    """Everything about ``summary`` as one JSON-ready object."""
    m = summary.measurement
    b = m.benchmark
    implementations = {
        name: {
            "status": run.status,
            "reason": run.reason,
            "rounds": run.rounds,
            "figures": {
                metric: _spread_json(spread)
                for metric, spread in summary.figures.get(name, {}).items()
            },
        }
        for name, run in m.runs.items()
    }
    ratios = [
        {
            "peer": c.peer,
            "metric": c.metric.name,
            "definition": c.label,
            "per_round": c.per_round,
            **_spread_json(c.ratio),
            "target": None if c.target is None else c.target.ratio,
            "met": c.met,
        }
        for c in summary.comparisons
    ]
    targets = []
    for target in b.targets:
        metric = b.metric(target.metric)
        comparison = summary.comparison(target.peer, metric)
        targets.append(
            {
                "peer": target.peer,
                "metric": metric.name,
                "ratio": target.ratio,
                "measured": None if comparison is None else comparison.ratio.median,
                "met": None if comparison is None else comparison.met,
            }
        )
    return {
        "benchmark": b.name,
        "title": b.title,
        "subject": b.subject,
        "size": m.size,
        "rounds": m.rounds,
        "cpu": m.cpu,
        "quick": m.quick,
        "metrics": [
            {
                "name": metric.name,
                "unit": metric.unit,
                "better": metric.better,
                "ratio": metric.ratio_label(b.subject, "peer"),
            }
            for metric in b.metrics
        ],
        "implementations": implementations,
        "ratios": ratios,
        "targets": targets,
        "machine": machine,
    }


def write_json(summary: Summary, machine: dict[str, Any]) -> Path:
    """Write ``results/NAME.json``; return its path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{summary.measurement.benchmark.name}.json"
    path.write_text(json.dumps(to_json(summary, machine), indent=2) + "\n")
    return path


def _columns(rows: list[list[str]]) -> list[str]:
    """Lay ``rows`` out in columns: the first left-aligned, the rest right-aligned.

    The first row sets the number of columns; a shorter row (a name and a
    note) is not aligned past its first cell, so a long note widens nothing.
    """
    full = [row for row in rows if len(row) == len(rows[0])]
    widths = [max(len(row[i]) for row in full) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        if len(row) != len(widths):
            lines.append("  ".join([row[0].ljust(widths[0]), *row[1:]]))
            continue
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        cells[0] = row[0].ljust(widths[0])
        lines.append("  ".join(cells).rstrip())
    return lines


def table(summary: Summary) -> str:
    """The benchmark's result as text: one table per metric, then the targets."""
    m = summary.measurement
    b = m.benchmark
    pinned = "not pinned" if m.cpu is None else f"pinned to CPU {m.cpu}"
    out = [
        f"{b.name}: {b.title}",
        f"size {m.size:,}, {m.rounds} rounds{' (QUICK smoke run)' if m.quick else ''}, {pinned}",
    ]
    for metric in b.metrics:
        rows = [
            [
                "implementation",
                f"median {metric.name} ({metric.unit})",
                "min",
                "max",
                "ratio",
                "ratio min-max",
                "target",
                "met",
            ]
        ]
        for name, run in m.runs.items():
            if run.status != "ok":
                rows.append([name, f"{run.status}: {run.reason.splitlines()[-1]}"])
                continue
            spread = summary.figures[name][metric.name]
            row = [name, metric.format(spread.median), metric.format(spread.low)]
            row.append(metric.format(spread.high))
            comparison = summary.comparison(name, metric)
            if comparison is None:
                row += ["-", "", "", ""]
            else:
                r = comparison.ratio
                row += [f"{r.median:.2f}x", f"{r.low:.2f}-{r.high:.2f}"]
                target = comparison.target
                met = comparison.met
                row.append("" if target is None else f">= {target.ratio:g}x")
                row.append("" if met is None else ("yes" if met else "NO"))
            rows.append(row)
        out.append("")
        out += ["  " + line for line in _columns(rows)]
        subject_vs_peer = metric.ratio_label(b.subject, "peer")
        out.append(
            f"  ratio = {subject_vs_peer} ({metric.better} {metric.name} is better), "
            "the median of per-round ratios"
        )
    reached = sum(1 for c in summary.comparisons if c.met)
    unmeasured = [
        f">= {t.ratio:g}x {t.peer}"
        for t in b.targets
        if summary.comparison(t.peer, b.metric(t.metric)) is None
    ]
    not_measured = f" (not measured: {', '.join(unmeasured)})" if unmeasured else ""
    out.append(f"  targets met: {reached} of {len(b.targets)}{not_measured}")
    return "\n".join(out)
