"""Synchronization primitives between the tasks of one shard.

Event, Lock, StrictFIFOLock, Semaphore, Condition and CapacityLimiter, with
Trio's semantics. They synchronize tasks of the *same* shard only: shards
share nothing, and talk through messages (:func:`shardio.run_on`,
cross-shard channels) instead.

Everything here is built on :class:`shardio.lowlevel.ParkingLot`, and keeps
two rules that callers may rely on:

* **Every blocking operation is a checkpoint, and a cancelled one did
  nothing.** ``acquire`` first checks for cancellation
  (``checkpoint_if_cancelled``), before changing anything. If it can take the
  resource at once, it does, then yields with
  ``cancel_shielded_checkpoint``: the schedule point comes *after* the
  acquisition, so a cancellation arriving there must not undo it (or raise
  while the caller holds something it does not know about). Otherwise it
  parks, and a cancelled park leaves the wait queue untouched.

* **Waiters are served first come, first served, by hand-off.** A release
  with tasks waiting does not make the resource free: it gives it directly
  to the longest waiter. So the releasing task (or any newcomer) cannot take
  it back before the waiter runs, and ``*_nowait`` fails while anyone waits.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Literal, Protocol, final

import attrs

from ._core import BrokenResourceError, Cancelled, CancelScope, WouldBlock
from .lowlevel import (
    Abort,
    ParkingLot,
    ParkingLotStatistics,
    RaiseCancelT,
    ShardLocal,
    Task,
    add_parking_lot_breaker,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
    remove_parking_lot_breaker,
    reschedule,
    wait_task_rescheduled,
)

__all__ = [
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "Condition",
    "ConditionStatistics",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "Semaphore",
    "StrictFIFOLock",
]


class _AcquireRelease(Protocol):
    async def acquire(self) -> None: ...

    def release(self) -> None: ...


class _AsyncContextManagerMixin(ShardLocal):
    """``async with x:`` acquires ``x`` (blocking) and releases it on exit."""

    __slots__ = ()

    async def __aenter__(self: _AcquireRelease) -> None:
        await self.acquire()

    async def __aexit__(
        self: _AcquireRelease,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


# ---------------------------------------------------------------------------
# Event
# ---------------------------------------------------------------------------


@attrs.frozen
class EventStatistics:
    """What :meth:`Event.statistics` reports.

    ``tasks_waiting``: how many tasks are blocked in :meth:`Event.wait`.
    """

    tasks_waiting: int


@final
@attrs.define(eq=False, slots=True, repr=False)
class Event(ShardLocal):
    """A flag that starts unset and can be set once: tasks wait for it.

    :meth:`wait` blocks until :meth:`set` is called, or returns at once if it
    already was, so it does not matter whether the setter or the waiter comes
    first. An event cannot be cleared: once it happened, it happened. For a
    series of occurrences, make a new Event for each (they are cheap), or use
    a channel.
    """

    _waiters: dict[Task, None] = attrs.field(factory=dict, init=False)
    _flag: bool = attrs.field(default=False, init=False)

    def __repr__(self) -> str:
        state = "set" if self._flag else f"unset, {len(self._waiters)} waiting"
        return f"<shardio.Event at {id(self):#x} ({state})>"

    def is_set(self) -> bool:
        """Whether :meth:`set` has been called."""
        return self._flag

    @enable_ki_protection
    def set(self) -> None:
        """Set the flag and wake every waiting task (in the order they came).

        Setting a set event does nothing. Not a checkpoint.
        """
        if self._flag:
            return
        self._flag = True
        for task in self._waiters:
            reschedule(task)
        self._waiters.clear()

    @enable_ki_protection
    async def wait(self) -> None:
        """Block until the event is set. A checkpoint, even if it already is."""
        if self._flag:
            await checkpoint()
            return
        task = current_task()
        waiters = self._waiters
        waiters[task] = None

        def abort(_: RaiseCancelT) -> Abort:
            del waiters[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def statistics(self) -> EventStatistics:
        """How many tasks are waiting (see :class:`EventStatistics`)."""
        return EventStatistics(tasks_waiting=len(self._waiters))

    def __bool__(self) -> Literal[True]:
        raise NotImplementedError(
            "an Event has no truth value, to avoid confusing 'if event:' with "
            "'if event.is_set():'; call is_set()"
        )


# ---------------------------------------------------------------------------
# Lock and StrictFIFOLock
# ---------------------------------------------------------------------------


@attrs.frozen
class LockStatistics:
    """What :meth:`Lock.statistics` reports.

    ``locked``: whether the lock is held; ``owner``: the
    :class:`~shardio.lowlevel.Task` holding it, or ``None``;
    ``tasks_waiting``: how many tasks are blocked in ``acquire``.
    """

    locked: bool
    owner: Task | None
    tasks_waiting: int


@attrs.define(eq=False, slots=True, repr=False)
class _LockImpl(_AsyncContextManagerMixin):
    # The owner is registered as the breaker of the lot while it holds the
    # lock: if it exits without releasing, the lot breaks, and every waiter,
    # present and future, gets BrokenResourceError instead of hanging.
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)
    _owner: Task | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        state = "unlocked" if self._owner is None else f"locked, {len(self._lot)} waiting"
        return f"<shardio.{type(self).__name__} at {id(self):#x} ({state})>"

    def locked(self) -> bool:
        """Whether some task holds the lock."""
        return self._owner is not None

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Take the lock without blocking.

        Raises :class:`~shardio.WouldBlock` if it is held, or if other tasks
        are waiting for it; ``RuntimeError`` if this task already holds it
        (the lock is not reentrant).
        """
        task = current_task()
        if self._owner is task:
            raise RuntimeError(
                f"{task!r} tried to acquire a {type(self).__name__} it already holds "
                "(it is not reentrant)"
            )
        # Tasks wait only while the lock is held (release hands it straight to
        # the first of them), so a free lock has no one queued ahead of us.
        if self._owner is not None:
            raise WouldBlock
        self._owner = task
        add_parking_lot_breaker(task, self._lot)

    @enable_ki_protection
    async def acquire(self) -> None:
        """Take the lock, waiting for it if needed. A checkpoint.

        Raises :class:`~shardio.BrokenResourceError` if the task holding it
        exits without releasing it (then no one can ever take it again), and
        ``RuntimeError`` if this task already holds it.
        """
        await checkpoint_if_cancelled()
        try:
            self.acquire_nowait()
        except WouldBlock:
            # Condition.wait relies on this: parking on self._lot is the whole
            # of a contended acquire, so a task it moves onto self._lot gets the
            # lock the same way.
            try:
                await self._lot.park()
            except BrokenResourceError:
                raise BrokenResourceError(
                    f"the owner of this lock, {self._owner!r}, exited without releasing it"
                ) from None
        else:
            await cancel_shielded_checkpoint()

    @enable_ki_protection
    def release(self) -> None:
        """Release the lock; the longest-waiting task, if any, gets it.

        Raises ``RuntimeError`` if this task does not hold the lock. Not a
        checkpoint.
        """
        task = current_task()
        if self._owner is not task:
            raise RuntimeError(f"{task!r} cannot release a {type(self).__name__} it does not hold")
        remove_parking_lot_breaker(task, self._lot)
        if self._lot:
            (new_owner,) = self._lot.unpark(count=1)
            self._owner = new_owner
            add_parking_lot_breaker(new_owner, self._lot)
        else:
            self._owner = None

    def statistics(self) -> LockStatistics:
        """Whether it is held, by whom, and how many wait (see :class:`LockStatistics`)."""
        return LockStatistics(
            locked=self._owner is not None, owner=self._owner, tasks_waiting=len(self._lot)
        )


@final
@attrs.define(eq=False, slots=True, repr=False)
class Lock(_LockImpl):
    """A mutex: at most one task holds it at a time.

    Not reentrant, and only the task that holds it may release it (unlike
    :class:`threading.Lock`). ``async with lock:`` acquires it, blocking, and
    releases it on exit, without blocking. Waiting tasks get it in the order
    they asked. If the holder exits without releasing it, the lock is broken:
    waiters, and later acquirers, get :class:`~shardio.BrokenResourceError`.
    """


@final
@attrs.define(eq=False, slots=True, repr=False)
class StrictFIFOLock(_LockImpl):
    """A :class:`Lock` that promises to hand itself out strictly in arrival order.

    The classic use: tasks that take turns on shared state, then each have
    data to write to a connection in the order the state produced it. Take
    the data out of the state machine (with no checkpoint in between), then
    ``async with fifo_lock: await stream.send_all(data)``: the chunks go out
    in the order the tasks queued.

    Today it behaves exactly like :class:`Lock`, which is also FIFO; use this
    class when your code *relies* on the order, so that stays true (and
    visible) whatever :class:`Lock` becomes.
    """


# ---------------------------------------------------------------------------
# Condition
# ---------------------------------------------------------------------------


@attrs.frozen
class ConditionStatistics:
    """What :meth:`Condition.statistics` reports.

    ``tasks_waiting``: how many tasks are blocked in :meth:`Condition.wait`
    (not counting those notified and now waiting for the lock);
    ``lock_statistics``: the underlying lock's :class:`LockStatistics`.
    """

    tasks_waiting: int
    lock_statistics: LockStatistics


def _lock_for_condition(lock: Lock | None) -> Lock:
    if lock is None:
        return Lock()
    if type(lock) is not Lock:
        raise TypeError(f"a Condition needs a shardio.Lock, not {type(lock).__name__}")
    return lock


@final
@attrs.define(eq=False, slots=True, repr=False)
class Condition(_AsyncContextManagerMixin):
    """A condition variable: wait, holding a lock, for another task's notice.

    ``async with condition:`` acquires the underlying lock (blocking), and
    releases it on exit. ``lock`` must be a :class:`Lock`; by default the
    condition makes its own.
    """

    _lock: Lock = attrs.field(default=None, converter=_lock_for_condition, alias="lock")
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)

    def __repr__(self) -> str:
        return f"<shardio.Condition at {id(self):#x} ({len(self._lot)} waiting)>"

    def locked(self) -> bool:
        """Whether the underlying lock is held."""
        return self._lock.locked()

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Take the underlying lock without blocking (see :meth:`Lock.acquire_nowait`)."""
        self._lock.acquire_nowait()

    @enable_ki_protection
    async def acquire(self) -> None:
        """Take the underlying lock, waiting if needed (see :meth:`Lock.acquire`)."""
        await self._lock.acquire()

    @enable_ki_protection
    def release(self) -> None:
        """Release the underlying lock (see :meth:`Lock.release`)."""
        self._lock.release()

    @enable_ki_protection
    async def wait(self) -> None:
        """Release the lock, wait for :meth:`notify`, and take the lock back.

        The caller must hold the lock (``RuntimeError`` otherwise); it holds
        it again when ``wait`` returns or raises. That includes cancellation:
        a cancelled ``wait`` first takes the lock back (so it may not raise
        :class:`~shardio.Cancelled` at once), which is what makes
        ``async with condition: await condition.wait()`` safe to cancel.

        A notified task does not run until it got the lock: ``notify`` moves
        it from the condition's queue to the back of the lock's. Raises
        :class:`~shardio.BrokenResourceError` if the lock's holder exits
        without releasing it while this task waits to take it back.
        """
        if current_task() is not self._lock._owner:
            raise RuntimeError("Condition.wait() needs the calling task to hold the lock")
        self._lock.release()
        try:
            # A notify moves this task onto the lock's lot; Lock.release then
            # hands the lock over and wakes it, so waking here means owning it.
            await self._lot.park()
        except BaseException:
            with CancelScope(shield=True):
                await self._lock.acquire()
            raise

    @enable_ki_protection
    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting tasks, longest-waiting first.

        Each gets the lock in turn, after the notifier releases it. The
        caller must hold the lock (``RuntimeError`` otherwise).
        """
        self._check_owner("notify")
        self._lot.repark(self._lock._lot, count=n)

    @enable_ki_protection
    def notify_all(self) -> None:
        """Wake every waiting task (see :meth:`notify`)."""
        self._check_owner("notify_all")
        self._lot.repark_all(self._lock._lot)

    def _check_owner(self, what: str) -> None:
        if current_task() is not self._lock._owner:
            raise RuntimeError(f"Condition.{what}() needs the calling task to hold the lock")

    def statistics(self) -> ConditionStatistics:
        """Waiters and lock state (see :class:`ConditionStatistics`)."""
        return ConditionStatistics(
            tasks_waiting=len(self._lot), lock_statistics=self._lock.statistics()
        )


# ---------------------------------------------------------------------------
# Semaphore
# ---------------------------------------------------------------------------


@final
@attrs.define(eq=False, slots=True, repr=False)
class Semaphore(_AsyncContextManagerMixin):
    """A counter that :meth:`acquire` decrements and :meth:`release` increments.

    It never goes below zero: ``acquire`` at zero blocks until a ``release``.
    With ``max_value``, it is bounded: releasing past it raises
    ``ValueError``. ``async with sem:`` acquires (blocking) and releases.

    Any task may release (nobody "holds" a semaphore). To limit how many
    tasks use something at once, :class:`CapacityLimiter` is usually the
    better tool: it knows who holds its tokens and checks the bookkeeping.
    """

    # Invariant: tasks wait in the lot only while the value is 0.
    _value: int = attrs.field(alias="initial_value")
    _max_value: int | None = attrs.field(default=None, kw_only=True, alias="max_value")
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self._value, int):
            raise TypeError(f"initial_value must be an int, not {type(self._value).__name__}")
        if self._value < 0:
            raise ValueError(f"initial_value must be >= 0, not {self._value}")
        if self._max_value is not None:
            if not isinstance(self._max_value, int):
                raise TypeError(
                    f"max_value must be None or an int, not {type(self._max_value).__name__}"
                )
            if self._max_value < self._value:
                raise ValueError(
                    f"max_value ({self._max_value}) must be >= initial_value ({self._value})"
                )

    def __repr__(self) -> str:
        bound = "" if self._max_value is None else f", max_value={self._max_value}"
        return f"<shardio.Semaphore({self._value}{bound}) at {id(self):#x}>"

    @property
    def value(self) -> int:
        """The current value."""
        return self._value

    @property
    def max_value(self) -> int | None:
        """The bound on the value, or ``None`` if unbounded."""
        return self._max_value

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Decrement the value without blocking; :class:`~shardio.WouldBlock` if it is 0."""
        if self._value == 0:
            raise WouldBlock
        self._value -= 1

    @enable_ki_protection
    async def acquire(self) -> None:
        """Decrement the value, first waiting for it to be above 0. A checkpoint."""
        await checkpoint_if_cancelled()
        try:
            self.acquire_nowait()
        except WouldBlock:
            await self._lot.park()
        else:
            await cancel_shielded_checkpoint()

    @enable_ki_protection
    def release(self) -> None:
        """Increment the value, or, if tasks wait, let the longest-waiting one through.

        Raises ``ValueError`` if that would take the value past ``max_value``.
        Not a checkpoint.
        """
        if self._lot:
            self._lot.unpark(count=1)
            return
        if self._value == self._max_value:
            raise ValueError(f"semaphore released too many times (max_value={self._max_value})")
        self._value += 1

    def statistics(self) -> ParkingLotStatistics:
        """``tasks_waiting``: how many tasks are blocked in :meth:`acquire`."""
        return self._lot.statistics()


# ---------------------------------------------------------------------------
# CapacityLimiter
# ---------------------------------------------------------------------------


@attrs.frozen
class CapacityLimiterStatistics:
    """What :meth:`CapacityLimiter.statistics` reports.

    ``borrowed_tokens``: tokens in use; ``total_tokens``: the capacity (it
    may be below ``borrowed_tokens`` just after it was lowered);
    ``borrowers``: who holds the tokens, in the order they took them;
    ``tasks_waiting``: how many tasks are blocked acquiring a token.
    """

    borrowed_tokens: int
    total_tokens: int | float
    borrowers: list[object]
    tasks_waiting: int


def _check_total_tokens(total_tokens: int | float) -> None:
    if not isinstance(total_tokens, int) and total_tokens != math.inf:
        raise TypeError(f"total_tokens must be an int or math.inf, not {total_tokens!r}")
    if total_tokens < 0:
        raise ValueError(f"total_tokens must be >= 0, not {total_tokens}")


@final
@attrs.define(eq=False, slots=True, repr=False)
class CapacityLimiter(_AsyncContextManagerMixin):
    """Limit how many tasks (or other borrowers) use something at once.

    The limiter holds ``total_tokens`` tokens. A task borrows one with
    ``async with limiter:`` (or :meth:`acquire`), waiting while none is left,
    and puts it back on exit. Each borrower holds at most one token, and
    only the borrower can give it back; a task may borrow on behalf of
    another object (a thread, a remote job) with :meth:`acquire_on_behalf_of`.
    ``total_tokens`` may be an int or ``math.inf``, and may be changed at
    any time.
    """

    _total_tokens: int | float = attrs.field(alias="total_tokens")
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)
    # Insertion-ordered, so statistics() lists borrowers in acquisition order.
    _borrowers: dict[object, None] = attrs.field(factory=dict, init=False)
    # A parked task -> the borrower it acquires for; moved into _borrowers
    # when a token is handed to it.
    _pending_borrowers: dict[Task, object] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        _check_total_tokens(self._total_tokens)

    def __repr__(self) -> str:
        return (
            f"<shardio.CapacityLimiter at {id(self):#x}, {len(self._borrowers)}/"
            f"{self._total_tokens} borrowed, {len(self._lot)} waiting>"
        )

    @property
    def total_tokens(self) -> int | float:
        """The capacity: an int >= 0, or ``math.inf``.

        Raising it hands the new tokens to waiting tasks at once. Lowering it
        below ``borrowed_tokens`` takes nothing back: current borrowers finish
        normally, and nobody new gets in until enough tokens return.
        """
        return self._total_tokens

    @total_tokens.setter
    @enable_ki_protection
    def total_tokens(self, new_total_tokens: int | float) -> None:
        _check_total_tokens(new_total_tokens)
        self._total_tokens = new_total_tokens
        self._hand_out_tokens()

    @property
    def borrowed_tokens(self) -> int:
        """How many tokens are borrowed."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> int | float:
        """How many tokens are left (negative just after ``total_tokens`` was lowered)."""
        return self._total_tokens - len(self._borrowers)

    def _hand_out_tokens(self) -> None:
        if not self._lot:
            return
        for task in self._lot.unpark(count=self._total_tokens - len(self._borrowers)):
            self._borrowers[self._pending_borrowers.pop(task)] = None

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Borrow a token for this task without blocking (see
        :meth:`acquire_on_behalf_of_nowait`)."""
        self.acquire_on_behalf_of_nowait(current_task())

    @enable_ki_protection
    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        """Borrow a token for ``borrower`` without blocking.

        ``borrower`` is any hashable object that will give the token back
        (usually a task). Raises :class:`~shardio.WouldBlock` if no token is
        free or tasks are already waiting for one, and ``RuntimeError`` if
        ``borrower`` already holds a token.
        """
        if borrower in self._borrowers:
            raise RuntimeError(f"{borrower!r} already holds a token of this CapacityLimiter")
        # Tasks wait only while every token is borrowed (a returned or added
        # token goes straight to the first of them), so a free token has no
        # one queued ahead of us.
        if len(self._borrowers) >= self._total_tokens:
            raise WouldBlock
        self._borrowers[borrower] = None

    @enable_ki_protection
    async def acquire(self) -> None:
        """Borrow a token for this task, waiting if needed. A checkpoint.

        Raises ``RuntimeError`` if this task already holds a token.
        """
        await self.acquire_on_behalf_of(current_task())

    @enable_ki_protection
    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Borrow a token for ``borrower``, waiting if needed. A checkpoint.

        Raises ``RuntimeError`` if ``borrower`` already holds a token.
        """
        await checkpoint_if_cancelled()
        try:
            self.acquire_on_behalf_of_nowait(borrower)
        except WouldBlock:
            task = current_task()
            self._pending_borrowers[task] = borrower
            try:
                await self._lot.park()
            except Cancelled:
                del self._pending_borrowers[task]
                raise
        else:
            await cancel_shielded_checkpoint()

    @enable_ki_protection
    def release(self) -> None:
        """Give back this task's token (see :meth:`release_on_behalf_of`)."""
        self.release_on_behalf_of(current_task())

    @enable_ki_protection
    def release_on_behalf_of(self, borrower: object) -> None:
        """Give back ``borrower``'s token; the longest-waiting task, if any, gets it.

        Raises ``RuntimeError`` if ``borrower`` holds no token. Not a checkpoint.
        """
        try:
            del self._borrowers[borrower]
        except KeyError:
            raise RuntimeError(
                f"{borrower!r} does not hold a token of this CapacityLimiter"
            ) from None
        self._hand_out_tokens()

    def statistics(self) -> CapacityLimiterStatistics:
        """Tokens and waiters (see :class:`CapacityLimiterStatistics`)."""
        return CapacityLimiterStatistics(
            borrowed_tokens=len(self._borrowers),
            total_tokens=self._total_tokens,
            borrowers=list(self._borrowers),
            tasks_waiting=len(self._lot),
        )
