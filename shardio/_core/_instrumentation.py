"""Instruments: objects whose methods the scheduler calls at defined moments.

The hooks are Trio's: ``before_run``, ``after_run``, ``task_spawned``,
``task_scheduled``, ``before_task_step``, ``after_task_step``,
``task_exited``, ``before_io_wait``, ``after_io_wait``. An instrument defines
any subset; only the hooks some instrument defines cost anything.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("shardio.instruments")

HOOKS = (
    "before_run",
    "after_run",
    "task_spawned",
    "task_scheduled",
    "before_task_step",
    "after_task_step",
    "task_exited",
    "before_io_wait",
    "after_io_wait",
)


class Instrument:
    """Base class for instruments; override the hooks you need.

    An instrument that raises is logged and removed, so a broken debugging
    aid never takes the program down.
    """

    def before_run(self) -> None:
        """Called once, before the main task starts."""

    def after_run(self) -> None:
        """Called once, after every task has exited."""

    def task_spawned(self, task: Any) -> None:
        """Called when ``task`` is created."""

    def task_scheduled(self, task: Any) -> None:
        """Called when ``task`` becomes runnable."""

    def before_task_step(self, task: Any) -> None:
        """Called just before ``task`` runs a step."""

    def after_task_step(self, task: Any) -> None:
        """Called just after ``task`` ran a step."""

    def task_exited(self, task: Any) -> None:
        """Called when ``task`` finished."""

    def before_io_wait(self, timeout: float) -> None:
        """Called before the scheduler waits (up to ``timeout`` s) for I/O."""

    def after_io_wait(self, timeout: float) -> None:
        """Called after the wait for I/O."""


class Instruments(dict[str, dict[Any, None]]):
    """Maps each hook name to the instruments that define it.

    A hook name is present only while some instrument defines it, so the run
    loop tests ``"hook" in instruments`` (or the dict's truth) on hot paths.
    """

    __slots__ = ()

    def __init__(self, incoming: Any = ()) -> None:
        super().__init__()
        for instrument in incoming:
            self.add_instrument(instrument)

    def add_instrument(self, instrument: Any) -> None:
        if any(instrument in hooked for hooked in self.values()):
            return
        defined = False
        for name in HOOKS:
            method = getattr(instrument, name, None)
            if method is None:
                continue
            # Skip hooks inherited unchanged from the no-op base class.
            if getattr(type(instrument), name, None) is getattr(Instrument, name):
                continue
            self.setdefault(name, {})[instrument] = None
            defined = True
        if not defined:
            # Remember instruments that hook nothing, so remove_instrument works.
            self.setdefault("", {})[instrument] = None

    def remove_instrument(self, instrument: Any) -> None:
        found = False
        for name in list(self):
            hooked = self[name]
            if instrument in hooked:
                found = True
                del hooked[instrument]
                if not hooked:
                    del self[name]
        if not found:
            raise KeyError(f"instrument {instrument!r} is not installed")

    def call(self, hook: str, *args: Any) -> None:
        for instrument in list(self.get(hook, ())):
            try:
                getattr(instrument, hook)(*args)
            except BaseException:
                self.remove_instrument(instrument)
                logger.exception(
                    "instrument %r raised in %s; it has been removed", instrument, hook
                )
