"""Nurseries: waiting for children, failure propagation, the exact shape of
the exception groups, and ``nursery.start()``."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._harness import Scenarios, Trace, UserBaseError, UserError, counting_steps, shape

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


async def _fail_at(lib: ModuleType, t: Trace, when: float, name: str) -> None:
    await lib.sleep(when)
    t.at(name, "raises")
    raise UserError(name)


async def _sleep_forever_logging(lib: ModuleType, t: Trace, name: str) -> None:
    # Siblings are cancelled in one batch: the order among them is not part
    # of the contract, hence the unordered bag.
    try:
        await lib.sleep_forever()
    except lib.Cancelled:
        t.unordered(name, "cancelled", t.now())
        raise


# -- waiting and failing --------------------------------------------------------


@scenario
async def nursery_waits_for_every_child(lib: ModuleType, t: Trace) -> None:
    """The block ends only when the last child returns, even if the body
    finished long before."""

    async def child(seconds: float) -> None:
        await lib.sleep(seconds)
        t.at("child done", seconds)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(child, 2)
        nursery.start_soon(child, 1)
        nursery.start_soon(child, 3)
        t.at("body done")
    t.at("nursery exited")


@scenario
async def one_failing_child_gives_a_group_of_one(lib: ModuleType, t: Trace) -> None:
    """One child raising cancels its sibling and the body; the nursery raises
    an ExceptionGroup holding just that error (no Cancelled)."""
    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(_fail_at, lib, t, 1, "a")
            nursery.start_soon(_sleep_forever_logging, lib, t, "sibling")
            try:
                await lib.sleep_forever()
            except lib.Cancelled:
                t.unordered("body", "cancelled", t.now())
                raise
    t.flush("cancelled")
    t.at("after", nursery.cancel_scope.cancel_called, nursery.cancel_scope.cancelled_caught)


@scenario
async def two_failing_children_are_grouped_in_exit_order(lib: ModuleType, t: Trace) -> None:
    """A child that fails at t=1 and a sibling that fails while unwinding from
    the resulting cancellation (at t=2, shielded) both land in the group, in
    the order they exited."""

    async def second() -> None:
        try:
            await lib.sleep_forever()
        finally:
            with lib.CancelScope(shield=True):
                await lib.sleep(1)
            t.at("b raises")
            raise UserError("b")

    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(second)
            nursery.start_soon(_fail_at, lib, t, 1, "a")


@scenario
async def body_error_comes_before_a_later_child_error(lib: ModuleType, t: Trace) -> None:
    """The body raising at t=0 while a shielded child raises at t=1: the group
    lists the body's error first."""

    async def shielded_failer() -> None:
        with lib.CancelScope(shield=True):
            await lib.sleep(1)
        t.at("child raises")
        raise UserError("child")

    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(shielded_failer)
            await lib.sleep(0)
            raise UserError("body")


@scenario
async def child_error_comes_before_a_later_body_error(lib: ModuleType, t: Trace) -> None:
    """A child raising at t=1 while the body, shielded, raises at t=2: the
    group lists the child's error first."""
    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(_fail_at, lib, t, 1, "child")
            with lib.CancelScope(shield=True):
                await lib.sleep(2)
            t.at("body raises")
            raise UserError("body")


@scenario
async def body_error_cancels_the_children(lib: ModuleType, t: Trace) -> None:
    """An error raised by the body cancels the children; the group holds only
    the body's error."""
    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(_sleep_forever_logging, lib, t, "child")
            await lib.sleep(2)
            raise UserError("body")
    t.flush("cancelled")
    t.at("after")


@scenario
async def nested_nursery_groups_nest(lib: ModuleType, t: Trace) -> None:
    """An inner nursery's group, raised in the outer nursery's body, arrives
    wrapped in the outer nursery's group."""
    with t.catch("outer nursery"):
        async with lib.open_nursery() as outer:
            outer.start_soon(_sleep_forever_logging, lib, t, "outer child")
            async with lib.open_nursery() as inner:
                inner.start_soon(_fail_at, lib, t, 1, "inner child")
                inner.start_soon(_sleep_forever_logging, lib, t, "inner sibling")
    t.flush("cancelled")


@scenario
async def group_in_a_child_nursery_task_nests_too(lib: ModuleType, t: Trace) -> None:
    """A child task whose own nursery fails contributes that group, as one
    member, to the parent nursery's group; a sibling error joins it."""

    async def child_with_nursery() -> None:
        async with lib.open_nursery() as nursery:
            nursery.start_soon(_fail_at, lib, t, 1, "grandchild 1")
            nursery.start_soon(_fail_at, lib, t, 2, "grandchild 2")

    async def late_sibling() -> None:
        try:
            await lib.sleep_forever()
        finally:
            with lib.CancelScope(shield=True):
                await lib.sleep(5)
            raise UserError("sibling")

    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(child_with_nursery)
            nursery.start_soon(late_sibling)


@scenario
async def base_exception_from_child_gives_base_exception_group(lib: ModuleType, t: Trace) -> None:
    """A child raising a BaseException (not an Exception) makes the nursery
    raise a BaseExceptionGroup, which ``except Exception`` does not catch."""

    async def child() -> None:
        await lib.sleep(1)
        raise UserBaseError("base")

    try:
        with t.catch("nursery"):
            try:
                async with lib.open_nursery() as nursery:
                    nursery.start_soon(child)
            except Exception:
                t("unreachable: caught as Exception")
    finally:
        t.at("finally")


@scenario
async def outer_cancel_through_a_nursery_is_a_group_of_cancelled(lib: ModuleType, t: Trace) -> None:
    """A scope cancelled around a nursery: the Cancelleds of the body and the
    two children come out of the nursery as one BaseExceptionGroup, which the
    outer scope then absorbs."""
    with lib.CancelScope() as outer:
        try:
            async with lib.open_nursery() as nursery:
                nursery.start_soon(lib.sleep_forever)
                nursery.start_soon(lib.sleep_forever)
                await lib.sleep(1)
                outer.cancel()
                await lib.sleep_forever()
        except BaseException as exc:
            t("between nursery and outer scope", shape(exc))
            raise
    t.at("outer", outer.cancelled_caught)
    t("nursery scope", nursery.cancel_scope.cancel_called, nursery.cancel_scope.cancelled_caught)


@scenario
async def nursery_cancel_scope_cancels_everything_quietly(lib: ModuleType, t: Trace) -> None:
    """nursery.cancel_scope.cancel() ends the body and all children with no
    exception escaping."""
    async with lib.open_nursery() as nursery:
        nursery.start_soon(_sleep_forever_logging, lib, t, "child 1")
        nursery.start_soon(_sleep_forever_logging, lib, t, "child 2")
        await lib.sleep(4)
        nursery.cancel_scope.cancel()
        t("body runs on until its checkpoint")
        await lib.lowlevel.checkpoint()
        t("unreachable: after the checkpoint")
    t.flush("cancelled")
    t.at("after", nursery.cancel_scope.cancelled_caught)


@scenario
async def child_error_while_body_waits_in_exit(lib: ModuleType, t: Trace) -> None:
    """A child failing after the body finished (the parent is waiting in
    __aexit__) still cancels its siblings and is raised as a group."""
    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(_fail_at, lib, t, 3, "late")
            nursery.start_soon(_sleep_forever_logging, lib, t, "sibling")
            t.at("body done")
    t.flush("cancelled")
    t.at("after")


@scenario
async def nursery_exit_is_not_a_cancel_point(lib: ModuleType, t: Trace) -> None:
    """Leaving an empty nursery inside a cancelled scope does not raise: the
    exit is a schedule point only."""
    with lib.CancelScope() as scope:
        scope.cancel()
        async with lib.open_nursery():
            t("empty nursery body")
        t("after the nursery, still inside the cancelled scope")
    t("scope", scope.cancelled_caught)


@scenario
async def nursery_exit_is_a_schedule_point(lib: ModuleType, t: Trace) -> None:
    """Entering a nursery is not a schedule point; leaving one that has no
    children is exactly one."""
    with counting_steps(lib) as counter:
        async with lib.open_nursery():
            t("steps to enter", counter.steps)
        t("steps to enter and leave", counter.steps)


@scenario
async def start_soon_on_a_closed_nursery_raises(lib: ModuleType, t: Trace) -> None:
    """A nursery whose block has ended refuses new children with RuntimeError."""
    async with lib.open_nursery() as nursery:
        pass
    with t.catch("start_soon after exit"):
        nursery.start_soon(lib.sleep, 1)


@scenario
async def cancelled_nursery_still_accepts_children_which_start_cancelled(
    lib: ModuleType, t: Trace
) -> None:
    """start_soon into a cancelled (still open) nursery works; the new child
    is cancelled at its first checkpoint."""

    async def child() -> None:
        t("child starts", lib.current_effective_deadline())
        await lib.lowlevel.checkpoint()
        t("unreachable: after the child's checkpoint")

    async with lib.open_nursery() as nursery:
        nursery.cancel_scope.cancel()
        nursery.start_soon(child)
    t("after", nursery.cancel_scope.cancelled_caught)


# -- start() ------------------------------------------------------------------


@scenario
async def start_returns_the_started_value(lib: ModuleType, t: Trace) -> None:
    """start() returns once the child calls started(value), with that value;
    the child then keeps running in the nursery."""

    async def server(port: int, *, task_status: Any = lib.TASK_STATUS_IGNORED) -> None:
        await lib.sleep(2)
        t.at("server ready")
        task_status.started(port + 1)
        await lib.sleep(3)
        t.at("server done")

    async with lib.open_nursery() as nursery:
        value = await nursery.start(server, 8000)
        t.at("start returned", value)
    t.at("nursery exited")


@scenario
async def started_without_value_returns_none(lib: ModuleType, t: Trace) -> None:
    """started() with no argument makes start() return None."""

    async def child(*, task_status: Any) -> None:
        task_status.started()

    async with lib.open_nursery() as nursery:
        t("start returned", await nursery.start(child))


@scenario
async def error_before_started_comes_out_of_start_unwrapped(lib: ModuleType, t: Trace) -> None:
    """A child failing before started() makes start() raise that very error,
    not a group; the nursery and its other children are unaffected."""

    async def broken(*, task_status: Any) -> None:
        await lib.sleep(1)
        raise UserError("failed to start")

    async def sibling() -> None:
        await lib.sleep(5)
        t.at("sibling finished")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sibling)
        with t.catch("start"):
            await nursery.start(broken)
        t.at("body goes on", nursery.cancel_scope.cancel_called)
    t.at("after")


@scenario
async def error_after_started_goes_to_the_nursery(lib: ModuleType, t: Trace) -> None:
    """Once started() was called, the child's error belongs to the nursery:
    it cancels the body and comes out as a group."""

    async def child(*, task_status: Any) -> None:
        task_status.started("ok")
        await lib.sleep(2)
        raise UserError("after started")

    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            t("start returned", await nursery.start(child))
            try:
                await lib.sleep_forever()
            except lib.Cancelled:
                t.at("body cancelled")
                raise


@scenario
async def cancelling_start_before_started_cancels_the_child(lib: ModuleType, t: Trace) -> None:
    """A scope around start() that expires before started() cancels the child;
    start() raises Cancelled, which that scope catches."""

    async def slow(*, task_status: Any) -> None:
        try:
            await lib.sleep(10)
        except lib.Cancelled:
            t.at("child cancelled")
            raise
        task_status.started()

    async with lib.open_nursery() as nursery:
        with lib.move_on_after(2) as scope:
            await nursery.start(slow)
            t("unreachable: start returned")
        t.at("after start", scope.cancelled_caught, nursery.cancel_scope.cancel_called)


@scenario
async def started_child_is_no_longer_under_the_start_scope(lib: ModuleType, t: Trace) -> None:
    """After started(), cancelling the scope around start() does not reach the
    child; cancelling the nursery does."""

    async def child(*, task_status: Any) -> None:
        task_status.started()
        try:
            await lib.sleep(10)
            t.at("child slept through the start scope's cancel")
            await lib.sleep_forever()
        except lib.Cancelled:
            t.at("child cancelled")
            raise

    async with lib.open_nursery() as nursery:
        with lib.CancelScope() as scope:
            await nursery.start(child)
            scope.cancel()
        t("start scope", scope.cancelled_caught)
        await lib.sleep(15)
        nursery.cancel_scope.cancel()
    t.at("after")


@scenario
async def started_twice_raises_runtime_error(lib: ModuleType, t: Trace) -> None:
    """Calling task_status.started() a second time raises RuntimeError in the
    child; start() still returned the first value."""

    async def child(*, task_status: Any) -> None:
        task_status.started(1)
        with t.catch("second started()"):
            task_status.started(2)

    async with lib.open_nursery() as nursery:
        t("start returned", await nursery.start(child))


@scenario
async def child_exiting_without_started_makes_start_raise(lib: ModuleType, t: Trace) -> None:
    """A child that returns without calling started() makes start() raise
    RuntimeError."""

    async def child(*, task_status: Any) -> None:
        await lib.sleep(1)

    async with lib.open_nursery() as nursery:
        with t.catch("start"):
            await nursery.start(child)
        t.at("after start")


@scenario
async def start_on_a_closed_nursery_raises(lib: ModuleType, t: Trace) -> None:
    """start() on a nursery whose block has ended raises RuntimeError, and the
    function is never called."""

    async def child(*, task_status: Any) -> None:
        t("unreachable: child ran")
        task_status.started()

    async with lib.open_nursery() as nursery:
        pass
    with t.catch("start after exit"):
        await nursery.start(child)


@scenario
async def start_keeps_the_nursery_open_until_started(lib: ModuleType, t: Trace) -> None:
    """A start() in progress from another nursery's task keeps the target
    nursery open past its block: the started child joins it and is awaited."""

    async def child(*, task_status: Any) -> None:
        await lib.sleep(2)
        task_status.started()
        await lib.sleep(2)
        t.at("child done")

    async with lib.open_nursery() as helper:
        async with lib.open_nursery() as target:
            helper.start_soon(target.start, child)
            await lib.sleep(1)
            t.at("target body done")
        t.at("target nursery exited")


@scenario
async def task_status_ignored_makes_started_a_no_op(lib: ModuleType, t: Trace) -> None:
    """A start()-style function awaited directly gets TASK_STATUS_IGNORED,
    whose started() does nothing (also when called twice)."""

    async def child(*, task_status: Any = lib.TASK_STATUS_IGNORED) -> str:
        task_status.started("ignored")
        task_status.started("ignored again")
        await lib.sleep(1)
        return "returned"

    t.at("awaited directly", await child())


@scenario
async def start_soon_does_not_run_the_child_immediately(lib: ModuleType, t: Trace) -> None:
    """start_soon returns before the child runs a single line; the child runs
    once the spawner yields."""
    ran: list[str] = []

    async def child() -> None:
        ran.append("child")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(child)
        t("right after start_soon", list(ran))
        await lib.testing.wait_all_tasks_blocked()
        t("after yielding", list(ran))


@scenario
async def start_soon_rejects_what_is_not_an_async_function(lib: ModuleType, t: Trace) -> None:
    """start_soon raises TypeError for a sync function, a coroutine object and
    an async generator function, and the nursery carries on."""

    def sync_fn() -> None:
        t("sync function was called")

    async def async_fn() -> None:
        pass

    async def async_gen() -> Any:
        yield

    async with lib.open_nursery() as nursery:
        with t.catch("sync function"):
            nursery.start_soon(sync_fn)
        coro = async_fn()
        with t.catch("coroutine object"):
            nursery.start_soon(coro)
        coro.close()
        with t.catch("async generator function"):
            nursery.start_soon(async_gen)
    t("nursery exited normally")


@scenario
async def children_inherit_the_nursery_deadline_not_the_spawners(lib: ModuleType, t: Trace) -> None:
    """A child runs under its nursery's cancel scopes, not those of the code
    that spawned it; a started child moves from start()'s scopes to the
    nursery's when it calls started()."""

    async def child() -> None:
        t("start_soon child", t.rel(lib.current_effective_deadline()))

    async def started_child(*, task_status: Any) -> None:
        t("before started()", t.rel(lib.current_effective_deadline()))
        task_status.started()
        t("after started()", t.rel(lib.current_effective_deadline()))

    with lib.move_on_after(10):
        async with lib.open_nursery() as nursery:
            with lib.move_on_after(2):
                t("spawner", t.rel(lib.current_effective_deadline()))
                nursery.start_soon(child)
                await lib.testing.wait_all_tasks_blocked()
                await nursery.start(started_child)
                await lib.testing.wait_all_tasks_blocked()


@scenario
async def started_after_start_was_cancelled_keeps_child_under_start(
    lib: ModuleType, t: Trace
) -> None:
    """If start() was cancelled before the child calls started(), the child
    does not move into the nursery: its next checkpoint raises, and start()
    raises Cancelled into the cancelled scope."""

    async def child(*, task_status: Any) -> None:
        with lib.CancelScope(shield=True):
            await lib.sleep(2)
        task_status.started("late")
        t.at("child called started()", lib.current_effective_deadline())
        try:
            await lib.sleep(1)
        except lib.Cancelled:
            t.at("child cancelled")
            raise

    async with lib.open_nursery() as nursery:
        with lib.move_on_after(1) as scope:
            t("start returned", await nursery.start(child))
        t.at("after start", scope.cancelled_caught, nursery.cancel_scope.cancel_called)


@scenario
async def start_from_a_cancelled_nursery_body_cancels_the_child(lib: ModuleType, t: Trace) -> None:
    """start() called in a cancelled scope runs the child under it: the
    child's first checkpoint raises, and start() raises Cancelled."""

    async def child(*, task_status: Any) -> None:
        t("child runs", lib.current_effective_deadline())
        await lib.lowlevel.checkpoint()
        task_status.started()

    async with lib.open_nursery() as nursery:
        nursery.cancel_scope.cancel()
        try:
            await nursery.start(child)
        except BaseException as exc:
            t("start raised", shape(exc))
            raise
    t("after", nursery.cancel_scope.cancelled_caught)


@scenario
async def tasks_know_their_names_and_nurseries(lib: ModuleType, t: Trace) -> None:
    """A task's name is the one given to start_soon (or the function's
    qualified name), and parent_nursery / child_nurseries / the nursery's
    child_tasks and parent_task link tasks and nurseries."""
    me = lib.lowlevel.current_task()

    async def child(*, task_status: Any = lib.TASK_STATUS_IGNORED) -> None:
        task = lib.lowlevel.current_task()
        t("child", task.name, task.parent_nursery is nursery)
        t("eventual parent before started()", task.eventual_parent_nursery is nursery)
        task_status.started()
        t("after started()", task.parent_nursery is nursery, task.eventual_parent_nursery)
        await lib.sleep(1)

    async with lib.open_nursery() as nursery:
        t("me", me.child_nurseries == [nursery], nursery.parent_task is me)
        nursery.start_soon(child, name="custom name")
        await lib.testing.wait_all_tasks_blocked()
        await nursery.start(child)
        t("child_tasks", len(nursery.child_tasks))
    t("after exit", nursery.child_tasks == frozenset(), me.child_nurseries)
    async with lib.open_nursery() as nursery:
        nursery.start_soon(child)
        await lib.testing.wait_all_tasks_blocked()
        name = next(iter(nursery.child_tasks)).name
        t("default name", name.endswith("tasks_know_their_names_and_nurseries.<locals>.child"))


@scenario
async def started_into_a_cancelled_nursery_cancels_the_child(lib: ModuleType, t: Trace) -> None:
    """A child that calls started() after its target nursery was cancelled
    moves into it and is cancelled at its next checkpoint; start() still
    returns the value, and the pending start kept the nursery open."""

    async def child(*, task_status: Any) -> None:
        await lib.sleep(2)
        task_status.started("value")
        t.at("started", lib.current_effective_deadline())
        try:
            await lib.sleep(1)
        except lib.Cancelled:
            t.unordered("child cancelled", t.now())
            raise

    async def starter(target: Any) -> None:
        value = await target.start(child)
        t.unordered("start returned", value, t.now())

    async with lib.open_nursery() as helper:
        async with lib.open_nursery() as target:
            helper.start_soon(starter, target)
            await lib.sleep(1)
            target.cancel_scope.cancel()
        t.at("target exited", target.cancel_scope.cancelled_caught)
    t.flush("after started()")


@scenario
async def root_task_is_the_grandparent_of_the_main_task(lib: ModuleType, t: Trace) -> None:
    """The main task lives in a nursery of the root task, which has no parent
    nursery itself."""
    root = lib.lowlevel.current_root_task()
    main = lib.lowlevel.current_task()
    t("root", root is not main, root.parent_nursery)
    t("main's nursery belongs to the root", main.parent_nursery.parent_task is root)


@scenario
async def system_tasks_live_outside_the_main_tasks_scopes(lib: ModuleType, t: Trace) -> None:
    """A system task is not under the main task's cancel scopes or deadlines;
    it is cancelled only when the main task has finished."""

    async def system_task(name: str, seconds: float) -> None:
        t("system task deadline", t.rel(lib.current_effective_deadline()))
        try:
            await lib.sleep(seconds)
            t.at(name, "slept")
        except lib.Cancelled:
            t.at(name, "cancelled")
            raise

    with lib.move_on_after(1) as scope:
        scope.cancel()
        lib.lowlevel.spawn_system_task(system_task, "short", 2)
        lib.lowlevel.spawn_system_task(system_task, "long", 100)
        with lib.CancelScope(shield=True):
            await lib.sleep(3)
    t.at("main task returns")


test_trio_and_shardio_traces_match = SCENARIOS.test()
