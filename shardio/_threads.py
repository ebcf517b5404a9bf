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

Worker threads are reused (idle ones wait up to ten seconds for more work)
and belong to the process: shards are processes, so each shard has its own.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import outcome

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


class _Workers:
    """Idle worker threads of this process, each waiting on its own queue."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.idle: list[queue.SimpleQueue[Callable[[], None] | None]] = []

    def submit(self, job: Callable[[], None]) -> None:
        with self.lock:
            inbox = self.idle.pop() if self.idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._work, args=(inbox,), name="shardio worker", daemon=True
            )
            thread.start()
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while True:
            try:
                job = inbox.get(timeout=_IDLE_TIMEOUT)
            except queue.Empty:
                with self.lock:
                    if inbox in self.idle:
                        self.idle.remove(inbox)
                        return
                # Someone took this inbox just now: a job is on its way.
                job = inbox.get()
            if job is None:
                return
            job()
            with self.lock:
                self.idle.append(inbox)


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

    A checkpoint. See the module docs for the limiter and cancellation.
    """
    if limiter is None:
        limiter = current_default_thread_limiter()
    # A fresh object per call borrows the token, so one task can hold
    # several (as Trio does). The token is given back when the thread is
    # done -- also after an abandoned call, whose thread still runs.
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)
    task = current_task()
    token = current_token()
    abandoned = False

    def deliver(result: outcome.Outcome[T]) -> None:
        limiter.release_on_behalf_of(borrower)
        if not abandoned:
            reschedule(task, result)

    def job() -> None:
        if thread_name is not None:
            threading.current_thread().name = thread_name
        result = outcome.capture(sync_fn, *args)
        try:
            token.run_sync_soon(deliver, result)
        except RuntimeError:
            pass  # the run is over: nobody is waiting any more

    try:
        _pool().submit(job)
    except BaseException:
        limiter.release_on_behalf_of(borrower)
        raise

    def abort(raise_cancel: RaiseCancelT) -> Abort:
        nonlocal abandoned
        if abandon_on_cancel:
            abandoned = True
            return Abort.SUCCEEDED
        return Abort.FAILED

    result: T = await wait_task_rescheduled(abort)
    return result
