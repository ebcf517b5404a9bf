"""The ASGI application: its types, and loading one from ``module:attribute``.

An application given as an import string is imported on every shard that
serves it (each shard is a process of its own), and with ``factory=True``
called there to build it: every shard gets its own instance, built where it
runs.

An application given as an object is usually a module's global, made when
the module was imported -- before ``shardio.run`` forked the shards, so every
shard has its own copy under the same name. :func:`import_name` finds that
name (``module:attribute``, ``__main__`` included), and the other shards look
it up instead of receiving the object pickled: a FastAPI application does
not pickle (its routes refer back to it, deeper than pickle recurses), and
a copy would not be the object the shard already has. An object that is no
module's global (made by a function, a ``functools.partial``) travels
pickled, as any argument of :func:`shardio.run_on` does.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

__all__ = [
    "ASGIApp",
    "AppLoadError",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "import_name",
    "load_app",
]

#: An ASGI connection scope.
Scope: TypeAlias = MutableMapping[str, Any]
#: An ASGI event, either way.
Message: TypeAlias = MutableMapping[str, Any]
#: The ``receive`` callable an application is given.
Receive: TypeAlias = Callable[[], Awaitable[Message]]
#: The ``send`` callable an application is given.
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


class AppLoadError(Exception):
    """The application named by an import string could not be loaded; the
    message says what was wrong and what to write instead."""


def load_app(app: ASGIApp | str, *, factory: bool = False) -> ASGIApp:
    """The application ``app`` names: an import string ``"module:attribute"``
    (``attribute`` may be dotted) is imported; with ``factory``, what it
    names is called with no arguments and returns the application."""
    if isinstance(app, str):
        module_name, colon, attribute = app.partition(":")
        if not colon or not module_name or not attribute:
            raise AppLoadError(f'the application must be given as "module:attribute", not {app!r}')
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name.split(".")[0] and exc.name != module_name:
                raise  # the module exists, and one of its own imports failed
            raise AppLoadError(
                f"could not import module {module_name!r} (is it on sys.path? "
                f"run from the directory that holds it, or set PYTHONPATH)"
            ) from None
        loaded: Any = module
        for part in attribute.split("."):
            try:
                loaded = getattr(loaded, part)
            except AttributeError:
                raise AppLoadError(
                    f"module {module_name!r} has no attribute {attribute!r}"
                ) from None
    else:
        loaded = app
    if factory:
        if not callable(loaded):
            raise AppLoadError(f"--factory: {loaded!r} is not callable")
        loaded = loaded()
    if not callable(loaded):
        raise AppLoadError(f"the application must be an ASGI 3 callable, not {loaded!r}")
    return loaded  # type: ignore[no-any-return]


def import_name(app: object) -> str | None:
    """``"module:attribute"`` of a module global that is ``app`` itself
    (``__main__`` searched first), or ``None`` if no module holds it."""
    modules = [sys.modules.get("__main__"), *list(sys.modules.values())]
    for module in modules:
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            if value is app and not name.startswith("__"):
                return f"{module.__name__}:{name}"  # type: ignore[union-attr]
    return None
