"""Cancel scopes and shielding: which scope catches, and what the flags say."""

from __future__ import annotations

import builtins
from types import ModuleType
from typing import Any

from ._harness import Scenarios, Trace, UserError, shape

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


@scenario
async def cancel_inner_scope_is_caught_by_inner(lib: ModuleType, t: Trace) -> None:
    """Cancelling the inner of two scopes ends only the inner block."""
    with lib.CancelScope() as outer:
        with lib.CancelScope() as inner:
            inner.cancel()
            t("inner body runs on until its checkpoint")
            await lib.sleep(1)
            t("unreachable: after the cancelled sleep")
        t("after inner block", t.now())
        await lib.sleep(1)
        t("outer body still runs", t.now())
    t("inner", inner.cancel_called, inner.cancelled_caught)
    t("outer", outer.cancel_called, outer.cancelled_caught)


@scenario
async def cancel_outer_scope_is_caught_by_outer(lib: ModuleType, t: Trace) -> None:
    """Cancelling the outer scope from inside an inner one unwinds both blocks;
    only the outer scope reports catching."""
    with lib.CancelScope() as outer:
        with lib.CancelScope() as inner:
            outer.cancel()
            try:
                await lib.sleep(1)
            except lib.Cancelled as exc:
                t("inner body sees", type(exc).__name__)
                raise
        t("unreachable: after inner block")
    t("inner", inner.cancel_called, inner.cancelled_caught)
    t("outer", outer.cancel_called, outer.cancelled_caught)


@scenario
async def cancel_of_both_scopes_is_caught_by_the_outer(lib: ModuleType, t: Trace) -> None:
    """When both nested scopes are cancelled, the inner scope lets the Cancelled
    pass (its parent's cancellation is visible) and the outer one catches it."""
    with lib.CancelScope() as outer:
        with lib.CancelScope() as inner:
            inner.cancel()
            outer.cancel()
            await lib.lowlevel.checkpoint()
        t("unreachable: after inner block")
    t("inner", inner.cancel_called, inner.cancelled_caught)
    t("outer", outer.cancel_called, outer.cancelled_caught)


@scenario
async def cancel_before_entering_takes_effect_on_entry(lib: ModuleType, t: Trace) -> None:
    """A scope cancelled before its ``with`` starts cancelled: the first
    checkpoint inside raises, and the scope catches it."""
    scope = lib.CancelScope()
    scope.cancel()
    t("before entry", scope.cancel_called, scope.cancelled_caught)
    with scope:
        t("body starts", lib.current_effective_deadline())
        await lib.sleep(5)
        t("unreachable: after the sleep")
    t("after", scope.cancel_called, scope.cancelled_caught, t.now())


@scenario
async def cancel_after_exit_changes_nothing(lib: ModuleType, t: Trace) -> None:
    """Cancelling a scope that was already exited sets cancel_called but does
    not claim a catch, and does not affect the code after it."""
    with lib.CancelScope() as scope:
        await lib.sleep(1)
    scope.cancel()
    await lib.sleep(1)
    t("after", scope.cancel_called, scope.cancelled_caught, t.now())


@scenario
async def cancel_without_checkpoint_is_not_caught(lib: ModuleType, t: Trace) -> None:
    """A scope cancelled while its body never reaches a checkpoint exits
    normally: cancel_called is true, cancelled_caught is false."""
    with lib.CancelScope() as scope:
        scope.cancel()
        t("body finishes without a checkpoint")
    t("after", scope.cancel_called, scope.cancelled_caught)
    await lib.lowlevel.checkpoint()
    t("the enclosing code is not cancelled")


@scenario
async def cancellation_is_level_triggered(lib: ModuleType, t: Trace) -> None:
    """Inside a cancelled scope every checkpoint raises again, even after the
    code caught the previous Cancelled."""
    with lib.CancelScope() as scope:
        scope.cancel()
        for i in range(3):
            try:
                await lib.lowlevel.checkpoint()
            except lib.Cancelled:
                t("checkpoint raised Cancelled", i)
        await lib.sleep(1)
    t("after", scope.cancelled_caught, t.now())


@scenario
async def scope_can_be_entered_only_once(lib: ModuleType, t: Trace) -> None:
    """Entering a CancelScope a second time raises RuntimeError."""
    scope = lib.CancelScope()
    with scope:
        pass
    with t.catch("second entry"), scope:
        t("unreachable: body of second entry")


@scenario
async def user_error_passes_through_cancelled_scope(lib: ModuleType, t: Trace) -> None:
    """A scope never swallows a non-Cancelled exception, even when it was
    cancelled: the user error escapes and cancelled_caught stays false."""
    scope = lib.CancelScope()
    with t.catch("block"), scope:
        scope.cancel()
        try:
            await lib.lowlevel.checkpoint()
        except lib.Cancelled:
            raise UserError("raised while handling Cancelled") from None
    t("after", scope.cancel_called, scope.cancelled_caught)


@scenario
async def cancel_from_another_task_wakes_a_sleeper(lib: ModuleType, t: Trace) -> None:
    """A scope cancelled by another task wakes the task sleeping inside it at
    that virtual time."""
    scope = lib.CancelScope()

    async def sleeper() -> None:
        with scope:
            t.at("sleeper sleeps")
            await lib.sleep_forever()
        t.at("sleeper woke", scope.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await lib.sleep(3)
        t.at("cancelling")
        scope.cancel()
    t.at("nursery done")


@scenario
async def cancelling_a_scope_reaches_every_child_task_inside(lib: ModuleType, t: Trace) -> None:
    """Cancelling a scope around a nursery cancels the body and all children;
    the Cancelleds are all absorbed by that scope."""
    unwound: list[str] = []

    async def child(name: str) -> None:
        try:
            await lib.sleep_forever()
        finally:
            unwound.append(name)

    with lib.CancelScope() as scope:
        async with lib.open_nursery() as nursery:
            for name in ("a", "b", "c"):
                nursery.start_soon(child, name)
            await lib.sleep(2)
            scope.cancel()
            await lib.sleep(1)
            t("unreachable: after the cancelled sleep")
    t("unwound", sorted(unwound), t.now())
    t("scope", scope.cancelled_caught, "nursery scope", nursery.cancel_scope.cancelled_caught)


@scenario
async def shield_hides_outer_cancel(lib: ModuleType, t: Trace) -> None:
    """A shielded scope runs to completion inside a cancelled outer scope; the
    outer cancellation strikes at the first checkpoint after it."""
    with lib.CancelScope() as outer:
        outer.cancel()
        with lib.CancelScope(shield=True) as shielded:
            await lib.sleep(2)
            t.at("shielded sleep finished", lib.current_effective_deadline())
        t("shielded", shielded.cancel_called, shielded.cancelled_caught)
        await lib.lowlevel.checkpoint()
        t("unreachable: after the outer checkpoint")
    t.at("outer caught", outer.cancelled_caught)


@scenario
async def shield_hides_outer_deadline(lib: ModuleType, t: Trace) -> None:
    """An outer deadline that passes while a shield is up fires only once the
    shielded block is left."""
    with lib.move_on_after(1) as outer:
        with lib.CancelScope(shield=True):
            await lib.sleep(5)
            t.at("shielded sleep finished")
        t("outer cancel_called", outer.cancel_called)
        await lib.sleep(5)
        t("unreachable: after the outer sleep")
    t.at("outer caught", outer.cancelled_caught)


@scenario
async def unshielding_exposes_a_pending_outer_cancel(lib: ModuleType, t: Trace) -> None:
    """Turning the shield off while a task sleeps inside delivers the outer
    cancellation to it at once."""
    outer = lib.CancelScope()
    shielded = lib.CancelScope(shield=True)

    async def sleeper() -> None:
        with outer, shielded:
            try:
                await lib.sleep(100)
            except lib.Cancelled:
                t.at("sleeper cancelled")
                raise
        t.at("sleeper done", outer.cancelled_caught, shielded.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await lib.sleep(1)
        outer.cancel()
        await lib.sleep(1)
        t.at("still shielded; unshielding")
        shielded.shield = False
    t.at("nursery done")


@scenario
async def shielding_while_inside_blocks_later_cancel(lib: ModuleType, t: Trace) -> None:
    """Raising the shield on an already-entered scope protects the sleeper
    from an outer cancel that comes after."""
    outer = lib.CancelScope()
    inner = lib.CancelScope()

    async def sleeper() -> None:
        with outer:
            with inner:
                await lib.sleep(5)
                t.at("sleep finished")
            await lib.sleep(1)
            t("unreachable: outer cancel is visible again")
        t.at("sleeper done", outer.cancelled_caught, inner.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await lib.sleep(1)
        inner.shield = True
        outer.cancel()
        t.at("shielded, then cancelled outer")


@scenario
async def shield_lets_cleanup_finish_in_a_failing_nursery(lib: ModuleType, t: Trace) -> None:
    """A sibling cancelled because another child failed can still run a
    shielded cleanup that sleeps; the nursery waits for it."""

    async def failer() -> None:
        await lib.sleep(1)
        t.at("failer raises")
        raise UserError("failer")

    async def cleaner() -> None:
        try:
            await lib.sleep_forever()
        except lib.Cancelled:
            t.at("cleaner cancelled")
            with lib.CancelScope(shield=True):
                await lib.sleep(2)
                t.at("cleanup finished")
            raise

    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(failer)
            nursery.start_soon(cleaner)
    t.at("after nursery")


@scenario
async def shielded_scope_still_obeys_its_own_deadline(lib: ModuleType, t: Trace) -> None:
    """A shield hides outer cancellation but not the shielded scope's own
    deadline."""
    with lib.CancelScope() as outer:
        outer.cancel()
        with lib.move_on_after(3, shield=True) as shielded:
            t("effective deadline", t.rel(lib.current_effective_deadline()))
            await lib.sleep(10)
            t("unreachable: after the shielded sleep")
        t.at("shielded scope done", shielded.cancelled_caught)
    t("outer", outer.cancelled_caught)


@scenario
async def shield_must_be_a_bool(lib: ModuleType, t: Trace) -> None:
    """Setting ``shield`` to a non-bool raises TypeError and leaves it unchanged."""
    with lib.CancelScope() as scope:
        with t.catch("shield = 1"):
            scope.shield = 1
        t("shield", scope.shield)
        scope.shield = True
        t("shield", scope.shield)


@scenario
async def cancel_scope_strips_cancelled_from_a_mixed_group(lib: ModuleType, t: Trace) -> None:
    """A cancelled scope catching a group of Cancelleds and a user error takes
    the Cancelleds out (cancelled_caught) and lets a group of the rest escape."""

    async def stubborn() -> None:
        try:
            await lib.sleep_forever()
        finally:
            with lib.CancelScope(shield=True):
                await lib.sleep(1)
            raise UserError("cleanup failed")

    scope = lib.CancelScope()
    with t.catch("scope"), scope:
        async with lib.open_nursery() as nursery:
            nursery.start_soon(stubborn)
            nursery.start_soon(lib.sleep_forever)
            await lib.sleep(1)
            scope.cancel()
            await lib.sleep_forever()
    t.at("after", scope.cancelled_caught)


@scenario
async def cancel_scope_strips_cancelled_from_nested_groups(lib: ModuleType, t: Trace) -> None:
    """Taking the Cancelleds out of nested groups keeps the nesting of what is
    left and drops groups left empty."""

    async def stubborn(name: str, delay: float) -> None:
        try:
            await lib.sleep_forever()
        finally:
            with lib.CancelScope(shield=True):
                await lib.sleep(delay)
            raise UserError(name)

    scope = lib.CancelScope()
    with t.catch("scope"), scope:
        async with lib.open_nursery() as outer:
            outer.start_soon(lib.sleep_forever)
            async with lib.open_nursery() as inner:
                inner.start_soon(stubborn, "inner", 1)
                inner.start_soon(lib.sleep_forever)
                async with lib.open_nursery() as innermost:
                    innermost.start_soon(lib.sleep_forever)
                    await lib.sleep(1)
                    scope.cancel()
    t.at("after", scope.cancelled_caught)


@scenario
async def simultaneous_nested_deadlines_are_caught_by_the_outer(lib: ModuleType, t: Trace) -> None:
    """Two nested fail_after scopes expiring at the same moment: the outer one
    catches, so only it raises TooSlowError."""
    with t.catch("outer fail_after"), lib.fail_after(2) as outer:
        try:
            with lib.fail_after(2) as inner:
                await lib.sleep_forever()
        except BaseException as exc:
            t("out of the inner fail_after", shape(exc))
            raise
    t.at("after", inner.cancel_called, inner.cancelled_caught, outer.cancelled_caught)


@scenario
async def outer_cancel_during_nursery_exit_waits_for_children(lib: ModuleType, t: Trace) -> None:
    """Cancelling the scope around a nursery whose body already finished
    cancels the children; the exit still waits for a child's shielded
    cleanup, then the scope absorbs the Cancelleds."""

    async def child() -> None:
        try:
            await lib.sleep_forever()
        finally:
            with lib.CancelScope(shield=True):
                await lib.sleep(3)
            t.at("child cleanup done")

    scope = lib.CancelScope()

    async def canceller() -> None:
        await lib.sleep(1)
        t.at("cancelling")
        scope.cancel()

    async with lib.open_nursery() as helper:
        helper.start_soon(canceller)
        with scope:
            async with lib.open_nursery() as nursery:
                nursery.start_soon(child)
                t.at("body done")
        t.at("scope exited", scope.cancelled_caught)


@scenario
async def cancelled_cannot_be_constructed_by_users(lib: ModuleType, t: Trace) -> None:
    """Cancelled has no public constructor: calling it raises TypeError."""
    with t.catch("Cancelled()"):
        raise lib.Cancelled()


@scenario
async def exception_types_have_trios_hierarchy(lib: ModuleType, t: Trace) -> None:
    """Cancelled is a BaseException but not an Exception; the resource and
    timeout errors are plain Exceptions (the builtin bases of each agree)."""
    builtin = {c for c in vars(builtins).values() if isinstance(c, type)}
    for name in (
        "Cancelled",
        "TooSlowError",
        "WouldBlock",
        "EndOfChannel",
        "BrokenResourceError",
        "ClosedResourceError",
        "BusyResourceError",
    ):
        cls = getattr(lib, name)
        t(name, [base.__name__ for base in cls.__mro__ if base in builtin])


@scenario
async def exiting_scopes_out_of_order_raises_runtime_error(lib: ModuleType, t: Trace) -> None:
    """Exiting an outer scope while an inner one is still open raises
    RuntimeError; the abandoned inner scope then exits quietly and the task
    is back outside both."""
    outer = lib.CancelScope()
    inner = lib.CancelScope()
    outer.__enter__()
    inner.__enter__()
    with t.catch("exit outer first"):
        outer.__exit__(None, None, None)
    with t.catch("exit inner after"):
        inner.__exit__(None, None, None)
    t("flags", outer.cancelled_caught, inner.cancel_called, inner.cancelled_caught)
    with t.catch("exit inner again"):
        inner.__exit__(None, None, None)
    await lib.lowlevel.checkpoint()
    t("checkpoint after the mess passes", lib.current_effective_deadline())


@scenario
async def task_exiting_inside_its_own_nursery_is_an_error(lib: ModuleType, t: Trace) -> None:
    """A task that returns while a nursery it opened is still open (never
    exited) fails with RuntimeError."""

    async def leaky() -> None:
        await lib.open_nursery().__aenter__()
        t("leaky returns inside its nursery")

    with t.catch("nursery"):
        async with lib.open_nursery() as nursery:
            nursery.start_soon(leaky)


@scenario
async def cancelled_says_why(lib: ModuleType, t: Trace) -> None:
    """Cancelled carries its source ("explicit", "deadline", "nursery"), the
    reason given to cancel(), and whether a task caused it; inner scopes
    report the cancellation they inherited, and the first cause sticks."""

    def why(exc: BaseException) -> tuple[object, ...]:
        assert isinstance(exc, lib.Cancelled)
        return (exc.source, exc.reason, exc.source_task is not None)

    async def cancelled_by(label: str, block: Any) -> None:
        try:
            await block()
        except lib.Cancelled as exc:
            t(label, why(exc))

    async def explicit_with_reason() -> None:
        with lib.CancelScope() as scope:
            scope.cancel("stop now")
            await cancelled_by("explicit with reason", lib.lowlevel.checkpoint)

    async def explicit_without_reason() -> None:
        with lib.CancelScope() as scope:
            scope.cancel()
            await cancelled_by("explicit without reason", lib.sleep_forever)

    async def deadline() -> None:
        with lib.move_on_after(1):
            await cancelled_by("deadline", lib.sleep_forever)

    async def inherited() -> None:
        with lib.CancelScope() as outer, lib.move_on_after(5):
            outer.cancel("from outside")
            await cancelled_by("inner scope, outer cancelled", lib.lowlevel.checkpoint)

    async def first_cause_sticks() -> None:
        with lib.move_on_after(1) as scope:
            with lib.CancelScope(shield=True):
                await lib.sleep(2)
            scope.cancel("explicit, after the deadline")
            await cancelled_by("deadline, then explicit", lib.lowlevel.checkpoint)

    async def sibling_failed() -> None:
        async def failer() -> None:
            await lib.sleep(1)
            raise UserError("failed")

        with t.catch("nursery"):
            async with lib.open_nursery() as nursery:
                nursery.start_soon(failer)
                try:
                    await lib.sleep_forever()
                except lib.Cancelled as exc:
                    source, reason, has_task = why(exc)
                    t("sibling failed", source, reason is not None, has_task)

    for block in (
        explicit_with_reason,
        explicit_without_reason,
        deadline,
        inherited,
        first_cause_sticks,
        sibling_failed,
    ):
        await block()


test_trio_and_shardio_traces_match = SCENARIOS.test()
