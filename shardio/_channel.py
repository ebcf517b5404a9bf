"""Memory channels: pass Python objects between the tasks of one shard.

``send, receive = open_memory_channel(max_buffer_size)`` gives the two ends
of a queue that holds up to ``max_buffer_size`` objects (0: every send waits
for a receiver; ``math.inf``: sends never block). Trio's semantics, exactly:

* Senders and receivers are served first come, first served. A value sent
  while receivers wait goes straight to the longest-waiting one (it never
  touches the buffer, so ``max_buffer_size=0`` works as a rendezvous); a
  value received while senders wait makes room for the longest-waiting one,
  whose value joins the back of the buffer.
* Every operation is atomic with respect to cancellation: a cancelled
  ``send`` sent nothing, a cancelled ``receive`` took nothing.
* Each end can be cloned; the channel ends when every clone of an end is
  closed. Receivers get :class:`~shardio.EndOfChannel` once all send ends
  are closed and the buffer is drained; senders get
  :class:`~shardio.BrokenResourceError` once all receive ends are closed
  (the buffered values are dropped). Using an end you closed raises
  :class:`~shardio.ClosedResourceError`, and so does an operation blocked on
  an end when that end is closed.

Channels between shards (``shardio.open_channel``) have the same API but
their own implementation: these ends must stay on the shard that made them.
What both kinds of end share is closing: each defines ``close()``, and
``aclose()``, ``with`` and ``async with`` come from it by way of
:class:`~shardio.lowlevel.SyncCloseable`.
"""

from __future__ import annotations

import math
from abc import ABCMeta
from collections import OrderedDict, deque
from typing import Any, Generic, NoReturn, TypeVar, final

import attrs
import outcome

from ._core import BrokenResourceError, ClosedResourceError, EndOfChannel, WouldBlock
from .abc import ReceiveChannel, ReceiveType, SendChannel, SendType
from .lowlevel import (
    Abort,
    RaiseCancelT,
    ShardLocal,
    SyncCloseable,
    Task,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
    reschedule,
    wait_task_rescheduled,
)

__all__ = [
    "MemoryChannelStatistics",
    "MemoryReceiveChannel",
    "MemorySendChannel",
    "open_memory_channel",
]

T = TypeVar("T")
_C = TypeVar("_C")


class _NoPublicConstructor(ABCMeta):
    """Metaclass of the channel ends: only :func:`open_memory_channel` makes them."""

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor; "
            "use shardio.open_memory_channel() to make a channel"
        )

    def _create(cls: type[_C], *args: Any) -> _C:
        return type.__call__(cls, *args)  # type: ignore[no-any-return]


# The name is lower-case because it is used as a function. It is a class only
# so that the item type can be given as in Trio, open_memory_channel[int](0):
# tuple supports subscripting, and the subscripted alias calls __new__.
@final
class open_memory_channel(tuple["MemorySendChannel[T]", "MemoryReceiveChannel[T]"]):
    """Open a channel between tasks of this shard; return ``(send_end, receive_end)``.

    ``max_buffer_size`` (an int >= 0, or ``math.inf``) is how many values the
    channel holds before :meth:`~MemorySendChannel.send` blocks. Buffers are
    for smoothing bursts; backpressure is prompt only when they are small, so
    when in doubt use 0. Data flows left to right, as in the returned pair.

    Ends are closed with ``close()`` (or ``aclose()``, or ``with`` / ``async
    with``), not by the garbage collector. Close them: that is how the other
    side learns it can stop waiting. Both ends have ``statistics()`` (see
    :class:`MemoryChannelStatistics`).
    """

    def __new__(  # type: ignore[misc]
        cls, max_buffer_size: int | float
    ) -> tuple[MemorySendChannel[T], MemoryReceiveChannel[T]]:
        if max_buffer_size != math.inf and not isinstance(max_buffer_size, int):
            raise TypeError(f"max_buffer_size must be an int or math.inf, not {max_buffer_size!r}")
        if max_buffer_size < 0:
            raise ValueError(f"max_buffer_size must be >= 0, not {max_buffer_size}")
        state: _MemoryChannelState[T] = _MemoryChannelState(max_buffer_size)
        return MemorySendChannel[T]._create(state), MemoryReceiveChannel[T]._create(state)

    def __init__(self, max_buffer_size: int | float) -> None:
        """Accepts what :meth:`__new__` accepts (for type checkers)."""


@attrs.frozen
class MemoryChannelStatistics:
    """What the ``statistics()`` of either end of a memory channel reports.

    The figures are the channel's, summed over all clones of its ends.
    """

    #: How many values are in the buffer.
    current_buffer_used: int
    #: The ``max_buffer_size`` the channel was opened with.
    max_buffer_size: int | float
    #: How many send ends (clones included) are open.
    open_send_channels: int
    #: How many receive ends (clones included) are open.
    open_receive_channels: int
    #: How many tasks are blocked in ``send``.
    tasks_waiting_send: int
    #: How many tasks are blocked in ``receive``.
    tasks_waiting_receive: int
    #: The most values the buffer has held at once since the channel opened.
    peak_buffer_used: int


@attrs.define(eq=False, slots=True)
class _MemoryChannelState(Generic[T]):
    """What all the ends of one channel share."""

    max_buffer_size: int | float
    data: deque[T] = attrs.field(factory=deque)
    open_send_channels: int = 0
    open_receive_channels: int = 0
    # Blocked senders, in arrival order, with the end they used and their value.
    # Only non-empty while the buffer is full.
    send_tasks: OrderedDict[Task, tuple[MemorySendChannel[T], T]] = attrs.field(factory=OrderedDict)
    # Blocked receivers, in arrival order, with the end they used. Only
    # non-empty while the buffer is empty.
    receive_tasks: OrderedDict[Task, MemoryReceiveChannel[T]] = attrs.field(factory=OrderedDict)
    peak_buffer_used: int = 0

    def statistics(self) -> MemoryChannelStatistics:
        return MemoryChannelStatistics(
            current_buffer_used=len(self.data),
            max_buffer_size=self.max_buffer_size,
            open_send_channels=self.open_send_channels,
            open_receive_channels=self.open_receive_channels,
            tasks_waiting_send=len(self.send_tasks),
            tasks_waiting_receive=len(self.receive_tasks),
            peak_buffer_used=self.peak_buffer_used,
        )


# Hot path: send/send_nowait and receive/receive_nowait below are written for
# speed (locals for the shared state, OrderedDict pops in O(1), no allocation
# on the non-blocking paths). close() and clone() are written for the reader.


@final
@attrs.define(eq=False, slots=True, repr=False)
class MemorySendChannel(
    SyncCloseable, SendChannel[SendType], ShardLocal, metaclass=_NoPublicConstructor
):
    """The sending end of a memory channel; made by :func:`open_memory_channel`.

    Several tasks may send on it at once; they are served in arrival order.
    """

    _state: _MemoryChannelState[SendType]
    _closed: bool = False

    def __attrs_post_init__(self) -> None:
        self._state.open_send_channels += 1

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<shardio.MemorySendChannel at {id(self):#x} ({state}), channel {id(self._state):#x}>"
        )

    def statistics(self) -> MemoryChannelStatistics:
        """The channel's figures (see :class:`MemoryChannelStatistics`)."""
        return self._state.statistics()

    @enable_ki_protection
    def send_nowait(self, value: SendType) -> None:
        """Send ``value`` without blocking.

        Raises :class:`~shardio.WouldBlock` if the buffer is full (or other
        senders are waiting), :class:`~shardio.BrokenResourceError` if every
        receive end is closed, :class:`~shardio.ClosedResourceError` if this
        end is closed.
        """
        if self._closed:
            raise ClosedResourceError("this send channel was closed")
        state = self._state
        if not state.open_receive_channels:
            raise BrokenResourceError("every receive channel of this channel was closed")
        receive_tasks = state.receive_tasks
        if receive_tasks:
            task, _ = receive_tasks.popitem(last=False)
            reschedule(task, outcome.Value(value))
            return
        data = state.data
        if len(data) < state.max_buffer_size:
            data.append(value)
            if len(data) > state.peak_buffer_used:
                state.peak_buffer_used = len(data)
            return
        raise WouldBlock

    @enable_ki_protection
    async def send(self, value: SendType) -> None:
        """Send ``value``, waiting for room in the buffer (or a receiver). A checkpoint.

        If cancelled, ``value`` was not sent. Raises
        :class:`~shardio.BrokenResourceError` if every receive end is (or
        becomes) closed, and :class:`~shardio.ClosedResourceError` if this
        end is (or becomes) closed.
        """
        await checkpoint_if_cancelled()
        try:
            self.send_nowait(value)
        except WouldBlock:
            pass
        else:
            await cancel_shielded_checkpoint()
            return
        task = current_task()
        send_tasks = self._state.send_tasks
        send_tasks[task] = (self, value)

        def abort(_: RaiseCancelT) -> Abort:
            del send_tasks[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    @enable_ki_protection
    def clone(self) -> MemorySendChannel[SendType]:
        """Another send end of the same channel.

        Sending on either does the same; closing one leaves the other open,
        and receivers see :class:`~shardio.EndOfChannel` only once every send
        end is closed. Give each producer its own clone, and have it close
        its clone when done. Raises :class:`~shardio.ClosedResourceError`
        if this end is closed.
        """
        if self._closed:
            raise ClosedResourceError("this send channel was closed")
        return MemorySendChannel._create(self._state)

    @enable_ki_protection
    def close(self) -> None:
        """Close this send end. Not a checkpoint; closing twice does nothing.

        Tasks blocked sending on this end get
        :class:`~shardio.ClosedResourceError` (their values are not sent).
        If it was the last open send end, receivers get
        :class:`~shardio.EndOfChannel` once the buffer is drained.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        mine = [task for task, (end, _) in state.send_tasks.items() if end is self]
        for task in mine:
            del state.send_tasks[task]
            reschedule(task, outcome.Error(ClosedResourceError("this send channel was closed")))
        state.open_send_channels -= 1
        if state.open_send_channels == 0:
            # Receivers only wait on an empty buffer: nothing more can come.
            for task in state.receive_tasks:
                reschedule(task, outcome.Error(EndOfChannel()))
            state.receive_tasks.clear()


@final
@attrs.define(eq=False, slots=True, repr=False)
class MemoryReceiveChannel(
    SyncCloseable, ReceiveChannel[ReceiveType], ShardLocal, metaclass=_NoPublicConstructor
):
    """The receiving end of a memory channel; made by :func:`open_memory_channel`.

    Several tasks may receive on it at once: each value goes to one of them,
    in arrival order.
    """

    _state: _MemoryChannelState[ReceiveType]
    _closed: bool = False

    def __attrs_post_init__(self) -> None:
        self._state.open_receive_channels += 1

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<shardio.MemoryReceiveChannel at {id(self):#x} ({state}), "
            f"channel {id(self._state):#x}>"
        )

    def statistics(self) -> MemoryChannelStatistics:
        """The channel's figures (see :class:`MemoryChannelStatistics`)."""
        return self._state.statistics()

    @enable_ki_protection
    def receive_nowait(self) -> ReceiveType:
        """Receive a value without blocking.

        Raises :class:`~shardio.WouldBlock` if none is ready,
        :class:`~shardio.EndOfChannel` if none ever will be (every send end
        is closed and the buffer is drained),
        :class:`~shardio.ClosedResourceError` if this end is closed.
        """
        if self._closed:
            raise ClosedResourceError("this receive channel was closed")
        state = self._state
        data = state.data
        send_tasks = state.send_tasks
        if send_tasks:
            # The longest-waiting sender's value joins the back of the
            # buffer; we take the front.
            task, (_, value) = send_tasks.popitem(last=False)
            reschedule(task)
            if not data:
                return value
            data.append(value)
        if data:
            return data.popleft()
        if not state.open_send_channels:
            raise EndOfChannel
        raise WouldBlock

    @enable_ki_protection
    async def receive(self) -> ReceiveType:
        """Receive the next value, waiting for one if needed. A checkpoint.

        If cancelled, nothing was taken from the channel. Raises
        :class:`~shardio.EndOfChannel` once every send end is closed and the
        buffer is drained, and :class:`~shardio.ClosedResourceError` if this
        end is (or becomes) closed.
        """
        await checkpoint_if_cancelled()
        try:
            value = self.receive_nowait()
        except WouldBlock:
            pass
        else:
            await cancel_shielded_checkpoint()
            return value
        task = current_task()
        receive_tasks = self._state.receive_tasks
        receive_tasks[task] = self

        def abort(_: RaiseCancelT) -> Abort:
            del receive_tasks[task]
            return Abort.SUCCEEDED

        return await wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    @enable_ki_protection
    def clone(self) -> MemoryReceiveChannel[ReceiveType]:
        """Another receive end of the same channel.

        Both take values from the same queue: each value goes to one receiver
        only (this is not a broadcast). Closing one leaves the other open;
        senders see :class:`~shardio.BrokenResourceError` only once every
        receive end is closed. Raises :class:`~shardio.ClosedResourceError`
        if this end is closed.
        """
        if self._closed:
            raise ClosedResourceError("this receive channel was closed")
        return MemoryReceiveChannel._create(self._state)

    @enable_ki_protection
    def close(self) -> None:
        """Close this receive end. Not a checkpoint; closing twice does nothing.

        Tasks blocked receiving on this end get
        :class:`~shardio.ClosedResourceError`. If it was the last open
        receive end, the buffered values are dropped, and senders, blocked
        or later, get :class:`~shardio.BrokenResourceError`.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        mine = [task for task, end in state.receive_tasks.items() if end is self]
        for task in mine:
            del state.receive_tasks[task]
            reschedule(task, outcome.Error(ClosedResourceError("this receive channel was closed")))
        state.open_receive_channels -= 1
        if state.open_receive_channels == 0:
            for task in state.send_tasks:
                reschedule(
                    task,
                    outcome.Error(
                        BrokenResourceError("every receive channel of this channel was closed")
                    ),
                )
            state.send_tasks.clear()
            state.data.clear()
