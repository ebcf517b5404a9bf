"""Conformance checks for stream implementations.

A stream class claims a contract: the one written in the docstrings of
:mod:`shardio.abc` (Trio's). These functions exercise it, so a new stream
(a socket, a TLS layer, an in-memory test double) can prove that it keeps
it. Each takes *stream makers*: async functions of no arguments that return
a fresh, connected pair. Every scenario starts from a new pair and closes
both ends forcefully when it is done, so one scenario cannot leak into the
next.

What is checked, in short:

* data arrives whole and in order, whatever the chunking; ``b""`` can be
  sent and means nothing; bytes, bytearray and memoryview are accepted;
  ``receive_some`` never returns more than ``max_bytes``;
* ``max_bytes`` must be a positive integer or ``None``;
* every operation is a checkpoint (it yields to the scheduler), and an
  operation in a cancelled scope raises :class:`~shardio.Cancelled`,
  without spoiling a later graceful close;
* two tasks sending, or two receiving, at once get
  :class:`~shardio.BusyResourceError`;
* closing: ``aclose`` may be repeated and still closes when cancelled;
  afterwards this end raises :class:`~shardio.ClosedResourceError`
  (including a task already blocked in it), the peer's sends raise
  :class:`~shardio.BrokenResourceError`, and the peer's receives drain the
  data and then get ``b""``, which stays ``b""``;
* with a *clogged* pair (whose ``send_all`` blocks until the peer
  receives), ``wait_send_all_might_not_block`` waits for the peer and is
  woken by a close;
* for two-way streams, both directions at once; for half-closeable ones,
  ``send_eof``.

A failed check raises :class:`AssertionError` whose message names the
scenario and what went wrong. The checks do not need pytest.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias, TypeVar

from .. import (
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    CancelScope,
    ClosedResourceError,
    aclose_forcefully,
    open_nursery,
)
from ..abc import AsyncResource, HalfCloseableStream, ReceiveStream, SendStream, Stream
from ..lowlevel import Instrument, Task, add_instrument, current_task, remove_instrument

# The package imports this name before it imports this module.
from . import wait_all_tasks_blocked

__all__ = ["check_half_closeable_stream", "check_one_way_stream", "check_two_way_stream"]

ResourceT1 = TypeVar("ResourceT1", bound=AsyncResource)
ResourceT2 = TypeVar("ResourceT2", bound=AsyncResource)

#: An async function of no arguments that returns a fresh, connected pair.
StreamMaker: TypeAlias = Callable[[], Awaitable[tuple[ResourceT1, ResourceT2]]]

# The size of the bulk transfers, and the largest chunk sent or asked for.
_BULK_SIZE = 1 << 20
_CHUNK_MAX = 1 << 14
# How many 1 KiB sends a stream may accept after its peer closed.
_SENDS_BEFORE_BROKEN = 1 << 14


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


class _StepCounter(Instrument):
    """Counts the steps one task starts: more than zero inside a block means
    the task yielded to the scheduler there."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: Any) -> None:
        if task is self.task:
            self.steps += 1


@contextmanager
def _must_yield(operation: str) -> Iterator[None]:
    """Fail unless the block yields to the scheduler or raises."""
    counter = _StepCounter(current_task())
    add_instrument(counter)
    try:
        yield
    finally:
        remove_instrument(counter)
    if counter.steps == 0:
        raise AssertionError(f"{operation} returned without yielding (it must be a checkpoint)")


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


@contextmanager
def _must_raise(expected: type[BaseException], doing: str) -> Iterator[None]:
    """Fail unless the block raises ``expected``, bare or (from a nursery)
    as the only kind of exception in a group."""
    try:
        yield
    except BaseException as error:
        leaves = _leaves(error)
        if all(isinstance(leaf, expected) for leaf in leaves):
            return
        if not all(isinstance(leaf, Exception) for leaf in leaves):
            raise  # a cancellation from outside, or KeyboardInterrupt: not ours
        raise AssertionError(f"{doing}: expected {expected.__name__}, got {error!r}") from error
    raise AssertionError(f"{doing}: expected {expected.__name__}, but nothing was raised")


async def _must_conflict(
    doing: str,
    first: Callable[[], Awaitable[object]],
    second: Callable[[], Awaitable[object]],
) -> None:
    """Start ``first`` and let it block, then start ``second``: one of them
    must raise BusyResourceError before every task is blocked again.

    Waiting for the tasks to block, rather than for the operations to end,
    makes a stream that queues the second caller fail the check instead of
    hanging it.
    """
    busy: list[BusyResourceError] = []

    async def attempt(operation: Callable[[], Awaitable[object]]) -> None:
        try:
            await operation()
        except BusyResourceError as error:
            busy.append(error)

    async with open_nursery() as nursery:
        nursery.start_soon(attempt, first)
        await wait_all_tasks_blocked()
        nursery.start_soon(attempt, second)
        await wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    if not busy:
        raise AssertionError(f"{doing}: expected BusyResourceError, but both were accepted")


async def _send(stream: SendStream, data: bytes | bytearray | memoryview) -> None:
    with _must_yield("send_all"):
        result: object = await stream.send_all(data)  # type: ignore[func-returns-value]
    if result is not None:
        raise AssertionError(f"send_all returned {result!r}; it must return None")


async def _receive(stream: ReceiveStream, max_bytes: int | None = None) -> bytes | bytearray:
    with _must_yield("receive_some"):
        data = await stream.receive_some(max_bytes)
    if not isinstance(data, bytes | bytearray):
        raise AssertionError(f"receive_some returned {type(data).__name__}, not bytes or bytearray")
    if max_bytes is not None and len(data) > max_bytes:
        raise AssertionError(f"receive_some({max_bytes}) returned {len(data)} bytes")
    return data


async def _expect(stream: ReceiveStream, expected: bytes, max_bytes: int | None = 1) -> None:
    got = await _receive(stream, max_bytes)
    if got != expected:
        raise AssertionError(f"received {bytes(got)!r}, expected {expected!r}")


async def _close(resource: AsyncResource) -> None:
    with _must_yield("aclose"):
        await resource.aclose()


async def _send_until_broken(stream: SendStream, doing: str) -> None:
    # A stream may take some data before it notices that the peer is gone
    # (a socket's buffer), but not an unbounded amount.
    with _must_raise(BrokenResourceError, doing):
        for _ in range(_SENDS_BEFORE_BROKEN):
            await _send(stream, b"x" * 1024)


async def _send_chunks(stream: SendStream, data: bytes, seed: int) -> None:
    chooser = random.Random(seed)
    view = memoryview(data)
    while view:
        size = chooser.randint(1, _CHUNK_MAX)
        await stream.send_all(view[:size])
        view = view[size:]


async def _receive_exactly(stream: ReceiveStream, expected: bytes, seed: int) -> None:
    chooser = random.Random(seed)
    got = bytearray()
    while len(got) < len(expected):
        chunk = await _receive(stream, chooser.randint(1, _CHUNK_MAX))
        if not chunk:
            raise AssertionError(f"end-of-file after {len(got)} of {len(expected)} bytes")
        got += chunk
    if got != expected:
        mismatch = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        raise AssertionError(f"the data differs from what was sent, from byte {mismatch}")


def _bulk_data(seed: int) -> bytes:
    return random.Random(seed).randbytes(_BULK_SIZE)


Scenario: TypeAlias = Callable[[Any, Any], Awaitable[None]]


async def _run(name: str, maker: StreamMaker[Any, Any], scenario: Scenario) -> None:
    """Run one scenario on a fresh pair, closing both ends afterwards; an
    assertion failure (even one from inside a nursery) comes out as one
    AssertionError that names the scenario."""
    first, second = await maker()
    try:
        await scenario(first, second)
    except BaseException as error:
        leaves = _leaves(error)
        failures = [leaf for leaf in leaves if isinstance(leaf, AssertionError)]
        if failures:
            raise AssertionError(f"{name}: {failures[0]}") from error
        if all(isinstance(leaf, Exception) for leaf in leaves):
            raise AssertionError(f"{name}: unexpected {leaves[0]!r}") from error
        raise
    finally:
        try:
            await aclose_forcefully(first)
        finally:
            await aclose_forcefully(second)


# ---------------------------------------------------------------------------
# One-way scenarios: s sends, r receives
# ---------------------------------------------------------------------------


async def _types(s: Any, r: Any) -> None:
    if not isinstance(s, SendStream):
        raise AssertionError(f"the first stream of the pair is not a SendStream: {s!r}")
    if not isinstance(r, ReceiveStream):
        raise AssertionError(f"the second stream of the pair is not a ReceiveStream: {r!r}")


async def _send_then_receive(s: SendStream, r: ReceiveStream) -> None:
    async with open_nursery() as nursery:
        nursery.start_soon(_send, s, b"x")
        nursery.start_soon(_expect, r, b"x")


async def _empty_send_means_nothing(s: SendStream, r: ReceiveStream) -> None:
    async def send_empty_then_y() -> None:
        await _send(s, b"")
        await _send(s, b"y")

    async with open_nursery() as nursery:
        nursery.start_soon(send_empty_then_y)
        nursery.start_soon(_expect, r, b"y")


async def _bytes_like_arguments(s: SendStream, r: ReceiveStream) -> None:
    for data in (bytearray(b"1"), memoryview(b"2")):
        async with open_nursery() as nursery:
            nursery.start_soon(_send, s, data)
            nursery.start_soon(_expect, r, bytes(data))


async def _max_bytes_validation(s: SendStream, r: ReceiveStream) -> None:
    bad_arguments: list[tuple[Any, type[Exception]]] = [
        (-1, ValueError),
        (0, ValueError),
        (1.5, TypeError),
    ]
    async with open_nursery() as nursery:
        # Data is on its way, so a stream that accepts a bad max_bytes
        # returns it (and fails the check) rather than blocking.
        nursery.start_soon(_send, s, b"x")
        for max_bytes, error in bad_arguments:
            with _must_raise(error, f"receive_some({max_bytes!r})"):
                await r.receive_some(max_bytes)
        await _expect(r, b"x", None)
    async with open_nursery() as nursery:
        nursery.start_soon(_send, s, b"y")
        with _must_yield("receive_some()"):
            got = await r.receive_some()
    if got != b"y":
        raise AssertionError(f"receive_some() returned {bytes(got)!r}, expected b'y'")


async def _order_and_max_bytes(s: SendStream, r: ReceiveStream) -> None:
    data = _bulk_data(0)
    async with open_nursery() as nursery:
        nursery.start_soon(_send_chunks, s, data, 1)
        nursery.start_soon(_receive_exactly, r, data, 2)


async def _concurrent_receives_are_busy(s: SendStream, r: ReceiveStream) -> None:
    def receive() -> Awaitable[object]:
        return r.receive_some(1)

    await _must_conflict("two tasks in receive_some at once", receive, receive)


async def _wait_send_returns_while_receiving(s: SendStream, r: ReceiveStream) -> None:
    # A stream need not buffer, so send_all may legitimately wait for a
    # receiver; but with one waiting, wait_send_all_might_not_block must
    # return.
    async def waiter(scope: CancelScope) -> None:
        with _must_yield("wait_send_all_might_not_block"):
            await s.wait_send_all_might_not_block()
        scope.cancel()

    async with open_nursery() as nursery:
        nursery.start_soon(waiter, nursery.cancel_scope)
        nursery.start_soon(_receive, r, 1)


async def _closing_each_end(s: SendStream, r: ReceiveStream) -> None:
    async with open_nursery() as nursery:
        nursery.start_soon(_send_until_broken, s, "send_all while the receiver closes")
        nursery.start_soon(_close, r)
    with _must_raise(BrokenResourceError, "send_all after the receiver closed"):
        await _send(s, b"x" * 100)
    with _must_raise(ClosedResourceError, "receive_some after aclose"):
        await _receive(r, 4096)
    await _close(r)
    await _close(r)

    await _close(s)
    with _must_raise(ClosedResourceError, "send_all after aclose"):
        await _send(s, b"x" * 100)
    with _must_raise(ClosedResourceError, "send_all(b'') after aclose"):
        await _send(s, b"")
    with (
        _must_raise(ClosedResourceError, "wait_send_all_might_not_block after aclose"),
        _must_yield("wait_send_all_might_not_block"),
    ):
        await s.wait_send_all_might_not_block()
    await _close(s)
    await _close(s)


async def _data_then_eof(s: SendStream, r: ReceiveStream) -> None:
    async def send_then_close() -> None:
        await _send(s, b"y")
        await _close(s)

    async def receive_late() -> None:
        # Let the sender get as far as it can first: the data must survive
        # a close that comes before anyone received it.
        await wait_all_tasks_blocked()
        await _expect(r, b"y")
        await _expect(r, b"")
        await _expect(r, b"")
        await _close(r)

    async with open_nursery() as nursery:
        nursery.start_soon(send_then_close)
        nursery.start_soon(receive_late)


async def _forceful_close_of_receiver(s: SendStream, r: ReceiveStream) -> None:
    await aclose_forcefully(r)
    await _send_until_broken(s, "send_all after the receiver closed forcefully")
    with _must_raise(ClosedResourceError, "receive_some after a forceful close"):
        await _receive(r, 4096)


async def _forceful_close_of_sender(s: SendStream, r: ReceiveStream) -> None:
    await aclose_forcefully(s)
    with _must_raise(ClosedResourceError, "send_all after a forceful close"):
        await _send(s, b"123")
    # The receiver may see a clean end-of-file or a broken stream; not data.
    try:
        got = await _receive(r, 1)
    except BrokenResourceError:
        return
    if got != b"":
        raise AssertionError(f"received {bytes(got)!r} after the sender closed forcefully")


async def _cancelled_aclose_still_closes(s: SendStream, r: ReceiveStream) -> None:
    for resource in (r, s):
        with CancelScope() as scope:
            scope.cancel()
            await resource.aclose()
    with _must_raise(ClosedResourceError, "send_all after a cancelled aclose"):
        await _send(s, b"123")
    with _must_raise(ClosedResourceError, "receive_some after a cancelled aclose"):
        await _receive(r, 4096)


async def _cancelled_operations(s: SendStream, r: ReceiveStream) -> None:
    async def must_be_cancelled(operation: Callable[[], Awaitable[object]], name: str) -> None:
        with _must_raise(Cancelled, f"{name} in a cancelled scope"):
            await operation()

    with CancelScope() as scope:
        scope.cancel()
        async with open_nursery() as nursery:
            nursery.start_soon(must_be_cancelled, lambda: s.send_all(b"x"), "send_all")
            nursery.start_soon(must_be_cancelled, lambda: r.receive_some(1), "receive_some")
    with CancelScope() as scope:
        scope.cancel()
        await must_be_cancelled(s.wait_send_all_might_not_block, "wait_send_all_might_not_block")
    # The cancellations must not have spoiled a graceful close.
    async with open_nursery() as nursery:
        nursery.start_soon(_close, s)
        nursery.start_soon(_close, r)


async def _close_wakes_blocked_receiver(s: SendStream, r: ReceiveStream) -> None:
    async def receive_until_closed() -> None:
        with _must_raise(ClosedResourceError, "receive_some blocked while the stream closed"):
            await r.receive_some(10)

    async with open_nursery() as nursery:
        nursery.start_soon(receive_until_closed)
        await wait_all_tasks_blocked()
        await aclose_forcefully(r)


_ONE_WAY_SCENARIOS: list[tuple[str, Scenario]] = [
    ("stream types", _types),
    ("send then receive", _send_then_receive),
    ("b'' sends nothing", _empty_send_means_nothing),
    ("bytearray and memoryview", _bytes_like_arguments),
    ("max_bytes validation", _max_bytes_validation),
    ("order and max_bytes over a bulk transfer", _order_and_max_bytes),
    ("concurrent receive_some", _concurrent_receives_are_busy),
    ("wait_send_all_might_not_block with a receiver waiting", _wait_send_returns_while_receiving),
    ("closing each end", _closing_each_end),
    ("data, then end-of-file", _data_then_eof),
    ("cancelled operations", _cancelled_operations),
    # Forceful closes rely on a cancelled aclose closing: check that first.
    ("cancelled aclose", _cancelled_aclose_still_closes),
    ("forceful close of the receiver", _forceful_close_of_receiver),
    ("forceful close of the sender", _forceful_close_of_sender),
    ("close wakes a blocked receive_some", _close_wakes_blocked_receiver),
]


# ---------------------------------------------------------------------------
# One-way scenarios on a clogged pair: s.send_all blocks until r receives
# ---------------------------------------------------------------------------


async def _wait_send_waits_for_receiver(s: SendStream, r: ReceiveStream) -> None:
    record: list[str] = []

    async def waiter(scope: CancelScope) -> None:
        record.append("waiter sleeping")
        with _must_yield("wait_send_all_might_not_block"):
            await s.wait_send_all_might_not_block()
        record.append("waiter woke")
        scope.cancel()

    async def receiver() -> None:
        await wait_all_tasks_blocked()
        record.append("receiver starting")
        while True:
            await r.receive_some(_CHUNK_MAX)

    async with open_nursery() as nursery:
        nursery.start_soon(waiter, nursery.cancel_scope)
        await wait_all_tasks_blocked()
        nursery.start_soon(receiver)
    if record != ["waiter sleeping", "receiver starting", "waiter woke"]:
        raise AssertionError(
            f"wait_send_all_might_not_block did not wait for the receiver: {record}"
        )


async def _concurrent_waits_are_busy(s: SendStream, r: ReceiveStream) -> None:
    await _must_conflict(
        "two tasks in wait_send_all_might_not_block at once",
        s.wait_send_all_might_not_block,
        s.wait_send_all_might_not_block,
    )


async def _wait_and_send_are_busy(s: SendStream, r: ReceiveStream) -> None:
    await _must_conflict(
        "wait_send_all_might_not_block and send_all at once",
        s.wait_send_all_might_not_block,
        lambda: s.send_all(b"123"),
    )


async def _concurrent_sends_are_busy(s: SendStream, r: ReceiveStream) -> None:
    def send() -> Awaitable[object]:
        return s.send_all(b"123")

    await _must_conflict("two tasks in send_all at once", send, send)


async def _receiver_close_wakes_wait_send(s: SendStream, r: ReceiveStream) -> None:
    async def wait_send() -> None:
        # Returning and raising BrokenResourceError are both fine: the
        # point is to wake up.
        try:
            with _must_yield("wait_send_all_might_not_block"):
                await s.wait_send_all_might_not_block()
        except BrokenResourceError:
            pass

    async def close_receiver() -> None:
        await wait_all_tasks_blocked()
        await aclose_forcefully(r)

    async with open_nursery() as nursery:
        nursery.start_soon(wait_send)
        nursery.start_soon(close_receiver)


async def _wait_send_after_receiver_closed(s: SendStream, r: ReceiveStream) -> None:
    await aclose_forcefully(r)
    try:
        with _must_yield("wait_send_all_might_not_block"):
            await s.wait_send_all_might_not_block()
    except BrokenResourceError:
        pass


async def _close_soon(resource: AsyncResource) -> None:
    await wait_all_tasks_blocked()
    await aclose_forcefully(resource)


async def _close_wakes_blocked_send(s: SendStream, r: ReceiveStream) -> None:
    async with open_nursery() as nursery:
        nursery.start_soon(_close_soon, s)
        with _must_raise(ClosedResourceError, "send_all blocked while the stream closed"):
            await s.send_all(b"xyzzy")


async def _close_wakes_blocked_wait_send(s: SendStream, r: ReceiveStream) -> None:
    async with open_nursery() as nursery:
        nursery.start_soon(_close_soon, s)
        with _must_raise(
            ClosedResourceError, "wait_send_all_might_not_block blocked while the stream closed"
        ):
            await s.wait_send_all_might_not_block()


_CLOGGED_SCENARIOS: list[tuple[str, Scenario]] = [
    ("wait_send_all_might_not_block waits for the receiver", _wait_send_waits_for_receiver),
    ("concurrent wait_send_all_might_not_block", _concurrent_waits_are_busy),
    ("concurrent wait_send_all_might_not_block and send_all", _wait_and_send_are_busy),
    ("concurrent send_all", _concurrent_sends_are_busy),
    ("receiver close wakes wait_send_all_might_not_block", _receiver_close_wakes_wait_send),
    ("wait_send_all_might_not_block after the receiver closed", _wait_send_after_receiver_closed),
    ("close wakes a blocked send_all", _close_wakes_blocked_send),
    ("close wakes a blocked wait_send_all_might_not_block", _close_wakes_blocked_wait_send),
]


async def check_one_way_stream(
    stream_maker: StreamMaker[SendStream, ReceiveStream],
    clogged_stream_maker: StreamMaker[SendStream, ReceiveStream] | None,
) -> None:
    """Check a one-way stream implementation against the stream contract.

    ``stream_maker`` is an async function that returns a fresh, connected
    ``(send_stream, receive_stream)`` pair. ``clogged_stream_maker``, if not
    ``None``, returns a pair in which ``send_all`` and
    ``wait_send_all_might_not_block`` block until the receiver calls
    ``receive_some``; it enables the flow-control scenarios.

    Raises :class:`AssertionError` naming the first scenario that fails.
    """
    for name, scenario in _ONE_WAY_SCENARIOS:
        await _run(name, stream_maker, scenario)
    if clogged_stream_maker is not None:
        for name, scenario in _CLOGGED_SCENARIOS:
            await _run(f"clogged: {name}", clogged_stream_maker, scenario)


# ---------------------------------------------------------------------------
# Two-way and half-closeable streams
# ---------------------------------------------------------------------------


def _flipped(maker: StreamMaker[Stream, Stream]) -> StreamMaker[Stream, Stream]:
    async def flipped_maker() -> tuple[Stream, Stream]:
        first, second = await maker()
        return second, first

    return flipped_maker


async def _two_way_types(a: Any, b: Any) -> None:
    for stream in (a, b):
        if not isinstance(stream, Stream):
            raise AssertionError(f"not a Stream: {stream!r}")


async def _full_duplex(a: Stream, b: Stream) -> None:
    forward, backward = _bulk_data(10), _bulk_data(11)
    async with open_nursery() as nursery:
        nursery.start_soon(_send_chunks, a, forward, 12)
        nursery.start_soon(_send_chunks, b, backward, 13)
        nursery.start_soon(_receive_exactly, b, forward, 14)
        nursery.start_soon(_receive_exactly, a, backward, 15)


async def _close_gives_peer_eof(a: Stream, b: Stream) -> None:
    async def expect_eof_then_close() -> None:
        await _expect(b, b"", 10)
        await _close(b)

    async with open_nursery() as nursery:
        nursery.start_soon(expect_eof_then_close)
        nursery.start_soon(_close, a)


async def check_two_way_stream(
    stream_maker: StreamMaker[Stream, Stream],
    clogged_stream_maker: StreamMaker[Stream, Stream] | None,
) -> None:
    """Check a bidirectional stream implementation against the stream contract.

    The makers return connected ``(stream, stream)`` pairs (see
    :func:`check_one_way_stream`). Runs every one-way scenario in both
    directions, then sends in both directions at once, then checks that
    closing one end gives the other end-of-file. It includes everything
    :func:`check_one_way_stream` checks.
    """
    await check_one_way_stream(stream_maker, clogged_stream_maker)
    await check_one_way_stream(
        _flipped(stream_maker),
        _flipped(clogged_stream_maker) if clogged_stream_maker is not None else None,
    )
    await _run("stream types (two-way)", stream_maker, _two_way_types)
    await _run("both directions at once", stream_maker, _full_duplex)
    await _run("aclose gives the peer end-of-file", stream_maker, _close_gives_peer_eof)


async def _send_x_then_eof(stream: HalfCloseableStream) -> None:
    await _send(stream, b"x")
    with _must_yield("send_eof"):
        await stream.send_eof()


async def _expect_x_then_eof(stream: HalfCloseableStream) -> None:
    await wait_all_tasks_blocked()
    await _expect(stream, b"x", 10)
    await _expect(stream, b"", 10)


async def _send_eof(a: HalfCloseableStream, b: HalfCloseableStream) -> None:
    for stream in (a, b):
        if not isinstance(stream, HalfCloseableStream):
            raise AssertionError(f"not a HalfCloseableStream: {stream!r}")
    async with open_nursery() as nursery:
        nursery.start_soon(_send_x_then_eof, a)
        nursery.start_soon(_expect_x_then_eof, b)
    with _must_raise(ClosedResourceError, "send_all after send_eof"):
        await a.send_all(b"y")
    with _must_yield("a second send_eof"):
        await a.send_eof()
    # The other direction is still open.
    async with open_nursery() as nursery:
        nursery.start_soon(_send_x_then_eof, b)
        nursery.start_soon(_expect_x_then_eof, a)


async def _send_and_send_eof_are_busy(a: HalfCloseableStream, b: HalfCloseableStream) -> None:
    await _must_conflict("send_eof while send_all is blocked", lambda: a.send_all(b"x"), a.send_eof)


async def _wait_send_and_send_eof_are_busy(a: HalfCloseableStream, b: HalfCloseableStream) -> None:
    await _must_conflict(
        "send_eof while wait_send_all_might_not_block is blocked",
        a.wait_send_all_might_not_block,
        a.send_eof,
    )


async def check_half_closeable_stream(
    stream_maker: StreamMaker[HalfCloseableStream, HalfCloseableStream],
    clogged_stream_maker: StreamMaker[HalfCloseableStream, HalfCloseableStream] | None,
) -> None:
    """Check a half-closeable stream implementation against the stream contract.

    Everything :func:`check_two_way_stream` checks, plus ``send_eof``: the
    peer receives the data, then ``b""``; sending afterwards raises
    :class:`~shardio.ClosedResourceError`; a second ``send_eof`` is fine; the
    other direction stays open; and (with a clogged maker) ``send_eof``
    while another task sends or waits to send raises
    :class:`~shardio.BusyResourceError`.
    """
    await check_two_way_stream(stream_maker, clogged_stream_maker)
    await _run("send_eof", stream_maker, _send_eof)
    if clogged_stream_maker is not None:
        await _run(
            "clogged: send_all and send_eof at once",
            clogged_stream_maker,
            _send_and_send_eof_are_busy,
        )
        await _run(
            "clogged: wait_send_all_might_not_block and send_eof at once",
            clogged_stream_maker,
            _wait_send_and_send_eof_are_busy,
        )
