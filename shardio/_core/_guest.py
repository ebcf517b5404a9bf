"""Guest mode: a shardio run inside another event loop (asyncio, a GUI's).

Trio's design, on shardio's scheduler. The run loop is a generator
(``Runner.steps``) that yields the timeout of each blocking wait for I/O and
is sent the events that ended it. ``shardio.run`` drives it with
``epoll_wait`` in its own thread. Here the *host* loop drives it instead:

* a *tick* runs in the host's thread, called through the host's
  ``run_sync_soon``: it advances the generator through scheduler passes --
  tasks run, callbacks fire -- until the loop would block;
* then the blocking ``epoll_wait`` happens in a worker thread, so the host
  keeps running its own work meanwhile; when it returns, the worker asks the
  host (``run_sync_soon_threadsafe``) to run the next tick with the events.
  A wait that would not block (timeout 0) is done right in the tick.

The shardio run is live in the host's thread for its whole duration, as in
Trio: between ticks, host code may call shardio's synchronous functions
(cancel a scope, set an event, ``current_time``). Something that makes a task
runnable, or moves the earliest deadline, while the worker waits must end the
wait: the runner checks ``guest_waiting`` when it reschedules a task, spawns
one or registers a deadline, and writes to its wake-up socket then.

Only single-shard runs can be guests: forking shards from inside a host
loop's thread would copy the host into every child.
"""

from __future__ import annotations

import collections.abc
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import sniffio

from ._instrumentation import Instrument, Instruments
from ._ki import StopSignals, enable_ki_protection
from ._run import Clock, Runner, SystemClock, check_not_in_run, coroutine_or_error

__all__ = ["start_guest_run"]


class _GuestRun:
    """Drives one guest run's lifecycle generator from the host's loop."""

    def __init__(
        self,
        runner: Runner,
        lifecycle: collections.abc.Generator[float, list[tuple[int, int]], outcome.Outcome[Any]],
        run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
        run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object],
        done_callback: Callable[[outcome.Outcome[Any]], object],
        stop_signals: StopSignals,
    ) -> None:
        self.runner = runner
        self.lifecycle = lifecycle
        self.run_sync_soon_threadsafe = run_sync_soon_threadsafe
        self.run_sync_soon_not_threadsafe = run_sync_soon_not_threadsafe
        self.done_callback = done_callback
        self.stop_signals = stop_signals
        # What the next tick sends into the generator.
        self.next_send: outcome.Outcome[list[tuple[int, int]] | None] = outcome.Value(None)

    @enable_ki_protection
    def tick(self) -> None:
        """Advance the run until it would block; then wait in a thread."""
        runner = self.runner
        runner.guest_waiting = False
        previous_library = sniffio.thread_local.name
        sniffio.thread_local.name = "shardio"
        try:
            timeout = self.next_send.send(self.lifecycle)  # type: ignore[arg-type]
        except StopIteration as done:
            self._finish(done.value)
            return
        except BaseException as error:
            self._finish(outcome.Error(error))
            return
        finally:
            sniffio.thread_local.name = previous_library
        self.wait(timeout)

    def wait(self, timeout: float) -> None:
        """The run would block for up to ``timeout`` seconds: poll once
        here, and if nothing is ready, wait in a worker thread."""
        runner = self.runner
        get_events = runner.io_manager.get_events
        # Often something is ready already, or the run would not block at
        # all: no need for the thread then.
        ready = outcome.capture(get_events, 0.0)
        if timeout <= 0 or isinstance(ready, outcome.Error) or ready.value:
            self.next_send = ready
            self.run_sync_soon_not_threadsafe(self.tick)
            return
        runner.guest_waiting = True

        def wait_in_thread() -> None:
            events = outcome.capture(get_events, timeout)

            def deliver() -> None:
                self.next_send = events
                self.tick()

            self.run_sync_soon_threadsafe(deliver)

        threading.Thread(target=wait_in_thread, name="shardio guest I/O wait", daemon=True).start()

    def _finish(self, result: outcome.Outcome[Any]) -> None:
        try:
            self.stop_signals.restore()
        except BaseException as late_signal:  # a stop signal the run had no time to act on
            result = outcome.Error(late_signal)
        self.done_callback(result)


def start_guest_run(
    async_fn: Callable[..., Awaitable[object]],
    *args: object,
    run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
    done_callback: Callable[[outcome.Outcome[Any]], object],
    run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object] | None = None,
    host_uses_signal_set_wakeup_fd: bool = False,
    clock: Clock | None = None,
    instruments: collections.abc.Sequence[Instrument] = (),
) -> None:
    """Start ``async_fn(*args)`` as a shardio run *inside* another event loop.

    Trio's guest mode: the host loop calls ``run_sync_soon_threadsafe(fn)``
    to run ``fn()`` on its next pass (from any thread), and optionally the
    cheaper ``run_sync_soon_not_threadsafe`` (from its own thread only).
    The run's tasks and callbacks run in the host's thread, between the
    host's own work; the run waits for I/O in a worker thread. When the run
    is over, ``done_callback(outcome)`` is called with what
    :func:`shardio.run` would have returned or raised.

    Returns once the run is set up: from then on, shardio's synchronous
    functions work in the host's thread (``current_time``,
    ``lowlevel.current_token``, cancelling a scope). A single shard only.
    ``host_uses_signal_set_wakeup_fd=True`` leaves ``signal.set_wakeup_fd``
    to the host. Ctrl-C stops the run in order, as in :func:`shardio.run`,
    when SIGINT still has Python's default handler.
    """
    check_not_in_run()
    coro = coroutine_or_error(async_fn, args, what="start_guest_run")
    runner = Runner(clock if clock is not None else SystemClock(), Instruments(instruments))
    runner.is_guest = True
    stop_signals = StopSignals()
    stop_signals.install()
    runner.stop_signals = stop_signals
    if host_uses_signal_set_wakeup_fd:
        runner.io_manager.wakeup.wakeup_on_signals = lambda: None  # type: ignore[method-assign]
    lifecycle = runner.lifecycle(coro, async_fn, None, None, pause_after_setup=True)
    guest = _GuestRun(
        runner,
        lifecycle,
        run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe or run_sync_soon_threadsafe,
        done_callback,
        stop_signals,
    )
    # The set-up (the run registered in this thread, its main task created)
    # happens now, so that the run exists on return; the first tick runs
    # the first tasks, on the host's next pass.
    try:
        next(lifecycle)
    except BaseException:
        stop_signals.restore()
        raise
    guest.run_sync_soon_not_threadsafe(guest.tick)
