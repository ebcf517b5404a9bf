"""How user objects travel between shards.

Shards are forked from one process, so every module imported before the fork,
``__main__`` included, exists in every shard. Functions and classes that can
be found again by module and qualified name therefore travel *by reference*
(a few bytes, and the receiving shard uses its own copy, with its own module
globals -- the share-nothing model). Everything else that Python's pickle
cannot name -- lambdas, closures, functions defined inside ``main()`` --
travels *by value*, as cloudpickle serializes it (like a C++ lambda capture).

Only user objects (call arguments, results, exceptions, channel items) go
through this module. Each is pickled on its own into a ``bytes`` blob, so a
failure is attributed to the call or the item it belongs to, and a blob that
cannot be rebuilt on the other side fails only that call or item.

Remote exceptions keep their type: the exception is pickled as usual and the
text of its traceback travels beside it, to be attached on arrival as the
``__cause__`` (a :class:`RemoteTraceback` naming the shard). An exception that
cannot be pickled -- or rebuilt -- arrives as :class:`RemoteError` carrying its
type name, message and traceback text.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

from ._exceptions import RemoteError, RemoteTraceback
from ._ki import enable_ki_protection


def _importable(obj: Any) -> bool:
    """Can a fork of this process find ``obj`` again by module and qualname?"""
    qualname = getattr(obj, "__qualname__", None)
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    if qualname is None or module is None or "<locals>" in qualname:
        return False
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is obj


class _ShardPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with three changes for shards:

    * whatever is importable goes by reference -- also from ``__main__``,
      which cloudpickle would copy by value;
    * an open text file is refused, as every other open file is, rather than
      sent as a snapshot of its contents;
    * a function that goes by value (a lambda, a closure) but was defined in
      a module keeps using *that module's* globals on the receiving shard,
      where cloudpickle would give it a private snapshot of the ones it
      reads. So ``lambda: COUNTER[0]`` sent to shard 1 reads shard 1's
      ``COUNTER``, as a module-level function would: each shard has its own
      module state, and code reaches the state of the shard it runs on.
      What the function captures in its closure still travels by value.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)) and _importable(obj):
            return NotImplemented
        if isinstance(obj, io.TextIOWrapper):
            # cloudpickle would send a snapshot of its contents (a StringIO):
            # refuse it, as the standard pickler refuses every other open file.
            raise TypeError(
                f"an open file ({obj!r}) cannot be sent to another shard: each shard has "
                "its own file descriptors; send its path and open it there, or send what "
                "you read from it"
            )
        if isinstance(obj, types.FunctionType) and _module_globals_of(obj) is not None:
            return self._function_in_module_reduce(obj)
        return super().reducer_override(obj)

    def _function_in_module_reduce(self, func: types.FunctionType) -> Any:
        code, _, name, defaults, closure = self._function_getnewargs(func)
        state, slotstate = cloudpickle.cloudpickle._function_getstate(func)
        # The module's own globals on the other side: no snapshot to apply.
        slotstate["__globals__"] = {}
        return (
            cloudpickle.cloudpickle._make_function,
            (code, _ModuleGlobals(func.__module__), name, defaults, closure),
            (state, slotstate),
            None,
            None,
            cloudpickle.cloudpickle._function_setstate,
        )


def _module_globals_of(func: types.FunctionType) -> dict[str, Any] | None:
    module = sys.modules.get(func.__module__ or "")
    if module is not None and vars(module) is func.__globals__:
        return func.__globals__
    return None


class _ModuleGlobals:
    """Pickles as "the globals of module ``name``", rebuilt as that dict."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> Any:
        return (_module_dict, (self.name,))


def _module_dict(name: str) -> dict[str, Any]:
    return vars(importlib.import_module(name))


class ShardLocal:
    """Mixin for objects that belong to the shard that made them (locks,
    events, memory channels, ...): pickling one -- sending it to another
    shard -- raises a ``TypeError`` that says what to use instead."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        name = type(self).__name__
        article = "an" if name[:1].lower() in "aeiou" else "a"
        raise TypeError(
            f"{article} {name} belongs to the shard that made it and cannot be sent "
            "to another shard; share work between shards with open_channel(), run_on() "
            "or sharded() instead"
        )


@enable_ki_protection
def dumps(obj: Any) -> bytes:
    """Pickle a user object for another shard (protocol 5).

    The C pickler first: it handles what needs no by-value function (most
    calls and data) several times faster than cloudpickle's Python pickler,
    with the same result. Only what it cannot name falls back to that.

    Objects that *move* when sent (channel ends) call :func:`register_move`
    while being pickled; the moves take effect only if the whole pickle
    succeeds, once, after it -- so a call that fails to pickle, or the
    retry with cloudpickle, never moves anything twice or by half.
    """
    _MOVES.append({})
    try:
        try:
            data = _fast_dumps(obj, 5)
        except Exception:
            _MOVES[-1].clear()
            buffer = io.BytesIO()
            _ShardPickler(buffer, protocol=5).dump(obj)
            data = buffer.getvalue()
    except BaseException:
        _MOVES.pop()
        raise
    for commit in _MOVES.pop().values():
        commit()
    return data


# One dict per dumps() in progress (they nest: a commit may pickle).
_MOVES: list[dict[int, Callable[[], None]]] = []


def register_move(obj: object, commit: Callable[[], None]) -> None:
    """Called by an object's ``__reduce__``: run ``commit`` once the pickle
    that contains ``obj`` is complete. Outside :func:`dumps` this raises:
    such objects cross shards only through shardio."""
    if not _MOVES:
        raise TypeError(
            f"{type(obj).__name__} can be sent to another shard only through shardio "
            "(as an argument to run_on or start_soon(shard=...), or through a channel), "
            "not pickled directly"
        )
    _MOVES[-1][id(obj)] = commit


_fast_dumps = pickle.dumps


loads = pickle.loads


# Importable functions, the most common thing sent, travel as a short
# "module:qualname" string: cheaper to pickle than pickle's own global
# reference, and resolved once per shard through a cache.
_REFS: dict[Any, str] = {}
_RESOLVED: dict[str, Any] = {}
_CACHE_LIMIT = 4096


def function_spec(fn: Any) -> str | bytes:
    """What to send for the function of a call: a reference or a pickle."""
    try:
        ref = _REFS.get(fn)
    except TypeError:  # unhashable callable
        ref = None
    if ref is not None:
        return ref
    if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)) and _importable(fn):
        ref = f"{fn.__module__}:{fn.__qualname__}"
        if len(_REFS) < _CACHE_LIMIT:
            _REFS[fn] = ref
        return ref
    return dumps(fn)


def resolve_function(spec: str | bytes) -> Any:
    """The function :func:`function_spec` described, in this shard."""
    if isinstance(spec, bytes):
        return loads(spec)
    fn = _RESOLVED.get(spec)
    if fn is None:
        module_name, _, qualname = spec.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
        fn = target
        if len(_RESOLVED) < _CACHE_LIMIT:
            _RESOLVED[spec] = fn
    return fn


def describe_unpicklable(values: dict[str, Any], shard: int) -> TypeError | None:
    """Find which of ``values`` (name -> object) cannot be pickled.

    Returns a TypeError naming it and the destination shard, or None if all
    pickle on their own.
    """
    for name, value in values.items():
        try:
            dumps(value)
        except Exception as exc:
            error = TypeError(
                f"{name} ({type(value).__name__}) cannot be sent to shard {shard}: {exc}. "
                "Only picklable objects cross shards: pass plain data, importable "
                "functions, or closures over picklable values"
            )
            error.__cause__ = exc
            return error
    return None


# -- exceptions ----------------------------------------------------------------


def pack_exception(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """An exception for the trip: (pickled or None, type name, message, traceback text)."""
    text = "".join(traceback.format_exception(exc))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    try:
        blob: bytes | None = dumps(exc)
    except Exception:
        blob = None
    return blob, type_name, str(exc), text


def unpack_exception(packed: tuple[bytes | None, str, str, str], shard: int) -> BaseException:
    """Rebuild an exception packed on ``shard``, with its remote traceback as cause."""
    blob, type_name, message, text = packed
    cause = RemoteTraceback(f"traceback from shard {shard}:\n{text}")
    exc: BaseException | None = None
    if blob is not None:
        try:
            exc = loads(blob)
        except BaseException:  # whatever user rebuilding code raises
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message, text, shard)
    exc.__cause__ = cause
    return exc
