"""Finding the benchmarks: one module each, ``bench/<id>_<slug>.py``.

A benchmark module is any public module of this package (no leading ``_``);
the part of its name before the first ``_`` is the benchmark's id, upper-cased
(``s1_spawn.py`` is S1), and it defines ``BENCHMARK``, a
:class:`~bench._spec.Benchmark` of that name. Adding a benchmark is adding
such a module: nothing else lists them. Listing reads file names only, and
:func:`load` imports just the one module asked for, so a measuring subprocess
imports no other benchmark's code.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from ._spec import Benchmark

_PACKAGE_DIR = Path(__file__).parent


def _modules() -> dict[str, str]:
    """Benchmark id -> module name, in id order (S1, S2, ..., S10)."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules([str(_PACKAGE_DIR)]):
        if info.name.startswith("_") or info.ispkg:
            continue
        found[info.name.split("_", 1)[0].upper()] = info.name
    return dict(sorted(found.items(), key=lambda item: _id_sort_key(item[0])))


def _id_sort_key(name: str) -> tuple[str, int]:
    letters = name.rstrip("0123456789")
    digits = name[len(letters) :]
    return letters, int(digits) if digits else 0


def names() -> list[str]:
    """The ids of all benchmarks, in order."""
    return list(_modules())


def load(name: str) -> Benchmark:
    """Import the benchmark ``name`` (case-insensitive) and return its declaration."""
    modules = _modules()
    key = name.upper()
    if key not in modules:
        raise KeyError(f"no benchmark {name!r}; there are: {', '.join(modules)}")
    module = importlib.import_module(f"{__package__}.{modules[key]}")
    benchmark = module.BENCHMARK
    if not isinstance(benchmark, Benchmark) or benchmark.name != key:
        raise TypeError(f"{module.__name__}.BENCHMARK must be a Benchmark named {key!r}")
    return benchmark
