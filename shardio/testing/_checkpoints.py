"""``assert_checkpoints`` and ``assert_no_checkpoints``.

Trio counts, on each task, its schedule points (yields to the scheduler) and
its cancel points (checks for cancellation), and a block "checkpoints" when
both counts moved. shardio's scheduler keeps no such counts; what a library
outside the core can observe is the first of them: a task that yields to
the scheduler runs its next step later, and an instrument sees each step
begin. So here a block checkpoints when the current task yielded to the
scheduler inside it -- at least one step of it began during the block.

The two definitions agree on every operation that yields in shardio and
Trio alike: each of shardio's blocking operations that yields also checks
for cancellation (``checkpoint()``, a wait in ``wait_task_rescheduled``, or
the pair ``checkpoint_if_cancelled()`` + ``cancel_shielded_checkpoint()`` of
the fast paths). They differ on the two half-checkpoints alone:
``cancel_shielded_checkpoint()`` by itself passes ``assert_checkpoints``
here (Trio: no cancel point, so it fails), and ``checkpoint_if_cancelled()``
by itself passes ``assert_no_checkpoints`` here (Trio: a cancel point, so it
fails).

An instrument installed in the middle of a task's step sees the steps that
begin after it -- and the task's next step, the one that proves it yielded,
always begins in a later batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from .._core import Instrument, Task, add_instrument, current_task, remove_instrument

__all__ = ["assert_checkpoints", "assert_no_checkpoints"]


class _StepCounter(Instrument):
    """Counts the steps that ``task`` begins."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: Task) -> None:
        if task is self.task:
            self.steps += 1


@contextmanager
def _assert_yields_or_not(expected: bool) -> Iterator[None]:
    __tracebackhide__ = True
    counter = _StepCounter(current_task())
    add_instrument(counter)
    try:
        yield
        if expected and not counter.steps:
            raise AssertionError("assert_checkpoints block did not yield!")
    finally:
        remove_instrument(counter)
        if not expected and counter.steps:
            raise AssertionError("assert_no_checkpoints block yielded!")


def assert_checkpoints() -> AbstractContextManager[None]:
    """A context manager: ``AssertionError`` if the block finishes without
    having yielded to the scheduler (a checkpoint); a block that raises is
    left alone. For testing that an operation is a checkpoint::

        with shardio.testing.assert_checkpoints():
            await shardio.sleep(0)
    """
    __tracebackhide__ = True
    return _assert_yields_or_not(True)


def assert_no_checkpoints() -> AbstractContextManager[None]:
    """A context manager: ``AssertionError`` if the block yields to the
    scheduler (a checkpoint), even if it raises::

        with shardio.testing.assert_no_checkpoints():
            send_channel.send_nowait(None)
    """
    __tracebackhide__ = True
    return _assert_yields_or_not(False)
