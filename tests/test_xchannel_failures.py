"""Cross-shard channels when something fails: a value that cannot be rebuilt
where it is received, a receive end that cannot follow a move, a shard that
dies with a receive end on its way to it.

The scenarios that hung the whole run on the code before the fix run in a
child Python process (the parent of the shards), so that a hang fails the
test instead of stopping the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import shardio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_scenario(body: str) -> str:
    """Run ``body`` in a child Python; return what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()  # its shards die with it (PR_SET_PDEATHSIG)
        out, _ = proc.communicate()
        pytest.fail(f"the run hung; it printed:\n{out}")
    return out


# -- values whose rebuild raises --------------------------------------------------------

REBUILD_SCENARIO = """
    import shardio, shardio.testing

    class Bomb:
        # Rebuilt by calling explode(kind) on the receiving shard.
        def __init__(self, kind, shard):
            self.kind, self.shard = kind, shard

        def __reduce__(self):
            return (explode, (self.kind, self.shard))

    def explode(kind, shard):
        if shardio.current_shard() == shard:
            raise {
                "ValueError": ValueError("bad state"),
                "KeyboardInterrupt": KeyboardInterrupt(),
                "SystemExit": SystemExit(3),
                "GeneratorExit": GeneratorExit(),
            }[kind]
        return Bomb(kind, shard)

    async def receive_all(receive):
        got = []
        while True:
            try:
                got.append(await receive.receive())
            except shardio.EndOfChannel:
                return got
            except shardio.BrokenResourceError as exc:
                got.append(f"BrokenResourceError from {type(exc.__cause__).__name__}")

    async def send_three(send, kind, shard):
        async with send:
            await send.send(1)
            await send.send(Bomb(kind, shard))
            await send.send(3)

    async def send_bomb_first(send, kind, shard):
        async with send:
            await send.send(Bomb(kind, shard))
            await send.send(3)

    KINDS = ("ValueError", "KeyboardInterrupt", "SystemExit", "GeneratorExit")

    async def main():
        for kind in KINDS:
            for size in (10, 0):
                # sent from shard 1 (with credit, then waiting), rebuilt at the
                # home on shard 0
                send, receive = shardio.open_channel(size)
                async with shardio.open_nursery() as nursery:
                    nursery.start_soon(send_three, send, kind, 0, shard=1)
                    got = await receive_all(receive)
                print(kind, size, "sent:", got, flush=True)
        for kind in KINDS:
            # sent on the home (shard 0), rebuilt where the receive end moved (shard 1)
            send, receive = shardio.open_channel(10)
            await send_three(send, kind, 1)
            got = await shardio.run_on(1, receive_all, receive)
            print(kind, "moved:", got, flush=True)
            # a send blocked on the home when the receive end leaves: its value
            # goes with the channel, and is rebuilt on shard 1
            send, receive = shardio.open_channel(0)
            async with shardio.open_nursery() as nursery:
                nursery.start_soon(send_bomb_first, send, kind, 1)
                await shardio.testing.wait_all_tasks_blocked()
                got = await shardio.run_on(1, receive_all, receive)
            print(kind, "moved while sending:", got, flush=True)
        answer = await shardio.run_on(1, shardio.current_shard)
        print("run finished; shard 1 still answers:", answer)

    shardio.run(main, shards=2, cpus=False)
"""


def test_a_value_whose_rebuild_raises_anything_fails_only_that_value() -> None:
    out = run_scenario(REBUILD_SCENARIO)
    lines = out.splitlines()
    for kind in ("ValueError", "KeyboardInterrupt", "SystemExit", "GeneratorExit"):
        failed = f"'BrokenResourceError from {kind}'"
        expected = f"[1, {failed}, 3]"
        assert f"{kind} 10 sent: {expected}" in lines, out
        assert f"{kind} 0 sent: {expected}" in lines, out
        assert f"{kind} moved: {expected}" in lines, out
        assert f"{kind} moved while sending: [{failed}, 3]" in lines, out
    assert "run finished; shard 1 still answers: 1" in lines, out


async def send_end_inside_a_bad_value(outer: shardio.ShardSendChannel[Any]) -> Any:
    # The inner channel's receive end travels inside a value that cannot be
    # rebuilt on shard 0; its send end stays here.
    inner_send, inner_receive = shardio.open_channel(1)
    await outer.send((inner_receive, Unrebuildable()))
    return inner_send


class Unrebuildable:
    def __reduce__(self) -> Any:
        return (fail_on_shard_0, ())


def fail_on_shard_0() -> Unrebuildable:
    if shardio.current_shard() == 0:
        raise ValueError("cannot be rebuilt on shard 0")
    return Unrebuildable()


async def send_one(send: shardio.ShardSendChannel[str]) -> str:
    try:
        await send.send("anyone there?")
    except shardio.BrokenResourceError as exc:
        return f"BrokenResourceError: {exc}"
    return "sent"


@pytest.mark.shardio(shards=2)
async def test_a_receive_end_inside_a_value_that_cannot_be_rebuilt_is_closed() -> None:
    outer_send, outer_receive = shardio.open_channel(1)
    inner_send = await shardio.run_on(1, send_end_inside_a_bad_value, outer_send)
    with pytest.raises(shardio.BrokenResourceError, match="unpickled") as info:
        await outer_receive.receive()
    assert isinstance(info.value.__cause__, ValueError)
    # Nobody holds the inner receive end: it was closed, so its sender
    # learns it instead of filling a buffer no one will ever read.
    result = await shardio.run_on(1, send_one, inner_send)
    assert result == "BrokenResourceError: every receive end of this channel was closed"


# -- moves that cannot happen -----------------------------------------------------------


async def receive_one(receive: shardio.ShardReceiveChannel[Any]) -> Any:
    return await receive.receive()


@pytest.mark.shardio(shards=2)
async def test_a_receive_end_whose_buffer_holds_an_unpicklable_value_stays_usable() -> None:
    send, receive = shardio.open_channel(4)
    lock = threading.Lock()
    await send.send(lock)  # on the home: by reference, as in a memory channel
    with pytest.raises(TypeError, match="the channel's buffer holds a lock"):
        await shardio.run_on(1, receive_one, receive)
    assert receive.receive_nowait() is lock
    await send.send("then it moves")
    assert await shardio.run_on(1, receive_one, receive) == "then it moves"


# -- a shard that dies ---------------------------------------------------------------------

RECEIVER_DIES_SCENARIO = """
    import os, shardio

    async def consume(receive):
        async for _ in receive:
            pass

    async def main():
        send, receive = shardio.open_channel(0)
        async with shardio.open_nursery() as nursery:
            # In one pass: the receive end leaves for shard 1, which dies
            # before it can claim the channel; a send waits on shard 0.
            nursery.start_soon(shardio.run_on, 1, consume, receive)
            nursery.start_soon(shardio.run_on, 1, os._exit, 3)
            try:
                await send.send("hello")
            except shardio.ShardCrashed as exc:
                print("send failed:", exc, flush=True)
                raise

    try:
        shardio.run(main, shards=2, cpus=False)
    except shardio.ShardCrashed as exc:
        print("run raised ShardCrashed:", exc, flush=True)
"""


def test_a_send_waiting_when_the_receive_end_leaves_for_a_dying_shard_fails() -> None:
    out = run_scenario(RECEIVER_DIES_SCENARIO)
    assert "send failed: shard 1 exited with code 3" in out.splitlines(), out
    assert "run raised ShardCrashed: shard 1 exited with code 3" in out.splitlines(), out


THIRD_SHARD_SENDER_SCENARIO = """
    import os, shardio

    async def consume(receive):
        async for _ in receive:
            pass

    async def send_until_it_fails(send):
        # Shielded: the run's stop must not end these sends; the crash must.
        with shardio.CancelScope(shield=True):
            try:
                while True:
                    await send.send("x")
            except shardio.ShardCrashed as exc:
                print("the sends on shard 2 failed:", exc, flush=True)

    async def main():
        send, receive = shardio.open_channel(0)
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(shardio.run_on, 2, send_until_it_fails, send)
            assert await receive.receive() == "x"
            # Shard 2's next send waits at shard 0, or in the forwarder
            # shard 0 becomes, for a receive end that never arrives.
            nursery.start_soon(shardio.run_on, 1, consume, receive)
            nursery.start_soon(shardio.run_on, 1, os._exit, 3)

    try:
        shardio.run(main, shards=3, cpus=False)
    except shardio.ShardCrashed as exc:
        print("run raised ShardCrashed:", exc, flush=True)
"""


def test_a_send_from_a_third_shard_fails_when_the_receive_end_dies_on_its_way() -> None:
    out = run_scenario(THIRD_SHARD_SENDER_SCENARIO)
    lines = out.splitlines()
    assert "the sends on shard 2 failed: shard 1 exited with code 3" in lines, out
    assert "run raised ShardCrashed: shard 1 exited with code 3" in lines, out
