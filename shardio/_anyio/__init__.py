"""AnyIO on shardio: how AnyIO finds its ``"shardio"`` backend.

AnyIO picks a backend by the name sniffio reports (``"shardio"`` inside a
shardio run) or by the ``backend=`` argument of ``anyio.run``, and loads it
with one lookup by name::

    importlib.import_module(f"anyio._backends._{name}")

taking ``backend_class`` from the module it gets. There is no registry to add
a backend to, so shardio answers that lookup, and nothing else: importing
``shardio`` puts :class:`AnyIOBackendFinder` at the front of
``sys.meta_path``. The finder knows one module name,
``anyio._backends._shardio``, and for it gives a module whose
``backend_class`` is :class:`shardio._anyio._backend.ShardioBackend`. It
imports nothing until AnyIO asks for that name, so a program that never uses
AnyIO never imports it (``import shardio`` does not import ``anyio``); AnyIO
itself is not patched.

What would break it (each is a change in AnyIO or in the program, not in
shardio): AnyIO finding backends some other way than by that module name (a
registry, entry points, a fixed list it checks the name against before the
import); a module of that name shipped inside AnyIO itself (the finder is first
in ``sys.meta_path``, so it would still win, but the two could disagree); code
that rebuilds ``sys.meta_path`` without keeping the finders already there; and
an ``anyio._backends._shardio`` already in ``sys.modules`` from somewhere else.
The finder is installed once per process; shards forked by ``shardio.run``
inherit it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

__all__ = ["BACKEND_MODULE", "AnyIOBackendFinder", "install_finder"]

#: The one module name the finder answers: where AnyIO looks for a backend
#: named ``"shardio"``.
BACKEND_MODULE = "anyio._backends._shardio"


class _BackendLoader(importlib.abc.Loader):
    """Makes ``anyio._backends._shardio``: a module holding ``backend_class``."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        from ._backend import ShardioBackend

        module.__doc__ = "AnyIO's shardio backend; the code is in shardio._anyio._backend."
        module.backend_class = ShardioBackend  # type: ignore[attr-defined]


class AnyIOBackendFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that answers only :data:`BACKEND_MODULE`."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != BACKEND_MODULE:
            return None
        return importlib.machinery.ModuleSpec(fullname, _BackendLoader(), origin="shardio")


def install_finder() -> None:
    """Put the finder first in ``sys.meta_path``, once per process."""
    if not any(isinstance(finder, AnyIOBackendFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AnyIOBackendFinder())
