"""Instruments see the scheduler's events, and a failing one is removed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import shardio
from shardio import lowlevel


class Recorder(lowlevel.Instrument):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def before_run(self) -> None:
        self.events.append(("before_run", None))

    def after_run(self) -> None:
        self.events.append(("after_run", None))

    def task_spawned(self, task: Any) -> None:
        self.events.append(("spawned", task.name))

    def task_exited(self, task: Any) -> None:
        self.events.append(("exited", task.name))

    def before_task_step(self, task: Any) -> None:
        self.events.append(("step", task.name))


def test_instrument_sees_spawn_steps_and_exit() -> None:
    recorder = Recorder()

    async def child() -> None:
        await lowlevel.checkpoint()

    async def main() -> None:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(child, name="child")

    shardio.run(main, instruments=[recorder])
    events = recorder.events
    assert events[0] == ("before_run", None)
    assert events[-1] == ("after_run", None)
    child_events = [e for e in events if e[1] == "child"]
    # spawned, first step, second step (after the checkpoint), exited
    assert child_events == [
        ("spawned", "child"),
        ("step", "child"),
        ("step", "child"),
        ("exited", "child"),
    ]


def test_instrument_added_and_removed_at_runtime() -> None:
    recorder = Recorder()

    async def main() -> None:
        lowlevel.add_instrument(recorder)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(lowlevel.checkpoint, name="seen")
        lowlevel.remove_instrument(recorder)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(lowlevel.checkpoint, name="unseen")
        with pytest.raises(KeyError):
            lowlevel.remove_instrument(recorder)

    shardio.run(main)
    names = {name for _, name in recorder.events}
    assert "seen" in names
    assert "unseen" not in names


def test_instrument_that_raises_is_logged_and_removed(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Broken(lowlevel.Instrument):
        def before_task_step(self, task: Any) -> None:
            calls.append(task.name)
            raise RuntimeError("instrument bug")

    async def main() -> str:
        await lowlevel.checkpoint()
        await lowlevel.checkpoint()
        return "finished"

    with caplog.at_level(logging.ERROR, logger="shardio.instruments"):
        assert shardio.run(main, instruments=[Broken()]) == "finished"
    assert len(calls) == 1
    assert "it has been removed" in caplog.text


class _CountingFlushes(lowlevel.Poller):
    def __init__(self) -> None:
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def _busy_run(instrumented: bool) -> tuple[list[str], int]:
    steps: list[str] = []
    batches = 2000

    async def worker(name: str) -> None:
        for _ in range(batches):
            steps.append(name)
            await lowlevel.checkpoint()

    async def main() -> int:
        poller = _CountingFlushes()
        lowlevel.add_poller(poller)
        async with shardio.open_nursery() as nursery:
            for name in "abc":
                nursery.start_soon(worker, name)
        lowlevel.remove_poller(poller)
        return poller.flushes

    flushes = shardio.run(main, instruments=[lowlevel.Instrument()] if instrumented else [])
    return steps, flushes


def test_an_instrument_changes_neither_the_schedule_nor_the_flushing_of_pollers() -> None:
    plain_steps, plain_flushes = _busy_run(instrumented=False)
    hooked_steps, hooked_flushes = _busy_run(instrumented=True)
    assert hooked_steps == plain_steps
    # While tasks stay runnable, pollers flush at most every 50 us, not after
    # each of the 2000 batches -- with an instrument installed as without.
    assert plain_flushes < 2000 / 4
    assert hooked_flushes < 2000 / 4
