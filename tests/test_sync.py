"""Event, Lock, StrictFIFOLock, Semaphore, Condition and CapacityLimiter."""

from __future__ import annotations

import math
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias

import pytest

import shardio
from shardio import (
    BrokenResourceError,
    CapacityLimiter,
    Condition,
    Event,
    Lock,
    Semaphore,
    StrictFIFOLock,
    WouldBlock,
)
from shardio.lowlevel import Task, current_task
from shardio.testing import MockClock, wait_all_tasks_blocked

LockLike: TypeAlias = Lock | StrictFIFOLock | Semaphore | CapacityLimiter | Condition


@asynccontextmanager
async def assert_schedule_point() -> AsyncIterator[None]:
    """Assert the body lets another (already runnable) task run."""
    ran: list[None] = []

    async def bystander() -> None:
        ran.append(None)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(bystander)
        yield
        assert ran, "the operation did not yield to the scheduler"


async def sleep_in_child(record: list[str], name: str, lock: LockLike) -> None:
    record.append(f"{name} waiting")
    async with lock:
        record.append(f"{name} acquired")


# ---------------------------------------------------------------------------
# Event
# ---------------------------------------------------------------------------


async def test_event_starts_unset_and_stays_set_once_set() -> None:
    event = Event()
    assert not event.is_set()
    event.set()
    assert event.is_set()
    event.set()
    assert event.is_set()


async def test_event_wait_blocks_until_set_then_wakes_every_waiter_in_order() -> None:
    event = Event()
    record: list[str] = []

    async def waiter(name: str) -> None:
        await event.wait()
        record.append(name)

    async with shardio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(waiter, name)
        await wait_all_tasks_blocked()
        assert record == []
        assert event.statistics().tasks_waiting == 3
        event.set()
        assert event.statistics().tasks_waiting == 0
    assert record == ["a", "b", "c"]


async def test_event_wait_on_set_event_is_a_schedule_point() -> None:
    event = Event()
    event.set()
    async with assert_schedule_point():
        await event.wait()


async def test_event_wait_on_set_event_is_a_cancel_point() -> None:
    event = Event()
    event.set()
    with shardio.CancelScope() as scope:
        scope.cancel()
        await event.wait()
    assert scope.cancelled_caught


async def test_event_cancelled_waiter_leaves_and_is_not_woken_later() -> None:
    event = Event()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(event.wait)
        await wait_all_tasks_blocked()
        assert event.statistics().tasks_waiting == 1
        nursery.cancel_scope.cancel()
    assert event.statistics().tasks_waiting == 0
    event.set()  # must not try to wake the cancelled task
    assert event.is_set()


def test_event_has_no_truth_value() -> None:
    with pytest.raises(NotImplementedError, match="is_set"):
        bool(Event())


def test_event_can_be_made_and_set_outside_a_run() -> None:
    event = Event()
    event.set()
    assert event.is_set()
    assert event.statistics().tasks_waiting == 0


# ---------------------------------------------------------------------------
# Lock and StrictFIFOLock
# ---------------------------------------------------------------------------

lock_classes = pytest.mark.parametrize("lock_cls", [Lock, StrictFIFOLock], ids=lambda c: c.__name__)


@lock_classes
async def test_lock_acquire_release_toggle_locked(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    assert not lock.locked()
    await lock.acquire()
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    lock.acquire_nowait()
    assert lock.locked()
    lock.release()
    assert not lock.locked()


@lock_classes
async def test_lock_async_with_holds_lock_inside_block_only(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    async with lock:
        assert lock.statistics().owner is current_task()
    assert not lock.locked()


@lock_classes
async def test_lock_uncontended_acquire_is_a_schedule_point(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    async with assert_schedule_point():
        await lock.acquire()
    assert lock.locked()


@lock_classes
async def test_lock_acquire_in_cancelled_scope_raises_cancelled_and_leaves_lock_free(
    lock_cls: type[Lock],
) -> None:
    lock = lock_cls()
    with shardio.CancelScope() as scope:
        scope.cancel()
        await lock.acquire()
    assert scope.cancelled_caught
    assert not lock.locked()


@lock_classes
async def test_lock_taken_at_once_is_kept_if_cancelled_during_the_schedule_point(
    lock_cls: type[Lock],
) -> None:
    lock = lock_cls()

    async def cancel(scope: shardio.CancelScope) -> None:
        scope.cancel()

    async with shardio.open_nursery() as nursery:
        with shardio.CancelScope() as scope:
            nursery.start_soon(cancel, scope)
            await lock.acquire()
        assert scope.cancel_called
    assert not scope.cancelled_caught
    assert lock.statistics().owner is current_task()
    lock.release()


@lock_classes
async def test_lock_is_not_reentrant(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    await lock.acquire()
    with pytest.raises(RuntimeError, match="already holds"):
        lock.acquire_nowait()
    with pytest.raises(RuntimeError, match="already holds"):
        await lock.acquire()
    assert lock.statistics().owner is current_task()


@lock_classes
async def test_lock_release_by_a_task_that_does_not_hold_it_raises(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()

    async def hold_forever() -> None:
        async with lock:
            await shardio.sleep_forever()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(hold_forever)
        await wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="does not hold"):
            lock.release()
        with pytest.raises(WouldBlock):
            lock.acquire_nowait()
        assert lock.locked()
        nursery.cancel_scope.cancel()
    assert not lock.locked()


@lock_classes
async def test_lock_statistics_report_owner_and_waiters(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    stats = lock.statistics()
    assert (stats.locked, stats.owner, stats.tasks_waiting) == (False, None, 0)
    await lock.acquire()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(lock.acquire)
        nursery.start_soon(lock.acquire)
        await wait_all_tasks_blocked()
        stats = lock.statistics()
        assert (stats.locked, stats.owner, stats.tasks_waiting) == (True, current_task(), 2)
        nursery.cancel_scope.cancel()
    stats = lock.statistics()
    assert (stats.locked, stats.owner, stats.tasks_waiting) == (True, current_task(), 0)
    lock.release()


@lock_classes
async def test_lock_waiters_get_the_lock_in_arrival_order(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    record: list[str] = []
    await lock.acquire()
    async with shardio.open_nursery() as nursery:
        for name in "abcd":
            nursery.start_soon(sleep_in_child, record, name, lock)
            await wait_all_tasks_blocked()
        lock.release()
    assert record == [
        "a waiting",
        "b waiting",
        "c waiting",
        "d waiting",
        "a acquired",
        "b acquired",
        "c acquired",
        "d acquired",
    ]


@lock_classes
async def test_lock_release_hands_the_lock_to_the_first_waiter(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    waiter_task: list[Task] = []

    async def waiter() -> None:
        waiter_task.append(current_task())
        await lock.acquire()
        lock.release()

    await lock.acquire()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        lock.release()
        # The waiter owns it before it even runs: no barging back in.
        assert lock.statistics().owner is waiter_task[0]
        with pytest.raises(WouldBlock):
            lock.acquire_nowait()
    assert not lock.locked()


@lock_classes
async def test_lock_cancelled_waiter_leaves_the_queue(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    await lock.acquire()
    with shardio.move_on_after(0) as scope:
        await lock.acquire()
    assert scope.cancelled_caught
    assert lock.statistics().tasks_waiting == 0
    lock.release()
    assert not lock.locked()


@lock_classes
async def test_lock_owner_exiting_while_holding_breaks_it_for_waiters(
    lock_cls: type[Lock],
) -> None:
    lock = lock_cls()
    errors: list[BaseException] = []
    owner: list[Task] = []

    async def take_and_exit() -> None:
        owner.append(current_task())
        await lock.acquire()

    async def waiter() -> None:
        try:
            await lock.acquire()
        except BrokenResourceError as exc:
            errors.append(exc)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(take_and_exit)
        nursery.start_soon(waiter)
    assert len(errors) == 1
    assert repr(owner[0]) in str(errors[0])
    # Later acquires fail too, rather than waiting forever.
    with pytest.raises(BrokenResourceError, match="exited without releasing"):
        await lock.acquire()
    with pytest.raises(WouldBlock):
        lock.acquire_nowait()


@lock_classes
async def test_lock_handed_over_breaks_if_the_new_owner_exits_holding_it(
    lock_cls: type[Lock],
) -> None:
    lock = lock_cls()
    await lock.acquire()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(lock.acquire)
        await wait_all_tasks_blocked()
        lock.release()
    with pytest.raises(BrokenResourceError):
        await lock.acquire()


@lock_classes
async def test_lock_released_before_owner_exits_stays_usable(lock_cls: type[Lock]) -> None:
    lock = lock_cls()

    async def take_and_release() -> None:
        async with lock:
            await shardio.lowlevel.checkpoint()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(take_and_release)
    async with lock:
        assert lock.locked()


@lock_classes
async def test_lock_repr_names_its_class_and_state(lock_cls: type[Lock]) -> None:
    lock = lock_cls()
    assert f"{lock_cls.__name__} at" in repr(lock)
    assert "unlocked" in repr(lock)
    async with lock:
        assert "locked, 0 waiting" in repr(lock)


def test_locks_are_weakly_referenceable_and_made_outside_a_run() -> None:
    for lock in (Lock(), StrictFIFOLock()):
        assert weakref.ref(lock)() is lock


# ---------------------------------------------------------------------------
# Semaphore
# ---------------------------------------------------------------------------


def test_semaphore_rejects_bad_initial_and_max_values() -> None:
    with pytest.raises(TypeError):
        Semaphore(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        Semaphore(-1)
    with pytest.raises(TypeError):
        Semaphore(1, max_value=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= initial_value"):
        Semaphore(2, max_value=1)


async def test_semaphore_acquire_and_release_move_the_value() -> None:
    sem = Semaphore(1)
    assert (sem.value, sem.max_value) == (1, None)
    sem.release()
    assert sem.value == 2
    sem.acquire_nowait()
    assert sem.value == 1
    await sem.acquire()
    assert sem.value == 0
    with pytest.raises(WouldBlock):
        sem.acquire_nowait()
    sem.release()
    async with sem:
        assert sem.value == 0
    assert sem.value == 1


async def test_semaphore_acquire_is_a_schedule_point_and_a_cancel_point() -> None:
    sem = Semaphore(1)
    async with assert_schedule_point():
        await sem.acquire()
    sem.release()
    with shardio.CancelScope() as scope:
        scope.cancel()
        await sem.acquire()
    assert scope.cancelled_caught
    assert sem.value == 1


async def test_semaphore_release_at_zero_hands_the_unit_to_the_first_waiter() -> None:
    sem = Semaphore(0)
    record: list[str] = []
    async with shardio.open_nursery() as nursery:
        for name in "ab":
            nursery.start_soon(sleep_in_child, record, name, sem)
            await wait_all_tasks_blocked()
        assert sem.statistics().tasks_waiting == 2
        sem.release()
        # The unit went to "a": the value stays 0 and newcomers must wait.
        assert sem.value == 0
        assert sem.statistics().tasks_waiting == 1
        with pytest.raises(WouldBlock):
            sem.acquire_nowait()
    assert record == ["a waiting", "b waiting", "a acquired", "b acquired"]
    assert sem.value == 1


async def test_semaphore_may_be_released_by_any_task() -> None:
    sem = Semaphore(0)

    async def releaser() -> None:
        sem.release()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(releaser)
        await sem.acquire()
    assert sem.value == 0


def test_bounded_semaphore_refuses_release_past_max_value() -> None:
    sem = Semaphore(1, max_value=1)
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    assert sem.value == 1
    sem.acquire_nowait()
    sem.release()
    assert sem.value == 1


async def test_semaphore_cancelled_waiter_leaves_the_queue() -> None:
    sem = Semaphore(0)
    with shardio.move_on_after(0) as scope:
        await sem.acquire()
    assert scope.cancelled_caught
    assert sem.statistics().tasks_waiting == 0
    sem.release()
    assert sem.value == 1


# ---------------------------------------------------------------------------
# Condition
# ---------------------------------------------------------------------------


def test_condition_accepts_only_a_plain_lock() -> None:
    lock = Lock()
    assert Condition(lock).statistics().lock_statistics == lock.statistics()
    assert not Condition().locked()
    for bad in (Semaphore(1), StrictFIFOLock(), Lock):
        with pytest.raises(TypeError, match=r"needs a shardio\.Lock"):
            Condition(bad)  # type: ignore[arg-type]


async def test_condition_acquire_and_release_use_the_given_lock() -> None:
    lock = Lock()
    condition = Condition(lock)
    async with assert_schedule_point():
        await condition.acquire()
    assert lock.locked()
    assert condition.locked()
    with pytest.raises(RuntimeError):
        condition.acquire_nowait()
    condition.release()
    assert not lock.locked()
    condition.acquire_nowait()
    assert lock.statistics().owner is current_task()
    condition.release()


async def test_condition_wait_and_notify_require_holding_the_lock() -> None:
    condition = Condition()
    with pytest.raises(RuntimeError, match="hold the lock"):
        await condition.wait()
    with pytest.raises(RuntimeError, match="hold the lock"):
        condition.notify()
    with pytest.raises(RuntimeError, match="hold the lock"):
        condition.notify_all()


async def test_condition_notify_wakes_waiters_one_at_a_time_in_order() -> None:
    condition = Condition()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        async with condition:
            await condition.wait()
            assert condition.statistics().lock_statistics.owner is current_task()
            woken.append(i)

    async with shardio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(waiter, i)
            await wait_all_tasks_blocked()
        assert condition.statistics().tasks_waiting == 4
        async with condition:
            condition.notify()
        await wait_all_tasks_blocked()
        assert woken == [0]
        async with condition:
            condition.notify(2)
        await wait_all_tasks_blocked()
        assert woken == [0, 1, 2]
        async with condition:
            condition.notify_all()
    assert woken == [0, 1, 2, 3]


async def test_condition_notified_tasks_wait_for_the_notifier_to_release_the_lock() -> None:
    condition = Condition()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        async with condition:
            await condition.wait()
            woken.append(i)

    async with shardio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
            await wait_all_tasks_blocked()
        async with condition:
            condition.notify(2)
            stats = condition.statistics()
            assert stats.tasks_waiting == 1
            assert stats.lock_statistics.tasks_waiting == 2
            await wait_all_tasks_blocked()
            assert woken == []
        # Releasing handed the lock to the first notified waiter.
        assert condition.statistics().lock_statistics.tasks_waiting == 1
        await wait_all_tasks_blocked()
        assert woken == [0, 1]
        async with condition:
            condition.notify_all()
    assert woken == [0, 1, 2]


async def test_condition_notify_with_no_waiters_does_nothing() -> None:
    condition = Condition()
    async with condition:
        condition.notify()
        condition.notify_all()
        assert condition.statistics().tasks_waiting == 0


async def test_condition_cancelled_wait_takes_the_lock_back_before_raising() -> None:
    condition = Condition()
    held_after_cancel: list[bool] = []
    with shardio.CancelScope() as scope:
        async with condition:
            scope.cancel()
            try:
                await condition.wait()
            finally:
                held_after_cancel.append(
                    condition.statistics().lock_statistics.owner is current_task()
                )
    assert scope.cancelled_caught
    assert held_after_cancel == [True]
    assert not condition.locked()


async def test_condition_cancelled_wait_waits_for_the_lock_holder() -> None:
    condition = Condition()
    record: list[str] = []
    waiter_scope = shardio.CancelScope()

    async def waiter() -> None:
        with waiter_scope:
            async with condition:
                try:
                    await condition.wait()
                finally:
                    record.append("waiter unwound holding the lock")

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        await condition.acquire()
        waiter_scope.cancel()
        await wait_all_tasks_blocked()
        # Cancelled, but it cannot unwind until we release the lock.
        assert record == []
        record.append("holder releases")
        condition.release()
    assert record == ["holder releases", "waiter unwound holding the lock"]
    assert waiter_scope.cancelled_caught


async def test_condition_waiter_gets_broken_resource_error_if_notifier_exits_holding_lock() -> None:
    condition = Condition()
    errors: list[BaseException] = []

    async def waiter() -> None:
        await condition.acquire()
        try:
            await condition.wait()
        except BrokenResourceError as exc:
            errors.append(exc)

    async def notify_and_exit_holding_the_lock() -> None:
        await condition.acquire()
        condition.notify()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        nursery.start_soon(notify_and_exit_holding_the_lock)
    assert len(errors) == 1


# ---------------------------------------------------------------------------
# CapacityLimiter
# ---------------------------------------------------------------------------


def test_capacity_limiter_validates_total_tokens() -> None:
    assert CapacityLimiter(0).total_tokens == 0
    assert CapacityLimiter(math.inf).available_tokens == math.inf
    with pytest.raises(TypeError):
        CapacityLimiter(1.0)
    with pytest.raises(ValueError, match=">= 0"):
        CapacityLimiter(-1)
    limiter = CapacityLimiter(2)
    with pytest.raises(TypeError):
        limiter.total_tokens = 1.5
    with pytest.raises(ValueError, match=">= 0"):
        limiter.total_tokens = -3
    assert limiter.total_tokens == 2


def test_capacity_limiter_total_tokens_can_change_outside_a_run() -> None:
    limiter = CapacityLimiter(1)
    limiter.total_tokens = 5
    assert limiter.available_tokens == 5


async def test_capacity_limiter_counts_borrowed_and_available_tokens() -> None:
    limiter = CapacityLimiter(2)
    assert (limiter.total_tokens, limiter.borrowed_tokens, limiter.available_tokens) == (2, 0, 2)
    limiter.acquire_nowait()
    assert (limiter.borrowed_tokens, limiter.available_tokens) == (1, 1)
    await limiter.acquire_on_behalf_of("job")
    assert (limiter.borrowed_tokens, limiter.available_tokens) == (2, 0)
    with pytest.raises(WouldBlock):
        limiter.acquire_on_behalf_of_nowait("another job")
    stats = limiter.statistics()
    assert stats.borrowers == [current_task(), "job"]
    assert (stats.borrowed_tokens, stats.total_tokens, stats.tasks_waiting) == (2, 2, 0)
    limiter.release()
    assert limiter.statistics().borrowers == ["job"]
    limiter.release_on_behalf_of("job")
    assert limiter.borrowed_tokens == 0


async def test_capacity_limiter_one_token_per_borrower() -> None:
    limiter = CapacityLimiter(5)
    await limiter.acquire()
    with pytest.raises(RuntimeError, match="already holds"):
        limiter.acquire_nowait()
    with pytest.raises(RuntimeError, match="already holds"):
        await limiter.acquire()
    assert limiter.borrowed_tokens == 1


async def test_capacity_limiter_release_without_a_token_raises() -> None:
    limiter = CapacityLimiter(1)
    with pytest.raises(RuntimeError, match="does not hold"):
        limiter.release()
    with pytest.raises(RuntimeError, match="does not hold"):
        limiter.release_on_behalf_of("nobody")
    assert limiter.borrowed_tokens == 0


async def test_capacity_limiter_acquire_is_a_schedule_point_and_a_cancel_point() -> None:
    limiter = CapacityLimiter(1)
    async with assert_schedule_point(), limiter:
        assert limiter.borrowed_tokens == 1
    assert limiter.borrowed_tokens == 0
    with shardio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.borrowed_tokens == 0


async def test_capacity_limiter_release_hands_the_token_to_the_first_waiter() -> None:
    limiter = CapacityLimiter(1)
    await limiter.acquire_on_behalf_of("first")
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire_on_behalf_of, "second")
        await wait_all_tasks_blocked()
        nursery.start_soon(limiter.acquire_on_behalf_of, "third")
        await wait_all_tasks_blocked()
        assert limiter.statistics().tasks_waiting == 2
        limiter.release_on_behalf_of("first")
        assert limiter.statistics().borrowers == ["second"]
        with pytest.raises(WouldBlock):
            limiter.acquire_nowait()
        limiter.release_on_behalf_of("second")
        assert limiter.statistics().borrowers == ["third"]
    limiter.release_on_behalf_of("third")


async def test_capacity_limiter_raising_total_tokens_admits_waiters_in_order() -> None:
    limiter = CapacityLimiter(2)
    async with shardio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(limiter.acquire_on_behalf_of, i)
            await wait_all_tasks_blocked()
        assert limiter.statistics().borrowers == [0, 1]
        assert limiter.statistics().tasks_waiting == 3
        limiter.total_tokens += 2
        assert limiter.statistics().borrowers == [0, 1, 2, 3]
        assert limiter.statistics().tasks_waiting == 1
        limiter.total_tokens = math.inf
        assert limiter.statistics().borrowers == [0, 1, 2, 3, 4]
    for i in range(5):
        limiter.release_on_behalf_of(i)


async def test_capacity_limiter_lowering_total_tokens_takes_nothing_back() -> None:
    limiter = CapacityLimiter(4)
    for i in range(4):
        limiter.acquire_on_behalf_of_nowait(i)
    limiter.total_tokens = 1
    assert (limiter.borrowed_tokens, limiter.available_tokens) == (4, -3)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire_on_behalf_of, "late")
        await wait_all_tasks_blocked()
        for i in range(3):
            limiter.release_on_behalf_of(i)
        assert limiter.statistics().borrowers == [3]
        assert limiter.statistics().tasks_waiting == 1
        limiter.release_on_behalf_of(3)
        assert limiter.statistics().borrowers == ["late"]


async def test_capacity_limiter_with_zero_tokens_admits_nobody() -> None:
    limiter = CapacityLimiter(0)
    with pytest.raises(WouldBlock):
        limiter.acquire_nowait()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire_on_behalf_of, "x")
        await wait_all_tasks_blocked()
        assert limiter.statistics().tasks_waiting == 1
        assert limiter.statistics().borrowers == []
        limiter.total_tokens = 1
        assert limiter.statistics().borrowers == ["x"]


async def test_capacity_limiter_cancelled_waiter_is_forgotten() -> None:
    limiter = CapacityLimiter(0)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire_on_behalf_of, "cancelled")
        await wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert limiter.statistics().tasks_waiting == 0
    limiter.total_tokens = 1
    # The cancelled borrower did not get the new token; we can.
    assert limiter.statistics().borrowers == []
    limiter.acquire_nowait()


# ---------------------------------------------------------------------------
# Every lock-like object
# ---------------------------------------------------------------------------

lock_factories: list[Callable[[], LockLike]] = [
    Lock,
    StrictFIFOLock,
    lambda: Semaphore(1),
    lambda: CapacityLimiter(1),
    Condition,
]
lock_likes = pytest.mark.parametrize(
    "make_lock",
    lock_factories,
    ids=["Lock", "StrictFIFOLock", "Semaphore(1)", "CapacityLimiter(1)", "Condition"],
)


@lock_likes
async def test_lock_likes_admit_one_task_at_a_time(make_lock: Callable[[], LockLike]) -> None:
    lock = make_lock()
    inside = 0
    most_inside = 0
    entries = 0

    async def worker() -> None:
        nonlocal inside, most_inside, entries
        for _ in range(5):
            async with lock:
                inside += 1
                entries += 1
                most_inside = max(most_inside, inside)
                await shardio.lowlevel.checkpoint()
                await shardio.lowlevel.checkpoint()
                inside -= 1

    async with shardio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(worker)
    assert (most_inside, entries) == (1, 20)


@lock_likes
async def test_lock_likes_serve_contending_tasks_round_robin(
    make_lock: Callable[[], LockLike],
) -> None:
    lock = make_lock()
    order: list[int] = []

    async def loop(i: int) -> None:
        for _ in range(3):
            async with lock:
                order.append(i)

    async with shardio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(loop, i)
    assert order == [0, 1, 2] * 3


@lock_likes
async def test_lock_likes_acquire_nowait_makes_acquire_block(
    make_lock: Callable[[], LockLike],
) -> None:
    lock = make_lock()
    record: list[str] = []
    lock.acquire_nowait()
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(sleep_in_child, record, "child", lock)
        await wait_all_tasks_blocked()
        assert record == ["child waiting"]
        lock.release()
    assert record == ["child waiting", "child acquired"]


async def test_lock_wait_with_autojump_clock_times_out(
    autojump_clock: MockClock,
) -> None:
    lock = Lock()
    await lock.acquire()

    async def contender() -> None:
        with shardio.move_on_after(10) as scope:
            await lock.acquire()
        assert scope.cancelled_caught

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(contender)
    assert shardio.current_time() == 10
    assert lock.statistics().tasks_waiting == 0
