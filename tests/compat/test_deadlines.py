"""Deadlines: move_on_*/fail_*, moving a deadline, relative deadlines, and
the effective deadline a task sees."""

from __future__ import annotations

import math
from types import ModuleType

from ._harness import Scenarios, Trace

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


@scenario
async def move_on_after_cancels_at_its_virtual_deadline(lib: ModuleType, t: Trace) -> None:
    """move_on_after(3) around a long sleep ends the block at t=3 and catches."""
    await lib.sleep(1)
    with lib.move_on_after(3) as scope:
        t("deadline", t.rel(scope.deadline))
        try:
            await lib.sleep(10)
        except lib.Cancelled:
            t.at("sleep cancelled")
            raise
    t.at("after", scope.cancel_called, scope.cancelled_caught)


@scenario
async def move_on_at_cancels_at_the_absolute_deadline(lib: ModuleType, t: Trace) -> None:
    """move_on_at(start + 5) entered at t=2 fires at t=5, not t=7."""
    await lib.sleep(2)
    with lib.move_on_at(lib.current_time() + 3) as scope:
        await lib.sleep_forever()
    t.at("after", t.rel(scope.deadline), scope.cancelled_caught)


@scenario
async def unexpired_timeout_leaves_no_trace(lib: ModuleType, t: Trace) -> None:
    """A block that finishes before its deadline is neither cancelled nor
    caught, and the deadline passing later has no effect."""
    with lib.move_on_after(5) as scope:
        await lib.sleep(1)
    with lib.fail_after(5) as failing:
        await lib.sleep(1)
    await lib.sleep(10)
    t.at("after", scope.cancel_called, scope.cancelled_caught)
    t("fail_after scope", failing.cancel_called, failing.cancelled_caught)


@scenario
async def fail_after_raises_too_slow_error_on_expiry(lib: ModuleType, t: Trace) -> None:
    """fail_after(2): the body sees Cancelled at t=2, the caller TooSlowError."""
    try:
        with lib.fail_after(2):
            try:
                await lib.sleep(10)
            except lib.Cancelled:
                t.at("body cancelled")
                raise
    except lib.TooSlowError as exc:
        t.at("caller sees", type(exc).__name__)


@scenario
async def fail_at_raises_too_slow_error_on_expiry(lib: ModuleType, t: Trace) -> None:
    """fail_at(deadline) raises TooSlowError once the absolute deadline passes."""
    await lib.sleep(1)
    with t.catch("fail_at"), lib.fail_at(lib.current_time() + 4) as scope:
        await lib.sleep_forever()
    t.at("after", scope.cancelled_caught)


@scenario
async def fail_after_raises_too_slow_error_on_explicit_cancel(lib: ModuleType, t: Trace) -> None:
    """fail_after raises TooSlowError whenever its scope caught a Cancelled,
    also when the scope was cancelled by hand."""
    with t.catch("fail_after"), lib.fail_after(10) as scope:
        await lib.sleep(1)
        scope.cancel()
        await lib.sleep(1)
    t.at("after", scope.cancelled_caught)


@scenario
async def fail_after_lets_outer_cancellation_through(lib: ModuleType, t: Trace) -> None:
    """A fail_after inside a cancelled outer scope does not turn the outer
    cancellation into TooSlowError: the Cancelled reaches the outer scope."""
    with lib.move_on_after(1) as outer, t.catch("fail_after"), lib.fail_after(10) as inner:
        await lib.sleep_forever()
    t.at("after", inner.cancelled_caught, outer.cancelled_caught)


@scenario
async def earliest_of_nested_deadlines_wins(lib: ModuleType, t: Trace) -> None:
    """With an outer deadline at 5 and an inner at 10, the outer fires at 5;
    the inner scope is neither cancel_called nor catching."""
    with lib.move_on_after(5) as outer, lib.move_on_after(10) as inner:
        t("effective", t.rel(lib.current_effective_deadline()))
        await lib.sleep_forever()
    t.at("inner", inner.cancel_called, inner.cancelled_caught)
    t("outer", outer.cancel_called, outer.cancelled_caught)


@scenario
async def deadline_extended_while_inside_postpones_cancel(lib: ModuleType, t: Trace) -> None:
    """Another task pushing the deadline from 3 to 8 makes the sleeper wake
    at 8."""
    scope = lib.move_on_after(3)

    async def sleeper() -> None:
        with scope:
            await lib.sleep_forever()
        t.at("sleeper woke", scope.cancelled_caught)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await lib.sleep(1)
        scope.deadline += 5
        t.at("deadline moved to", t.rel(scope.deadline))


@scenario
async def deadline_shortened_while_inside_cancels_sooner(lib: ModuleType, t: Trace) -> None:
    """Another task pulling the deadline from 10 to 2 makes the sleeper wake
    at 2; moving it into the past cancels at once."""
    first = lib.move_on_after(10)
    second = lib.move_on_after(10)

    async def sleeper(name: str, scope: object) -> None:
        with scope:  # type: ignore[attr-defined]
            await lib.sleep_forever()
        t.at(name, "woke")

    async with lib.open_nursery() as nursery:
        nursery.start_soon(sleeper, "first", first)
        nursery.start_soon(sleeper, "second", second)
        await lib.sleep(1)
        first.deadline = lib.current_time() + 1
        await lib.sleep(2)
        second.deadline = lib.current_time() - 1
        t.at("second's deadline moved into the past", second.cancel_called)


@scenario
async def relative_deadline_is_computed_at_entry(lib: ModuleType, t: Trace) -> None:
    """move_on_after(5) created at t=0 and entered at t=3 expires at t=8."""
    scope = lib.move_on_after(5)
    t("before entry", scope.is_relative, scope.relative_deadline)
    await lib.sleep(3)
    with scope:
        t("entered", scope.is_relative, t.rel(scope.deadline), scope.relative_deadline)
        await lib.sleep(2)
        t.at("remaining", scope.relative_deadline)
        await lib.sleep_forever()
    t.at("expired", scope.cancelled_caught)


@scenario
async def relative_deadline_set_before_entry_counts_from_entry(lib: ModuleType, t: Trace) -> None:
    """Setting relative_deadline on an unentered scope makes it relative; the
    deadline is fixed when the scope is entered."""
    scope = lib.CancelScope()
    t("fresh scope", scope.is_relative, scope.relative_deadline, scope.deadline)
    scope.relative_deadline = 2
    t("after setting", scope.is_relative, scope.relative_deadline)
    await lib.sleep(1)
    with scope:
        t("entered", t.rel(scope.deadline))
        await lib.sleep_forever()
    t.at("expired", scope.cancelled_caught)


@scenario
async def relative_deadline_set_inside_counts_from_now(lib: ModuleType, t: Trace) -> None:
    """Setting relative_deadline inside an entered scope moves the deadline to
    now + value."""
    with lib.CancelScope() as scope:
        await lib.sleep(2)
        scope.relative_deadline = 4
        t("deadline", t.rel(scope.deadline), scope.relative_deadline)
        await lib.sleep_forever()
    t.at("expired", scope.cancelled_caught)


@scenario
async def unentered_relative_scope_has_no_absolute_deadline(lib: ModuleType, t: Trace) -> None:
    """An unentered relative scope has no absolute deadline to read or set, and
    an unentered absolute one has no relative deadline (RuntimeError)."""
    relative = lib.move_on_after(5)
    with t.catch("read deadline of unentered relative scope"):
        t("deadline", relative.deadline)
    with t.catch("set deadline of unentered relative scope"):
        relative.deadline = lib.current_time() + 1
    t("still relative", relative.is_relative, relative.relative_deadline)
    absolute = lib.move_on_at(lib.current_time() + 5)
    t("absolute", absolute.is_relative, t.rel(absolute.deadline))
    with t.catch("read relative_deadline of unentered absolute scope"):
        t("relative_deadline", absolute.relative_deadline)
    with t.catch("set relative_deadline of unentered absolute scope"):
        absolute.relative_deadline = 1


@scenario
async def current_effective_deadline_follows_nesting_and_shields(lib: ModuleType, t: Trace) -> None:
    """The effective deadline is the earliest enclosing one, stops at a
    shield, and is -inf in a cancelled scope."""

    def show(label: str) -> None:
        t(label, t.rel(lib.current_effective_deadline()))

    show("no scope")
    with lib.move_on_after(10):
        show("outer 10")
        with lib.move_on_after(20):
            show("inner 20 under outer 10")
        with lib.move_on_after(4):
            show("inner 4 under outer 10")
            with lib.CancelScope(shield=True):
                show("shield under both")
                with lib.move_on_after(30):
                    show("30 inside the shield")
            with lib.CancelScope() as cancelled:
                cancelled.cancel()
                show("cancelled scope")
                with lib.CancelScope(shield=True, deadline=lib.current_time() + 7):
                    show("shielded 7 inside the cancelled scope")
        await lib.sleep(3)
        show("outer 10, three seconds later")


@scenario
async def deadline_already_passed_on_entry(lib: ModuleType, t: Trace) -> None:
    """A deadline in the past cancels the scope on entry: cancel_called at
    once, the first checkpoint raises; without a checkpoint nothing is caught."""
    await lib.sleep(5)
    with lib.move_on_at(lib.current_time() - 1) as scope:
        t("on entry", scope.cancel_called, lib.current_effective_deadline())
        await lib.lowlevel.checkpoint()
        t("unreachable: after the checkpoint")
    t.at("after", scope.cancelled_caught)
    with lib.move_on_at(lib.current_time() - 1) as quiet:
        t("no checkpoint inside")
    t("quiet", quiet.cancel_called, quiet.cancelled_caught)


@scenario
async def zero_timeouts_fire_at_the_first_checkpoint(lib: ModuleType, t: Trace) -> None:
    """move_on_after(0) and fail_after(0) are cancelled on entry: sleep(0)
    raises inside, fail_after turns that into TooSlowError."""
    with lib.move_on_after(0) as scope:
        await lib.sleep(0)
        t("unreachable: after sleep(0)")
    t("move_on_after(0)", scope.cancelled_caught)
    with t.catch("fail_after(0)"), lib.fail_after(0):
        await lib.sleep(0)
        t("unreachable: after sleep(0) in fail_after")


@scenario
async def infinite_deadline_means_no_deadline(lib: ModuleType, t: Trace) -> None:
    """move_on_at(inf) never fires: a long sleep inside completes."""
    with lib.move_on_at(math.inf) as scope:
        t("effective", lib.current_effective_deadline())
        await lib.sleep(1000)
    t.at("after", scope.cancel_called, scope.cancelled_caught)


@scenario
async def cancel_called_turns_true_once_the_deadline_passes(lib: ModuleType, t: Trace) -> None:
    """Reading cancel_called after the clock passed the deadline says True even
    before any checkpoint; the next checkpoint raises."""
    with lib.move_on_after(1) as scope:
        t("before jump", scope.cancel_called)
        lib.lowlevel.current_clock().jump(2)
        t("after jump", scope.cancel_called, lib.current_effective_deadline())
        await lib.lowlevel.checkpoint()
        t("unreachable: after the checkpoint")
    t.at("after", scope.cancelled_caught)


@scenario
async def invalid_timeouts_raise_value_error(lib: ModuleType, t: Trace) -> None:
    """Negative and NaN durations and deadlines raise ValueError, and so does
    giving a scope both an absolute and a relative deadline."""
    with t.catch("move_on_after(-1)"):
        lib.move_on_after(-1)
    with t.catch("move_on_after(nan)"):
        lib.move_on_after(math.nan)
    with t.catch("fail_after(-1)"), lib.fail_after(-1):
        pass
    with t.catch("move_on_at(nan)"):
        lib.move_on_at(math.nan)
    with t.catch("CancelScope(relative_deadline=-1)"):
        lib.CancelScope(relative_deadline=-1)
    with t.catch("CancelScope(deadline=5, relative_deadline=5)"):
        lib.CancelScope(deadline=5, relative_deadline=5)
    with t.catch("sleep(-1)"):
        await lib.sleep(-1)
    with t.catch("sleep(nan)"):
        await lib.sleep(math.nan)
    with lib.CancelScope() as scope:
        with t.catch("deadline = nan"):
            scope.deadline = math.nan
        with t.catch("relative_deadline = -1"):
            scope.relative_deadline = -1
        t("deadline unchanged", scope.deadline)


test_trio_and_shardio_traces_match = SCENARIOS.test()
