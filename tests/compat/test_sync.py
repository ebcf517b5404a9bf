"""Synchronization primitives: Event, Lock, StrictFIFOLock, Semaphore,
CapacityLimiter and Condition -- fairness, errors, and statistics."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from ._harness import Scenarios, Trace, counting_steps

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


def _lock_stats(lib: ModuleType, s: Any) -> tuple[Any, ...]:
    # ``s``: a LockStatistics; the owner is shown relative to the caller.
    owner = s.owner
    if owner is not None:
        owner = "me" if owner is lib.lowlevel.current_task() else "another task"
    return ("locked", s.locked, "owner", owner, "tasks_waiting", s.tasks_waiting)


# -- Event ---------------------------------------------------------------------


@scenario
async def event_set_before_wait_returns_after_a_checkpoint(lib: ModuleType, t: Trace) -> None:
    """wait() on an event already set returns at once but is still a checkpoint:
    one schedule point, and it raises in a cancelled scope."""
    event = lib.Event()
    event.set()
    with counting_steps(lib) as counter:
        await event.wait()
    t.at("wait returned", event.is_set(), counter.steps)
    with lib.CancelScope() as scope:
        scope.cancel()
        await event.wait()
        t("unreachable: after wait")
    t("cancelled", scope.cancelled_caught)


@scenario
async def event_set_wakes_every_waiter(lib: ModuleType, t: Trace) -> None:
    """set() wakes all waiting tasks at that moment; setting again is a no-op;
    statistics count the waiters."""
    event = lib.Event()

    async def waiter(name: str, delay: float) -> None:
        await lib.sleep(delay)
        await event.wait()
        t.unordered(name, t.now())

    async with lib.open_nursery() as nursery:
        for name, delay in [("a", 1), ("b", 0), ("c", 2)]:
            nursery.start_soon(waiter, name, delay)
        await lib.sleep(3)
        t("before set", event.is_set(), event.statistics().tasks_waiting)
        event.set()
        event.set()
        t("after set", event.is_set(), event.statistics().tasks_waiting)
    t.flush("woken")
    await event.wait()
    t.at("a late wait returns")


@scenario
async def cancelled_event_wait_stops_waiting(lib: ModuleType, t: Trace) -> None:
    """A wait() cancelled by a timeout leaves the event's waiters."""
    event = lib.Event()

    async def waiter() -> None:
        with lib.move_on_after(2):
            await event.wait()
        t.at("waiter gave up")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await lib.sleep(1)
        t("waiting", event.statistics().tasks_waiting)
        await lib.sleep(2)
        t("waiting", event.statistics().tasks_waiting, event.is_set())


@scenario
async def event_refuses_to_be_a_bool(lib: ModuleType, t: Trace) -> None:
    """bool(event) raises NotImplementedError (use is_set())."""
    with t.catch("bool(event)"):
        bool(lib.Event())


# -- Lock and StrictFIFOLock ---------------------------------------------------------


async def _fifo_handoff(lib: ModuleType, t: Trace, lock: Any) -> None:
    async def waiter(name: str, arrive: float) -> None:
        await lib.sleep(arrive)
        async with lock:
            t.at(name, "acquired")
            await lib.sleep(1)

    async with lib.open_nursery() as nursery:
        await lock.acquire()
        nursery.start_soon(waiter, "b", 2)
        nursery.start_soon(waiter, "c", 3)
        nursery.start_soon(waiter, "a", 1)
        await lib.sleep(5)
        t.at("holder", _lock_stats(lib, lock.statistics()))
        lock.release()
        with t.catch("holder acquire_nowait right after release"):
            lock.acquire_nowait()
        t("after release", _lock_stats(lib, lock.statistics()))


@scenario
async def lock_hands_off_to_waiters_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """Released with waiters queued, a Lock goes to the longest waiter at once
    (a newcomer's acquire_nowait fails), then to the others in arrival order."""
    await _fifo_handoff(lib, t, lib.Lock())


@scenario
async def strict_fifo_lock_hands_off_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """StrictFIFOLock hands off exactly like Lock: to waiters in arrival order."""
    await _fifo_handoff(lib, t, lib.StrictFIFOLock())


async def _lock_errors(lib: ModuleType, t: Trace, lock: Any) -> None:
    t("fresh", lock.locked(), _lock_stats(lib, lock.statistics()))
    with t.catch("release unlocked"):
        lock.release()
    await lock.acquire()
    t("acquired", lock.locked(), _lock_stats(lib, lock.statistics()))
    with t.catch("acquire_nowait again by owner"):
        lock.acquire_nowait()
    with t.catch("acquire again by owner"):
        await lock.acquire()

    async def other() -> None:
        with t.catch("release by non-owner"):
            lock.release()
        with t.catch("acquire_nowait by other"):
            lock.acquire_nowait()

    async with lib.open_nursery() as nursery:
        nursery.start_soon(other)
    lock.release()
    t("released", lock.locked(), _lock_stats(lib, lock.statistics()))


@scenario
async def lock_misuse_raises(lib: ModuleType, t: Trace) -> None:
    """Lock: releasing when not the owner raises RuntimeError, re-acquiring by
    the owner raises RuntimeError, acquire_nowait when held raises WouldBlock."""
    await _lock_errors(lib, t, lib.Lock())


@scenario
async def strict_fifo_lock_misuse_raises(lib: ModuleType, t: Trace) -> None:
    """StrictFIFOLock has Lock's errors for the same misuses."""
    await _lock_errors(lib, t, lib.StrictFIFOLock())


@scenario
async def lock_acquire_is_a_cancel_point_even_when_free(lib: ModuleType, t: Trace) -> None:
    """acquire() of a free lock in a cancelled scope raises Cancelled and does
    not take the lock; a cancelled waiter leaves the queue."""
    lock = lib.Lock()
    with lib.CancelScope() as scope:
        scope.cancel()
        await lock.acquire()
    t("cancelled", scope.cancelled_caught, _lock_stats(lib, lock.statistics()))
    await lock.acquire()

    async def impatient() -> None:
        with lib.move_on_after(1):
            await lock.acquire()
        t.at("gave up", _lock_stats(lib, lock.statistics()))

    async with lib.open_nursery() as nursery:
        nursery.start_soon(impatient)
    lock.release()


@scenario
async def lock_owner_exiting_without_release_breaks_waiters(lib: ModuleType, t: Trace) -> None:
    """When the task holding a Lock exits without releasing it, the tasks
    waiting for it get BrokenResourceError."""
    lock = lib.Lock()

    async def owner() -> None:
        await lock.acquire()
        await lib.sleep(2)
        t.at("owner exits holding the lock")

    async def waiter() -> None:
        await lib.sleep(1)
        with t.catch("waiter acquire"):
            await lock.acquire()
        t.at("waiter done")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(owner)
        nursery.start_soon(waiter)


# -- Semaphore -----------------------------------------------------------------------


@scenario
async def semaphore_counts_and_refuses_over_release(lib: ModuleType, t: Trace) -> None:
    """A Semaphore's value goes down with acquire and up with release; at 0
    acquire_nowait raises WouldBlock; past max_value release raises ValueError."""
    sem = lib.Semaphore(2, max_value=2)
    t("fresh", sem.value, sem.max_value)
    await sem.acquire()
    sem.acquire_nowait()
    t("acquired twice", sem.value)
    with t.catch("acquire_nowait at 0"):
        sem.acquire_nowait()
    sem.release()
    sem.release()
    t("released twice", sem.value)
    with t.catch("release past max_value"):
        sem.release()
    t("after", sem.value, sem.statistics().tasks_waiting)
    unbounded = lib.Semaphore(0)
    for _ in range(3):
        unbounded.release()
    t("unbounded", unbounded.value, unbounded.max_value)


@scenario
async def semaphore_rejects_invalid_values(lib: ModuleType, t: Trace) -> None:
    """Semaphore needs int values: initial_value < 0 or > max_value gives
    ValueError, non-int values give TypeError."""
    with t.catch("Semaphore(-1)"):
        lib.Semaphore(-1)
    with t.catch("Semaphore(3, max_value=2)"):
        lib.Semaphore(3, max_value=2)
    with t.catch("Semaphore(1.5)"):
        lib.Semaphore(1.5)
    with t.catch("Semaphore(1, max_value=2.5)"):
        lib.Semaphore(1, max_value=2.5)


@scenario
async def semaphore_wakes_waiters_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """Tasks blocked on a Semaphore at 0 get released units in the order they
    arrived."""
    sem = lib.Semaphore(0)

    async def waiter(name: str, arrive: float) -> None:
        await lib.sleep(arrive)
        async with sem:
            t.at(name, "acquired")
            await lib.sleep(10)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(waiter, "c", 3)
        nursery.start_soon(waiter, "a", 1)
        nursery.start_soon(waiter, "b", 2)
        await lib.sleep(4)
        t("waiting", sem.statistics().tasks_waiting, sem.value)
        for _ in range(3):
            sem.release()
            t("released", sem.value, sem.statistics().tasks_waiting)
            await lib.sleep(1)
    t.at("all done", sem.value)


# -- CapacityLimiter -------------------------------------------------------------------


def _limiter(limiter: Any) -> tuple[Any, ...]:
    s = limiter.statistics()
    return (
        ("total", limiter.total_tokens, s.total_tokens),
        ("borrowed", limiter.borrowed_tokens, s.borrowed_tokens),
        ("available", limiter.available_tokens),
        ("borrowers", len(s.borrowers)),
        ("tasks_waiting", s.tasks_waiting),
    )


@scenario
async def capacity_limiter_tracks_borrowed_and_available_tokens(lib: ModuleType, t: Trace) -> None:
    """Each borrower holds at most one token; borrowed/available tokens and
    statistics follow acquire and release, also on behalf of other objects."""
    limiter = lib.CapacityLimiter(3)
    t("fresh", _limiter(limiter))
    await limiter.acquire()
    t("acquired", _limiter(limiter))
    with t.catch("acquire again"):
        await limiter.acquire()
    with t.catch("acquire_nowait again"):
        limiter.acquire_nowait()
    limiter.acquire_on_behalf_of_nowait("borrower x")
    await limiter.acquire_on_behalf_of("borrower y")
    t("full", _limiter(limiter))
    borrowers = limiter.statistics().borrowers
    t("borrowers", sorted(b for b in borrowers if isinstance(b, str)))
    t("the task borrows too", lib.lowlevel.current_task() in borrowers)
    with t.catch("acquire_on_behalf_of_nowait when full"):
        limiter.acquire_on_behalf_of_nowait("borrower z")
    with t.catch("release_on_behalf_of a non-borrower"):
        limiter.release_on_behalf_of("borrower z")
    limiter.release_on_behalf_of("borrower x")
    limiter.release()
    with t.catch("release again"):
        limiter.release()
    t("after releases", _limiter(limiter))


@scenario
async def raising_total_tokens_wakes_waiters_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """Raising total_tokens hands the new tokens to the longest waiters at
    once; lowering it below the borrowed count lets holders keep theirs."""
    limiter = lib.CapacityLimiter(1)

    async def worker(name: str, arrive: float) -> None:
        await lib.sleep(arrive)
        async with limiter:
            t.unordered(name, "acquired", t.now())
            await lib.sleep(10)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(worker, "first", 0)
        nursery.start_soon(worker, "third", 3)
        nursery.start_soon(worker, "second", 2)
        nursery.start_soon(worker, "fourth", 4)
        await lib.sleep(5)
        t("before", _limiter(limiter))
        limiter.total_tokens = 3
        t("raised to 3", _limiter(limiter))
        await lib.sleep(1)
        limiter.total_tokens = 1
        t("lowered to 1", _limiter(limiter))
    t.flush("acquired")
    t.at("done", _limiter(limiter))


@scenario
async def capacity_limiter_rejects_invalid_totals(lib: ModuleType, t: Trace) -> None:
    """total_tokens must be an int >= 0 or math.inf: a float gives TypeError,
    a negative value ValueError; with 0 tokens nothing can be borrowed."""
    with t.catch("CapacityLimiter(1.5)"):
        lib.CapacityLimiter(1.5)
    with t.catch("CapacityLimiter(-1)"):
        lib.CapacityLimiter(-1)
    limiter = lib.CapacityLimiter(math.inf)
    await limiter.acquire()
    t("inf", _limiter(limiter))
    with t.catch("total_tokens = 2.5"):
        limiter.total_tokens = 2.5
    with t.catch("total_tokens = -1"):
        limiter.total_tokens = -1
    limiter.release()
    empty = lib.CapacityLimiter(0)
    t("zero tokens", _limiter(empty))
    with t.catch("acquire_nowait with 0 tokens"):
        empty.acquire_nowait()


# -- Condition -----------------------------------------------------------------------------


@scenario
async def condition_notify_wakes_waiters_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """notify(n) wakes the n longest waiters; each returns from wait() holding
    the lock, one after the other; notify_all wakes the rest."""
    cond = lib.Condition()

    async def waiter(name: str, arrive: float) -> None:
        await lib.sleep(arrive)
        async with cond:
            await cond.wait()
            t.at(name, "woke holding the lock", cond.locked())
            await lib.sleep(1)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(waiter, "c", 3)
        nursery.start_soon(waiter, "a", 1)
        nursery.start_soon(waiter, "d", 4)
        nursery.start_soon(waiter, "b", 2)
        await lib.sleep(5)
        async with cond:
            t("waiting", cond.statistics().tasks_waiting)
            cond.notify()
            stats = cond.statistics()
            t("after notify()", stats.tasks_waiting, stats.lock_statistics.tasks_waiting)
        await lib.sleep(5)
        async with cond:
            cond.notify(2)
        await lib.sleep(5)
        async with cond:
            cond.notify_all()
    t.at("done", cond.statistics().tasks_waiting, cond.locked())


@scenario
async def condition_requires_holding_its_lock(lib: ModuleType, t: Trace) -> None:
    """wait, notify and notify_all without holding the lock raise RuntimeError;
    a Condition's lock must be a Lock."""
    cond = lib.Condition(lib.Lock())
    with t.catch("wait without the lock"):
        await cond.wait()
    with t.catch("notify without the lock"):
        cond.notify()
    with t.catch("notify_all without the lock"):
        cond.notify_all()
    with t.catch("Condition(StrictFIFOLock())"):
        lib.Condition(lib.StrictFIFOLock())
    with t.catch("Condition(Semaphore(1))"):
        lib.Condition(lib.Semaphore(1))
    stats = cond.statistics()
    t("stats", stats.tasks_waiting, stats.lock_statistics.locked)


@scenario
async def cancelled_condition_wait_reacquires_the_lock_first(lib: ModuleType, t: Trace) -> None:
    """A wait() cancelled while another task holds the lock raises Cancelled
    only once it has re-acquired the lock."""
    cond = lib.Condition()

    async def waiter() -> None:
        with lib.move_on_after(1) as scope:
            async with cond:
                try:
                    await cond.wait()
                except lib.Cancelled:
                    t.at(
                        "wait raised Cancelled",
                        cond.locked(),
                        _lock_stats(lib, cond.statistics().lock_statistics),
                    )
                    raise
        t.at("waiter done", scope.cancelled_caught, cond.locked())

    async with lib.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await lib.testing.wait_all_tasks_blocked()
        await cond.acquire()
        await lib.sleep(3)
        t.at("holder releases")
        cond.release()


@scenario
async def cancelled_lock_waiter_gives_up_its_place(lib: ModuleType, t: Trace) -> None:
    """A waiter cancelled while queued for a Lock leaves the queue: the lock
    goes to the next waiter in line."""
    lock = lib.Lock()

    async def waiter(name: str, arrive: float, patience: float) -> None:
        await lib.sleep(arrive)
        with lib.move_on_after(patience):
            async with lock:
                t.at(name, "acquired")
                return
        t.at(name, "gave up")

    async with lib.open_nursery() as nursery:
        await lock.acquire()
        nursery.start_soon(waiter, "first", 1, 2)
        nursery.start_soon(waiter, "second", 2, 100)
        await lib.sleep(5)
        t("waiting", lock.statistics().tasks_waiting)
        lock.release()


@scenario
async def capacity_limiter_release_hands_the_token_to_the_first_waiter(
    lib: ModuleType, t: Trace
) -> None:
    """Releasing a token with tasks waiting gives it to the first waiter at
    once: it counts as borrowed, and a newcomer's acquire_nowait fails."""
    limiter = lib.CapacityLimiter(1)

    async def waiter(name: str, arrive: float) -> None:
        await lib.sleep(arrive)
        async with limiter:
            t.at(name, "acquired")
            await lib.sleep(1)

    async with lib.open_nursery() as nursery:
        await limiter.acquire()
        nursery.start_soon(waiter, "second", 2)
        nursery.start_soon(waiter, "first", 1)
        await lib.sleep(3)
        limiter.release()
        t("after release", _limiter(limiter))
        with t.catch("acquire_nowait by the releaser"):
            limiter.acquire_nowait()


@scenario
async def uncontended_operations_are_one_schedule_point_each(lib: ModuleType, t: Trace) -> None:
    """Every async operation of the primitives that need not wait is exactly
    one schedule point; the sync ones (release, set, *_nowait) are none."""
    with counting_steps(lib) as counter:
        last = 0

        def steps(label: str) -> None:
            nonlocal last
            t(label, counter.steps - last)
            last = counter.steps

        event = lib.Event()
        event.set()
        steps("Event.set")
        await event.wait()
        steps("Event.wait when set")
        for name in ("Lock", "StrictFIFOLock"):
            lock = getattr(lib, name)()
            await lock.acquire()
            steps(f"{name}.acquire")
            lock.release()
            steps(f"{name}.release")
            async with lock:
                steps(f"async with {name}: enter")
            steps(f"async with {name}: exit")
        sem = lib.Semaphore(1)
        await sem.acquire()
        steps("Semaphore.acquire")
        sem.release()
        steps("Semaphore.release")
        limiter = lib.CapacityLimiter(2)
        await limiter.acquire()
        steps("CapacityLimiter.acquire")
        await limiter.acquire_on_behalf_of("other")
        steps("CapacityLimiter.acquire_on_behalf_of")
        limiter.release()
        limiter.release_on_behalf_of("other")
        steps("CapacityLimiter.release")
        cond = lib.Condition()
        await cond.acquire()
        steps("Condition.acquire")
        cond.notify_all()
        cond.release()
        steps("Condition.notify_all and release")
        send, receive = lib.open_memory_channel(1)
        await send.send("x")
        steps("send with room")
        await receive.receive()
        steps("receive with a value")
        send.send_nowait("y")
        receive.receive_nowait()
        steps("send_nowait and receive_nowait")
        await send.aclose()
        steps("send aclose")
        await receive.aclose()
        steps("receive aclose")


@scenario
async def acquires_are_cancel_points_even_when_free(lib: ModuleType, t: Trace) -> None:
    """In a cancelled scope, acquiring a free Semaphore, CapacityLimiter,
    StrictFIFOLock or Condition raises Cancelled and takes nothing."""
    sem = lib.Semaphore(1)
    limiter = lib.CapacityLimiter(1)
    strict = lib.StrictFIFOLock()
    cond = lib.Condition()
    for label, acquire in [
        ("Semaphore", sem.acquire),
        ("CapacityLimiter", limiter.acquire),
        ("StrictFIFOLock", strict.acquire),
        ("Condition", cond.acquire),
    ]:
        with lib.CancelScope() as scope:
            scope.cancel()
            await acquire()
        t(label, scope.cancelled_caught)
    t("untouched", sem.value, limiter.borrowed_tokens, strict.locked(), cond.locked())


@scenario
async def lock_handed_to_a_waiter_survives_its_cancellation(lib: ModuleType, t: Trace) -> None:
    """A waiter that was handed the lock and is cancelled before it runs again
    still returns from acquire() owning the lock; the Cancelled comes at its
    next checkpoint."""
    lock = lib.Lock()
    scope = lib.CancelScope()

    async def waiter() -> None:
        with scope:
            await lock.acquire()
            t.at("acquire returned", _lock_stats(lib, lock.statistics()))
            try:
                await lib.lowlevel.checkpoint()
            finally:
                lock.release()
        t.at("waiter done", scope.cancelled_caught, lock.locked())

    async with lib.open_nursery() as nursery:
        await lock.acquire()
        nursery.start_soon(waiter)
        await lib.sleep(1)
        lock.release()
        scope.cancel()


@scenario
async def event_waiter_woken_then_cancelled_returns_normally(lib: ModuleType, t: Trace) -> None:
    """A waiter woken by set() and cancelled before it runs again returns from
    wait(); the Cancelled comes at its next checkpoint."""
    event = lib.Event()
    scope = lib.CancelScope()

    async def waiter() -> None:
        with scope:
            await event.wait()
            t.at("wait returned")
            await lib.lowlevel.checkpoint()
            t("unreachable: after the checkpoint")
        t.at("waiter done", scope.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await lib.sleep(1)
        event.set()
        scope.cancel()


test_trio_and_shardio_traces_match = SCENARIOS.test()
