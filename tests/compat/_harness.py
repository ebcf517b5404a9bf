"""The differential harness: run one scenario under Trio and under shardio,
and compare what each run let a user observe.

A scenario is an ``async def scenario(lib, t)`` written once against a library
namespace ``lib`` (the ``trio`` or ``shardio`` module: the same names) that
records a *trace* through ``t``: which code ran in what order, the values it
saw, the virtual times it saw them at, and the exceptions that reached it.
Every scenario runs on ``MockClock(autojump_threshold=0)``, so times are
virtual and reproducible.

Exceptions are compared by shape, never by message text: the type name, and
for exception groups the nested shape of their members. Only the exceptions a
scenario raises itself (:class:`UserError`, :class:`UserBaseError`) keep their
message, which is how a trace tells two children's errors apart. Library
messages ("Exceptions from Trio nursery") are not part of the contract.

Adding a scenario: in the module for its topic, write ``async def
what_it_pins(lib, t)`` with a docstring saying what it checks, decorated with
``@scenario``; it becomes the test ``test_trio_and_shardio_traces_match[
what_it_pins]``. A scenario that reaches something unexpected should let it
escape: the run records its shape as the last event.

Determinism
-----------
Trio runs the tasks of a batch in random order (it reverses each batch half of
the time); shardio runs them in FIFO order. A trace may therefore only pin
what both libraries *guarantee*: scenarios order their events with sleeps to
distinct virtual times, events and ``wait_all_tasks_blocked``, and put events
whose relative order is not guaranteed (tasks woken in the same batch) in
:meth:`Trace.unordered`, which records them sorted. To catch scenarios that
pin a scheduling accident anyway, each one runs under Trio several times: with
every batch reversed, with none reversed, and with the choice drawn from a few
seeded generators; all those traces must agree before shardio's is compared
with them. Seeding makes a bad scenario fail every time, not once in a while.
"""

from __future__ import annotations

import difflib
import math
import random
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import shardio
import shardio.lowlevel
import shardio.testing

Scenario = Callable[[ModuleType, "Trace"], Awaitable[None]]

#: Seeds for the randomized Trio runs (besides the two forced orders).
TRIO_SEEDS = (0, 1, 2, 3, 4, 5)

#: Virtual seconds after which a scenario counts as deadlocked; far beyond
#: any time a scenario sleeps to.
WATCHDOG_SECONDS = 1e9


class UserError(Exception):
    """An error a scenario raises itself; traces keep its message."""


class UserBaseError(BaseException):
    """A ``BaseException`` (not an ``Exception``) a scenario raises itself."""


def shape(exc: BaseException) -> Any:
    """The comparable shape of an exception (see the module docstring)."""
    name = type(exc).__name__
    if isinstance(exc, BaseExceptionGroup):
        return (name, tuple(shape(e) for e in exc.exceptions))
    if isinstance(exc, UserError | UserBaseError):
        return (name, str(exc))
    return name


def _plain(value: object) -> bool:
    # A trace holds only plain data: a library object would compare by
    # identity (never equal) or by a library-specific repr.
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, tuple | list | frozenset):
        return all(_plain(v) for v in value)
    return False


def _number(x: float) -> float:
    # Virtual times are sums of the scenario's own round numbers; rounding
    # hides float noise from the order of additions, nothing else.
    return x if math.isinf(x) else round(x, 6)


class Trace:
    """What a scenario records; ``t(...)`` appends one event (a tuple)."""

    def __init__(self, lib: ModuleType) -> None:
        self.lib = lib
        self.events: list[tuple[Any, ...]] = []
        self._bag: list[tuple[Any, ...]] = []
        self._start = 0.0

    def __call__(self, *event: Any) -> None:
        if not _plain(event):
            raise TypeError(f"trace events must be plain data, got {event!r}")
        self.events.append(event)

    def start(self) -> None:
        self._start = self.lib.current_time()

    def now(self) -> float:
        """Virtual seconds since the scenario started."""
        return _number(self.lib.current_time() - self._start)

    def rel(self, deadline: float) -> float:
        """A deadline (absolute, on the run's clock) as seconds after the start."""
        return _number(deadline - self._start)

    def at(self, *event: Any) -> None:
        """Record an event stamped with the current virtual time."""
        self(*event, self.now())

    def unordered(self, *event: Any) -> None:
        """Put an event in the bag of events whose relative order neither
        library guarantees (tasks woken in the same batch); :meth:`flush`
        records them, sorted, as one event."""
        if not _plain(event):
            raise TypeError(f"trace events must be plain data, got {event!r}")
        self._bag.append(event)

    def flush(self, label: str = "unordered") -> None:
        """Record the bag of :meth:`unordered` events, sorted, and empty it."""
        self(label, sorted(self._bag))
        self._bag.clear()

    @contextmanager
    def catch(self, label: str) -> Iterator[None]:
        """Record whether the block finished or what it raised; swallow it.

        Only for errors the scenario expects to observe. It must not stand in
        for a cancel scope: a swallowed ``Cancelled`` would hide a cancellation
        from the scope it belongs to.
        """
        try:
            yield
        except BaseException as exc:
            self(label, "raised", shape(exc))
        else:
            self(label, "ok")


class StepCounter:
    """An instrument counting the steps one task runs: each schedule point a
    task passes through costs it exactly one step, in either library, so
    differences of the count say whether an operation was a schedule point
    without depending on the order of tasks within a batch."""

    def __init__(self, task: object) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: object) -> None:
        if task is self.task:
            self.steps += 1


@contextmanager
def counting_steps(lib: ModuleType) -> Iterator[StepCounter]:
    """Count the current task's steps while the block runs."""
    counter = StepCounter(lib.lowlevel.current_task())
    lib.lowlevel.add_instrument(counter)
    try:
        yield counter
    finally:
        lib.lowlevel.remove_instrument(counter)


@dataclass
class Run:
    """The outcome of one run of a scenario."""

    events: list[tuple[Any, ...]]
    #: What escaped the run, kept for its traceback (the trace has its shape).
    error: BaseException | None


def run_scenario(lib: ModuleType, scenario: Scenario) -> Run:
    """Run ``scenario`` under ``lib`` on an autojumping MockClock.

    An exception escaping the run is the trace's last event. A scenario that
    deadlocks (every task blocked, no deadline left) would make the run wait
    forever; instead the autojumping clock reaches the watchdog's deadline,
    and the watchdog records it and cancels the scenario.
    """
    t = Trace(lib)

    async def main() -> None:
        t.start()
        with lib.CancelScope() as guard:

            async def watchdog() -> None:
                await lib.sleep(WATCHDOG_SECONDS)
                t.at("watchdog: the scenario deadlocked")
                guard.cancel()

            lib.lowlevel.spawn_system_task(watchdog)
            await scenario(lib, t)

    error = None
    try:
        lib.run(main, clock=lib.testing.MockClock(autojump_threshold=0))
    except BaseException as exc:
        error = exc
        t("run raised", shape(exc))
    if t._bag:
        t.flush("unordered, left at the end")
    return Run(t.events, error)


class _ForcedOrder(random.Random):
    # Trio reverses a batch when random() < 0.5: a constant forces the order.
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self._value = value

    def random(self) -> float:
        return self._value


def trio_traces(scenario: Scenario) -> list[list[tuple[Any, ...]]]:
    """The scenario's traces under Trio, one per batch-order regime."""
    regimes: list[random.Random] = [_ForcedOrder(0.0), _ForcedOrder(0.99)]
    regimes += [random.Random(seed) for seed in TRIO_SEEDS]
    run_module: Any = trio._core._run
    saved = run_module._r
    traces = []
    try:
        for regime in regimes:
            run_module._r = regime
            traces.append(run_scenario(trio, scenario).events)
    finally:
        run_module._r = saved
    return traces


def _diff(name_a: str, a: list[Any], name_b: str, b: list[Any]) -> str:
    lines_a = [repr(event) for event in a]
    lines_b = [repr(event) for event in b]
    return "\n".join(difflib.unified_diff(lines_a, lines_b, name_a, name_b, lineterm=""))


def check_scenario(scenario: Scenario) -> None:
    """The test body: Trio must agree with itself, then shardio with Trio."""
    traces = trio_traces(scenario)
    reference = traces[0]
    for other in traces[1:]:
        if other != reference:
            pytest.fail(
                "the trace under Trio depends on the order of tasks within a batch: "
                "the scenario pins a scheduling accident, not a guarantee\n"
                + _diff("trio", reference, "trio, another batch order", other),
                pytrace=False,
            )
    observed = run_scenario(shardio, scenario)
    if observed.events != reference:
        message = "shardio's trace differs from Trio's\n"
        message += _diff("trio", reference, "shardio", observed.events)
        if observed.error is not None:
            message += "\n\nwhat escaped shardio.run():\n"
            message += "".join(traceback.format_exception(observed.error))
        pytest.fail(message, pytrace=False)


class Scenarios:
    """The scenarios of one test module, and the parametrized test running them."""

    def __init__(self) -> None:
        self._all: dict[str, Scenario] = {}

    def add(self, scenario: Scenario) -> Scenario:
        name = scenario.__name__
        if name in self._all:
            raise ValueError(f"two scenarios are named {name!r}")
        if not scenario.__doc__:
            raise ValueError(f"scenario {name!r} needs a docstring saying what it checks")
        self._all[name] = scenario
        return scenario

    def test(self) -> Callable[[Scenario], None]:
        """A test function running every scenario added, with its name as the test id."""

        @pytest.mark.parametrize("scenario", list(self._all.values()), ids=list(self._all))
        def test_trio_and_shardio_traces_match(scenario: Scenario) -> None:
            check_scenario(scenario)

        return test_trio_and_shardio_traces_match
