"""shardio.testing's Sequencer, assert_checkpoints and assert_no_checkpoints
against trio.testing's, and open_stream_to_socket_listener against Trio's.

The Sequencer and checkpoint scenarios use the MockClock harness. Which
operations count as checkpoints is compared over the public operations of
both libraries; the two half-checkpoints on which shardio's definition
differs (``cancel_shielded_checkpoint`` and ``checkpoint_if_cancelled`` alone,
see ``shardio/testing/_checkpoints.py``) are left out on purpose, and so is
leaving an empty nursery, which is a bare ``cancel_shielded_checkpoint`` in
both libraries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import trio

import shardio
import shardio.testing
import shardio_net

from ._harness import Scenarios, Trace

SCENARIOS = Scenarios()
scenario = SCENARIOS.add


@scenario
async def a_sequencer_orders_blocks_across_tasks(lib: ModuleType, t: Trace) -> None:
    """Blocks run in sequence order, whatever the order the tasks start in
    and however long each block takes; a reused position is an error."""
    seq = lib.testing.Sequencer()

    async def worker(name: str, *positions: int) -> None:
        for position in positions:
            async with seq(position):
                t.at(name, position)
                await lib.sleep(position % 2)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(worker, "a", 4, 5)
        nursery.start_soon(worker, "b", 1, 3)
        nursery.start_soon(worker, "c", 0, 2)
    with t.catch("reusing position 3"):
        async with seq(3):
            pass


@scenario
async def a_cancelled_waiter_breaks_the_sequence(lib: ModuleType, t: Trace) -> None:
    """A waiter cancelled while waiting gets RuntimeError, and so does every
    other waiter and every later block."""
    seq = lib.testing.Sequencer()

    async def waits_for(position: int) -> None:
        with t.catch(f"position {position}"):
            async with seq(position):
                t("unreachable: block", position)

    async with lib.open_nursery() as nursery:
        nursery.start_soon(waits_for, 2)
        await lib.testing.wait_all_tasks_blocked()
        with lib.move_on_after(1):
            await waits_for(1)
    await waits_for(3)


def _operations(lib: ModuleType) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Operations that each library documents as a checkpoint, or not."""
    lock = lib.Lock()
    semaphore = lib.Semaphore(1)
    event = lib.Event()
    event.set()
    send, receive = lib.open_memory_channel(1)

    async def nothing() -> None:
        pass

    async def lock_round() -> None:
        await lock.acquire()
        lock.release()

    async def send_then_receive() -> None:
        await send.send(1)
        await receive.receive()

    async def nowait_calls() -> None:
        send.send_nowait(2)
        receive.receive_nowait()
        event.set()
        semaphore.release() if semaphore.value == 0 else semaphore.acquire_nowait()

    return {
        "sleep(0)": lambda: lib.sleep(0),
        "checkpoint()": lib.lowlevel.checkpoint,
        "an uncontended Lock": lock_round,
        "an uncontended Semaphore": semaphore.acquire,
        "waiting for a set Event": event.wait,
        "a memory channel with room": send_then_receive,
        "an async function that never awaits": nothing,
        "the *_nowait calls": nowait_calls,
    }


@scenario
async def which_operations_are_checkpoints(lib: ModuleType, t: Trace) -> None:
    """assert_checkpoints passes exactly the operations that yield, and
    assert_no_checkpoints the others."""
    for name, operation in _operations(lib).items():
        with t.catch(f"assert_checkpoints: {name}"), lib.testing.assert_checkpoints():
            await operation()
    for name, operation in _operations(lib).items():
        with t.catch(f"assert_no_checkpoints: {name}"), lib.testing.assert_no_checkpoints():
            await operation()


@scenario
async def checkpoint_assertions_and_exceptions(lib: ModuleType, t: Trace) -> None:
    """A block that raises is not judged by assert_checkpoints; a block that
    yielded and then raised fails assert_no_checkpoints anyway."""
    with t.catch("assert_checkpoints, raising"), lib.testing.assert_checkpoints():
        raise LookupError("raised without a checkpoint")
    with t.catch("assert_no_checkpoints, raising"), lib.testing.assert_no_checkpoints():
        await lib.sleep(0)
        raise LookupError("raised after a checkpoint")


async def connect_to_listeners(lib: ModuleType) -> list[Any]:
    net: Any = trio if lib is trio else shardio_net
    seen = []
    for host in ("0.0.0.0", "127.0.0.1"):
        listeners = await net.open_tcp_listeners(0, host=host)
        for listener in listeners:
            async with listener:
                client = await lib.testing.open_stream_to_socket_listener(listener)
                async with client, await listener.accept() as server:
                    await client.send_all(b"hello")
                    seen.append(
                        (
                            host,
                            type(client).__name__,
                            await server.receive_some(),
                            client.socket.getpeername() == listener.socket.getsockname()
                            if host != "0.0.0.0"
                            else client.socket.getpeername()[0],
                        )
                    )
    return seen


test_trio_and_shardio_traces_match = SCENARIOS.test()


def test_trio_and_shardio_connect_to_a_listener_alike() -> None:
    with_trio = trio.run(connect_to_listeners, trio)
    with_shardio = shardio.run(connect_to_listeners, shardio)
    assert with_shardio == with_trio
    assert [entry[3] for entry in with_shardio] == ["127.0.0.1", True]
