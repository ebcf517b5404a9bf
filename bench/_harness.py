"""Running a benchmark: every implementation, round after round, interleaved.

The machines this runs on are shared and noisy, so a figure means something
only next to a peer's figure taken at about the same moment. Each round
therefore runs every implementation once, in declaration order (A B C A B C
...): a burst of noise lands on one round of every peer rather than on all
rounds of one. Every trial is a fresh ``python -m bench._run_one`` pinned to
the same CPU, with its own warm-up (see that module). The statistics are
left to :mod:`bench._summary`; this module only collects the raw figures.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import attrs

from ._spec import Benchmark, Implementation

_ROOT = Path(__file__).resolve().parent.parent

Status = Literal["ok", "skipped", "failed"]


@attrs.define(eq=False)
class ImplementationRun:
    """What one implementation produced: a figure per metric per round, or why not.

    A failed implementation keeps the rounds it completed but takes part in no
    further rounds and in no statistics.
    """

    name: str
    status: Status = "ok"
    reason: str = ""
    rounds: list[dict[str, float]] = attrs.Factory(list)


@attrs.define(eq=False)
class Measurement:
    """The raw figures of one benchmark run."""

    benchmark: Benchmark
    size: int
    rounds: int
    cpu: int | None
    quick: bool
    runs: dict[str, ImplementationRun]


def unavailable(impl: Implementation) -> str | None:
    """Why ``impl`` cannot run here (a missing module or program, or what its
    ``requires`` check says), or ``None``."""
    for module in impl.requires_modules:
        if importlib.util.find_spec(module) is None:
            return f"Python module {module!r} is not installed"
    for program in impl.requires_programs:
        if shutil.which(program) is None:
            return f"program {program!r} is not on PATH"
    if impl.requires is not None:
        return impl.requires()
    return None


def _run_one(benchmark: Benchmark, impl: str, size: int, cpu: int | None) -> dict[str, float]:
    """Measure one trial of ``impl`` in a fresh subprocess; return its figures."""
    command = [sys.executable, "-m", "bench._run_one", benchmark.name, impl, f"--size={size}"]
    if cpu is not None:
        command.append(f"--cpu={cpu}")
    try:
        child = subprocess.run(
            command,
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=benchmark.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"no result within {benchmark.timeout:g} s") from None
    if child.returncode != 0:
        tail = "\n".join(child.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"exit status {child.returncode}:\n{tail}")
    try:
        figures: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"no figures on stdout: {child.stdout[-200:]!r}") from None
    return figures


def measure(
    benchmark: Benchmark,
    *,
    rounds: int,
    size: int,
    cpu: int | None,
    quick: bool,
    progress: Callable[[str], None],
) -> Measurement:
    """Run ``rounds`` interleaved rounds of every available implementation.

    ``progress`` is called with one line per finished round.
    """
    runs = {impl.name: ImplementationRun(impl.name) for impl in benchmark.implementations}
    for impl in benchmark.implementations:
        reason = unavailable(impl)
        if reason is not None:
            runs[impl.name].status = "skipped"
            runs[impl.name].reason = reason
    subject = runs[benchmark.subject]
    shown = benchmark.metrics[0]
    for round_no in range(1, rounds + 1):
        if subject.status != "ok":
            break
        line: list[str] = []
        for run in runs.values():
            if run.status != "ok":
                continue
            try:
                figures = _run_one(benchmark, run.name, size, cpu)
            except RuntimeError as error:
                run.status = "failed"
                run.reason = str(error)
                line.append(f"{run.name} FAILED")
                continue
            run.rounds.append(figures)
            line.append(f"{run.name} {shown.format(figures[shown.name])}")
        progress(f"{benchmark.name} round {round_no}/{rounds} ({shown.unit}): " + ", ".join(line))
    return Measurement(benchmark, size, rounds, cpu, quick, runs)
