"""ParkingLot: the fair wait queue every synchronization primitive is built on.

Tasks ``park()`` in arrival order and are woken (``unpark``) or moved to
another lot (``repark``, for Condition) in that order. A lot can be *broken*:
its waiters, and any later ``park()``, get :class:`BrokenResourceError`. A lot
can name a *breaker* task (a Lock names its owner) so that the lot breaks if
that task exits while still registered -- waiters are told instead of
waiting forever for a release that cannot come.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import outcome

from ._exceptions import BrokenResourceError
from ._ki import enable_ki_protection
from ._pickling import ShardLocal
from ._state import current_runner, current_task
from ._traps import Abort, RaiseCancelT, wait_task_rescheduled

if TYPE_CHECKING:
    from ._run import Task

# Task -> the lots that break when it exits. Consulted by Runner.task_exited.
PARKING_LOT_BREAKERS: dict[Task, list[ParkingLot]] = {}


@enable_ki_protection
def add_parking_lot_breaker(task: Task, lot: ParkingLot) -> None:
    """Break ``lot`` if ``task`` exits while registered (see :meth:`ParkingLot.break_lot`)."""
    if task._cancel_status is None:
        raise BrokenResourceError(
            f"{task!r} has already exited; a lot it would break is broken from the start"
        )
    PARKING_LOT_BREAKERS.setdefault(task, []).append(lot)


@enable_ki_protection
def remove_parking_lot_breaker(task: Task, lot: ParkingLot) -> None:
    """Undo :func:`add_parking_lot_breaker`."""
    try:
        lots = PARKING_LOT_BREAKERS[task]
        lots.remove(lot)
    except (KeyError, ValueError):
        raise RuntimeError(f"{task!r} is not registered as a breaker of {lot!r}") from None
    if not lots:
        del PARKING_LOT_BREAKERS[task]


def break_lots_of_exiting_task(task: Task) -> None:
    for lot in PARKING_LOT_BREAKERS.pop(task, ()):
        lot.break_lot(task)


@attrs.frozen
class ParkingLotStatistics:
    """``tasks_waiting``: how many tasks are parked."""

    tasks_waiting: int


@attrs.define(eq=False, slots=True)
class ParkingLot(ShardLocal):
    """A fair (FIFO) queue of parked tasks; ``len(lot)`` counts them."""

    # OrderedDict, not dict: popping the oldest entry of a plain dict scans
    # past every slot deleted before it, which makes a long queue quadratic.
    _parked: OrderedDict[Task, None] = attrs.field(factory=OrderedDict, init=False)
    #: The tasks that broke this lot, in order; empty while it is whole.
    broken_by: list[Task] = attrs.field(factory=list, init=False)

    def __len__(self) -> int:
        return len(self._parked)

    def __bool__(self) -> bool:
        return bool(self._parked)

    @enable_ki_protection
    async def park(self) -> None:
        """Wait until :meth:`unpark` wakes this task. A checkpoint.

        Raises :class:`BrokenResourceError` if the lot is, or becomes, broken.
        """
        if self.broken_by:
            raise BrokenResourceError(
                f"this parking lot was broken by {self.broken_by[0]!r} (it exited while "
                "it should have woken the waiters, e.g. while holding a lock)"
            )
        task = current_task()
        self._parked[task] = None
        task.custom_sleep_data = self

        def abort(_: RaiseCancelT) -> Abort:
            # After a repark, the task sits in another lot.
            del task.custom_sleep_data._parked[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def _pop(self, count: int | float) -> Iterator[Task]:
        if isinstance(count, float):
            if not math.isinf(count):
                raise ValueError(f"count must be an int or math.inf, not {count!r}")
            count = len(self._parked)
        for _ in range(min(count, len(self._parked))):
            yield self._parked.popitem(last=False)[0]

    @enable_ki_protection
    def unpark(self, *, count: int | float = 1) -> list[Task]:
        """Wake up to ``count`` tasks, longest-waiting first; return them."""
        tasks = list(self._pop(count))
        if tasks:
            runner = current_runner()
            for task in tasks:
                runner.reschedule(task)
        return tasks

    @enable_ki_protection
    def unpark_all(self) -> list[Task]:
        """Wake every parked task."""
        return self.unpark(count=len(self._parked))

    @enable_ki_protection
    def repark(self, new_lot: ParkingLot, *, count: int | float = 1) -> None:
        """Move up to ``count`` parked tasks, in order, to the back of ``new_lot``."""
        if not isinstance(new_lot, ParkingLot):
            raise TypeError(f"new_lot must be a ParkingLot, not {type(new_lot).__name__}")
        for task in self._pop(count):
            new_lot._parked[task] = None
            task.custom_sleep_data = new_lot

    @enable_ki_protection
    def repark_all(self, new_lot: ParkingLot) -> None:
        """Move every parked task to ``new_lot``."""
        self.repark(new_lot, count=len(self._parked))

    @enable_ki_protection
    def break_lot(self, task: Task | None = None) -> None:
        """Break the lot: waiters and later parkers get :class:`BrokenResourceError`.

        ``task`` (default: the current task) is recorded in ``broken_by``.
        """
        if task is None:
            task = current_task()
        self.broken_by.append(task)
        if len(self.broken_by) > 1:
            return
        runner = current_runner()
        for parked in self._parked:
            runner.reschedule(
                parked,
                outcome.Error(
                    BrokenResourceError(
                        f"this parking lot was broken by {task!r} (it exited while it "
                        "should have woken the waiters, e.g. while holding a lock)"
                    )
                ),
            )
        self._parked.clear()

    def statistics(self) -> ParkingLotStatistics:
        """How many tasks are parked."""
        return ParkingLotStatistics(tasks_waiting=len(self._parked))
