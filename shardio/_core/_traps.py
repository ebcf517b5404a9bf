"""The only functions that yield to the scheduler.

Every blocking operation in shardio ends in one of the two traps below. A
task's coroutine yields a trap message; the run loop (``_run.py``) reads it and
decides when, and with what value or exception, to resume the task.

* ``_CHECKPOINT``: "put me at the back of the run queue". The scheduler sends
  the task itself back, so the resumed trap can check for a pending
  cancellation *after* the schedule point, when it has the freshest view
  (deadlines are processed between batches).
* ``_WaitTaskRescheduled(abort_func)``: "park me until someone calls
  :func:`reschedule`". While parked, a cancellation calls ``abort_func`` to ask
  whether the wait can be abandoned.

Anything else a coroutine yields came from another async library (an asyncio
future, say); the scheduler throws a ``TypeError`` into the task naming it.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from ._ki import enable_ki_protection

if TYPE_CHECKING:
    from ._run import Task

RaiseCancelT: TypeAlias = Callable[[], NoReturn]


class Abort(enum.Enum):
    """What an abort function answers when a parked task is cancelled.

    ``SUCCEEDED``: the operation was undone; the scheduler resumes the task
    with :class:`Cancelled`. ``FAILED``: the operation cannot be undone now;
    whoever completes it will call :func:`reschedule` later.
    """

    SUCCEEDED = 1
    FAILED = 2


class _Checkpoint:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<shardio checkpoint trap>"


_CHECKPOINT = _Checkpoint()


class _WaitTaskRescheduled:
    __slots__ = ("abort_func",)

    def __init__(self, abort_func: Callable[[RaiseCancelT], Abort]) -> None:
        self.abort_func = abort_func


@enable_ki_protection
@types.coroutine
def checkpoint() -> Generator[Any, Any, None]:
    """A schedule point and a cancel point.

    Lets other tasks run, then raises :class:`Cancelled` if this task's
    enclosing cancel scope is cancelled. Hot path: one yield, one attribute test.
    """
    task: Task = yield _CHECKPOINT
    status = task._cancel_status
    if status.effectively_cancelled:
        status.raise_cancelled()


@enable_ki_protection
@types.coroutine
def cancel_shielded_checkpoint() -> Generator[Any, Any, None]:
    """A schedule point that is never a cancel point."""
    yield _CHECKPOINT


@enable_ki_protection
@types.coroutine
def wait_task_rescheduled(abort_func: Callable[[RaiseCancelT], Abort]) -> Generator[Any, Any, Any]:
    """Park the current task until :func:`reschedule` is called on it.

    Returns the value (or raises the error) passed to :func:`reschedule`. If
    the task is cancelled while parked, ``abort_func(raise_cancel)`` is called:
    it undoes the operation and returns :attr:`Abort.SUCCEEDED` (the task then
    raises :class:`Cancelled`, via ``raise_cancel``), or returns
    :attr:`Abort.FAILED` and arranges for a later :func:`reschedule`.
    """
    return (yield _WaitTaskRescheduled(abort_func))
