"""Sleeping and timeouts, built on cancel scopes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from ._core import (
    Abort,
    CancelScope,
    TooSlowError,
    checkpoint,
    current_time,
    wait_task_rescheduled,
)


def _check_seconds(seconds: float, what: str) -> None:
    if math.isnan(seconds):
        raise ValueError(f"{what} must not be NaN")
    if seconds < 0:
        raise ValueError(f"{what} must be >= 0, got {seconds}; a duration cannot be negative")


def move_on_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """A cancel scope that cancels itself at ``deadline`` (on :func:`current_time`'s clock)."""
    return CancelScope(deadline=deadline, shield=shield)


def move_on_after(seconds: float, *, shield: bool = False) -> CancelScope:
    """A cancel scope that cancels itself ``seconds`` after it is entered."""
    _check_seconds(seconds, "move_on_after(seconds)")
    return CancelScope(relative_deadline=seconds, shield=shield)


@contextmanager
def fail_at(deadline: float, *, shield: bool = False) -> Iterator[CancelScope]:
    """Like :func:`move_on_at`, but raise :class:`TooSlowError` if the deadline
    cancelled the block."""
    with move_on_at(deadline, shield=shield) as scope:
        yield scope
    if scope.cancelled_caught:
        raise TooSlowError(f"the deadline {deadline:.3f} passed before the block finished")


@contextmanager
def fail_after(seconds: float, *, shield: bool = False) -> Iterator[CancelScope]:
    """Like :func:`move_on_after`, but raise :class:`TooSlowError` if the
    timeout cancelled the block."""
    with move_on_after(seconds, shield=shield) as scope:
        yield scope
    if scope.cancelled_caught:
        raise TooSlowError(f"the block did not finish within {seconds} seconds")


async def sleep_forever() -> NoReturn:
    """Sleep until cancelled."""
    await wait_task_rescheduled(lambda _: Abort.SUCCEEDED)
    raise RuntimeError("sleep_forever() was woken by reschedule(); only cancellation ends it")


async def sleep_until(deadline: float) -> None:
    """Sleep until :func:`current_time` reaches ``deadline``.

    A deadline in the past still makes a checkpoint.
    """
    with move_on_at(deadline):
        await sleep_forever()


async def sleep(seconds: float) -> None:
    """Sleep ``seconds`` (``>= 0``); ``sleep(0)`` is a checkpoint."""
    if seconds == 0:
        await checkpoint()
        return
    _check_seconds(seconds, "sleep(seconds)")
    await sleep_until(current_time() + seconds)
