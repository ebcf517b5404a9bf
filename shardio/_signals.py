"""``open_signal_receiver``: Unix signals as an async iterator, on shard 0.

Trio's ``trio.open_signal_receiver``, with its mechanism and semantics.

How a signal travels
--------------------
Python runs signal handlers in the main thread, between two bytecodes of
whatever runs there -- the scheduler, or a task. So the handler does nothing
but queue a callback with :meth:`~shardio.lowlevel.Token.run_sync_soon`
(safe in a signal handler; it wakes the scheduler), and the callback, in the
run loop, adds the signal to the receiver's pending set and wakes the task
iterating it. The pending set is ordered and keyed by signal number: a
signal that arrives again before it was read is delivered once, at the place
of its first arrival (the kernel coalesces the same way; a receiver is for
"something happened", not for counting). The handler queues at most one
callback per signal number at a time, so a flood of signals cannot grow
the run's queue.

Leaving the ``with`` block puts the previous handlers back -- whatever they
were: a handler of the user's, ``SIG_IGN``, ``SIG_DFL``, or shardio's own
stop handler -- and re-raises, with :func:`signal.raise_signal`, every signal
received but not read, and those still on their way (callbacks queued
before the handler was replaced): they reach the restored handlers instead
of vanishing.

Ctrl-C and SIGTERM
------------------
:func:`shardio.run` takes SIGINT and SIGTERM over, to turn them into an
orderly stop (``_core/_ki.py``). A receiver for either replaces that handler
while it is open: the signal is then the receiver's, and no longer stops the
run (as a SIGINT receiver keeps Trio from raising ``KeyboardInterrupt``).
Once the block is left, the stop handler is back; a SIGINT received but not
read is re-raised into it, and stops the run.

Why shard 0 only
----------------
A signal is addressed to a process, and each shard is a process of its own.
What is sent to "the program" -- ``kill PID``, a service manager's SIGTERM or
SIGHUP -- goes to the pid that called :func:`shardio.run`: shard 0's. What is
sent to a process group -- Ctrl-C sends SIGINT to the terminal's foreground
group -- reaches every shard at once, so receivers on several shards would
each see it. That is why the other shards ignore SIGINT and SIGTERM, and
why this function refuses to run there: receive on shard 0, and pass the news
on (``run_on``, a channel, a sharded service). Python delivers signals to the
main thread only, so shard 0 must also be running in the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from contextlib import contextmanager
from types import FrameType
from typing import Any, Self

from ._conflict_detector import ConflictDetector
from ._core import (
    ParkingLot,
    ShardLocal,
    Token,
    checkpoint,
    current_shard,
    current_token,
    enable_ki_protection,
)

__all__ = ["open_signal_receiver"]


@contextmanager
def _handlers_replaced(
    signals: Iterable[int], handler: Callable[[int, FrameType | None], object]
) -> Generator[None, None, None]:
    previous: dict[int, Any] = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, original in previous.items():
            signal.signal(signum, original)


class _SignalReceiver(ShardLocal):
    """The async iterator ``open_signal_receiver`` gives."""

    __slots__ = ("_closed", "_conflict", "_in_flight", "_lot", "_pending", "_token")

    def __init__(self, token: Token) -> None:
        self._token = token
        # The signals received and not read yet, in order of first arrival.
        self._pending: OrderedDict[int, None] = OrderedDict()
        # The signals whose callback is queued and has not run yet.
        self._in_flight: set[int] = set()
        self._lot = ParkingLot()
        self._conflict = ConflictDetector(
            "only one task can iterate on a signal receiver at a time"
        )
        self._closed = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        # In a signal handler: only queue. A callback already queued for this
        # signal will record it; the flag is cleared before the callback
        # records, so a signal arriving meanwhile is never lost.
        if signum not in self._in_flight:
            self._in_flight.add(signum)
            self._token.run_sync_soon(self._add, signum)

    def _add(self, signum: int) -> None:
        self._in_flight.discard(signum)
        if self._closed:
            signal.raise_signal(signum)
        else:
            self._pending[signum] = None
            self._lot.unpark()

    def _redeliver_remaining(self) -> None:
        # Callbacks still on their way now redeliver as they arrive.
        self._closed = True
        try:
            while self._pending:
                signum, _ = self._pending.popitem(last=False)
                signal.raise_signal(signum)
        finally:
            # If a restored handler raised, the others still get theirs.
            if self._pending:
                self._redeliver_remaining()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> int:
        if self._closed:
            raise RuntimeError("open_signal_receiver block already exited")
        with self._conflict:
            if not self._pending:
                await self._lot.park()
            else:
                await checkpoint()
            signum, _ = self._pending.popitem(last=False)
            return signum


@contextmanager
@enable_ki_protection
def open_signal_receiver(
    *signals: signal.Signals | int,
) -> Generator[AsyncIterator[int], None, None]:
    """Receive ``signals`` while the ``with`` block runs, as an async iterator.

    ::

        with shardio.open_signal_receiver(signal.SIGHUP, signal.SIGUSR1) as received:
            async for signum in received:
                ...

    The iterator yields each signal number as it arrives; a signal that
    arrives again before it was read is yielded once. One task at a time may
    iterate (:class:`~shardio.BusyResourceError`). On leaving the block the
    previous handlers are restored and the signals received but not read are
    re-raised into them. A receiver for SIGINT or SIGTERM takes them from
    shardio's orderly stop while it is open.

    ``TypeError`` without signals; ``RuntimeError`` outside the main thread,
    or on a shard other than 0 (a signal is addressed to one process, and the
    program's pid is shard 0's: see the module docs); what
    :func:`signal.signal` raises for a signal that cannot be caught
    (``SIGKILL``, ``SIGSTOP``).
    """
    if not signals:
        raise TypeError("open_signal_receiver() needs at least one signal")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "open_signal_receiver() works only in the main thread, where Python runs "
            "signal handlers"
        )
    if current_shard() != 0:
        raise RuntimeError(
            f"open_signal_receiver() works on shard 0 only, not on shard {current_shard()}: "
            "signals sent to the program go to shard 0's process, and the other shards "
            "ignore SIGINT and SIGTERM; receive signals on shard 0 and tell the other "
            "shards (run_on, a channel)"
        )
    receiver = _SignalReceiver(current_token())
    try:
        with _handlers_replaced(dict.fromkeys(signals), receiver._handler):
            yield receiver
    finally:
        receiver._redeliver_remaining()
