"""AnyIO on shardio: how the backend is found, and AnyIO's primitives at work
on shardio's -- in a run started either way, on other shards, from threads,
and under AnyIO's pytest plugin.

AnyIO's own test suite covers each primitive in depth (``test_anyio_suite``);
these tests pin what it cannot see: the registration, shards, and the
interplay with shardio's own API.
"""

from __future__ import annotations

import functools
import pathlib
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
import sniffio

import shardio
import shardio_net
from shardio import lowlevel

# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def test_importing_shardio_does_not_import_anyio() -> None:
    code = (
        "import sys, shardio, shardio_net; "
        "print([m for m in ('anyio', 'httpx', 'httpcore') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_anyio_finds_the_backend_by_its_module_name() -> None:
    import importlib

    from shardio._anyio._backend import ShardioBackend

    module = importlib.import_module("anyio._backends._shardio")
    assert module.backend_class is ShardioBackend


def test_anyio_run_with_backend_shardio_runs_a_shardio_run() -> None:
    async def main(x: int) -> tuple[str, int, float]:
        await anyio.sleep(0)
        return sniffio.current_async_library(), shardio.current_shard(), anyio.current_time()

    library, shard, now = anyio.run(main, 1, backend="shardio")
    assert (library, shard) == ("shardio", 0)
    assert now == pytest.approx(shardio_now(), abs=60)  # shardio's clock: CLOCK_MONOTONIC


def shardio_now() -> float:
    import time

    return time.monotonic()


def test_anyio_run_passes_backend_options_to_shardio_run() -> None:
    from shardio.testing import MockClock

    async def main() -> float:
        await anyio.sleep(1000)
        return anyio.current_time()

    clock = MockClock(autojump_threshold=0)
    assert anyio.run(main, backend="shardio", backend_options={"clock": clock}) == 1000


def test_anyio_works_inside_shardio_run_with_no_setup() -> None:
    async def child(ready: anyio.Event, *, task_status: anyio.abc.TaskStatus[str]) -> None:
        task_status.started("started")
        await ready.wait()

    async def main() -> tuple[str, bool, bool]:
        ready = anyio.Event()
        async with anyio.create_task_group() as tg:
            value = await tg.start(child, ready)
            ready.set()
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep_forever()
        return value, scope.cancelled_caught, isinstance(ready, anyio.Event)

    assert shardio.run(main) == ("started", True, True)


def test_anyio_cancel_scope_is_a_shardio_cancel_scope() -> None:
    """A shardio deadline and an AnyIO one nest as one tree of scopes."""

    async def main() -> tuple[float, bool, bool]:
        with shardio.move_on_after(100) as outer:
            with anyio.CancelScope() as inner:
                deadline = anyio.current_effective_deadline()
                outer.cancel()
                await anyio.sleep(1)
        return deadline - shardio.current_time(), outer.cancelled_caught, inner.cancelled_caught

    remaining, outer_caught, inner_caught = shardio.run(main)
    assert 99 < remaining <= 100
    assert (outer_caught, inner_caught) == (True, False)


def test_task_group_cancelled_from_outside_raises_one_cancelled_not_a_group() -> None:
    caught: list[BaseException] = []

    async def main() -> None:
        with shardio.CancelScope() as scope:
            scope.cancel()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(anyio.sleep_forever)
                    await anyio.sleep_forever()
            except BaseException as exc:
                caught.append(exc)
                raise

    shardio.run(main)
    assert [type(exc) for exc in caught] == [shardio.Cancelled]


def test_memory_stream_item_is_not_given_to_a_receiver_whose_wait_was_cancelled() -> None:
    async def receiver(
        receive: anyio.abc.ObjectReceiveStream[str],
        *,
        task_status: anyio.abc.TaskStatus[anyio.CancelScope],
    ) -> None:
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            await receive.receive()

    async def main() -> str:
        send, receive = anyio.create_memory_object_stream[str](1)
        with send, receive:
            async with anyio.create_task_group() as tg:
                scope = await tg.start(receiver, receive)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()  # the receiver is woken to raise, not to take the item
                send.send_nowait("item")
            return receive.receive_nowait()

    assert shardio.run(main) == "item"


def test_running_tasks_and_current_task_are_shardio_tasks() -> None:
    async def main() -> tuple[bool, bool]:
        here = anyio.get_current_task()
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep_forever, name="sleeper")
            await anyio.wait_all_tasks_blocked()
            names = {task.name for task in anyio.get_running_tasks()}
            tg.cancel_scope.cancel()
        return here.id == id(lowlevel.current_task()), "sleeper" in names

    assert shardio.run(main) == (True, True)


# ---------------------------------------------------------------------------
# Other shards
# ---------------------------------------------------------------------------


async def use_anyio_on_this_shard(label: str) -> tuple[str, int, str, int]:
    """Everything a library does: a task group, a deadline, a thread and a
    call back from it, an event."""
    done = anyio.Event()
    results: list[int] = []

    async def worker() -> None:
        results.append(
            await anyio.to_thread.run_sync(lambda: anyio.from_thread.run_sync(len, "abc"))
        )
        done.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            await done.wait()
    return label, shardio.current_shard(), sniffio.current_async_library(), results[0]


def test_anyio_works_in_tasks_started_on_another_shard_and_in_run_on() -> None:
    async def main() -> list[tuple[str, int, str, int]]:
        send, receive = shardio.open_channel(1)

        async def child(out: shardio.ShardSendChannel[tuple[str, int, str, int]]) -> None:
            async with out:
                await out.send(await use_anyio_on_this_shard("start_soon"))

        async with shardio.open_nursery() as nursery:
            nursery.start_soon(child, send, shard=1)
            from_child = await receive.receive()
        from_run_on = await shardio.run_on(1, use_anyio_on_this_shard, "run_on")
        return [from_child, from_run_on]

    assert shardio.run(main, shards=2, cpus=False) == [
        ("start_soon", 1, "shardio", 3),
        ("run_on", 1, "shardio", 3),
    ]


# ---------------------------------------------------------------------------
# Threads, portals, processes, signals, sockets
# ---------------------------------------------------------------------------


def test_blocking_portal_runs_calls_in_a_shardio_run_in_its_own_thread() -> None:
    async def where() -> tuple[str, str]:
        await anyio.sleep(0)
        return sniffio.current_async_library(), threading.current_thread().name

    with anyio.from_thread.start_blocking_portal(backend="shardio") as portal:
        library, thread = portal.call(where)
    assert library == "shardio"
    assert thread != threading.current_thread().name


def test_anyio_worker_thread_calls_back_into_the_waiting_task() -> None:
    async def main() -> tuple[str, bool]:
        async def in_run() -> str:
            return sniffio.current_async_library()

        library = await anyio.to_thread.run_sync(anyio.from_thread.run, in_run)
        limiter = anyio.to_thread.current_default_thread_limiter()
        return (
            library,
            limiter.total_tokens == shardio.to_thread.current_default_thread_limiter().total_tokens,
        )

    assert shardio.run(main) == ("shardio", True)


def test_anyio_run_process_and_signal_receiver() -> None:
    async def main() -> tuple[bytes, signal.Signals]:
        result = await anyio.run_process(["echo", "hello"])
        with anyio.open_signal_receiver(signal.SIGUSR1) as signals:
            signal.raise_signal(signal.SIGUSR1)
            async for signum in signals:
                return result.stdout, signum
        raise AssertionError("no signal")

    assert shardio.run(main) == (b"hello\n", signal.SIGUSR1)


def test_anyio_client_talks_to_a_shardio_net_server() -> None:
    async def echo(stream: shardio_net.SocketStream) -> None:
        async for chunk in stream:
            await stream.send_all(chunk.upper())

    async def main() -> bytes:
        async with shardio.open_nursery() as nursery:
            (address, *_rest) = await nursery.start(
                functools.partial(shardio_net.serve_tcp, echo, 0, host="127.0.0.1")
            )
            async with await anyio.connect_tcp("127.0.0.1", address[1]) as stream:
                await stream.send(b"hello")
                reply = await stream.receive()
            nursery.cancel_scope.cancel()
        return reply

    assert shardio.run(main) == b"HELLO"


def test_anyio_stream_errors_are_anyio_exceptions() -> None:
    async def main() -> list[str]:
        seen = []
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.aclose()
            for operation in (stream.receive(), stream.send(b"x")):
                try:
                    await operation
                except anyio.ClosedResourceError:
                    seen.append("anyio.ClosedResourceError")
        return seen

    assert shardio.run(main) == ["anyio.ClosedResourceError"] * 2


# ---------------------------------------------------------------------------
# AnyIO's pytest plugin
# ---------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "shardio"


@pytest.fixture
async def run_token() -> AsyncIterator[object]:
    # An async fixture: only AnyIO's plugin runs these, in the test's own run.
    yield lowlevel.current_token()


@pytest.mark.anyio
async def test_anyio_pytest_plugin_runs_tests_and_fixtures_on_shardio(run_token: object) -> None:
    assert sniffio.current_async_library() == "shardio"
    assert lowlevel.current_token() is run_token


PLUGIN_ORDER_TEST = """
import pytest
import shardio

@pytest.fixture
def anyio_backend():
    return "shardio"

@pytest.fixture
async def run_token():
    yield shardio.lowlevel.current_token()

@pytest.mark.anyio
async def test_fixture_and_test_share_a_run(run_token):
    assert shardio.lowlevel.current_token() is run_token
"""


def test_shardio_plugin_leaves_anyio_marked_tests_to_anyio_whichever_loads_first(
    tmp_path: pathlib.Path,
) -> None:
    """``-p anyio`` registers AnyIO's plugin before shardio's (an entry point),
    so shardio's hook is asked first: in shardio_mode it must decline, or the
    async fixture runs in a run of its own."""
    (tmp_path / "test_order.py").write_text(PLUGIN_ORDER_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nshardio_mode = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "anyio", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_test_runner_takes_shardio_run_options_such_as_a_mock_clock() -> None:
    from shardio._anyio._backend import ShardioBackend
    from shardio.testing import MockClock

    async def sleep_an_hour() -> float:
        await anyio.sleep(3600)
        return anyio.current_time()

    runner = ShardioBackend.create_test_runner({"clock": MockClock(autojump_threshold=0.01)})
    with runner:
        assert runner.run_fixture(sleep_an_hour, {}) == 3600


AUTOJUMP_ZERO = """
import anyio, shardio
from shardio._anyio._backend import ShardioBackend
from shardio.testing import MockClock

async def sleep_an_hour():
    await anyio.sleep(3600)

with ShardioBackend.create_test_runner({"clock": MockClock(autojump_threshold=0)}) as runner:
    runner.run_fixture(sleep_an_hour, {})
"""


def test_test_runner_with_an_autojump_threshold_of_zero_gives_the_host_its_thread() -> None:
    try:
        subprocess.run([sys.executable, "-c", AUTOJUMP_ZERO], timeout=10, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the test runner never returned")
