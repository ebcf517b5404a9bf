"""Abandoned async generators: what the compat scenarios cannot show (logs,
hooks restored, several shards, generators that iterate each other)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import AsyncIterator

import pytest

import shardio


async def _two(log: list[str], note: str) -> AsyncIterator[int]:
    """Yields 1 and 2; appends ``note`` to ``log`` when closed."""
    try:
        yield 1
        yield 2
    finally:
        log.append(note)


def test_a_cleanup_error_is_logged_with_the_generator_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            raise ValueError("from the cleanup")

    async def main() -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            async for _ in failing():
                break
            await shardio.sleep(0.01)
        return "main finished"

    with caplog.at_level(logging.ERROR, logger="shardio.async_generator_errors"):
        assert shardio.run(main) == "main finished"
    [record] = caplog.records
    assert "failing" in record.getMessage()
    assert "aclosing" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_the_hooks_are_restored_after_the_run() -> None:
    before = sys.get_asyncgen_hooks()

    async def main() -> object:
        return sys.get_asyncgen_hooks().finalizer

    during = shardio.run(main)
    assert during is not None and during is not before.finalizer
    assert sys.get_asyncgen_hooks() == before


def test_generators_that_iterate_each_other_are_all_closed_at_the_end() -> None:
    closed: list[str] = []

    async def inner() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            await shardio.lowlevel.cancel_shielded_checkpoint()
            closed.append("inner")

    async def outer(source: AsyncIterator[int]) -> AsyncIterator[int]:
        try:
            async for i in source:
                yield i * 10
        finally:
            # Closing outer resumes nothing of inner's; inner is closed on its own.
            closed.append("outer")

    kept: list[object] = []

    async def main() -> int:
        source = inner()
        numbers = outer(source)
        kept.extend([source, numbers])
        return await numbers.__anext__()

    assert shardio.run(main) == 0
    assert sorted(closed) == ["inner", "outer"]


def test_a_generator_created_during_the_final_cleanup_is_closed_too() -> None:
    closed: list[str] = []

    async def first() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            late = _two(closed, "second")
            await late.__anext__()
            keep.append(late)
            closed.append("first")

    keep: list[object] = []

    async def main() -> None:
        agen = first()
        await agen.__anext__()
        keep.append(agen)

    shardio.run(main)
    assert closed == ["first", "second"]


async def _abandon_one_here() -> tuple[int, list[str]]:
    events: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        async for _ in _two(events, f"closed on shard {shardio.current_shard()}"):
            break
        await shardio.sleep(0.01)
    return shardio.current_shard(), events


def test_each_shard_closes_its_own_generators() -> None:
    async def main() -> list[tuple[int, list[str]]]:
        return [await shardio.run_on(shard, _abandon_one_here) for shard in range(2)]

    assert shardio.run(main, shards=2) == [
        (0, ["closed on shard 0"]),
        (1, ["closed on shard 1"]),
    ]


def test_a_generator_iterated_outside_any_task_is_left_to_python() -> None:
    """First iterated in a run_sync_soon callback (in the run's thread, but
    in no task): not the run's. When dropped it is closed as Python closes
    it without hooks -- at once, synchronously -- and no warning is given."""
    events: list[str] = []

    def step_outside_a_task(holder: list[AsyncIterator[int]]) -> None:
        agen = _two(events, "closed")
        try:
            agen.__anext__().send(None)  # type: ignore[attr-defined]
        except StopIteration as stop:
            events.append(f"got {stop.value}")
        holder.append(agen)

    async def main() -> list[str]:
        holder: list[AsyncIterator[int]] = []
        shardio.lowlevel.current_token().run_sync_soon(step_outside_a_task, holder)
        await shardio.sleep(0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            holder.clear()  # the last reference: finalized here, synchronously
            seen = list(events)
        await shardio.sleep(0.01)
        return seen

    assert shardio.run(main) == ["got 1", "closed"]
    assert events == ["got 1", "closed"]
