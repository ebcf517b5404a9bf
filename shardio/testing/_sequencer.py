"""Sequencer: make blocks of code in different tasks run in a set order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import final

import attrs

from .._core import Cancelled
from .._sync import Event

__all__ = ["Sequencer"]


@final
@attrs.define(eq=False, slots=True)
class Sequencer:
    """Runs blocks of code from different tasks in one explicit order.

    Trio's ``trio.testing.Sequencer``. ``async with sequencer(n):`` waits until
    block ``n - 1`` has finished (block 0 starts at once), then runs its body::

        async def worker1(seq):
            async with seq(0):
                print(0)
            async with seq(2):
                print(2)

        async def worker2(seq):
            async with seq(1):
                print(1)

    Each position may be used once (``RuntimeError`` otherwise). A task
    cancelled while waiting for its turn breaks the sequence: it gets
    ``RuntimeError("Sequencer wait cancelled -- sequence broken")``, and every
    other waiter, and every later block, ``RuntimeError("sequence broken!")``.
    """

    _sequence_points: defaultdict[int, Event] = attrs.field(
        factory=lambda: defaultdict(Event), init=False
    )
    _claimed: set[int] = attrs.field(factory=set, init=False)
    _broken: bool = attrs.field(default=False, init=False)

    @asynccontextmanager
    async def __call__(self, position: int) -> AsyncIterator[None]:
        if position in self._claimed:
            raise RuntimeError(f"Attempted to reuse sequence point {position}")
        if self._broken:
            raise RuntimeError("sequence broken!")
        self._claimed.add(position)
        if position != 0:
            try:
                await self._sequence_points[position].wait()
            except Cancelled:
                self._broken = True
                for event in self._sequence_points.values():
                    event.set()
                raise RuntimeError("Sequencer wait cancelled -- sequence broken") from None
            if self._broken:
                raise RuntimeError("sequence broken!")
        try:
            yield
        finally:
            self._sequence_points[position + 1].set()
