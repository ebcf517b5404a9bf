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
"""

from __future__ import annotations

import contextvars
import inspect
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import outcome
import sniffio

from ._core import RunVar
from ._sync import CapacityLimiter
from .lowlevel import (
    Abort,
    RaiseCancelT,
    current_task,
    current_token,
    reschedule,
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
    cancellation.
    """
    abandon = bool(abandon_on_cancel)
    if limiter is None:
        limiter = current_default_thread_limiter()
    task = current_task()
    token = current_token()
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
    abandoned = False

    def call() -> object:
        result = context.run(sync_fn, *args)
        if inspect.iscoroutine(result):
            result.close()  # never awaited: say so here, not in a RuntimeWarning
            raise TypeError(
                f"to_thread.run_sync expected a sync function, but "
                f"{getattr(sync_fn, '__qualname__', sync_fn)!r} is async: "
                "await it directly instead"
            )
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
        if not abandoned:
            reschedule(task, outcome.Value(box))

    def deliver(box: list[outcome.Outcome[T]]) -> None:
        # In the worker thread.
        try:
            token.run_sync_soon(report, box)
        except RuntimeError:
            pass  # the run is over: nobody is waiting any more

    try:
        _pool().submit((call, deliver, thread_name))
    except BaseException:
        limiter.release_on_behalf_of(borrower)
        raise

    def abort(raise_cancel: RaiseCancelT) -> Abort:
        nonlocal abandoned
        if abandon:
            abandoned = True
            return Abort.SUCCEEDED
        return Abort.FAILED

    box: list[outcome.Outcome[T]] = await wait_task_rescheduled(abort)
    # Unwrapped here, in this coroutine's frame, as Trio does. The task
    # keeps what it was woken with until it is woken again: the box, empty.
    return box.pop().unwrap()
