"""Async generators that a task abandons: closed by the run, in a task.

An async generator whose consumer stops early (a ``break`` out of ``async
for``, an exception, a cancellation) is left suspended at a ``yield``. Its
``finally`` blocks and ``async with`` exits still have to run, and they may
``await``. Python cannot do that by itself: when such a generator is
garbage collected outside any event loop, it throws ``GeneratorExit`` into
it and gives up at the first ``await``, with "async generator ignored
GeneratorExit". So a run takes over, with the interpreter's async generator
hooks (``sys.set_asyncgen_hooks``, which are per thread):

- *first iteration* (``firstiter``): a generator first iterated inside one
  of this run's tasks is the run's; it goes into a weak set of live ones.
  One first iterated elsewhere in this thread (a ``run_sync_soon``
  callback, an instrument) is marked foreign and left to the hooks that
  were there before the run.
- *garbage collection* (``finalizer``): the interpreter hands the generator
  over instead of destroying it. The finalizer may run in any thread and at
  any moment, so it only queues the work with ``run_sync_soon``; the run
  then starts a system task that closes the generator with ``aclose()`` in
  a cancelled, shielded scope -- its cleanup runs, but cannot block the
  run -- and logs what the cleanup raised. A ``ResourceWarning`` says the
  generator should have been closed with ``contextlib.aclosing``.
- *end of the run*: once the main task and the system tasks are done, every
  generator of the run still suspended is closed the same way, one after
  the other (closing one may resume another), before ``run()`` returns; the
  weak set becomes a strong one first, so that the collector does not race
  with this.

This is Trio's behaviour; the one difference is the logger's name,
``shardio.async_generator_errors``.
"""

from __future__ import annotations

import logging
import sys
import warnings
import weakref
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from ._cancel import CancelScope
from ._ki import enable_ki_protection
from ._state import GLOBAL_RUN_CONTEXT
from ._traps import Abort, wait_task_rescheduled

if TYPE_CHECKING:
    from ._run import Runner

ASYNCGEN_LOGGER = logging.getLogger("shardio.async_generator_errors")

AsyncGen = AsyncGenerator[Any, Any]

# The key, in a foreign generator's frame locals, that marks it as such. A
# frame's locals are the only place that still exists when the finalizer
# runs: the interpreter clears a generator's weak references before it.
_FOREIGN = "@shardio_foreign_asyncgen"


def _name(agen: AsyncGen) -> str:
    """``module.qualname`` of the generator's function, for warnings and logs."""
    frame = getattr(agen, "ag_frame", None)
    module = frame.f_globals.get("__name__", "?") if frame is not None else "?"
    return f"{module}.{getattr(agen, '__qualname__', type(agen).__qualname__)}"


def _locals(agen: AsyncGen) -> dict[str, Any] | None:
    """The locals of the generator's frame; None once it has finished."""
    frame = getattr(agen, "ag_frame", None)
    return None if frame is None else frame.f_locals


class AsyncGenerators:
    """One run's async generators, and the hooks that track them."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        # Live generators of this run; weak, so the collector still finds
        # the abandoned ones. Strong once the end-of-run cleanup starts.
        self.alive: weakref.WeakSet[AsyncGen] | set[AsyncGen] = weakref.WeakSet()
        # Collected after the system nursery closed, before the end-of-run
        # cleanup started: that cleanup takes them too.
        self._late: set[AsyncGen] = set()
        self._previous = sys.get_asyncgen_hooks()

    def install(self) -> None:
        sys.set_asyncgen_hooks(firstiter=self._firstiter, finalizer=self._finalizer)

    def uninstall(self) -> None:
        sys.set_asyncgen_hooks(*self._previous)

    # -- the hooks ----------------------------------------------------------------------

    @enable_ki_protection
    def _firstiter(self, agen: AsyncGen) -> None:
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        if runner is self._runner and runner.current_task is not None:
            self.alive.add(agen)
            return
        frame_locals = _locals(agen)
        if frame_locals is not None:
            frame_locals[_FOREIGN] = True
        if self._previous.firstiter is not None:
            self._previous.firstiter(agen)

    @enable_ki_protection
    def _finalizer(self, agen: AsyncGen) -> None:
        frame_locals = _locals(agen)
        if frame_locals is not None and frame_locals.get(_FOREIGN):
            self._finalize_elsewhere(agen)
            return
        name = _name(agen)
        runner = self._runner
        # As run_sync_soon does (safe from any thread); the loop runs it soon.
        with runner.entry_lock:
            queued = not runner.done
            if queued:
                runner.entry_queue.append((self._start_closing, (agen, name)))
                runner.io_manager.wakeup.wakeup_thread_and_signal_safe()
        if not queued:
            # Left behind by a run that crashed: no run is there to close it.
            self._finalize_elsewhere(agen)
            return
        # Last: under an "error" warnings filter this raises, and the
        # interpreter prints and ignores what a finalizer raises.
        warnings.warn(
            f"async generator {name!r} was garbage collected before it was exhausted; "
            "use it in 'async with contextlib.aclosing(...)' to close it as soon as "
            "you are done with it",
            ResourceWarning,
            stacklevel=2,
            source=agen,
        )

    def _finalize_elsewhere(self, agen: AsyncGen) -> None:
        """A foreign generator: the previous hooks' business, or Python's own."""
        if self._previous.finalizer is not None:
            self._previous.finalizer(agen)
            return
        # What Python does without hooks: GeneratorExit in, and it must not await.
        closing = agen.aclose()
        try:
            closing.send(None)
        except StopIteration:
            return
        closing.close()
        raise RuntimeError(
            f"async generator {_name(agen)!r}, iterated outside any shardio task, awaited "
            "something while being garbage collected; close it with "
            "'async with contextlib.aclosing(...)' instead"
        )

    # -- closing ----------------------------------------------------------------------

    def _start_closing(self, agen: AsyncGen, name: str) -> None:
        runner = self._runner
        nursery = runner.system_nursery
        if nursery is None or nursery._closed:
            self._late.add(agen)  # the end-of-run cleanup is about to take it
            return
        runner.spawn_impl(
            self.close_one,
            (agen, name),
            nursery,
            f"close async generator {name} (abandoned)",
            system_task=True,
            what="spawn_system_task",
        )

    async def close_one(self, agen: AsyncGen, name: str) -> None:
        """``agen.aclose()`` in a cancelled, shielded scope; log what it raises."""
        try:
            with CancelScope(shield=True) as scope:
                scope.cancel()
                await agen.aclose()
        except BaseException:
            ASYNCGEN_LOGGER.exception(
                "exception ignored while closing the async generator %r; use it in "
                "'async with contextlib.aclosing(...)' to see such errors where they "
                "happen",
                name,
            )

    async def close_remaining(self) -> None:
        """At the end of the run, in the root task: close every generator left."""
        # The root task has no cancel status outside a scope; it needs one to wait.
        with CancelScope():
            await self._close_remaining()

    async def _close_remaining(self) -> None:
        self.alive = set(self.alive)
        # Run the finalizers queued so far (their generators go to _late):
        # queue our own wake-up behind them.
        runner = self._runner
        task = runner.current_task
        assert task is not None
        runner.entry_queue.append((runner.reschedule, (task,)))
        await wait_task_rescheduled(lambda _: Abort.FAILED)
        self.alive.update(self._late)
        self._late.clear()
        # One at a time: closing one may iterate another. Closing may create
        # new generators too, hence the loop.
        while self.alive:
            batch, self.alive = self.alive, set()
            for agen in batch:
                await self.close_one(agen, _name(agen))
