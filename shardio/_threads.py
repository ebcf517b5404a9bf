"""Running blocking code in a thread: ``shardio.to_thread.run_sync``.

A shard's scheduler is one thread; a blocking call (a library without async
support, a CPU-heavy computation) would freeze every task of the shard. This
runs the call in a worker thread while the calling task waits, as Trio's
``to_thread.run_sync`` does, with the same parameters and semantics:

* At most ``limiter.total_tokens`` calls run at once per shard (default: a
  :class:`CapacityLimiter` of 40, one per run); the rest wait their turn.
* A waiting call is not cancellable by default: the thread cannot be stopped,
  so the task waits for it. With ``abandon_on_cancel=True`` a cancelled call
  returns at once with :class:`Cancelled` and the thread's eventual result
  is discarded.
* The call runs in a copy of the caller's :mod:`contextvars` context, taken
  when ``run_sync`` is called: the thread sees the caller's values, and what
  it sets stays in the copy. sniffio's library variable is cleared in the
  copy: the thread is not in async context.
* The outcome travels back as a value and is unwrapped in ``run_sync``'s
  own frame, so an exception is raised there as it was raised in the thread
  (a ``StopIteration`` becomes Python's "coroutine raised StopIteration"
  ``RuntimeError``, as in Trio, not a "generator raised StopIteration" from
  the scheduler's trap). A ``sync_fn`` that turns out to be async is a
  ``TypeError``.

Worker threads are reused (idle ones wait up to ten seconds for more work)
and belong to the process: shards are processes, so each shard has its own.
An idle worker holds nothing of the calls it ran: each job runs in a method
of its own, whose frame dies with it; the function, its arguments and the
context are dropped before the result is delivered, and the result travels
to the shard and on to the task in a one-item list that each end empties
(the scheduler keeps the value a task was last woken with), so once
``run_sync`` has returned, the caller's references are the only ones. The
thread is named ``thread_name`` (default: Trio's ``"<function> from
<task>"``) while it runs the call, and ``shardio worker`` again afterwards.

Back into the run: ``shardio.from_thread``
------------------------------------------
A thread may call back into the shard it was started from, as in Trio
(``trio/_threads.py``). While a worker runs a call it holds, in a
thread-local, the call's :class:`_Caller`: the run's token, the waiting
task, whether the call is abandoned on cancel, and the cancellation
delivered to the task, if any. ``from_thread.run`` and ``run_sync`` send a
request object to the shard and block on the request's own queue:

* From a worker of a call that is *not* abandoned on cancel, the request
  goes to the waiting task itself (``run_sync``'s task is parked in a loop
  that takes either the final result or a request). The function runs in
  that task, so it runs under the caller's cancel scopes: cancelling the
  caller cancels it. Nothing can interleave: the thread is blocked until
  the request's result is queued, and the task parks again in the same
  step, before the scheduler can run any callback the thread queues next.
* With an explicit ``token=`` (any thread, the run's own workers included),
  or from a worker of a call abandoned on cancel (its task may be gone),
  the function runs on its own: a sync one in a
  :meth:`~shardio.lowlevel.Token.run_sync_soon` callback, an async one in a
  new system task. That task lives in the system tier, which outlives the
  user's tasks; once the run has closed it, the call raises
  :class:`RunFinishedError`, as it does after the run.

``from_thread.check_cancelled`` raises :class:`Cancelled` once a
cancellation was delivered to the waiting task (the abort function records
it, also when the call is not abandoned), and ``RuntimeError`` in a thread
that no ``to_thread.run_sync`` started.

The calls in progress are counted per run, for
:func:`shardio.testing.active_thread_count` and
:func:`~shardio.testing.wait_all_threads_completed`; an abandoned call stops
counting when ``run_sync`` returns, as in Trio.
"""

from __future__ import annotations

import contextvars
import inspect
import os
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeAlias, TypeVar

import attrs
import outcome
import sniffio

from ._core import RunFinishedError, RunVar
from ._sync import CapacityLimiter, Event
from .lowlevel import (
    Abort,
    RaiseCancelT,
    Task,
    Token,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    current_token,
    disable_ki_protection,
    enable_ki_protection,
    reschedule,
    spawn_system_task,
    wait_task_rescheduled,
)

T = TypeVar("T")

_IDLE_TIMEOUT = 10.0
_limiter: RunVar[CapacityLimiter] = RunVar("shardio.to_thread limiter")


def current_default_thread_limiter() -> CapacityLimiter:
    """The :class:`CapacityLimiter` ``run_sync`` uses unless given another
    (40 tokens; one per run, so one per shard)."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = CapacityLimiter(40)
        _limiter.set(limiter)
        return limiter


_WORKER_NAME = "shardio worker"

#: What a worker runs: the call itself (everything the job needs, bound in), the
#: delivery of its outcome (in a one-item list the receiver empties), and the
#: thread's name meanwhile.
_Job: TypeAlias = tuple[Callable[[], object], Callable[[list[outcome.Outcome[Any]]], None], str]


class _Workers:
    """Idle worker threads of this process, each waiting on its own queue."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.idle: list[queue.SimpleQueue[_Job]] = []

    def submit(self, job: _Job) -> None:
        with self.lock:
            inbox = self.idle.pop() if self.idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._work, args=(inbox,), name=_WORKER_NAME, daemon=True
            )
            thread.start()
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[_Job]) -> None:
        while self._run_next(inbox):
            pass

    def _run_next(self, inbox: queue.SimpleQueue[_Job]) -> bool:
        """Wait for the next job and run it; False when the thread should end
        (idle too long). A method of its own so that no local of a job
        outlives it."""
        try:
            job = inbox.get(timeout=_IDLE_TIMEOUT)
        except queue.Empty:
            with self.lock:
                if inbox in self.idle:
                    self.idle.remove(inbox)
                    return False
            # Someone took this inbox just now: a job is on its way.
            job = inbox.get()
        call, deliver, name = job
        del job
        thread = threading.current_thread()
        thread.name = name
        box: list[outcome.Outcome[Any]] = [outcome.capture(call)]
        del call
        thread.name = _WORKER_NAME
        # Idle before delivering, so that a call made as soon as this one
        # returns can have this thread.
        with self.lock:
            self.idle.append(inbox)
        deliver(box)
        return True


_workers: _Workers | None = None


def _pool() -> _Workers:
    global _workers
    if _workers is None or _workers.pid != os.getpid():
        # Threads do not survive fork: a shard starts its own pool.
        _workers = _Workers()
    return _workers


# ---------------------------------------------------------------------------
# What a worker thread knows of the call it runs
# ---------------------------------------------------------------------------


@attrs.define(eq=False, slots=True)
class _Caller:
    """The ``to_thread.run_sync`` call a worker thread is running."""

    token: Token
    #: The task waiting in run_sync; None once it abandoned the call.
    task: Task | None
    abandon_on_cancel: bool
    #: What raises the cancellation delivered to the task, once one was.
    raise_cancel: RaiseCancelT | None = None


class _ThreadState(threading.local):
    caller: _Caller


_thread_state = _ThreadState()


def _current_caller() -> _Caller | None:
    return getattr(_thread_state, "caller", None)


# ---------------------------------------------------------------------------
# Calls in progress, for shardio.testing
# ---------------------------------------------------------------------------


@attrs.define(eq=False, slots=True)
class _ActiveThreads:
    count: int = 0
    #: Set, and replaced, each time the count drops to zero.
    idle: Event = attrs.field(factory=Event)


_active_threads: RunVar[_ActiveThreads] = RunVar("shardio.to_thread active calls")


def _active() -> _ActiveThreads:
    try:
        return _active_threads.get()
    except LookupError:
        active = _ActiveThreads()
        _active_threads.set(active)
        return active


def active_thread_count() -> int:
    """How many ``to_thread.run_sync`` calls of this run are in progress.

    A call abandoned on cancel stops counting when ``run_sync`` returns,
    though its thread may still run. See :func:`wait_all_threads_completed`.
    """
    return _active().count


async def wait_all_threads_completed() -> None:
    """Wait until no ``to_thread.run_sync`` call of this run is in progress.

    A checkpoint. For tests, to be sure no task still makes progress in a
    thread; together with :func:`~shardio.testing.wait_all_tasks_blocked`::

        while True:
            await shardio.testing.wait_all_threads_completed()
            await shardio.testing.wait_all_tasks_blocked()
            if shardio.testing.active_thread_count() == 0:
                break
    """
    await checkpoint()
    active = _active()
    while active.count:
        await active.idle.wait()


# ---------------------------------------------------------------------------
# to_thread.run_sync
# ---------------------------------------------------------------------------


@enable_ki_protection
async def run_sync(
    sync_fn: Callable[..., T],
    *args: Any,
    thread_name: str | None = None,
    abandon_on_cancel: bool = False,
    limiter: CapacityLimiter | None = None,
) -> T:
    """Run ``sync_fn(*args)`` in a worker thread and return (or raise) its result.

    A checkpoint. The thread runs in a copy of the caller's context
    (:mod:`contextvars`), named ``thread_name`` (default: ``"<function name>
    from <task name>"``). See the module docs for the limiter and
    cancellation. From the thread, :mod:`shardio.from_thread` calls back
    into this run.
    """
    await checkpoint_if_cancelled()
    abandon = bool(abandon_on_cancel)
    if limiter is None:
        limiter = current_default_thread_limiter()
    task = current_task()
    caller = _Caller(current_token(), task, abandon)
    if thread_name is None:
        thread_name = f"{getattr(sync_fn, '__name__', None)} from {task.name}"
    context = contextvars.copy_context()
    # The thread is not in async context, whatever the caller's says.
    context.run(sniffio.current_async_library_cvar.set, None)
    # A fresh object per call borrows the token, so one task can hold
    # several (as Trio does). The token is given back when the thread is
    # done -- also after an abandoned call, whose thread still runs.
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)

    def call() -> object:
        _thread_state.caller = caller
        try:
            result = context.run(sync_fn, *args)
        finally:
            del _thread_state.caller
        _refuse_coroutine(result, sync_fn, "to_thread.run_sync", "await it directly instead")
        return result

    def report(box: list[outcome.Outcome[T]]) -> None:
        # On the shard. The token goes back before the task is woken; an
        # error from a user's limiter replaces the result, chained to it.
        result = box.pop()

        def release_then_unwrap() -> T:
            try:
                return result.unwrap()
            finally:
                limiter.release_on_behalf_of(borrower)

        box.append(outcome.capture(release_then_unwrap))
        if caller.task is not None:
            reschedule(caller.task, outcome.Value(box))

    def deliver(box: list[outcome.Outcome[T]]) -> None:
        # In the worker thread.
        try:
            caller.token.run_sync_soon(report, box)
        except RuntimeError:
            pass  # the run is over: nobody is waiting any more

    def abort(raise_cancel: RaiseCancelT) -> Abort:
        # Recorded either way, for from_thread.check_cancelled.
        caller.raise_cancel = raise_cancel
        if abandon:
            caller.task = None
            return Abort.SUCCEEDED
        return Abort.FAILED

    active = _active()
    active.count += 1
    try:
        try:
            _pool().submit((call, deliver, thread_name))
        except BaseException:
            limiter.release_on_behalf_of(borrower)
            raise
        while True:
            message: list[outcome.Outcome[T]] | _Request[Any] = await wait_task_rescheduled(abort)
            if type(message) is list:
                # Unwrapped here, in this coroutine's frame, as Trio does. The
                # task keeps what it was woken with until it is woken again:
                # the box, empty.
                return message.pop().unwrap()
            assert isinstance(message, _Request)
            await message.run_in_task(task)
            del message
    finally:
        active.count -= 1
        if not active.count:
            active.idle.set()
            active.idle = Event()


# ---------------------------------------------------------------------------
# from_thread
# ---------------------------------------------------------------------------


@attrs.define(eq=False, slots=True)
class _Request(Generic[T]):
    """A call a thread asks the run to make; the thread blocks on ``results``."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    #: The thread's context, copied when it asked: the call runs in it.
    context: contextvars.Context = attrs.field(init=False, factory=contextvars.copy_context)
    results: queue.SimpleQueue[outcome.Outcome[T]] = attrs.field(
        init=False, factory=queue.SimpleQueue
    )

    async def run_in_task(self, task: Task) -> None:
        """Make the call in the task waiting in ``to_thread.run_sync``."""
        raise NotImplementedError  # each kind of request defines it

    def run_on_its_own(self, token: Token) -> None:
        """Make the call outside any user task (from the thread, via ``token``)."""
        raise NotImplementedError  # each kind of request defines it


@attrs.define(eq=False, slots=True)
class _RunAsync(_Request[T]):
    """``from_thread.run``: an async function."""

    @disable_ki_protection
    async def _call(self) -> T:
        fn = self.fn
        if inspect.iscoroutine(fn):
            fn.close()
            raise TypeError(
                "from_thread.run() was given a coroutine object; pass the async function "
                "and its arguments separately: from_thread.run(fn, arg1), not "
                "from_thread.run(fn(arg1))"
            )
        coro = fn(*self.args)
        if not inspect.isawaitable(coro):
            raise TypeError(
                f"from_thread.run() expected an async function, but "
                f"{getattr(fn, '__qualname__', fn)!r} returned {type(coro).__name__}; "
                "call a sync function with from_thread.run_sync() instead"
            )
        return await coro  # type: ignore[no-any-return]

    async def run_in_task(self, task: Task) -> None:
        # The task's next step runs in the thread's context: switch, then
        # let the scheduler take the switch in; the same on the way back.
        own_context = task.context
        task.context = self.context.copy()
        await cancel_shielded_checkpoint()
        result = await outcome.acapture(self._call)
        task.context = own_context
        await cancel_shielded_checkpoint()
        self.results.put(result)

    async def _run_in_system_task(self) -> None:
        self.results.put(await outcome.acapture(self._call))

    def run_on_its_own(self, token: Token) -> None:
        def start() -> None:
            try:
                spawn_system_task(self._run_in_system_task, name=self.fn, context=self.context)
            except RuntimeError:
                # The system tier has ended: the run is finishing.
                self.results.put(
                    outcome.Error(
                        RunFinishedError(
                            "the shardio.run() this call was meant for is finishing: "
                            "it starts no new tasks"
                        )
                    )
                )

        token.run_sync_soon(start)


def _refuse_coroutine(result: object, fn: object, what: str, fix: str) -> None:
    """If the sync function ``fn`` gave a coroutine (it is async), close it
    -- never awaited: say so here, not in a RuntimeWarning -- and raise."""
    if inspect.iscoroutine(result):
        result.close()
        raise TypeError(
            f"{what} expected a sync function, but "
            f"{getattr(fn, '__qualname__', fn)!r} is async: {fix}"
        )


@attrs.define(eq=False, slots=True)
class _RunSync(_Request[T]):
    """``from_thread.run_sync``: a sync function."""

    @disable_ki_protection
    def _call(self) -> T:
        result: T = self.context.run(self.fn, *self.args)
        _refuse_coroutine(
            result, self.fn, "from_thread.run_sync()", "use from_thread.run() instead"
        )
        return result

    def _run(self) -> None:
        self.results.put(outcome.capture(self._call))

    async def run_in_task(self, task: Task) -> None:
        self._run()

    def run_on_its_own(self, token: Token) -> None:
        token.run_sync_soon(self._run)


def _send(request: _Request[T], token: Token | None) -> T:
    """Send ``request`` to the run it is meant for and wait for its result."""
    caller = _current_caller()
    if token is None:
        if caller is None:
            raise RuntimeError(
                "this thread was not started by shardio.to_thread.run_sync, so it does "
                "not know which run to call into; pass token=, taken in the run with "
                "shardio.lowlevel.current_token()"
            )
        target = caller.token
    elif not isinstance(token, Token):
        raise RuntimeError(
            f"token must be a shardio.lowlevel.Token (from "
            f"shardio.lowlevel.current_token()), not {token!r}"
        )
    else:
        target = token
    try:
        current_token()
    except RuntimeError:
        pass  # not in a run's thread: good
    else:
        raise RuntimeError(
            "from_thread functions block until the run has made the call: calling one "
            "from the run's own thread would wait forever; await the function directly "
            "instead, or call it from a thread"
        )
    if token is None and caller is not None and not caller.abandon_on_cancel:
        waiting = caller.task
        assert waiting is not None  # only an abandoned call loses its task

        def hand_to_task() -> None:
            reschedule(waiting, outcome.Value(request))

        target.run_sync_soon(hand_to_task)
    else:
        request.run_on_its_own(target)
    return request.results.get().unwrap()


def from_thread_run(afn: Callable[..., Awaitable[T]], *args: Any, token: Token | None = None) -> T:
    """From a thread, run ``afn(*args)`` in the run and return (or raise) its result.

    Blocks the thread until the call is done. In a thread started by
    :func:`shardio.to_thread.run_sync`, the call runs in the waiting task
    (under its cancel scopes) unless that call was made with
    ``abandon_on_cancel=True``; with ``token=`` (from
    :func:`shardio.lowlevel.current_token`), or in an abandonable call's
    thread, it runs in a new system task. The call runs in a copy of the
    thread's :mod:`contextvars` context.

    Raises :class:`RunFinishedError` if the run is over or finishing,
    ``RuntimeError`` if called from the run's own thread or, without
    ``token``, from a thread ``to_thread.run_sync`` did not start, and
    ``TypeError`` if ``afn`` is not an async function.
    """
    return _send(_RunAsync(afn, args), token)


def from_thread_run_sync(fn: Callable[..., T], *args: Any, token: Token | None = None) -> T:
    """From a thread, call ``fn(*args)`` in the run's thread and return (or
    raise) its result.

    As :func:`from_thread_run`, for a sync function: in the waiting task of a
    ``to_thread.run_sync`` call that is not abandoned on cancel, otherwise in
    a :meth:`~shardio.lowlevel.Token.run_sync_soon` callback. ``TypeError``
    if ``fn`` is async.
    """
    return _send(_RunSync(fn, args), token)


def from_thread_check_cancelled() -> None:
    """Raise :class:`Cancelled` if the task waiting for this thread's
    ``to_thread.run_sync`` call has been cancelled.

    For a thread to stop early, at a point it chooses, when its caller no
    longer wants the result, whether or not the call is abandoned on cancel.
    Once a cancellation was delivered it raises every time, even if the scope
    was shielded again later. ``RuntimeError`` in a thread that
    ``to_thread.run_sync`` did not start.
    """
    caller = _current_caller()
    if caller is None:
        raise RuntimeError(
            "this thread was not started by shardio.to_thread.run_sync: there is no "
            "task whose cancellation it could check"
        )
    raise_cancel = caller.raise_cancel
    if raise_cancel is not None:
        raise_cancel()
