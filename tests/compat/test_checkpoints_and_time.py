"""Checkpoints (which operations are cancel points, which are schedule
points), sleeping on the MockClock, and wait_all_tasks_blocked."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import outcome

from ._harness import Scenarios, Trace, UserError, counting_steps, shape

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


# -- checkpoints ----------------------------------------------------------------


@scenario
async def sleep_zero_is_a_schedule_point_and_a_cancel_point(lib: ModuleType, t: Trace) -> None:
    """sleep(0) lets the scheduler run others (one step) and raises in a
    cancelled scope."""
    with counting_steps(lib) as steps:
        await lib.sleep(0)
        t("steps for sleep(0)", steps.steps)
    with lib.CancelScope() as scope:
        scope.cancel()
        await lib.sleep(0)
        t("unreachable: after sleep(0)")
    t("caught", scope.cancelled_caught)


@scenario
async def checkpoint_if_cancelled_only_acts_when_cancelled(lib: ModuleType, t: Trace) -> None:
    """checkpoint_if_cancelled is free (no schedule point) when not cancelled
    and raises Cancelled when it is."""
    with counting_steps(lib) as steps:
        await lib.lowlevel.checkpoint_if_cancelled()
        t("steps when not cancelled", steps.steps)
    with lib.CancelScope() as scope:
        scope.cancel()
        await lib.lowlevel.checkpoint_if_cancelled()
        t("unreachable: after checkpoint_if_cancelled")
    t("caught", scope.cancelled_caught)


@scenario
async def cancel_shielded_checkpoint_is_never_a_cancel_point(lib: ModuleType, t: Trace) -> None:
    """cancel_shielded_checkpoint is a schedule point that does not raise in a
    cancelled scope; the next ordinary checkpoint does."""
    with lib.CancelScope() as scope:
        scope.cancel()
        with counting_steps(lib) as steps:
            await lib.lowlevel.cancel_shielded_checkpoint()
            t("passed cancel_shielded_checkpoint", steps.steps)
        await lib.lowlevel.checkpoint()
        t("unreachable: after checkpoint")
    t("caught", scope.cancelled_caught)


@scenario
async def cancelled_task_raises_at_its_next_checkpoint_not_earlier(
    lib: ModuleType, t: Trace
) -> None:
    """After cancel(), code without checkpoints (even awaits of coroutines
    that never yield) runs on; the first real checkpoint raises."""

    async def no_checkpoint() -> str:
        return "returned"

    with lib.CancelScope() as scope:
        scope.cancel()
        t("sync code runs", lib.current_effective_deadline())
        t("await without a checkpoint", await no_checkpoint())
        try:
            await lib.sleep(1)
        except lib.Cancelled:
            t.at("sleep raised")
            raise
    t("caught", scope.cancelled_caught)


@scenario
async def checkpoint_in_a_shield_ignores_the_cancelled_outside(lib: ModuleType, t: Trace) -> None:
    """Checkpoints inside a shield within a cancelled scope pass; the same
    checkpoint outside the shield raises."""
    with lib.CancelScope() as scope:
        scope.cancel()
        with lib.CancelScope(shield=True):
            await lib.lowlevel.checkpoint()
            await lib.sleep(0)
            await lib.lowlevel.checkpoint_if_cancelled()
            t("three checkpoints passed in the shield")
        await lib.lowlevel.checkpoint()
        t("unreachable: after the unshielded checkpoint")
    t("caught", scope.cancelled_caught)


@scenario
async def sleep_until_a_past_time_is_still_a_checkpoint(lib: ModuleType, t: Trace) -> None:
    """sleep_until a time already passed returns at once, after one schedule
    point; in a cancelled scope it raises."""
    await lib.sleep(3)
    with counting_steps(lib) as steps:
        await lib.sleep_until(lib.current_time() - 2)
        t.at("returned", steps.steps)
    with lib.CancelScope() as scope:
        scope.cancel()
        await lib.sleep_until(lib.current_time() - 2)
        t("unreachable: after sleep_until")
    t("caught", scope.cancelled_caught)


@scenario
async def sleep_forever_ends_only_by_cancellation(lib: ModuleType, t: Trace) -> None:
    """sleep_forever sleeps until its scope is cancelled (here by a deadline
    at t=7) and then raises Cancelled."""
    with lib.move_on_after(7) as scope:
        try:
            await lib.sleep_forever()
        except lib.Cancelled as exc:
            t.at("sleep_forever raised", type(exc).__name__)
            raise
    t("caught", scope.cancelled_caught)


# -- the MockClock ----------------------------------------------------------------


@scenario
async def autojump_wakes_many_sleepers_in_deadline_order(lib: ModuleType, t: Trace) -> None:
    """Sleepers started in scrambled order wake in order of their deadlines,
    each at its exact virtual time; the clock only jumps."""

    async def sleeper(name: str, durations: tuple[float, ...]) -> None:
        for duration in durations:
            await lib.sleep(duration)
            t.at(name, "woke")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper, "e", (5.5,))
        nursery.start_soon(sleeper, "a", (0.25, 0.5, 3))
        nursery.start_soon(sleeper, "c", (2, 1e-3))
        nursery.start_soon(sleeper, "h", (3600,))
        nursery.start_soon(sleeper, "b", (1,))
        nursery.start_soon(sleeper, "d", (4.5, 100))
        nursery.start_soon(sleeper, "f", (0.125,))
        nursery.start_soon(sleeper, "g", (60, 60))
    t.at("all done")


@scenario
async def sleepers_with_equal_deadlines_wake_together(lib: ModuleType, t: Trace) -> None:
    """Sleepers due at the same virtual time all wake at that time, before any
    later one."""

    async def sleeper(name: str, seconds: float) -> None:
        await lib.sleep(seconds)
        t.unordered(name, t.now())

    async with lib.open_nursery() as nursery:
        for name, seconds in [("x1", 2), ("y", 3), ("x2", 2), ("x3", 2)]:
            nursery.start_soon(sleeper, name, seconds)
        await lib.sleep(2.5)
        t.flush("woke by 2.5")
    t.flush("woke after")


@scenario
async def clock_advances_only_when_every_task_is_blocked(lib: ModuleType, t: Trace) -> None:
    """While one task keeps passing checkpoints, the autojumping clock stays
    put; sleepers wake only after it blocks."""

    async def busy() -> None:
        for _ in range(50):
            await lib.lowlevel.checkpoint()
        t.at("busy task done")

    async def sleeper() -> None:
        await lib.sleep(1)
        t.at("sleeper woke")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        nursery.start_soon(busy)


@scenario
async def mock_clock_jump_wakes_due_sleepers(lib: ModuleType, t: Trace) -> None:
    """Jumping the MockClock by hand past a sleeper's deadline wakes it at the
    jumped-to time; a later sleeper still waits for its own deadline."""

    async def sleeper(seconds: float) -> None:
        await lib.sleep(seconds)
        t.at("sleeper woke", seconds)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper, 3)
        nursery.start_soon(sleeper, 10)
        await lib.testing.wait_all_tasks_blocked()
        lib.lowlevel.current_clock().jump(5)
        t.at("jumped")


@scenario
async def mock_clock_refuses_to_go_backwards(lib: ModuleType, t: Trace) -> None:
    """MockClock rejects a negative rate and a negative jump with ValueError;
    a jump moves current_time by exactly that much."""
    with t.catch("MockClock(rate=-1)"):
        lib.testing.MockClock(rate=-1)
    clock = lib.lowlevel.current_clock()
    t("clock", type(clock).__name__, clock.rate, clock.autojump_threshold)
    with t.catch("jump(-1)"):
        clock.jump(-1)
    with t.catch("rate = -1"):
        clock.rate = -1
    clock.jump(2.5)
    t.at("after jump(2.5)", clock.rate)


# -- wait_all_tasks_blocked ----------------------------------------------------------


@scenario
async def wait_all_tasks_blocked_returns_once_others_block(lib: ModuleType, t: Trace) -> None:
    """wait_all_tasks_blocked returns after every other task has run until it
    blocked, and before the autojumping clock moves."""
    reached: list[str] = []

    async def worker(name: str, checkpoints: int) -> None:
        for _ in range(checkpoints):
            await lib.lowlevel.checkpoint()
        reached.append(name)
        await lib.sleep(5)
        t.at(name, "woke")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(worker, "w1", 3)
        nursery.start_soon(worker, "w2", 10)
        nursery.start_soon(worker, "w3", 0)
        await lib.testing.wait_all_tasks_blocked()
        t.at("all blocked", sorted(reached))
        nursery.cancel_scope.cancel()


@scenario
async def wait_all_tasks_blocked_wakes_smaller_cushions_first(lib: ModuleType, t: Trace) -> None:
    """Waiters with different cushions wake one idle period after another,
    smallest cushion first."""

    async def waiter(cushion: float) -> None:
        await lib.testing.wait_all_tasks_blocked(cushion)
        t.at("woke", cushion)

    async with lib.open_nursery() as nursery:
        for cushion in (0.003, 0.0, 0.002, 0.001):
            nursery.start_soon(waiter, cushion)


@scenario
async def waiters_with_equal_cushions_wake_in_the_same_idle_period(
    lib: ModuleType, t: Trace
) -> None:
    """All waiters with the same cushion wake together: by the time one of
    them passed a checkpoint after waking, the others have woken too."""
    woken: set[str] = set()

    async def waiter(name: str) -> None:
        await lib.testing.wait_all_tasks_blocked(0.001)
        woken.add(name)
        await lib.lowlevel.checkpoint()
        t.unordered(name, "sees", sorted(woken))

    async with lib.open_nursery() as nursery:
        for name in ("a", "b", "c"):
            nursery.start_soon(waiter, name)
    t.flush("after one checkpoint")


@scenario
async def wait_all_tasks_blocked_is_cancellable(lib: ModuleType, t: Trace) -> None:
    """wait_all_tasks_blocked is a cancel point: in a cancelled scope it
    raises Cancelled instead of waiting."""
    with lib.CancelScope() as scope:
        scope.cancel()
        await lib.testing.wait_all_tasks_blocked()
        t("unreachable: after wait_all_tasks_blocked")
    t("caught", scope.cancelled_caught)


# -- the low-level parking API --------------------------------------------------------


@scenario
async def failed_abort_keeps_the_task_parked_until_rescheduled(lib: ModuleType, t: Trace) -> None:
    """A parked task whose abort function answers FAILED stays parked through
    the cancellation; it returns the value it is rescheduled with, and its
    next checkpoint raises the pending Cancelled."""
    parked: list[Any] = []
    scope = lib.CancelScope()

    async def sleeper() -> None:
        def abort(raise_cancel: Any) -> Any:
            t.at("abort called")
            return lib.lowlevel.Abort.FAILED

        with scope:
            parked.append(lib.lowlevel.current_task())
            value = await lib.lowlevel.wait_task_rescheduled(abort)
            t.at("woke with", value)
            await lib.lowlevel.checkpoint()
            t("unreachable: after the checkpoint")
        t.at("sleeper done", scope.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await lib.sleep(1)
        scope.cancel()
        await lib.sleep(2)
        lib.lowlevel.reschedule(parked[0], outcome.Value("the value"))


@scenario
async def succeeded_abort_raises_cancelled_through_raise_cancel(lib: ModuleType, t: Trace) -> None:
    """An abort function answering SUCCEEDED makes the parked task raise
    Cancelled at once; a task rescheduled with an Error raises that error."""
    parked: list[Any] = []

    async def sleeper(name: str) -> None:
        parked.append(lib.lowlevel.current_task())
        try:
            await lib.lowlevel.wait_task_rescheduled(lambda _: lib.lowlevel.Abort.SUCCEEDED)
        except lib.Cancelled as exc:
            t.at(name, "raised", shape(exc))
            raise
        except UserError as exc:
            t.at(name, "raised", shape(exc))

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper, "errored")
        await lib.testing.wait_all_tasks_blocked()
        lib.lowlevel.reschedule(parked[0], outcome.Error(UserError("sent in")))
        await lib.testing.wait_all_tasks_blocked()
        with lib.CancelScope() as scope:
            scope.cancel()
            await sleeper("cancelled")
        t("caught", scope.cancelled_caught)


@scenario
async def rescheduled_sleep_forever_raises_runtime_error(lib: ModuleType, t: Trace) -> None:
    """sleep_forever woken by reschedule() instead of a cancellation raises
    RuntimeError."""
    parked: list[Any] = []

    async def sleeper() -> None:
        parked.append(lib.lowlevel.current_task())
        with t.catch("sleep_forever"):
            await lib.sleep_forever()

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await lib.testing.wait_all_tasks_blocked()
        lib.lowlevel.reschedule(parked[0])


test_trio_and_shardio_traces_match = SCENARIOS.test()
