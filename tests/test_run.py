"""shardio.run(): results, errors, the main task, system tasks, contextvars, sniffio."""

from __future__ import annotations

import contextvars
import gc
import weakref

import pytest
import sniffio

import shardio
import shardio.testing
from shardio import lowlevel


def test_run_returns_the_main_result_and_passes_args() -> None:
    async def main(a: int, b: int) -> int:
        await shardio.sleep(0)
        return a * b

    assert shardio.run(main, 6, 7) == 42


def test_run_raises_the_main_exception_unwrapped() -> None:
    async def main() -> None:
        await shardio.sleep(0)
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        shardio.run(main)


def test_run_inside_run_is_refused() -> None:
    async def main() -> None:
        async def inner() -> None:
            pass

        with pytest.raises(RuntimeError, match=r"inside a running shardio\.run"):
            shardio.run(inner)

    shardio.run(main)


def test_sync_function_given_to_run_is_a_type_error() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(TypeError, match="async def"):
        shardio.run(not_async)  # type: ignore[arg-type]


def test_current_task_and_root_task() -> None:
    async def main() -> None:
        task = lowlevel.current_task()
        assert task.name.endswith("main")
        root = lowlevel.current_root_task()
        assert root is not None and root is not task
        assert task.parent_nursery is not None
        assert task.parent_nursery.parent_task is root

    shardio.run(main)


def test_task_names_default_to_function_and_accept_override() -> None:
    names: list[str] = []

    async def worker() -> None:
        names.append(lowlevel.current_task().name)

    async def main() -> None:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(worker, name="custom")

    shardio.run(main)
    assert names[0].endswith(
        "test_task_names_default_to_function_and_accept_override.<locals>.worker"
    )
    assert names[1] == "custom"


def test_sniffio_reports_shardio_inside_run() -> None:
    async def main() -> str:
        return sniffio.current_async_library()

    assert shardio.run(main) == "shardio"
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_each_task_gets_a_copy_of_its_spawners_context() -> None:
    seen: list[str] = []

    async def child(value: str) -> None:
        seen.append(VAR.get())
        VAR.set(value)
        await shardio.sleep(0)
        seen.append(VAR.get())

    async def main() -> None:
        VAR.set("parent")
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(child, "a")
            nursery.start_soon(child, "b")
        seen.append(VAR.get())

    shardio.run(main)
    assert seen == ["parent", "parent", "a", "b", "parent"]


def test_system_task_is_cancelled_when_main_exits() -> None:
    record: list[str] = []

    async def system() -> None:
        try:
            await shardio.sleep_forever()
        finally:
            record.append("system cancelled")

    async def main() -> str:
        lowlevel.spawn_system_task(system)
        await shardio.sleep(0)
        return "done"

    assert shardio.run(main) == "done"
    assert record == ["system cancelled"]


def test_system_task_that_raises_fails_the_run() -> None:
    async def system() -> None:
        raise ValueError("broken infrastructure")

    async def main() -> None:
        lowlevel.spawn_system_task(system)
        await shardio.sleep_forever()

    with pytest.raises(shardio.ShardioInternalError) as info:
        shardio.run(main)
    assert isinstance(info.value.__cause__, BaseExceptionGroup)
    assert info.value.__cause__.subgroup(ValueError) is not None


def test_run_var_is_per_run() -> None:
    var: lowlevel.RunVar[int] = lowlevel.RunVar("counter", default=0)

    async def main() -> int:
        before = var.get()
        token = var.set(before + 5)
        assert var.get() == before + 5
        var.reset(token)
        var.set(before + 1)
        return var.get()

    assert shardio.run(main) == 1
    assert shardio.run(main) == 1
    with pytest.raises(RuntimeError, match=r"inside shardio\.run"):
        var.get()


def test_token_run_sync_soon_from_another_thread() -> None:
    import threading

    async def main() -> list[str]:
        token = lowlevel.current_token()
        event = shardio.lowlevel.ParkingLot()
        got: list[str] = []

        def from_loop(value: str) -> None:
            got.append(value)
            event.unpark_all()

        thread = threading.Thread(target=token.run_sync_soon, args=(from_loop, "hello"))
        thread.start()
        await event.park()
        thread.join()
        return got

    assert shardio.run(main) == ["hello"]


def test_token_after_run_raises_run_finished() -> None:
    async def main() -> lowlevel.Token:
        return lowlevel.current_token()

    token = shardio.run(main)
    with pytest.raises(shardio.RunFinishedError):
        token.run_sync_soon(print)


def _queue_across_the_end_of_a_run() -> tuple[list[int], list[int]]:
    """A thread queues callbacks until refused, while the run ends; what ran
    in the run, and what the thread was refused."""
    import threading

    ran: list[int] = []
    refused: list[int] = []
    started = threading.Event()

    def hammer(token: lowlevel.Token) -> None:
        i = 0
        started.set()
        while True:
            try:
                token.run_sync_soon(ran.append, i)
            except shardio.RunFinishedError:
                refused.append(i)
                return
            i += 1

    async def main() -> threading.Thread:
        thread = threading.Thread(target=hammer, args=(lowlevel.current_token(),))
        thread.start()
        started.wait()
        await shardio.sleep(0)
        return thread

    shardio.run(main).join()
    return ran, refused


def test_run_sync_soon_at_the_end_of_the_run_runs_or_refuses_never_drops() -> None:
    """Each callback queued while the run ends either ran or raised
    RunFinishedError in the thread; none is silently lost."""
    for _ in range(20):
        ran, refused = _queue_across_the_end_of_a_run()
        assert ran == list(range(len(ran)))
        assert refused == [len(ran)]


def test_statistics_count_tasks() -> None:
    async def main() -> None:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(shardio.sleep_forever)
            nursery.start_soon(shardio.sleep_forever)
            await shardio.testing.wait_all_tasks_blocked()
            stats = lowlevel.current_statistics()
            # init + main + two sleepers
            assert stats.tasks_living == 4
            assert stats.tasks_runnable == 0
            nursery.cancel_scope.cancel()

    shardio.run(main)


def test_finished_tasks_leave_no_memory_behind() -> None:
    sample: list[weakref.ref[lowlevel.Task]] = []

    async def leaf(i: int) -> None:
        if i % 1000 == 0:
            sample.append(weakref.ref(lowlevel.current_task()))
        await lowlevel.checkpoint()

    async def main() -> int:
        gc.collect()
        baseline = len(gc.get_objects())
        for _ in range(6):
            async with shardio.open_nursery() as nursery:
                for i in range(10_000):
                    nursery.start_soon(leaf, i)
        gc.collect()
        return len(gc.get_objects()) - baseline

    growth = shardio.run(main)
    # 60k tasks ran; what they leave behind must not scale with their number
    # (the 60 sampled weakrefs are part of the growth).
    assert growth < 500
    assert len(sample) == 60
    assert all(ref() is None for ref in sample)


async def test_start_soon_with_wrong_arguments_raises_at_once() -> None:
    async def needs_two(a: int, b: int) -> None:
        pass

    async with shardio.open_nursery() as nursery:
        with pytest.raises(TypeError, match="missing 1 required positional argument"):
            nursery.start_soon(needs_two, 1)  # type: ignore[call-arg]
        assert not nursery.child_tasks


async def test_a_not_yet_started_task_shows_its_coroutine() -> None:
    ran: list[int] = []

    async def child(x: int) -> None:
        ran.append(x)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(child, 7)
        (task,) = nursery.child_tasks
        # Inspecting it before its first step gives the coroutine it will run.
        assert task.coro.cr_code is child.__code__
        assert ran == []
    assert ran == [7]
