"""Tasks, the runner, and the run loop.

The run loop
------------
One pass of :meth:`Runner.loop` does, in order:

1. run callbacks queued from other threads (:meth:`Token.run_sync_soon`);
2. wait for I/O -- with timeout 0 if tasks are runnable, else until the next
   deadline (or the idle cushion of :func:`wait_all_tasks_blocked`, or the
   MockClock's autojump threshold);
3. expire deadlines (cancelling their scopes, which wakes parked tasks);
4. run a *batch*: every task that was runnable when the batch began, each for
   one step (until its next trap). Tasks made runnable during the batch wait
   for the next pass, so one busy task cannot starve the others or I/O.

Pollers (see :class:`Poller`: rings from other shards, io_uring) are polled
at the start of every pass and flushed after the batch -- both at once when
nothing is runnable, else at most every ``_POLLER_INTERVAL``, so that a task
that sends (or receives) on every step still moves batches.

While tasks are runnable, step 2 still polls, but at most once every
``_BUSY_POLL_INTERVAL`` seconds: an ``epoll_wait`` costs about a microsecond,
as much as a task step, and a batch of two ping-ponging tasks would otherwise
pay one per switch. I/O readiness is noticed within that interval (Seastar
polls at a similar cadence, its task quota).

The batch order is FIFO: the order tasks became runnable. Trio randomizes it;
correct programs cannot tell, and FIFO makes runs reproducible.

Hot path
--------
The batch loop and the checkpoint trap are written for speed: locals instead
of attribute chains, no allocation per step; whether any instrument is
installed is tested once per batch: with one, the batch runs through a copy
of the loop with the per-step hooks (a test keeps the two equivalent), and
the code after the batch -- where pollers flush -- is one place for both.
A task step is ``task.context.run(coro.send, value)``: every task runs in
its own :mod:`contextvars` context, copied from its spawner.

A task started with ``start_soon`` of a plain ``async def`` function whose
arguments provably bind gets its coroutine object only at its first step (it
keeps the function and the argument tuple until then). Nothing observable
changes -- calling an ``async def`` function runs no code -- but a burst of
spawned tasks holds one GC-tracked object fewer each, and full garbage
collections, which traverse every live task, are most of what spawning many
tasks costs.
"""

from __future__ import annotations

import collections.abc
import contextvars
import enum
import functools
import inspect
import itertools
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from math import inf
from types import CoroutineType, FrameType, FunctionType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import outcome
import sniffio
from sortedcontainers import SortedDict

from ._asyncgens import AsyncGenerators
from ._cancel import CancelReason, CancelStatus, Deadlines
from ._exceptions import Cancelled, CancelSource, RunFinishedError, ShardioInternalError
from ._instrumentation import Instruments
from ._io_epoll import EpollIOManager
from ._ki import PROTECTED_TASKS, StopSignals, enable_ki_protection, stop_exception
from ._parking_lot import PARKING_LOT_BREAKERS, break_lots_of_exiting_task
from ._pickling import ShardLocal
from ._state import GLOBAL_RUN_CONTEXT, current_runner, current_task
from ._traps import _CHECKPOINT, Abort, RaiseCancelT, _WaitTaskRescheduled, wait_task_rescheduled

if TYPE_CHECKING:
    from ._instrumentation import Instrument
    from ._nursery import Nursery
    from ._shards import ShardState

T = TypeVar("T")
logger = logging.getLogger("shardio")

_BUSY_POLL_INTERVAL = 100e-6
# While tasks stay runnable, pollers are polled, and flushed (send their
# batches), at most this often; as soon as the run queue empties, at once. A
# producer that yields on every message thus still sends batches of many,
# and a busy consumer drains its rings in batches too.
_POLLER_INTERVAL = 50e-6
_MAX_TIMEOUT = 24 * 60 * 60.0


class _Idle(enum.IntEnum):
    """What a pass's I/O wait was shortened for, so that if it ends with
    nothing having happened, the program is idle and that is acted on."""

    #: Nothing: the wait lasts until I/O or the next deadline.
    NOTHING = 0
    #: The cushion of the earliest wait_all_tasks_blocked().
    WAIT_ALL_TASKS_BLOCKED = 1
    #: The MockClock's autojump threshold: jump the clock to the next deadline.
    AUTOJUMP = 2


# ---------------------------------------------------------------------------
# Clocks
# ---------------------------------------------------------------------------


class Clock:
    """The interface of a clock the run loop can be driven by.

    ``current_time()`` gives the time in seconds; ``deadline_to_sleep_time``
    converts an absolute deadline into the real seconds to wait for it;
    ``start_clock`` is called once when the run starts.
    """

    def start_clock(self) -> None:
        """Called once, when the run begins."""

    def current_time(self) -> float:
        """The current time, in seconds."""
        raise NotImplementedError  # an interface method: every clock defines it

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """How many real seconds to sleep to reach ``deadline``."""
        raise NotImplementedError  # an interface method: every clock defines it


class SystemClock(Clock):
    """CLOCK_MONOTONIC, unshifted.

    Unlike Trio's clock it has no random offset: every shard (every process
    on the machine) reads the same clock, which is what lets a deadline travel
    with a cross-shard call as a plain number.
    """

    current_time = staticmethod(time.monotonic)

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()


class Poller:
    """Work the scheduler checks on every pass, without a task or an fd per item.

    For event sources that are cheap to look at but expensive to wait on one
    by one: shared-memory rings from other shards, io_uring completion queues.
    Register with :func:`add_poller`. The scheduler calls, on each pass:

    * :meth:`poll` at the start: do whatever is ready, without blocking
      (reschedule tasks, run handlers); return True if anything was done;
    * :meth:`flush` at the end, after the batch of task steps, and before
      the scheduler blocks: push out what the pass produced (messages,
      submissions), once per pass, not per item.

    And when nothing is runnable, before blocking in ``epoll_wait``:
    :meth:`prepare_to_sleep` must make sure an fd in the epoll set (see
    ``add_wakeup_fd``) becomes readable when new work arrives, and return
    False if work is already there; :meth:`after_sleep` undoes that.
    """

    def poll(self) -> bool:
        """Handle what is ready; True if anything was."""
        return False

    def flush(self) -> None:
        """The pass is over: send what it produced."""

    def prepare_to_sleep(self) -> bool:
        """Arrange to be woken; False if there is work already (don't sleep)."""
        return True

    def after_sleep(self) -> None:
        """The scheduler is awake again."""


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------


class Task(ShardLocal):
    """A running coroutine, scheduled by shardio.

    Obtain it with :func:`current_task`; it is created by the scheduler
    (``start_soon``/``start``/``spawn_system_task``), never by user code.
    ``custom_sleep_data`` is free for the code that parks the task to use.
    """

    __slots__ = (
        "__weakref__",
        "_abort_func",
        "_cancel_status",
        "_child_nurseries",
        "_coro",
        "_deferred_fn",
        "_eventual_parent_nursery",
        "_name_source",
        "_next_exc",
        "_next_value",
        "_parent_nursery",
        "_runner",
        "context",
        "custom_sleep_data",
    )

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any] | None,
        runner: Runner,
        name_source: object,
        context: contextvars.Context,
        parent_nursery: Nursery | None,
        cancel_status: CancelStatus | None,
        deferred_fn: Callable[..., Coroutine[Any, Any, Any]] | None = None,
        deferred_args: tuple[Any, ...] = (),
    ) -> None:
        # Either the coroutine, or (deferred_fn, deferred_args) to make it at
        # the first step; see the module docstring.
        self._coro = coro
        self._deferred_fn = deferred_fn
        #: The :class:`contextvars.Context` this task runs in.
        self.context = context
        self.custom_sleep_data: Any = None
        self._runner = runner
        self._name_source = name_source
        self._parent_nursery = parent_nursery
        self._eventual_parent_nursery: Nursery | None = None
        # A list once the task opens a nursery. Until then a shared empty
        # tuple: one GC-tracked allocation fewer per task, which is a visible
        # share of the cost of spawning many tasks (full collections traverse
        # every live task).
        self._child_nurseries: list[Nursery] = _NO_NURSERIES  # type: ignore[assignment]
        self._cancel_status: CancelStatus = cancel_status  # type: ignore[assignment]
        self._abort_func: Callable[[RaiseCancelT], Abort] | None = None
        # While the coroutine is deferred, this holds its arguments.
        self._next_value: Any = deferred_args if deferred_fn is not None else None
        self._next_exc: BaseException | None = None

    @property
    def coro(self) -> Coroutine[Any, Any, Any]:
        """The coroutine object this task runs."""
        coro = self._coro
        if coro is None:
            coro = self._make_coro()
        return coro

    def _make_coro(self) -> Coroutine[Any, Any, Any]:
        fn = self._deferred_fn
        assert fn is not None
        coro = self._coro = fn(*self._next_value)
        self._deferred_fn = None
        self._next_value = None
        return coro

    @property
    def name(self) -> str:
        """The task's name: the one given at spawn, or the function's qualified name."""
        source = self._name_source
        if not isinstance(source, str):
            source = self._name_source = _name_of(source)
        return source

    @property
    def parent_nursery(self) -> Nursery | None:
        """The nursery this task belongs to (``None`` for the root task)."""
        return self._parent_nursery

    @property
    def eventual_parent_nursery(self) -> Nursery | None:
        """While a task started with ``nursery.start()`` has not called
        ``started()``, the nursery it will move into; otherwise ``None``."""
        return self._eventual_parent_nursery

    @property
    def child_nurseries(self) -> list[Nursery]:
        """The nurseries this task has open, outermost first."""
        return list(self._child_nurseries)

    def iter_await_frames(self) -> collections.abc.Iterator[tuple[FrameType, int]]:
        """Yield ``(frame, lineno)`` for each frame of the task's await stack."""
        coro: Any = self.coro
        while coro is not None:
            if hasattr(coro, "cr_frame"):
                frame, coro = coro.cr_frame, coro.cr_await
            elif hasattr(coro, "gi_frame"):
                frame, coro = coro.gi_frame, coro.gi_yieldfrom
            else:
                return
            if frame is None:
                return
            yield frame, frame.f_lineno

    def __repr__(self) -> str:
        return f"<Task {self.name!r} at {id(self):#x}>"

    # -- cancellation ----------------------------------------------------------

    def _activate_cancel_status(self, status: CancelStatus | None) -> None:
        old = self._cancel_status
        if old is not None:
            del old.tasks[self]
        self._cancel_status = status  # type: ignore[assignment]
        if status is not None:
            status.tasks[self] = None
            if status.effectively_cancelled:
                self._attempt_delivery_of_any_pending_cancel()

    def _attempt_abort(self, raise_cancel: RaiseCancelT) -> None:
        # Only a task parked in wait_task_rescheduled has an abort function.
        # It decides whether the wait can be abandoned; if so, the task
        # resumes by raising what raise_cancel raises.
        abort_func = self._abort_func
        if abort_func is None:
            return
        success = abort_func(raise_cancel)
        if type(success) is not Abort:
            raise ShardioInternalError(
                f"abort function {abort_func!r} must return Abort.SUCCEEDED or "
                f"Abort.FAILED, not {success!r}"
            )
        if success is Abort.SUCCEEDED:
            self._runner.reschedule(self, outcome.capture(raise_cancel))

    def _attempt_delivery_of_any_pending_cancel(self) -> None:
        if self._abort_func is None:
            return
        status = self._cancel_status
        if not status.effectively_cancelled:
            return
        self._attempt_abort(status.raise_cancelled)


_NO_NURSERIES = ()


def _name_of(source: object) -> str:
    while isinstance(source, functools.partial):
        source = source.func
    module = getattr(source, "__module__", None)
    qualname = getattr(source, "__qualname__", None) or getattr(source, "__name__", None)
    if qualname is None:
        return repr(source)
    return f"{module}.{qualname}" if module else qualname


# ---------------------------------------------------------------------------
# Checking what the user handed us
# ---------------------------------------------------------------------------


_OTHER_LIBRARIES = ("asyncio", "trio", "anyio", "twisted", "tornado", "curio", "concurrent.futures")


def _library_of_module(module: str) -> str | None:
    module = module.lstrip("_")  # C accelerators: _asyncio
    for lib in _OTHER_LIBRARIES:
        if module == lib or module.startswith(lib + "."):
            return lib
    return None


def _looks_like_other_library(value: object) -> str | None:
    if isinstance(value, type):  # trio's traps yield classes
        lib = _library_of_module(value.__module__ or "")
        if lib is not None:
            return lib
    for klass in type(value).__mro__:
        lib = _library_of_module(klass.__module__ or "")
        if lib is not None:
            return lib
    return None


def coroutine_or_error(
    async_fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], what: str = "start_soon"
) -> Coroutine[Any, Any, Any]:
    """Call ``async_fn(*args)`` and check that it gave a coroutine.

    Turns the common mistakes into a ``TypeError`` that says what to change.
    Hot path (every spawn): one call and one type test when all is well.
    """
    try:
        coro = async_fn(*args)
    except TypeError:
        explain_uncallable(async_fn, what)
        raise
    if type(coro) is CoroutineType:
        return coro
    checked: Coroutine[Any, Any, Any] = check_coroutine(coro, async_fn, what)
    return checked


def explain_uncallable(async_fn: object, what: str, lead: str = "") -> None:
    """If ``async_fn`` is a coroutine object -- the classic mistake of calling
    the function instead of passing it -- raise an error that shows the fix.

    ``lead`` is what comes before the function in a call of ``what``
    (``"shard, "`` for ``run_on``)."""
    if type(async_fn) is FunctionType:
        return  # the usual case, without the ABC check (run_on's hot path)
    if isinstance(async_fn, collections.abc.Coroutine):
        # Close it, so Python does not also warn "never awaited".
        async_fn.close()
        raise TypeError(
            f"{what}() was given a coroutine object ({async_fn!r}); pass the async "
            f"function and its arguments separately: {what}({lead}fn, arg1, arg2), not "
            f"{what}({lead}fn(arg1, arg2))"
        ) from None


def check_coroutine(coro: Any, async_fn: Callable[..., Any], what: str) -> Any:
    """``async_fn`` returned ``coro``, not a native coroutine: accept the other
    coroutine kinds, or explain what went wrong."""
    if inspect.isgenerator(coro) and coro.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE:
        return coro  # a @types.coroutine generator
    if isinstance(coro, collections.abc.Coroutine):
        return coro
    if inspect.isasyncgen(coro):
        raise TypeError(
            f"{what}() expected an async function, but {_name_of(async_fn)} is an async "
            "generator function; iterate over it inside an async function instead"
        )
    lib = _looks_like_other_library(coro)
    if lib is not None:
        raise TypeError(
            f"{what}() expected an async function, but {_name_of(async_fn)} returned a "
            f"{type(coro).__name__} from {lib}: objects of other async libraries cannot "
            "run under shardio"
        )
    raise TypeError(
        f"{what}() expected an async function, but {_name_of(async_fn)} is synchronous "
        f"(it returned {type(coro).__name__}); define it with 'async def', or call it "
        "directly instead of starting it as a task"
    )


# ---------------------------------------------------------------------------
# Threads and signals talking to the run loop
# ---------------------------------------------------------------------------


class Token:
    """A handle for talking to a run from outside it (another thread, a
    signal handler). Get it with :func:`current_token`."""

    __slots__ = ("__weakref__", "_runner")

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    @enable_ki_protection
    def run_sync_soon(self, sync_fn: Callable[..., object], *args: object) -> None:
        """Schedule ``sync_fn(*args)`` to run in the run loop soon.

        Safe to call from any thread and from signal handlers. Callbacks run
        in the order they were queued, outside any task; one that raises
        crashes the run with :class:`ShardioInternalError`. Raises
        :class:`RunFinishedError` if the run is over.
        """
        runner = self._runner
        # The lock makes "not done yet, so queued" atomic against the end of
        # the run, which drains the queue once more after setting ``done``:
        # a callback is either run or refused, never silently dropped. It is
        # reentrant because a signal handler runs between two bytecodes of
        # the main thread, possibly inside this very block.
        with runner.entry_lock:
            if runner.done:
                raise RunFinishedError("the shardio.run() this token belongs to has finished")
            runner.entry_queue.append((sync_fn, args))
            # Under the lock too: the run closes the wakeup socket once done.
            runner.io_manager.wakeup.wakeup_thread_and_signal_safe()


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------


@attrs.frozen
class RunStatistics:
    """What :func:`current_statistics` reports about the run loop."""

    tasks_living: int
    tasks_runnable: int
    seconds_to_next_deadline: float
    io_statistics: dict[str, object]
    run_sync_soon_queue_size: int


class Runner:
    """The state of one :func:`shardio.run` on one shard."""

    def __init__(self, clock: Clock, instruments: Instruments) -> None:
        self.clock = clock
        self.instruments = instruments
        self.deadlines = Deadlines()
        self.io_manager = EpollIOManager(self)
        self.runq: list[Task] = []
        self.tasks_living = 0
        self.init_task: Task | None = None
        self.main_task: Task | None = None
        # Two tiers of tasks (see init()): the user tier holds the main task
        # and the shard services that run user code (remote calls); the
        # system tier, around it, the services that code relies on
        # (spawn_system_task: the disk backend, say). The system tier is
        # cancelled only once the user tier has finished.
        self.system_nursery: Nursery | None = None
        self.user_nursery: Nursery | None = None
        self.main_value: Any = None
        self.main_exc: BaseException | None = None
        self.system_exc: BaseException | None = None
        self.waiting_for_idle: SortedDict = SortedDict()
        self._idle_seq = itertools.count()
        self.clock_autojump_threshold = inf
        self.entry_queue: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self.token = Token(self)
        self.done = False
        self.entry_lock = threading.RLock()
        self.run_vars: dict[Any, Any] = {}
        self.pollers: list[Poller] = []
        self.idle_poll = 0.0
        self.shard_state: ShardState | None = None
        #: The task running a step right now; None between steps.
        self.current_task: Task | None = None
        # For the stall detector (_stall.py): passes made, and whether the
        # loop is blocked waiting for I/O (which is not a stall).
        self.passes = 0
        self.waiting_for_io = False
        # Called when the main task has exited, before the system tasks are
        # cancelled (the shards use it to stop the other shards).
        self.on_main_exit: list[Callable[[], object]] = []
        # SIGINT or SIGTERM asking the run to stop (see _ki.py); a child
        # shard's is never installed.
        self.stop_signals = StopSignals()
        self.stop_delivered = False
        self.asyncgens = AsyncGenerators(self)
        self.system_context = contextvars.copy_context()
        # Guest mode (_guest.py): a worker thread waits for I/O while the
        # host's loop runs; what makes work for the run must end that wait.
        self.is_guest = False
        self.guest_waiting = False

    # -- scheduling ---------------------------------------------------------------

    @enable_ki_protection
    def reschedule(self, task: Task, next_send: outcome.Outcome[Any] | None = None) -> None:
        if task._abort_func is None:
            raise ShardioInternalError(
                f"reschedule({task!r}) called, but it is not parked in wait_task_rescheduled"
            )
        task._abort_func = None
        if self.guest_waiting:
            self.wake_guest()
        if next_send is None:
            task._next_value = None
        elif isinstance(next_send, outcome.Value):
            task._next_value = next_send.value
        else:
            assert isinstance(next_send, outcome.Error)
            task._next_exc = next_send.error
        self.runq.append(task)
        if "task_scheduled" in self.instruments:
            self.instruments.call("task_scheduled", task)

    def wake_guest(self) -> None:
        """Guest mode: end the worker's wait for I/O, so that the host runs
        a tick soon (work was made by host code between ticks)."""
        self.guest_waiting = False
        self.io_manager.wakeup.wakeup_thread_and_signal_safe()

    def spawn_impl(
        self,
        async_fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        nursery: Nursery | None,
        name: object,
        *,
        system_task: bool = False,
        context: contextvars.Context | None = None,
        what: str = "start_soon",
    ) -> Task:
        coro = coroutine_or_error(async_fn, args, what)
        return self.spawn_coro(
            coro, nursery, async_fn if name is None else name, system_task, context
        )

    def spawn_coro(
        self,
        coro: Coroutine[Any, Any, Any] | None,
        nursery: Nursery | None,
        name: object,
        system_task: bool = False,
        context: contextvars.Context | None = None,
        deferred_fn: Callable[..., Coroutine[Any, Any, Any]] | None = None,
        deferred_args: tuple[Any, ...] = (),
    ) -> Task:
        """Create a task for ``coro`` (or, deferred, ``deferred_fn(*deferred_args)``)
        in ``nursery`` and queue its first step. Hot path."""
        if nursery is not None and nursery._closed:
            if coro is not None:
                coro.close()
            raise RuntimeError(
                "this nursery is closed to new tasks: its 'async with' block has ended "
                "and all its children have exited"
            )
        if context is None:
            context = self.system_context.copy() if system_task else contextvars.copy_context()
        if nursery is None:
            task = Task(coro, self, name, context, None, None)
        else:
            # A fresh task has no abort function, so there is no pending
            # cancellation to offer it yet: attach it to the status directly.
            status = nursery._cancel_status
            task = Task(coro, self, name, context, nursery, status, deferred_fn, deferred_args)
            status.tasks[task] = None
            nursery._children[task] = None
        if system_task or nursery is None:
            # A second Ctrl-C is held back in its unmarked code (_ki.py).
            PROTECTED_TASKS.add(task)
        self.tasks_living += 1
        if self.guest_waiting:
            self.wake_guest()
        # A fresh coroutine's first send must be None, which _next_value is.
        self.runq.append(task)
        if self.instruments:
            self.instruments.call("task_spawned", task)
            self.instruments.call("task_scheduled", task)
        return task

    def task_exited(self, task: Task, value: Any, exc: BaseException | None) -> None:
        # Hot path (every task ends here): the common case -- no nurseries
        # left open, no misnesting, no lock held, not the main task -- costs
        # a handful of tests.
        status = task._cancel_status
        if status is None:  # the root task: it has no nursery and no scope
            self.tasks_living -= 1
            self.system_exc = exc
            if "task_exited" in self.instruments:
                self.instruments.call("task_exited", task)
            return
        if task._child_nurseries or status.abandoned_by_misnesting:
            exc = self._misnested_exit(task, exc)
        if task in PARKING_LOT_BREAKERS:
            break_lots_of_exiting_task(task)
        del status.tasks[task]
        task._cancel_status = None  # type: ignore[assignment]
        self.tasks_living -= 1
        if self.instruments and "task_exited" in self.instruments:
            self.instruments.call("task_exited", task)
        if task is self.main_task:
            self.main_value, self.main_exc = value, exc
            exc = None
            for callback in self.on_main_exit:
                callback()
            assert self.user_nursery is not None
            self.user_nursery.cancel_scope._cancel(CancelReason("shutdown"))
        # Drop what the finished task no longer needs before the parent
        # (possibly) wakes up.
        task._next_value = None
        task._parent_nursery._child_finished(task, exc)  # type: ignore[union-attr]

    def _misnested_exit(self, task: Task, exc: BaseException | None) -> BaseException | None:
        if task._child_nurseries:
            # The task finished while still inside a nursery it opened (it was
            # abandoned in a generator). Those nurseries can never be exited.
            for nursery in task._child_nurseries:
                nursery.cancel_scope._cancel(
                    CancelReason("nursery", "its parent task exited without closing it")
                )
                nursery._closed = True
        elif task._cancel_status.parent is not None:
            # An inner scope was abandoned but the task's own tree is intact.
            return exc
        from ._cancel import MISNESTING_ADVICE

        error = RuntimeError(
            f"cancel scope misnesting: a cancel scope around {task!r} was closed "
            f"before the task exited{MISNESTING_ADVICE}"
        )
        error.__context__ = exc
        return error

    # -- the run loop -----------------------------------------------------------------

    async def init(
        self,
        main_coro: Coroutine[Any, Any, Any],
        main_name: object,
        services_coro: Coroutine[Any, Any, None] | None,
    ) -> None:
        """The root task: the two tiers of the run, and their order of ending.

        The user tier ends first: the main task exits (or a stop signal, or a
        crashed shard, cancels the tier) and every task that may run user
        code -- the main task's tree, remote calls served here -- unwinds,
        with every service still up: a ``finally`` that closes a file or
        calls another shard works during shutdown as at any other time.
        Then the async generators still suspended are closed, services still
        up. Only then is the system tier cancelled: the disk backend, thread
        pools and the like close after the last user code has run.
        """
        from ._nursery import open_nursery

        async with open_nursery() as system_nursery:
            self.system_nursery = system_nursery
            async with open_nursery() as user_nursery:
                self.user_nursery = user_nursery
                if services_coro is not None:
                    self.spawn_coro(
                        services_coro, user_nursery, "<shard services>", system_task=True
                    )
                self.main_task = self.spawn_coro(
                    main_coro, user_nursery, main_name, context=self.system_context.copy()
                )
            await self.asyncgens.close_remaining()
            system_nursery.cancel_scope._cancel(CancelReason("shutdown"))
        # What the system tasks abandoned while they unwound.
        await self.asyncgens.close_remaining()

    def handle_stop_signal(self) -> None:
        """An orderly Ctrl-C or SIGTERM: cancel the user tier; run() then raises."""
        self.stop_delivered = True
        signum = self.stop_signals.signum
        source: CancelSource = "KeyboardInterrupt" if signum == signal.SIGINT else "shutdown"
        assert self.user_nursery is not None
        self.user_nursery.cancel_scope._cancel(
            CancelReason(source, f"{signal.Signals(signum or 0).name} received")
        )

    @enable_ki_protection
    def lifecycle(
        self,
        coro: Coroutine[Any, Any, Any],
        main_name: object,
        services_coro: Coroutine[Any, Any, None] | None,
        stall_threshold: float | None,
        *,
        pause_after_setup: bool = False,
    ) -> Generator[float, list[tuple[int, int]], outcome.Outcome[Any]]:
        """The whole of a run in this thread, as a generator: set up, the
        loop (:meth:`steps`: it yields each blocking wait), tear down.
        Returns the run's outcome: the main task's value or exception, or
        what a stop signal or a failed system task makes of it.
        ``pause_after_setup`` (guest mode) yields once, with no timeout,
        once the run exists and before any task runs."""
        stall_detector = None
        GLOBAL_RUN_CONTEXT.runner = self
        try:
            if stall_threshold is not None:
                from ._stall import StallDetector

                shard = 0 if self.shard_state is None else self.shard_state.index
                stall_detector = StallDetector(self, stall_threshold, shard)
                stall_detector.start()
            self.io_manager.wakeup.wakeup_on_signals()
            self.asyncgens.install()
            self.clock.start_clock()
            if "before_run" in self.instruments:
                self.instruments.call("before_run")
            self.init_task = self.spawn_coro(
                self.init(coro, main_name, services_coro), None, "<init>", system_task=True
            )
            try:
                if pause_after_setup:
                    yield -1.0
                yield from self.steps()
                # Callbacks queued after the loop's last look at the queue, and
                # before run_sync_soon starts refusing them, still run.
                with self.entry_lock:
                    self.done = True
                self._run_entry_queue()
            except BaseException:
                self.close_abandoned_tasks()
                raise
            if "after_run" in self.instruments:
                self.instruments.call("after_run")
        finally:
            with self.entry_lock:
                self.done = True
            self.asyncgens.uninstall()
            if stall_detector is not None:
                stall_detector.stop()
            self.io_manager.close()
            del GLOBAL_RUN_CONTEXT.runner
        return self._outcome()

    def _outcome(self) -> outcome.Outcome[Any]:
        if self.system_exc is not None:
            error = ShardioInternalError("a system task raised an exception; the run was stopped")
            error.__cause__ = self.system_exc
            return outcome.Error(error)
        signum = self.stop_signals.signum
        if signum is not None:
            self.stop_signals.raised = True
            stop = stop_exception(signum)
            main_exc = self.main_exc
            if main_exc is not None and not only_cancelled(main_exc):
                stop.__context__ = main_exc
            return outcome.Error(stop)
        if self.main_exc is not None:
            return outcome.Error(self.main_exc)
        return outcome.Value(self.main_value)

    def close_abandoned_tasks(self) -> None:
        """After the loop crashed: close every living coroutine, innermost first.

        Their ``finally`` blocks run now, while the run context still exists,
        instead of whenever the garbage collector finds them. Every living
        task is reachable from the root task through the nursery tree.
        """
        tasks: list[Task] = []
        todo = [self.init_task] if self.init_task is not None else []
        while todo:
            task = todo.pop()
            tasks.append(task)
            for nursery in task._child_nurseries:
                todo.extend(nursery._children)
        for task in reversed(tasks):
            self.current_task = task
            if task._coro is None:
                continue  # never started: nothing to unwind
            try:
                task.context.run(task._coro.close)
            except BaseException as exc:
                logger.debug("closing %r after a crash raised %r", task, exc)
        if tasks:
            self.current_task = None

    def _run_entry_queue(self) -> None:
        queue = self.entry_queue
        while queue:
            fn, args = queue.popleft()
            try:
                fn(*args)
            except BaseException as exc:
                raise ShardioInternalError(
                    f"a run_sync_soon callback {fn!r} raised; callbacks must not raise"
                ) from exc

    @enable_ki_protection
    def loop(self) -> None:
        """Run passes until no task is left, blocking in epoll when idle
        (:meth:`steps` is the loop; this drives it in this thread)."""
        steps = self.steps()
        get_events = self.io_manager.get_events
        try:
            timeout = next(steps)
            while True:
                timeout = steps.send(get_events(timeout))
        except StopIteration:
            pass

    @enable_ki_protection
    def steps(self) -> Generator[float, list[tuple[int, int]], None]:
        """The run loop, as a generator: it yields the timeout of each
        blocking wait for I/O and is sent the events that ended it, so that
        the wait can happen elsewhere (guest mode waits in a thread while
        the host's loop runs). Non-blocking polls happen here directly."""
        # Hot loop: see the module docstring. Locals on purpose.
        clock = self.clock
        now_fn = clock.current_time
        instruments = self.instruments
        io_manager = self.io_manager
        get_events = io_manager.get_events
        process_events = io_manager.process_events
        deadlines = self.deadlines
        waiting_for_idle = self.waiting_for_idle
        entry_queue = self.entry_queue
        pollers = self.pollers
        checkpoint_trap = _CHECKPOINT
        wait_trap = _WaitTaskRescheduled
        guest = self.is_guest
        # Enum members as locals: reading one from its class costs ~70 ns.
        idle_nothing = _Idle.NOTHING
        idle_wait_all = _Idle.WAIT_ALL_TASKS_BLOCKED
        idle_autojump = _Idle.AUTOJUMP
        last_poll = last_flush = last_pollers = now_fn()

        while self.tasks_living:
            self.passes += 1
            if entry_queue:
                self._run_entry_queue()
            now = now_fn()
            polled_work = False
            if pollers and (not self.runq or now - last_pollers >= _POLLER_INTERVAL):
                last_pollers = now
                for poller in pollers:
                    if poller.poll():
                        polled_work = True

            # -- how long may we sleep?
            idle_primed = idle_nothing
            if self.runq:
                timeout = 0.0
                poll = now - last_poll >= _BUSY_POLL_INTERVAL
            else:
                poll = True
                timeout = clock.deadline_to_sleep_time(deadlines.next_deadline())
                if timeout > _MAX_TIMEOUT:
                    timeout = _MAX_TIMEOUT
                elif timeout < 0:
                    timeout = 0.0
                if waiting_for_idle:
                    cushion = waiting_for_idle.keys()[0][0]
                    if cushion < timeout:
                        timeout = cushion
                        idle_primed = idle_wait_all
                elif self.clock_autojump_threshold < timeout:
                    timeout = self.clock_autojump_threshold
                    idle_primed = idle_autojump

            # -- I/O
            events: list[tuple[int, int]] = []
            if poll and timeout and pollers:
                timeout = self._prepare_to_sleep(timeout, now)
                if not timeout:
                    # The pollers found work: treat it like a busy pass.
                    polled_work = True
                    poll = now - last_poll >= _BUSY_POLL_INTERVAL
            if poll:
                slept = timeout > 0 and bool(pollers)
                if "before_io_wait" in instruments:
                    instruments.call("before_io_wait", timeout)
                self.waiting_for_io = True
                if timeout > 0 or guest:
                    # A guest run gives its host a turn at every poll, as
                    # Trio's does: a busy or autojumping guest must not
                    # keep the host's thread.
                    events = yield timeout
                else:
                    events = get_events(0.0)
                self.waiting_for_io = False
                if slept:
                    for poller in pollers:
                        poller.after_sleep()
                last_poll = now_fn() if timeout else now
                if events:
                    process_events(events)
                if "after_io_wait" in instruments:
                    instruments.call("after_io_wait", timeout)
                if (
                    self.stop_signals.signum is not None
                    and not self.stop_delivered
                    and self.user_nursery is not None
                ):
                    self.handle_stop_signal()

            # -- deadlines
            heap = deadlines._heap
            if heap:
                now = now_fn()
                if heap[0][0] <= now and deadlines.expire(now):
                    idle_primed = idle_nothing

            # -- nothing happened while we slept: the program is idle
            if idle_primed and not self.runq and not events and not polled_work:
                if idle_primed is idle_wait_all:
                    while waiting_for_idle:
                        key, task = waiting_for_idle.peekitem(0)
                        if key[0] != cushion:
                            break
                        del waiting_for_idle[key]
                        self.reschedule(task)
                else:
                    jump = deadlines.next_deadline() - clock.current_time()
                    if 0 < jump < inf:
                        clock.jump(jump)  # type: ignore[attr-defined]

            # -- one batch: every task runnable when it began, one step each.
            # With an instrument installed the same steps run with its hooks
            # (_run_batch_instrumented); the plain loop pays nothing for them.
            batch = self.runq
            self.runq = runq = []
            if instruments:
                self._run_batch_instrumented(batch)
            else:
                for task in batch:
                    self.current_task = task
                    try:
                        exc = task._next_exc
                        if exc is None:
                            coro = task._coro
                            if coro is None:
                                coro = task._make_coro()
                            msg = task.context.run(coro.send, task._next_value)
                        else:
                            task._next_exc = None
                            msg = task.context.run(task.coro.throw, exc)
                    except StopIteration as stop:
                        self.task_exited(task, stop.value, None)
                    except BaseException as error:
                        self.task_exited(task, None, _without_loop_frame(error))
                    else:
                        if msg is checkpoint_trap:
                            task._next_value = task
                            runq.append(task)
                        elif type(msg) is wait_trap:
                            # Drop the value it was resumed with: a parked task
                            # keeps nothing of its last wake-up alive.
                            task._next_value = None
                            task._abort_func = msg.abort_func
                            if task._cancel_status.effectively_cancelled:
                                task._attempt_delivery_of_any_pending_cancel()
                        else:
                            _foreign_yield(task, msg)
                self.current_task = None

            # -- after the batch: what the pass produced leaves, at most every
            # _POLLER_INTERVAL while tasks stay runnable, at once when none is.
            if pollers and (not self.runq or now - last_flush >= _POLLER_INTERVAL):
                last_flush = now
                for poller in pollers:
                    poller.flush()

    @enable_ki_protection
    def _run_batch_instrumented(self, batch: list[Task]) -> None:
        """The batch loop of :meth:`steps`, step for step, with the
        instruments' per-step hooks (a test checks that a run schedules the
        same with and without an instrument)."""
        instruments = self.instruments
        runq = self.runq
        for task in batch:
            self.current_task = task
            if "before_task_step" in instruments:
                instruments.call("before_task_step", task)
            try:
                exc = task._next_exc
                if exc is None:
                    msg = task.context.run(task.coro.send, task._next_value)
                else:
                    task._next_exc = None
                    msg = task.context.run(task.coro.throw, exc)
            except StopIteration as stop:
                self.task_exited(task, stop.value, None)
            except BaseException as error:
                self.task_exited(task, None, _without_loop_frame(error))
            else:
                if msg is _CHECKPOINT:
                    task._next_value = task
                    runq.append(task)
                    if "task_scheduled" in instruments:
                        instruments.call("task_scheduled", task)
                elif type(msg) is _WaitTaskRescheduled:
                    task._next_value = None
                    task._abort_func = msg.abort_func
                    if task._cancel_status.effectively_cancelled:
                        task._attempt_delivery_of_any_pending_cancel()
                else:
                    _foreign_yield(task, msg)
            if "after_task_step" in instruments:
                instruments.call("after_task_step", task)
        self.current_task = None

    def _prepare_to_sleep(self, timeout: float, now: float) -> float:
        """Nothing is runnable: spin on the pollers for up to ``idle_poll``
        seconds, then let each arrange its wakeup. Returns the timeout to
        block for: 0 if work turned up, so the loop must not block."""
        pollers = self.pollers
        if self.entry_queue:
            return 0.0
        # What this pass's polling produced (replies to messages, say) must
        # leave before we sleep, or a peer could wait on us while we wait on it.
        for poller in pollers:
            poller.flush()
        if self.idle_poll > 0:
            spin = min(self.idle_poll, timeout)
            end = now + spin
            clock_now = self.clock.current_time
            while True:
                worked = False
                for poller in pollers:
                    if poller.poll():
                        worked = True
                if worked or self.runq or self.entry_queue:
                    return 0.0
                if clock_now() >= end:
                    break
            timeout -= spin
            if timeout <= 0:
                return 0.0
        for i, poller in enumerate(pollers):
            if not poller.prepare_to_sleep():
                for earlier in pollers[:i]:
                    earlier.after_sleep()
                return 0.0
        return timeout


_LOOP_CODES = (Runner.steps.__code__, Runner._run_batch_instrumented.__code__)


def _without_loop_frame(error: BaseException) -> BaseException:
    # The traceback starts at the run loop's frame; users care from their
    # coroutine on.
    tb = error.__traceback__
    if tb is not None and tb.tb_frame.f_code in _LOOP_CODES:
        error.__traceback__ = tb.tb_next
    return error


def _foreign_yield(task: Task, msg: object) -> None:
    # Name the library: from what was yielded, else from the innermost
    # frame of the task's await stack that belongs to one (asyncio.sleep(0)
    # yields a bare None from asyncio's own code).
    lib = _looks_like_other_library(msg)
    if lib is None:
        for frame, _ in task.iter_await_frames():
            lib = _library_of_module(frame.f_globals.get("__name__", "")) or lib
    if lib is None:
        error = TypeError(
            f"shardio cannot wait for {msg!r}: a task awaited something that is not a "
            "shardio operation. Objects of other async libraries (asyncio futures and "
            "tasks, for instance) only work inside their own event loop; use the shardio "
            "equivalent instead"
        )
    else:
        article = "an" if lib[0] in "aeiou" else "a"
        in_a_thread = (
            f", or run the {lib} code in a thread with its own event loop: "
            f"await shardio.to_thread.run_sync({lib}.run, fn)"
            if lib in ("asyncio", "trio", "anyio", "curio")
            else ""
        )
        error = TypeError(
            f"shardio cannot wait for {msg!r} (from {lib}): a shardio task awaited "
            f"{article} {lib} operation, which works only inside {lib}'s own event loop. "
            "Use the shardio equivalent (shardio.sleep, shardio.open_nursery, shardio_net "
            f"streams, ...){in_a_thread}"
        )
    task._next_exc = error
    task._runner.runq.append(task)


# ---------------------------------------------------------------------------
# Public functions that ask the runner
# ---------------------------------------------------------------------------


@enable_ki_protection
def reschedule(task: Task, next_send: outcome.Outcome[Any] | None = None) -> None:
    """Resume ``task``, parked in :func:`wait_task_rescheduled`.

    ``next_send`` is an :class:`outcome.Value` (returned by the wait) or an
    :class:`outcome.Error` (raised by it); ``None`` means ``Value(None)``.
    """
    current_runner().reschedule(task, next_send)


@enable_ki_protection
def spawn_system_task(
    async_fn: Callable[..., Awaitable[Any]],
    *args: Any,
    name: object = None,
    context: contextvars.Context | None = None,
) -> Task:
    """Start a task that lives as long as the run, outside the main task's tree.

    System tasks are cancelled when the main task exits. If one raises
    anything but :class:`Cancelled`, the run fails with
    :class:`ShardioInternalError`: they are for infrastructure, not for
    application work.
    """
    runner = current_runner()
    return runner.spawn_impl(
        async_fn,
        args,
        runner.system_nursery,
        name,
        system_task=True,
        context=context,
        what="spawn_system_task",
    )


def current_time() -> float:
    """The current time on the run's clock (CLOCK_MONOTONIC unless a custom
    clock was passed to :func:`run`)."""
    return current_runner().clock.current_time()


def current_clock() -> Clock:
    """The clock the current run uses."""
    return current_runner().clock


def current_root_task() -> Task | None:
    """The task that runs the whole program (the parent of the main task)."""
    return current_runner().init_task


def current_token() -> Token:
    """The :class:`Token` of the current run, for use from other threads."""
    return current_runner().token


def current_statistics() -> RunStatistics:
    """Figures about the run loop, for debugging and monitoring."""
    runner = current_runner()
    return RunStatistics(
        tasks_living=runner.tasks_living,
        tasks_runnable=len(runner.runq),
        seconds_to_next_deadline=runner.deadlines.next_deadline() - runner.clock.current_time(),
        io_statistics={"backend": "epoll", "waiting_fds": runner.io_manager.waiting_fds},
        run_sync_soon_queue_size=len(runner.entry_queue),
    )


@enable_ki_protection
def add_poller(
    poller: Poller, wakeup_fd: int | None = None, drain: Callable[[], None] | None = None
) -> None:
    """Register ``poller`` (see :class:`Poller`) with this shard's scheduler.

    ``wakeup_fd``, if given, joins the epoll set; it should become readable
    when the poller has work, and ``drain`` is called to empty it then.
    """
    runner = current_runner()
    runner.pollers.append(poller)
    if wakeup_fd is not None:
        runner.io_manager.add_wakeup_fd(wakeup_fd, drain or (lambda: None))


@enable_ki_protection
def remove_poller(poller: Poller, wakeup_fd: int | None = None) -> None:
    """Undo :func:`add_poller`."""
    runner = current_runner()
    runner.pollers.remove(poller)
    if wakeup_fd is not None:
        runner.io_manager.remove_wakeup_fd(wakeup_fd)


@enable_ki_protection
def add_instrument(instrument: Any) -> None:
    """Start calling ``instrument``'s hooks (see :class:`Instrument`)."""
    current_runner().instruments.add_instrument(instrument)


@enable_ki_protection
def remove_instrument(instrument: Any) -> None:
    """Stop calling ``instrument``'s hooks; ``KeyError`` if it is not installed."""
    current_runner().instruments.remove_instrument(instrument)


@enable_ki_protection
async def checkpoint_if_cancelled() -> None:
    """Raise :class:`Cancelled` if the task is cancelled; otherwise return at
    once, without a schedule point."""
    status = current_task()._cancel_status
    if status.effectively_cancelled:
        status.raise_cancelled()


@enable_ki_protection
async def wait_all_tasks_blocked(cushion: float = 0.0) -> None:
    """Block until every other task is blocked, and has been for ``cushion`` s.

    "Blocked" means parked with no I/O arriving and no deadline expiring. For
    tests: it lets every other task reach its next wait before you look. When
    several tasks wait with the same cushion, one wakes per idle period;
    those with smaller cushions wake first.
    """
    runner = current_runner()
    task = current_task()
    key = (cushion, next(runner._idle_seq))
    runner.waiting_for_idle[key] = task

    def abort(_: RaiseCancelT) -> Abort:
        del runner.waiting_for_idle[key]
        return Abort.SUCCEEDED

    await wait_task_rescheduled(abort)


# ---------------------------------------------------------------------------
# run()
# ---------------------------------------------------------------------------


@enable_ki_protection
def run(
    async_fn: Callable[..., Awaitable[T]],
    *args: Any,
    clock: Clock | None = None,
    instruments: collections.abc.Sequence[Instrument] = (),
    shard_state: ShardState | None = None,
    idle_poll: float = 0.0,
    main_name: object = None,
    stop_signals: StopSignals | None = None,
    services: Callable[[ShardState], Coroutine[Any, Any, None]] | None = None,
    stall_threshold: float | None = None,
) -> T:
    """Run ``async_fn(*args)`` on a fresh scheduler in this thread; return its result.

    The scheduler of one shard; :func:`shardio.run` (``_shards.py``) starts
    one per shard. ``shard_state`` is that shard's view of the run (its
    messenger becomes a poller), ``idle_poll`` the seconds to spin on the
    pollers before sleeping, ``main_name`` the main task's name;
    ``stop_signals``, installed by the caller, what SIGINT and SIGTERM
    recorded (None on shards that leave them alone); ``services(shard_state)``,
    if given, runs beside the main task in the user tier and starts first
    (the shard's remote-call service); ``stall_threshold`` starts the stall
    detector (``_stall.py``).
    """
    check_not_in_run()
    coro = coroutine_or_error(async_fn, args, what="shardio.run")
    runner = Runner(clock if clock is not None else SystemClock(), Instruments(instruments))
    if stop_signals is not None:
        runner.stop_signals = stop_signals
    runner.shard_state = shard_state
    runner.idle_poll = idle_poll
    lifecycle = runner.lifecycle(
        coro,
        async_fn if main_name is None else main_name,
        None if services is None or shard_state is None else services(shard_state),
        stall_threshold,
    )
    get_events = runner.io_manager.get_events
    previous_library = sniffio.thread_local.name
    # Everything the run does in this thread is shardio's, also outside
    # tasks (run_sync_soon callbacks, sync functions sent by other shards),
    # as in Trio.
    sniffio.thread_local.name = "shardio"
    try:
        timeout = next(lifecycle)
        while True:
            timeout = lifecycle.send(get_events(timeout))
    except StopIteration as done:
        result: outcome.Outcome[T] = done.value
    finally:
        sniffio.thread_local.name = previous_library
    del runner, lifecycle
    return result.unwrap()


def check_not_in_run() -> None:
    """``RuntimeError`` if this thread is inside a run already."""
    if hasattr(GLOBAL_RUN_CONTEXT, "runner"):
        raise RuntimeError(
            "shardio.run() called from inside a running shardio.run(); "
            "start a task with a nursery instead"
        )


def only_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``Cancelled``, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(only_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, Cancelled)
