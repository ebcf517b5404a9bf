"""lowlevel.ParkingLot, the queue under the sync primitives: FIFO wakeups,
reparking, breaking, and the breaker registry."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from ._harness import Scenarios, Trace

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


class _Parkers:
    """Tasks parked in a lot in a known order, and their names."""

    def __init__(self, lib: ModuleType, t: Trace) -> None:
        self.lib = lib
        self.t = t
        self.names: dict[Any, str] = {}

    async def park(self, name: str, lot: Any, arrive: float) -> None:
        self.names[self.lib.lowlevel.current_task()] = name
        await self.lib.sleep(arrive)
        try:
            await lot.park()
        except self.lib.BrokenResourceError as exc:
            self.t.unordered(name, "broken", type(exc).__name__, self.t.now())
        else:
            self.t.unordered(name, "woke", self.t.now())

    def which(self, tasks: list[Any]) -> list[str]:
        return [self.names[task] for task in tasks]


@scenario
async def parking_lot_unparks_in_fifo_order(lib: ModuleType, t: Trace) -> None:
    """unpark(count=n) wakes the n longest-parked tasks and returns them in
    order; len, bool and statistics count the parked; a fractional count is
    a ValueError, math.inf means all."""
    lot = lib.lowlevel.ParkingLot()
    parkers = _Parkers(lib, t)
    t("empty", len(lot), bool(lot), lot.statistics().tasks_waiting, lot.unpark())
    async with lib.open_nursery() as nursery:
        for name, arrive in [("c", 3), ("a", 1), ("d", 4), ("b", 2)]:
            nursery.start_soon(parkers.park, name, lot, arrive)
        await lib.sleep(5)
        t("parked", len(lot), bool(lot), lot.statistics().tasks_waiting)
        t("unpark(count=2)", parkers.which(lot.unpark(count=2)))
        with t.catch("unpark(count=1.5)"):
            lot.unpark(count=1.5)
        await lib.sleep(1)
        t.flush("woken first")
        t("unpark()", parkers.which(lot.unpark()))
        t("unpark(count=inf)", parkers.which(lot.unpark(count=math.inf)))
        t("left", len(lot), parkers.which(lot.unpark_all()))
    t.flush("woken after")


@scenario
async def parking_lot_repark_keeps_the_order(lib: ModuleType, t: Trace) -> None:
    """repark moves the longest-parked tasks, in order, to the back of the
    other lot; moving to something that is not a lot is a TypeError."""
    first = lib.lowlevel.ParkingLot()
    second = lib.lowlevel.ParkingLot()
    parkers = _Parkers(lib, t)
    async with lib.open_nursery() as nursery:
        nursery.start_soon(parkers.park, "x", second, 1)
        for name, arrive in [("b", 3), ("a", 2), ("c", 4)]:
            nursery.start_soon(parkers.park, name, first, arrive)
        await lib.sleep(5)
        first.repark(second)
        t("after repark", len(first), len(second))
        with t.catch("repark into a non-lot"):
            first.repark(object())
        first.repark_all(second)
        t("after repark_all", len(first), len(second))
        t("unpark_all of the second lot", parkers.which(second.unpark_all()))
    t.flush("woken")


@scenario
async def breaking_a_parking_lot_fails_parked_and_later_parkers(lib: ModuleType, t: Trace) -> None:
    """break_lot() wakes every parked task with BrokenResourceError, records
    the breaker, and makes later park() calls fail at once."""
    lot = lib.lowlevel.ParkingLot()
    parkers = _Parkers(lib, t)
    me = lib.lowlevel.current_task()
    async with lib.open_nursery() as nursery:
        nursery.start_soon(parkers.park, "a", lot, 1)
        nursery.start_soon(parkers.park, "b", lot, 2)
        await lib.sleep(3)
        lot.break_lot()
        t("broken", len(lot), [task is me for task in lot.broken_by])
        lot.break_lot()
        t("broken twice", [task is me for task in lot.broken_by])
        t("unpark on a broken lot", lot.unpark_all())
        nursery.start_soon(parkers.park, "late", lot, 1)
    t.flush("parkers")


@scenario
async def exiting_breaker_task_breaks_its_lots(lib: ModuleType, t: Trace) -> None:
    """A task registered with add_parking_lot_breaker breaks the lot when it
    exits; remove_parking_lot_breaker undoes it (and raises RuntimeError when
    nothing is registered); an exited task cannot be registered."""
    kept = lib.lowlevel.ParkingLot()
    broken = lib.lowlevel.ParkingLot()
    tasks: list[Any] = []

    async def breaker() -> None:
        task = lib.lowlevel.current_task()
        tasks.append(task)
        lib.lowlevel.add_parking_lot_breaker(task, kept)
        lib.lowlevel.add_parking_lot_breaker(task, broken)
        lib.lowlevel.remove_parking_lot_breaker(task, kept)
        with t.catch("remove twice"):
            lib.lowlevel.remove_parking_lot_breaker(task, kept)
        await lib.sleep(1)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(breaker)
    t("kept", kept.broken_by == [])
    t("broken", broken.broken_by == tasks)
    with t.catch("register an exited task"):
        lib.lowlevel.add_parking_lot_breaker(tasks[0], kept)
    with t.catch("park in the broken lot"):
        await broken.park()


test_trio_and_shardio_traces_match = SCENARIOS.test()
