"""RunVar: a variable whose value lives as long as one run (one shard)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from ._state import current_runner

T = TypeVar("T")

_NO_DEFAULT: Any = object()


class RunVarToken(Generic[T]):
    """Returned by :meth:`RunVar.set`; pass it to :meth:`RunVar.reset`."""

    __slots__ = ("_redeemed", "previous_value", "var")

    def __init__(self, var: RunVar[T], previous_value: Any) -> None:
        self.var = var
        self.previous_value = previous_value
        self._redeemed = False


class RunVar(Generic[T]):
    """Like a :class:`contextvars.ContextVar`, but one value per run.

    For state that belongs to the scheduler of this shard (a connection
    pool, a cache): every task sees the same value, and a new
    :func:`shardio.run` starts from the default again.
    """

    __slots__ = ("_default", "_name")

    def __init__(self, name: str, default: T = _NO_DEFAULT) -> None:
        self._name = name
        self._default = default

    def get(self, default: T = _NO_DEFAULT) -> T:
        """The value in this run; else ``default``; else the var's default."""
        try:
            return cast(T, current_runner().run_vars[self])
        except KeyError:
            if default is not _NO_DEFAULT:
                return default
            if self._default is not _NO_DEFAULT:
                return self._default
            raise LookupError(f"RunVar {self._name!r} has no value in this run") from None

    def set(self, value: T) -> RunVarToken[T]:
        """Set the value for this run; return a token for :meth:`reset`."""
        run_vars = current_runner().run_vars
        token = RunVarToken(self, run_vars.get(self, _NO_DEFAULT))
        run_vars[self] = value
        return token

    def reset(self, token: RunVarToken[T]) -> None:
        """Restore the value from before the :meth:`set` that gave ``token``."""
        if token.var is not self:
            raise ValueError("this token was made by another RunVar")
        if token._redeemed:
            raise ValueError("this token was already used to reset the RunVar")
        token._redeemed = True
        run_vars = current_runner().run_vars
        if token.previous_value is _NO_DEFAULT:
            run_vars.pop(self, None)
        else:
            run_vars[self] = token.previous_value

    def __repr__(self) -> str:
        return f"<RunVar name={self._name!r}>"
