"""The copy-free forms: buffer sequences, receive_into, MSG_ZEROCOPY."""

from __future__ import annotations

import array
import os
import random
from collections import Counter
from pathlib import Path

import pytest

import shardio
from shardio import lowlevel
from shardio_net import SocketStream

from ._pairs import tcp_pair, unix_pair


async def receive_all(stream: SocketStream, into: bytearray, chunk: int = 65536) -> None:
    while data := await stream.receive_some(chunk):
        into += data


async def test_many_buffers_arrive_as_their_exact_concatenation() -> None:
    rng = random.Random(4)
    base = os.urandom(1 << 16)
    pieces: list[object] = []
    for index in range(3000):  # more than IOV_MAX buffers
        start = rng.randrange(len(base))
        piece = base[start : start + rng.randrange(0, 3000)]
        kind = index % 4
        if kind == 0:
            pieces.append(piece)
        elif kind == 1:
            pieces.append(bytearray(piece))
        elif kind == 2:
            pieces.append(memoryview(b"--" + piece + b"--")[2:-2])
        else:
            pieces.append(piece)
    pieces.append(array.array("i", [1, 2, 3]))
    expected = b"".join(bytes(p) for p in pieces)  # type: ignore[call-overload]
    client, server = await tcp_pair()
    received = bytearray()

    async def send() -> None:
        await client.send_all(pieces)  # type: ignore[arg-type]
        await client.send_eof()

    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(send)
        # Small, slow reads: the sender's writes stop in the middle of buffers.
        while data := await server.receive_some(7919):
            received += data
            if len(received) % 5 == 0:
                await shardio.sleep(0)
    assert received == expected
    view = pieces[2]
    assert isinstance(view, memoryview) and view.tobytes()  # the caller's view is untouched


async def test_an_empty_sequence_sends_nothing_and_a_str_is_refused() -> None:
    client, server = await tcp_pair()
    async with client, server:
        await client.send_all([])
        await client.send_all([b"", bytearray()])
        await client.send_all([b"only this"])
        assert await server.receive_some() == b"only this"
        with pytest.raises(TypeError, match="not str"):
            await client.send_all("text")  # type: ignore[arg-type]


async def test_receive_into_fills_the_callers_buffer(tmp_path: Path) -> None:
    client, server = await unix_pair(tmp_path)
    buffer = bytearray(10)
    async with client, server:
        await client.send_all(b"0123456789abc")
        count = await server.receive_into(memoryview(buffer)[4:])
        assert count == 6
        assert buffer == bytes(4) + b"012345"
        assert await server.receive_some() == b"6789abc"
        with pytest.raises(ValueError):
            await server.receive_into(bytearray())
        await client.send_eof()
        assert await server.receive_into(buffer) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_a_large_send_uses_msg_zerocopy_and_returns_after_completion(host: str) -> None:
    client, server = await tcp_pair(host)
    data = bytearray(os.urandom(8 << 20))
    received = bytearray()
    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(receive_all, server, received)
        await client.send_all(data)
        stats = client.statistics()
        assert stats.zerocopy_sends > 0
        # send_all returned: the kernel has released the buffer.
        assert stats.zerocopy_completed == stats.zerocopy_sends
        data.extend(b"!")  # so the stream no longer holds it either
        await client.send_eof()
    assert received == data[:-1]
    # Over loopback the kernel copies anyway, and says so: the stream stops
    # asking for zero-copy.
    assert stats.zerocopy_copied == stats.zerocopy_sends
    assert not stats.zerocopy_active


async def test_zerocopy_threshold_none_or_below_it_copies() -> None:
    client, server = await tcp_pair()
    received = bytearray()
    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(receive_all, server, received)
        await client.send_all(b"y" * 65535)
        client.zerocopy_threshold = None
        await client.send_all(b"z" * (1 << 20))
        assert client.statistics().zerocopy_sends == 0
        assert not client.statistics().zerocopy_active
        await client.send_eof()
    assert received == b"y" * 65535 + b"z" * (1 << 20)


async def test_unix_sockets_fall_back_to_copying(tmp_path: Path) -> None:
    client, server = await unix_pair(tmp_path)
    received = bytearray()
    data = os.urandom(1 << 20)
    async with client, server, shardio.open_nursery() as nursery:
        nursery.start_soon(receive_all, server, received)
        await client.send_all([data[:1000], data[1000:]])
        await client.send_eof()
        stats = client.statistics()
    assert received == data
    assert stats.zerocopy_sends == 0 and not stats.zerocopy_active


async def test_closing_with_zerocopy_sends_outstanding_resets_the_connection() -> None:
    client, server = await tcp_pair()
    with shardio.move_on_after(0.2):
        await client.send_all(bytes(16 << 20))  # nobody reads: it cannot finish
    stats = client.statistics()
    assert stats.zerocopy_sends > stats.zerocopy_completed
    await client.aclose()
    with pytest.raises(shardio.BrokenResourceError):
        while await server.receive_some():
            pass
    await server.aclose()


async def test_closing_wakes_a_blocked_zerocopy_send() -> None:
    client, server = await tcp_pair()

    async def close_soon() -> None:
        await shardio.sleep(0.1)
        await client.aclose()

    async with server, shardio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(shardio.ClosedResourceError):
            await client.send_all(bytes(16 << 20))


class _StepCounter(lowlevel.Instrument):
    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: lowlevel.Task) -> None:
        self.steps[task.name] += 1


async def test_completions_of_a_cancelled_send_do_not_keep_a_receiver_busy() -> None:
    client, server = await tcp_pair()
    with shardio.move_on_after(0.2):
        await client.send_all(bytes(16 << 20))
    assert client.statistics().zerocopy_sends > client.statistics().zerocopy_completed

    read = 0

    async def read_everything() -> None:
        nonlocal read
        while data := await server.receive_some():
            read += len(data)

    async def reply_later() -> None:
        await shardio.sleep(0.3)
        await server.send_all(b"reply")

    async def wait_for_reply() -> None:
        assert await client.receive_some() == b"reply"

    counter = _StepCounter()
    lowlevel.add_instrument(counter)
    try:
        async with client, server, shardio.open_nursery() as nursery:
            nursery.start_soon(read_everything)
            nursery.start_soon(reply_later)
            # The server's reads let the kernel complete the sends; each
            # completion makes the client's socket report an error event, which
            # wakes its receiver. The receiver must take them, not wake for
            # them again and again.
            await wait_for_reply()
            stats = client.statistics()
            nursery.cancel_scope.cancel()
    finally:
        lowlevel.remove_instrument(counter)
    assert stats.zerocopy_completed == stats.zerocopy_sends
    assert read > 0
    assert counter.steps[lowlevel.current_task().name] < 50, counter.steps
