"""Nurseries across shards: the same scenario, with children spread over two
shards under shardio, must let a user observe what Trio shows with every child
local.

Each scenario is written once, against a :class:`Here` (the library, and the
shard the code runs on). ``here.soon(nursery, fn, *args, shard=1)`` is
``nursery.start_soon(fn, ..., shard=1)`` under shardio (run with
``shards=2``) and a plain ``nursery.start_soon(fn, ...)`` under Trio; likewise
``here.start`` and ``here.run_on`` (under Trio, ``run_on`` just awaits the
function). Every child function gets a ``Here`` naming the shard it is meant
to run on as its first argument, and records ``here.placed()`` (always True
under Trio) so that a trace also proves where shardio ran it.

What may be traced
------------------
Only what can cross processes. The trace lives on shard 0 (under Trio: the
one process); a child reaches it through what comes back -- return values,
``started()`` values, exceptions -- or through :meth:`Here.report`, which on
another shard is a shielded ``run_on(0, ...)`` appending to shard 0's trace
and returning before the child goes on, so causal order is kept.

Time and determinism
--------------------
Multi-shard runs use real time (MockClock is single-shard), so traces hold no
times: events are ordered by causality (``start()``/``started()``, one event
causing another) or by sleeps ``STEP`` apart, and times appear only as
booleans with generous margins. Events made simultaneous by one cause (the
children cancelled together) go in the trace's unordered bag. Trio runs each
scenario under several batch orders (as ``_harness.py`` does), on its
autojumping MockClock and on real time; all those traces must agree before
shardio's (``shards=2``, real time) is compared with them.
"""

from __future__ import annotations

import inspect
import math
import random
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import shardio
import shardio.lowlevel

from ._harness import (
    TRIO_SEEDS,
    Run,
    Trace,
    UserBaseError,
    UserError,
    _diff,
    _ForcedOrder,
    shape,
)

LIBS: dict[str, ModuleType] = {"trio": trio, "shardio": shardio}

#: The spacing of events ordered by time: far above scheduling noise.
STEP = 0.05
#: Slack for comparing real times (float noise, timer granularity).
TOLERANCE = 0.002
#: Seconds (real, or virtual on the MockClock) after which a scenario counts
#: as deadlocked; no scenario sleeps anywhere near as long.
WATCHDOG_SECONDS = 5.0

Scenario = Callable[["Here", Trace], Awaitable[None]]

IGNORED: Any = shardio.TASK_STATUS_IGNORED

# The trace of the run in progress: set on shard 0 (or in Trio's process)
# before the run starts; other shards reach it through _deliver.
_TRACE: Trace | None = None


def _deliver(unordered: bool, event: tuple[Any, ...]) -> None:
    assert _TRACE is not None, "a report reached a shard that keeps no trace"
    if unordered:
        _TRACE.unordered(*event)
    else:
        _TRACE(*event)


@dataclass(frozen=True)
class Here:
    """The library a scenario runs under and the shard some code is meant to
    run on (under Trio, everything runs in the one process). Picklable: it
    travels as the first argument of every child function."""

    lib_name: str
    shard: int

    @property
    def lib(self) -> Any:
        return LIBS[self.lib_name]

    @property
    def sharded(self) -> bool:
        return self.lib_name == "shardio"

    def placed(self) -> bool:
        """Is this code running where it was sent? (Always True under Trio.)"""
        return not self.sharded or shardio.current_shard() == self.shard

    async def report(self, *event: Any) -> None:
        """Append ``event`` to the trace on shard 0; returns once it is there."""
        await self._report(False, event)

    async def report_unordered(self, *event: Any) -> None:
        """Put ``event`` in the trace's unordered bag on shard 0."""
        await self._report(True, event)

    async def _report(self, unordered: bool, event: tuple[Any, ...]) -> None:
        if self.sharded and shardio.current_shard() != 0:
            with shardio.CancelScope(shield=True):
                await shardio.run_on(0, _deliver, unordered, event)
        else:
            _deliver(unordered, event)

    def _remote(self, shard: int) -> bool:
        return self.sharded and shard != shardio.current_shard()

    def soon(self, nursery: Any, fn: Callable[..., Any], *args: Any, shard: int) -> None:
        """``nursery.start_soon(fn, Here(shard), *args)``, on ``shard`` under shardio."""
        child = Here(self.lib_name, shard)
        if self._remote(shard):
            nursery.start_soon(fn, child, *args, shard=shard)
        else:
            nursery.start_soon(fn, child, *args)

    async def start(self, nursery: Any, fn: Callable[..., Any], *args: Any, shard: int) -> Any:
        """``await nursery.start(fn, Here(shard), *args)``, on ``shard`` under shardio."""
        child = Here(self.lib_name, shard)
        if self._remote(shard):
            return await nursery.start(fn, child, *args, shard=shard)
        return await nursery.start(fn, child, *args)

    async def run_on(self, shard: int, fn: Callable[..., Any], *args: Any) -> Any:
        """``shardio.run_on(shard, fn, Here(shard), *args)``; under Trio, a plain call."""
        child = Here(self.lib_name, shard)
        if self.sharded:
            return await shardio.run_on(shard, fn, child, *args)
        result = fn(child, *args)
        if inspect.isawaitable(result):
            result = await result
        return result


# -- children (module level: they travel to shard 1 by reference) --------------------------


async def sleep_then_fail(here: Here, seconds: float, error: BaseException) -> None:
    """Sleep, report, raise ``error``."""
    await here.lib.sleep(seconds)
    await here.report(str(error), "raises", here.placed())
    raise error


async def wait_for_cancel(
    here: Here,
    label: str,
    cleanup: float = 0.0,
    error: BaseException | None = None,
    bag: bool = False,
    task_status: Any = IGNORED,
) -> None:
    """Start at once, then wait to be cancelled: report it (into the bag if
    ``bag``), clean up for ``cleanup`` seconds shielded, then re-raise
    Cancelled -- or raise ``error`` instead, if given."""
    task_status.started((label, "started", here.placed()))
    try:
        await here.lib.sleep_forever()
    except here.lib.Cancelled:
        if bag:
            await here.report_unordered(label, "cancelled", here.placed())
        else:
            await here.report(label, "cancelled", here.placed())
        if cleanup:
            with here.lib.CancelScope(shield=True):
                await here.lib.sleep(cleanup)
            await here.report(label, "cleaned up")
        if error is not None:
            raise error from None
        raise


async def sleep_then_return(
    here: Here, seconds: float, value: Any, task_status: Any = IGNORED
) -> tuple[Any, ...]:
    """Sleep, then return ``value``, whether it ran where sent, and the
    effective deadline it saw."""
    await here.lib.sleep(seconds)
    return (value, here.placed(), here.lib.current_effective_deadline())


def sync_describe(here: Here, value: Any) -> tuple[Any, ...]:
    """A sync function: what run_on returns from it."""
    return ("sync", value, here.placed())


def _deadline_matches(here: Here, expected: float) -> bool:
    seen: float = here.lib.current_effective_deadline()
    return seen == expected or abs(seen - expected) < 0.01


async def check_deadline_then_wait(
    here: Here, label: str, expected: float, task_status: Any = IGNORED
) -> None:
    """Report whether this task runs under ``expected`` (the caller's
    effective deadline, within 0.01 s), then wait to be cancelled."""
    matches = _deadline_matches(here, expected)
    task_status.started((label, "deadline matches", matches, here.placed()))
    await here.report_unordered(label, "deadline matches", matches)
    try:
        await here.lib.sleep_forever()
    except here.lib.Cancelled:
        await here.report_unordered(label, "cancelled")
        raise


async def start_then_continue(
    here: Here, value: str, then_fail: bool, task_status: Any = IGNORED
) -> str:
    """Call started((value, placed)) at once; a step later report and either
    fail or return a value (which start_soon/start discard)."""
    task_status.started((value, here.placed()))
    await here.lib.sleep(STEP)
    await here.report(value, "a step after started")
    if then_fail:
        raise UserError(f"{value}: failed after started")
    return "discarded"


async def fail_before_started(here: Here, message: str, task_status: Any = IGNORED) -> None:
    """Raise before calling started()."""
    await here.lib.sleep(0)
    await here.report(message, "raises before started", here.placed())
    raise UserError(message)


async def return_without_started(here: Here, task_status: Any = IGNORED) -> str:
    """Return without ever calling started()."""
    await here.lib.sleep(0)
    return "never started"


async def wait_for_cancel_before_started(
    here: Here, label: str, task_status: Any = IGNORED
) -> None:
    """Wait to be cancelled without ever calling started()."""
    try:
        await here.lib.sleep_forever()
    except here.lib.Cancelled:
        await here.report(label, "cancelled before started", here.placed())
        raise
    task_status.started()


async def runs_until_first_checkpoint(here: Here, label: str, task_status: Any = IGNORED) -> None:
    """Report before the first checkpoint (code that runs even in a task
    started already cancelled), then wait to be cancelled."""
    await here.report(label, "runs", here.placed())
    try:
        await here.lib.sleep_forever()
    except here.lib.Cancelled:
        await here.report(label, "cancelled")
        raise
    task_status.started()


async def nested_nursery(here: Here, grandchild_shard: int) -> None:
    """A child with its own nursery: one grandchild (on ``grandchild_shard``)
    fails a step in, the other is cancelled by that, and so is the body."""
    async with here.lib.open_nursery() as inner:
        await here.start(
            inner, wait_for_cancel, "grandchild sibling", 0.0, None, True, shard=here.shard
        )
        here.soon(inner, sleep_then_fail, STEP, UserError("grandchild"), shard=grandchild_shard)
        try:
            await here.lib.sleep_forever()
        except here.lib.Cancelled:
            await here.report_unordered("nested body", "cancelled")
            raise


async def nested_nursery_failing_while_unwinding(here: Here, task_status: Any = IGNORED) -> None:
    """A child with its own nursery whose grandchild, once the whole thing is
    cancelled from outside, cleans up for a step and then raises."""
    async with here.lib.open_nursery() as inner:
        await here.start(
            inner,
            wait_for_cancel,
            "grandchild",
            STEP,
            UserError("grandchild, while unwinding"),
            True,
            shard=here.shard,
        )
        task_status.started(here.placed())
        try:
            await here.lib.sleep_forever()
        except here.lib.Cancelled:
            await here.report_unordered("nested body", "cancelled")
            raise


# -- scenarios -------------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    if not fn.__doc__:
        raise ValueError(f"scenario {fn.__name__!r} needs a docstring saying what it checks")
    if fn.__name__ in SCENARIOS:
        raise ValueError(f"two scenarios are named {fn.__name__!r}")
    SCENARIOS[fn.__name__] = fn
    return fn


async def _body_waits_to_be_cancelled(here: Here, t: Trace) -> None:
    try:
        await here.lib.sleep_forever()
    except here.lib.Cancelled:
        t.unordered("body", "cancelled")
        raise


@scenario
async def remote_child_error_is_a_group_of_one(here: Here, t: Trace) -> None:
    """A child on shard 1 raising makes the nursery raise an ExceptionGroup
    holding just that error (its type and message), and cancels the body."""
    with t.catch("nursery"):
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, sleep_then_fail, STEP, UserError("remote"), shard=1)
            await _body_waits_to_be_cancelled(here, t)
    t.flush("cancelled")
    t("after", nursery.cancel_scope.cancel_called, nursery.cancel_scope.cancelled_caught)


@scenario
async def local_and_remote_failures_are_grouped_in_exit_order(here: Here, t: Trace) -> None:
    """One local and one remote child both fail: both are in the group, in
    the order they exited -- first the local error then the remote one that
    unwinding from it raised, then the other way round."""
    with t.catch("local first"):
        async with here.lib.open_nursery() as nursery:
            here.soon(
                nursery,
                wait_for_cancel,
                "remote",
                STEP,
                UserError("remote, while unwinding"),
                shard=1,
            )
            here.soon(nursery, sleep_then_fail, STEP, UserError("local"), shard=0)
    with t.catch("remote first"):
        async with here.lib.open_nursery() as nursery:
            here.soon(
                nursery,
                wait_for_cancel,
                "local",
                STEP,
                UserError("local, while unwinding"),
                shard=0,
            )
            here.soon(nursery, sleep_then_fail, STEP, UserError("remote"), shard=1)


@scenario
async def local_failure_cancels_a_remote_child_that_cleans_up_first(here: Here, t: Trace) -> None:
    """A local child failing cancels the child on shard 1, which records its
    cancellation and cleans up (shielded, a step long) before the nursery
    exits with only the local error."""
    with t.catch("nursery"):
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, wait_for_cancel, "remote", STEP, shard=1)
            here.soon(nursery, sleep_then_fail, STEP, UserError("local"), shard=0)
    t("nursery exited", t.now() >= 2 * STEP - TOLERANCE)


@scenario
async def remote_failure_cancels_local_and_remote_siblings(here: Here, t: Trace) -> None:
    """A child on shard 1 failing cancels the body, a local sibling (which
    cleans up for a step) and a sibling on shard 1; the group holds only the
    failure."""
    with t.catch("nursery"):
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, wait_for_cancel, "local sibling", STEP, None, True, shard=0)
            here.soon(nursery, wait_for_cancel, "remote sibling", 0.0, None, True, shard=1)
            here.soon(nursery, sleep_then_fail, STEP, UserError("remote"), shard=1)
            await _body_waits_to_be_cancelled(here, t)
    t.flush("cancelled")


@scenario
async def nested_nursery_in_a_remote_child(here: Here, t: Trace) -> None:
    """A child on shard 1 opens its own nursery whose grandchild fails: the
    grandchild's sibling and the nested body are cancelled there, then the
    outer nursery cancels its local child and raises a group within a group."""
    with t.catch("nursery"):
        async with here.lib.open_nursery() as nursery:
            await here.start(nursery, wait_for_cancel, "local sibling", shard=0)
            here.soon(nursery, nested_nursery, 1, shard=1)
    t.flush("cancelled on shard 1")


@scenario
async def nested_nursery_in_a_remote_child_with_a_grandchild_back_home(
    here: Here, t: Trace
) -> None:
    """As above, but the failing grandchild is sent back from shard 1 to
    shard 0: the error travels 0 <- 1 <- 0 and keeps the nested shape."""
    with t.catch("nursery"):
        async with here.lib.open_nursery() as nursery:
            await here.start(nursery, wait_for_cancel, "local sibling", shard=0)
            here.soon(nursery, nested_nursery, 0, shard=1)
    t.flush("cancelled on shard 1")


@scenario
async def cancelled_remote_child_whose_nested_nursery_fails_while_unwinding(
    here: Here, t: Trace
) -> None:
    """A scope around the nursery is cancelled while a child on shard 1 runs
    a nested nursery whose grandchild raises after a shielded cleanup: the
    error escapes the scope as a group within a group, and the scope reports
    whether it caught the Cancelled that travelled with it."""
    with t.catch("scope"), here.lib.CancelScope() as scope:
        async with here.lib.open_nursery() as nursery:
            t(
                "started",
                await here.start(nursery, nested_nursery_failing_while_unwinding, shard=1),
            )
            scope.cancel()
    t.flush("cancelled on shard 1")
    t("after", scope.cancel_called, scope.cancelled_caught)


@scenario
async def start_on_a_remote_shard_returns_the_started_value(here: Here, t: Trace) -> None:
    """start(shard=1) returns the value the remote child passed to started();
    the child then goes on as a child of the nursery, which waits for it and
    discards what it returns."""
    async with here.lib.open_nursery() as nursery:
        t("start returned", await here.start(nursery, start_then_continue, "ready", False, shard=1))
    t("nursery exited", t.now() >= STEP - TOLERANCE)


@scenario
async def remote_child_failing_after_started_fails_the_nursery(here: Here, t: Trace) -> None:
    """A child started on shard 1 that fails after started(): its error
    belongs to the nursery, cancels the body, and comes out as a group."""
    with t.catch("nursery"):
        async with here.lib.open_nursery() as nursery:
            t("start returned", await here.start(nursery, start_then_continue, "up", True, shard=1))
            await _body_waits_to_be_cancelled(here, t)
    t.flush("cancelled")


@scenario
async def start_on_a_remote_shard_raises_what_failed_before_started(here: Here, t: Trace) -> None:
    """A remote child raising before started() makes start() raise that very
    error (not a group); one returning without started() makes it raise
    RuntimeError; a scope expiring around start() cancels the remote child.
    The nursery and a remote sibling carry on unaffected."""
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, sleep_then_return, 3 * STEP, "sibling", shard=1)
        with t.catch("start, failing before started"):
            await here.start(nursery, fail_before_started, "not ready", shard=1)
        with t.catch("start, returning without started"):
            await here.start(nursery, return_without_started, shard=1)
        with here.lib.move_on_after(STEP) as scope:
            await here.start(nursery, wait_for_cancel_before_started, "slow", shard=1)
            t("unreachable: start returned")
        t("start scope", scope.cancelled_caught, nursery.cancel_scope.cancel_called)
    t("nursery exited", t.now() >= 3 * STEP - TOLERANCE)


@scenario
async def cancelled_scope_around_the_nursery_cancels_remote_children(here: Here, t: Trace) -> None:
    """Cancelling a scope around the nursery (then, the nursery's own scope)
    cancels every child, remote or local, and the body; the nursery waits for
    the remote cleanup; nothing is raised and the scope caught the cancel."""
    with t.catch("outer scope"), here.lib.CancelScope() as scope:
        async with here.lib.open_nursery() as nursery:
            t(
                "started",
                await here.start(nursery, wait_for_cancel, "a", STEP, None, True, shard=1),
            )
            here.soon(nursery, wait_for_cancel, "b", 0.0, None, True, shard=1)
            here.soon(nursery, wait_for_cancel, "local", 0.0, None, True, shard=0)
            await here.lib.sleep(STEP)
            scope.cancel()
            t("cancel called")
            await _body_waits_to_be_cancelled(here, t)
    t.flush("cancelled by the outer scope")
    t("outer scope", scope.cancel_called, scope.cancelled_caught)

    with t.catch("nursery scope"):
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, wait_for_cancel, "c", 0.0, None, True, shard=1)
            t("started", await here.start(nursery, wait_for_cancel, "d", STEP, None, True, shard=1))
            nursery.cancel_scope.cancel()
            t("cancel called")
    t.flush("cancelled by the nursery's scope")
    t("nursery scope", nursery.cancel_scope.cancel_called, nursery.cancel_scope.cancelled_caught)


@scenario
async def move_on_after_deadline_travels_and_cancels_remote_children(here: Here, t: Trace) -> None:
    """A move_on_after deadline around the nursery reaches children started
    on shard 1 with start_soon and with start: they run under the caller's
    effective deadline (within 0.01 s), are cancelled when it expires, and the
    scope catches it. Without a deadline they see none (inf); run_on carries
    the deadline too."""
    t("no deadline", await here.run_on(1, sleep_then_return, 0, "free"))

    with here.lib.move_on_after(2 * STEP) as scope:
        expected = here.lib.current_effective_deadline()
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, check_deadline_then_wait, "soon", expected, shard=1)
            started = await here.start(
                nursery, check_deadline_then_wait, "start", expected, shard=1
            )
            t("start returned", started)
            await _body_waits_to_be_cancelled(here, t)
    t.flush("under move_on_after")
    t("scope", scope.cancelled_caught, t.now() >= 2 * STEP - TOLERANCE, t.now() < 2 * STEP + 1)

    with here.lib.move_on_after(STEP) as scope:
        expected = here.lib.current_effective_deadline()
        await here.run_on(1, check_deadline_then_wait, "run_on", expected)
    t.flush("run_on under move_on_after")
    t("run_on scope", scope.cancelled_caught)


@scenario
async def shield_around_remote_work_prevents_its_cancellation(here: Here, t: Trace) -> None:
    """Inside a shield, in a cancelled scope: a run_on call to shard 1 and a
    nursery with a child on shard 1 both run to completion (the remote side
    sees no deadline); the first checkpoint after the shield is cancelled. A
    shield under an expired deadline likewise lets the remote call finish."""
    with here.lib.CancelScope() as outer:
        outer.cancel()
        with here.lib.CancelScope(shield=True):
            t("run_on returned", await here.run_on(1, sleep_then_return, STEP, "shielded call"))
            async with here.lib.open_nursery() as nursery:
                here.soon(nursery, sleep_then_return, STEP, "shielded child", shard=1)
                t(
                    "start returned",
                    await here.start(nursery, start_then_continue, "sc", False, shard=1),
                )
            t("shielded nursery exited")
        t("after the shield")
        await here.lib.lowlevel.checkpoint()
        t("unreachable: after the checkpoint")
    t("outer", outer.cancelled_caught)

    with here.lib.move_on_after(STEP) as scope:
        with here.lib.CancelScope(shield=True):
            result = await here.run_on(1, sleep_then_return, 2 * STEP, "past the deadline")
        t("shielded call returned", result)
    t("deadline scope", scope.cancelled_caught)


@scenario
async def fail_after_around_remote_work_raises_too_slow(here: Here, t: Trace) -> None:
    """fail_after around a run_on call to shard 1, and around a nursery with
    a child on shard 1: the remote work is cancelled (and cleans up) and the
    caller gets TooSlowError."""
    with t.catch("fail_after around run_on"), here.lib.fail_after(STEP):
        await here.run_on(1, wait_for_cancel, "run_on", STEP)
    t("after run_on", t.now() >= 2 * STEP - TOLERANCE)
    with t.catch("fail_after around a nursery"), here.lib.fail_after(STEP):
        async with here.lib.open_nursery() as nursery:
            here.soon(nursery, wait_for_cancel, "nursery child", shard=1)


@scenario
async def remote_errors_keep_their_type_message_and_cause(here: Here, t: Trace) -> None:
    """Errors from shard 1 keep their type and message, in a group (with a
    BaseException among them: a BaseExceptionGroup) or raised straight from
    run_on; under shardio each carries the remote traceback as __cause__."""
    with t.catch("nursery"):
        try:
            async with here.lib.open_nursery() as nursery:
                here.soon(nursery, sleep_then_fail, STEP, UserError("a: ünïcödé ✓"), shard=1)
                here.soon(
                    nursery, wait_for_cancel, "b", STEP, UserBaseError("b, base"), True, shard=1
                )
                here.soon(
                    nursery,
                    wait_for_cancel,
                    "c",
                    2 * STEP,
                    ValueError("c: value error"),
                    True,
                    shard=1,
                )
        except BaseExceptionGroup as group:
            t("leaves", [_describe(here, exc) for exc in _leaves(group)])
            raise
    t.flush("cancelled")
    for error in (UserError("direct"), KeyError("key"), ZeroDivisionError("zero")):
        try:
            await here.run_on(1, sleep_then_fail, 0, error)
        except Exception as exc:
            t("run_on raised", _describe(here, exc))


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _describe(here: Here, exc: BaseException) -> tuple[str, str, bool]:
    # Under shardio a remote error's cause is the remote traceback, naming shard 1.
    cause = exc.__cause__
    cause_ok = not here.sharded or (
        isinstance(cause, shardio.RemoteTraceback) and "shard 1" in str(cause)
    )
    return type(exc).__name__, str(exc), cause_ok


@scenario
async def return_values_discarded_by_start_soon_returned_by_run_on(here: Here, t: Trace) -> None:
    """What a child on shard 1 returns is discarded by start_soon (the
    nursery exits cleanly) but returned by run_on, for async and sync
    functions alike."""
    async with here.lib.open_nursery() as nursery:
        here.soon(nursery, sleep_then_return, 0, "discarded", shard=1)
    t("nursery exited")
    value = [1, "two", (3.0, None, math.inf)]
    t("run_on returned", await here.run_on(1, sleep_then_return, 0, value))
    t("run_on returned", await here.run_on(1, sync_describe, ("x", 1)))


@scenario
async def remote_children_started_into_a_cancelled_nursery_still_run(here: Here, t: Trace) -> None:
    """start_soon(shard=1) into a nursery that is already cancelled starts
    the child all the same: it runs up to its first checkpoint, where it is
    cancelled (Trio's rule for a child started cancelled). start(shard=1)
    under a cancelled scope likewise runs the child until its first
    checkpoint, and start() raises Cancelled, which the scope catches."""
    async with here.lib.open_nursery() as nursery:
        nursery.cancel_scope.cancel()
        here.soon(nursery, runs_until_first_checkpoint, "soon", shard=1)
    t("nursery", nursery.cancel_scope.cancelled_caught)

    async with here.lib.open_nursery() as nursery:
        with here.lib.CancelScope() as scope:
            scope.cancel()
            await here.start(nursery, runs_until_first_checkpoint, "start", shard=1)
            t("unreachable: start returned")
        t("start scope", scope.cancelled_caught)


# -- running the scenarios ------------------------------------------------------------------


def run_scenario(lib: ModuleType, scenario: Scenario, clock: Any = None) -> Run:
    """Run ``scenario`` under ``lib`` (shardio: on two shards), on real time
    unless a clock is given. What escapes the run is the trace's last event;
    a deadlocked scenario is cancelled by a watchdog, which records it."""
    global _TRACE
    t = Trace(lib)
    here = Here(lib.__name__, 0)

    async def main() -> None:
        t.start()
        with lib.CancelScope() as guard:

            async def watchdog() -> None:
                await lib.sleep(WATCHDOG_SECONDS)
                t("watchdog: the scenario deadlocked")
                guard.cancel()

            lib.lowlevel.spawn_system_task(watchdog)
            await scenario(here, t)

    kwargs: dict[str, Any] = {"shards": 2} if lib is shardio else {}
    if clock is not None:
        kwargs["clock"] = clock
    error = None
    _TRACE = t
    try:
        lib.run(main, **kwargs)
    except BaseException as exc:
        error = exc
        t("run raised", shape(exc))
    finally:
        _TRACE = None
    if t._bag:
        t.flush("unordered, left at the end")
    return Run(t.events, error)


def trio_traces(scenario: Scenario) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The scenario's traces under Trio: every batch order on the autojumping
    MockClock, and both forced orders on real time."""
    regimes: list[tuple[str, random.Random, bool]] = [
        ("mock clock, batches reversed", _ForcedOrder(0.0), True),
        ("mock clock, batches in order", _ForcedOrder(0.99), True),
    ]
    regimes += [(f"mock clock, seed {seed}", random.Random(seed), True) for seed in TRIO_SEEDS]
    regimes += [
        ("real time, batches reversed", _ForcedOrder(0.0), False),
        ("real time, batches in order", _ForcedOrder(0.99), False),
    ]
    run_module: Any = trio._core._run
    saved = run_module._r
    traces = []
    try:
        for label, order, mock in regimes:
            run_module._r = order
            clock = trio.testing.MockClock(autojump_threshold=0) if mock else None
            traces.append((label, run_scenario(trio, scenario, clock).events))
    finally:
        run_module._r = saved
    return traces


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_trio_local_and_shardio_across_shards_traces_match(scenario: Scenario) -> None:
    traces = trio_traces(scenario)
    reference_label, reference = traces[0]
    for label, other in traces[1:]:
        if other != reference:
            pytest.fail(
                "the trace under Trio depends on the batch order or on real time: the "
                "scenario pins an accident, not a guarantee\n"
                + _diff(f"trio ({reference_label})", reference, f"trio ({label})", other),
                pytrace=False,
            )
    observed = run_scenario(shardio, scenario)
    if observed.events != reference:
        message = "shardio's trace (children on shard 1) differs from Trio's (all local)\n"
        message += _diff("trio", reference, "shardio", observed.events)
        if observed.error is not None:
            message += "\n\nwhat escaped shardio.run():\n"
            message += "".join(traceback.format_exception(observed.error))
        pytest.fail(message, pytrace=False)
