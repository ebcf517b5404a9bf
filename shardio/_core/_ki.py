"""Ctrl-C: which code a ``KeyboardInterrupt`` may interrupt, and the stop signals.

Why code is marked
------------------
The first Ctrl-C (or SIGTERM) never raises anywhere: the handler records the
signal and the scheduler, at its next pass, cancels every task in order (see
``_run.py``). That needs the scheduler to get control back. A task that spins
without a checkpoint never gives it back, so a *second* Ctrl-C raises
``KeyboardInterrupt`` right where the main thread is -- as plain Python does --
provided that spot is the user's code. If it is shardio's own code in the
middle of an update (a parking lot half unparked, a channel half closed, an
io_uring entry half written), an exception there would leave the state the
orderly shutdown depends on broken, and the interrupt is held back instead:
the stop that is already under way carries on.

Telling the two apart by module name does not work: user code constantly runs
*under* library frames (a ``serve_tcp`` handler is called by shardio_net, a
function sent with ``run_on`` is called by the messenger), so "a shardio frame
is on the stack" would protect almost everything. As in Trio
(``trio/_core/_ki.py``), code is marked instead, explicitly, per function:

* :func:`enable_ki_protection` marks a function's code object *protected*:
  library code that updates shared state.
* :func:`disable_ki_protection` marks it *unprotected*: the thin frame
  through which library code calls back into user code.
* A task carries a default, used when none of its frames is marked: system
  tasks (``spawn_system_task``) are protected, user tasks are not.

To decide, the signal handler walks outwards from the interrupted frame. The
first marked frame it meets decides. Reaching the running task's outermost
coroutine frame without a mark, the task's default decides. Anything else --
the run loop, pollers, callbacks, start-up and shutdown -- is protected (the
run loop's own frames are marked).

Marks live on code objects, not functions, so they work the same for plain,
async, generator and async generator functions, whose frames all share their
function's code object. A mark costs nothing until a signal arrives.
"""

from __future__ import annotations

import signal
import sys
import threading
import weakref
from types import CodeType, FrameType
from typing import Any, Protocol, TypeVar

from ._state import GLOBAL_RUN_CONTEXT


class _HasCode(Protocol):
    __code__: CodeType


F = TypeVar("F", bound=_HasCode)

#: Tasks protected where none of their frames is marked: the system tasks
#: (user tasks are not). A weak set: the scheduler adds to it only when it
#: spawns a system task, so spawning a user task costs nothing for this.
PROTECTED_TASKS: weakref.WeakSet[Any] = weakref.WeakSet()

# id(code) -> (code, protected). The code object is held so that its id is
# never reused: marked code belongs to functions defined in source, so there
# are as many entries as marked definitions, however many closures run them.
_MARKS: dict[int, tuple[CodeType, bool]] = {}


def _mark(fn: Any, protected: bool, what: str) -> None:
    code = getattr(fn, "__code__", None)
    if not isinstance(code, CodeType):
        raise TypeError(
            f"{what} decorates a Python function (def, async def, a generator or an "
            f"async generator), not {fn!r}; put it below @staticmethod/@classmethod"
        )
    _MARKS[id(code)] = (code, protected)


def enable_ki_protection(fn: F, /) -> F:
    """Decorator: ``KeyboardInterrupt`` never interrupts ``fn``'s own code,
    nor code it calls that is not marked itself.

    For library code that must not stop halfway. A second Ctrl-C arriving
    there is held back; the orderly stop started by the first carries on.
    """
    _mark(fn, True, "enable_ki_protection")
    return fn


def disable_ki_protection(fn: F, /) -> F:
    """Decorator: ``KeyboardInterrupt`` may interrupt ``fn`` and the unmarked
    code it calls, even when ``fn`` is called from protected code.

    For the frame through which a library calls user code.
    """
    _mark(fn, False, "disable_ki_protection")
    return fn


def _task_frame_and_default() -> tuple[FrameType | None, bool]:
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    task = None if runner is None else runner.current_task
    if task is None:
        return None, True
    coro = task._coro
    frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    return frame, task in PROTECTED_TASKS


def ki_protection_enabled(frame: FrameType | None) -> bool:
    """Whether a ``KeyboardInterrupt`` at ``frame`` must be held back."""
    task_frame, task_default = _task_frame_and_default()
    marks = _MARKS
    while frame is not None:
        mark = marks.get(id(frame.f_code))
        if mark is not None and mark[0] is frame.f_code:
            return mark[1]
        if frame is task_frame:
            return task_default
        frame = frame.f_back
    return True


def currently_ki_protected() -> bool:
    """Whether a second Ctrl-C arriving now would be held back here.

    True in library code marked with :func:`enable_ki_protection`, in system
    tasks and in the scheduler itself; False in the user's tasks.
    """
    return ki_protection_enabled(sys._getframe(1))


# ---------------------------------------------------------------------------
# The stop signals
# ---------------------------------------------------------------------------


class StopSignals:
    """SIGINT and SIGTERM, turned into a request to stop the run.

    Installed by :func:`shardio.run` before it forks any shard, so that a
    Ctrl-C at any moment of start-up is recorded rather than raised inside
    whatever runs then (an at-fork hook of the logging module, say). The
    scheduler reads :attr:`signum` on every pass. Only signals whose handler
    is still Python's default are taken over, and only in the main thread.
    """

    def __init__(self) -> None:
        #: The first stop signal received, or None.
        self.signum: int | None = None
        #: Whether the run raised the exception for it (see :meth:`restore`).
        self.raised = False
        self._installed: list[tuple[int, Any]] = []

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT and not ki_protection_enabled(frame):
            # A second Ctrl-C: the first could not stop this code.
            raise KeyboardInterrupt

    @enable_ki_protection
    def install(self) -> None:
        """Take over SIGINT and SIGTERM where they have their default handlers.

        If a signal interrupts the installation (``signal.signal`` runs
        pending handlers before it changes anything), what was installed is
        undone before the ``KeyboardInterrupt`` propagates.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            for signum, default in (
                (signal.SIGINT, signal.default_int_handler),
                (signal.SIGTERM, signal.SIG_DFL),
            ):
                if signal.getsignal(signum) is default:
                    signal.signal(signum, self._handler)
                    self._installed.append((signum, default))
        except BaseException:
            self.restore()
            raise

    @enable_ki_protection
    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced.

        A signal recorded too late for the run to act on (after its last
        look, before this) is not dropped: it is raised here, as the
        default handler would have raised it a moment later.
        """
        while self._installed:
            signum, default = self._installed.pop()
            if signal.getsignal(signum) == self._handler:
                signal.signal(signum, default)
        if self.signum is not None and not self.raised:
            self.raised = True
            raise stop_exception(self.signum)


def stop_exception(signum: int) -> BaseException:
    """What ``run()`` raises after stopping for ``signum``."""
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(143)
