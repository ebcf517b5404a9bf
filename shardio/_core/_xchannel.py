"""Channels between shards: ``open_channel``.

The ends have the memory channel's API and semantics, but may live on
different shards, and move when passed to another shard.

Where things live
-----------------
A channel's buffer lives on its *home*: the shard that holds its receive
ends (all receive clones are on one shard at a time). The home runs the
channel exactly like a memory channel, with waiting senders and receivers
served in arrival order. A send end on another shard talks to the home with
messages, through that shard's *outbound* side for the channel:

* **Credits.** The home grants each sending shard credits: buffer slots
  reserved for it. A send that holds a credit is complete as soon as the
  value is queued -- no round trip -- and the values a shard sends in one
  scheduling pass travel as one pickled batch. ``max_buffer_size`` counts
  reserved slots too, so it is never exceeded. A sending shard asks for more
  credit when it runs low; when senders wait for room, the home takes unused
  credit back (``revoke``).
* **Waiting sends.** A send without credit carries its value to the home and
  waits there like a local blocked sender, in the same FIFO; the home answers
  once the value entered the buffer (or went straight to a receiver) -- so a
  ``max_buffer_size=0`` channel is a rendezvous across shards too. A
  cancelled waiting send asks the home to drop the value and waits for the
  answer: either it was dropped (the send raises ``Cancelled``) or it had
  already been taken (the send returns): a cancelled send never sent.

Order
-----
Every message a shard sends to a channel's home carries a per-(channel,
shard) sequence number, and the home processes each shard's messages in that
order whatever path they took. That gives per-sender FIFO and exactly-once,
and lets the home *move*: when the last receive end is passed to another
shard, the old home packs the channel's state into it and becomes a
forwarder; messages still arriving there are forwarded, and their senders
told where the channel went. A send end that moves from shard X to shard Y
carries *barriers* -- "X's stream up to seq k" -- and the first message Y
sends for the channel is held at the home until X's stream got that far, so
values sent through one end keep their order across its moves. On the home
itself an arriving end keeps its barriers and waits for them locally.

Moving, and the places nothing may keep
---------------------------------------
A move takes effect once the whole pickle that carries the end succeeded
(``register_move``), at once and in full. After it, nothing on the old shard
may act on the old place of the channel, and nothing the old place still
waited for may be forgotten:

* **An operation never keeps a side across a wait.** A send that waited for
  a barrier looks the channel up again when it wakes (it may have left, or
  come back); one blocked in the home's queue of senders is turned into a
  request to the new home by the move itself.
* **What the home's own ends still waited for goes into this shard's
  stream.** A moving home wakes the sends that wait for a barrier (they go
  out as a sender's would), posts the closes it held back as ``_CLOSE``, and
  hands the barriers its ends still had to this shard's next message.
  Barriers a sending shard had not yet sent on become local barriers when the
  channel arrives there, and a send end leaving the home takes along the
  barriers still pending there.
* **Nothing is refused for being early.** A receive end moves whatever its
  shard is waiting for, so an end returned by a call is never dropped half
  way; only a second receive clone still open (the buffer has one owner) or
  a buffered value that cannot be pickled refuse the move, with a
  ``TypeError`` raised while pickling: nothing moved, the end stays usable.

Values that cannot be rebuilt
-----------------------------
A value crosses shards pickled on its own, so that it can fail alone. Where
it is rebuilt -- the home, for a sent value; the new home, for a value in a
moving buffer -- any exception raised by the user's unpickling code, of any
kind (``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` included:
the code is the user's, and the shard must go on), is kept in the value's
place: the ``receive`` that takes that place raises
:class:`BrokenResourceError`, with the error as its ``__cause__``; the send
itself had succeeded. Channel ends already rebuilt inside that value are
closed, so nothing waits on an end nobody holds.

Ends and closing
----------------
The home counts open send and receive ends (a clone made on another shard is
announced through its stream, so it is counted before its close can arrive).
The last send end closed, in stream order, means no value is still on its
way: receivers get ``EndOfChannel`` after the buffer drains. The last
receive end closed drops the buffer, fails waiting senders with
``BrokenResourceError``, and tells every shard that sends, so their later
sends fail too (a send already queued on another shard at that moment is
dropped at the home: messages cross shards asynchronously).

The ends' methods are marked ``enable_ki_protection`` (see ``_ki.py``): a
second Ctrl-C never stops one halfway through an update of its channel. The
message handlers run under the scheduler, which is protected too. ``aclose``
and the context managers come from ``close`` by way of
:class:`SyncCloseable` (``_closing.py``), as the memory channel ends' do.

Crashes
-------
A shard that dies ends the run, and may take with it messages forwarded
through it, or a receive end on its way to it. So when a shard learns of a
crash, every send of its own that waits for an answer from a home elsewhere
fails with :class:`ShardCrashed` -- whatever shard that home is on: the
answer may never come -- and so does every later send that would have to
wait for one. Sends to a home on the dead shard fail at once. Everything
else waiting on a channel is cancelled as the run stops.
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, NoReturn, Self, TypeVar

import attrs
import outcome

from ._closing import SyncCloseable
from ._exceptions import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfChannel,
    ShardCrashed,
    WouldBlock,
)
from ._ki import enable_ki_protection
from ._messenger import message_handler
from ._pickling import _fast_dumps, _ShardPickler, dumps, loads, register_move
from ._run import Task
from ._shards import ShardState, current_state
from ._state import GLOBAL_RUN_CONTEXT, current_runner, current_task
from ._traps import (
    Abort,
    RaiseCancelT,
    cancel_shielded_checkpoint,
    checkpoint,
    wait_task_rescheduled,
)

T = TypeVar("T")
ChannelId = tuple[int, int]
Barrier = tuple[int, int]  # (shard, seq): that shard's stream must have passed seq

# Stream message kinds (sending shard -> home).
_DATA, _SEND_WAIT, _CANCEL_SEND, _OPEN, _CLOSE, _WANT_CREDIT, _RETURN = range(7)
# Outcomes of a waiting send (home -> sending shard).
_TAKEN, _DROPPED, _BROKEN = range(3)

_BROKEN_TEXT = "every receive end of this channel was closed"


@attrs.frozen
class ChannelStatistics:
    """What ``statistics()`` reports for an end of a cross-shard channel.

    On the channel's home (``receiving_shard``) the figures are the
    channel's. On another shard they are that shard's own: the values it has
    queued but not yet sent, its send ends, its blocked senders (the receive
    counts and the peak are the home's business there, reported as 0).
    """

    current_buffer_used: int
    max_buffer_size: int | float
    open_send_channels: int
    open_receive_channels: int
    tasks_waiting_send: int
    tasks_waiting_receive: int
    #: The most values the buffer has held at once (on the home).
    peak_buffer_used: int
    #: The shard the channel's buffer and receive ends are on.
    receiving_shard: int


# ---------------------------------------------------------------------------
# The home: the buffer and everything that waits on it
# ---------------------------------------------------------------------------


class _LocalSender:
    __slots__ = ("end", "task", "value")

    def __init__(self, task: Task, end: ShardSendChannel[Any], value: Any) -> None:
        self.task = task
        self.end = end
        self.value = value

    def taken(self, home: _Home) -> None:
        current_runner().reschedule(self.task)

    def refused(self, home: _Home, error: BaseException) -> None:
        current_runner().reschedule(self.task, outcome.Error(error))


class _RemoteSender:
    __slots__ = ("req_id", "src", "value")

    def __init__(self, src: int, req_id: int, value: Any) -> None:
        self.src = src
        self.req_id = req_id
        self.value = value

    def taken(self, home: _Home) -> None:
        home.state.post(
            self.src, _resolve_send, home.cid, self.req_id, _TAKEN, home.grant(self.src)
        )

    def refused(self, home: _Home, error: BaseException) -> None:
        home.state.post(self.src, _resolve_send, home.cid, self.req_id, _BROKEN, 0)


class _Stream:
    """The messages of one sending shard, processed in sequence order."""

    __slots__ = ("expected", "held")

    def __init__(self, expected: int = 0) -> None:
        self.expected = expected
        self.held: dict[int, tuple[int, tuple[Any, ...], list[Barrier]]] = {}


class _Home:
    """The channel, on the shard that holds its receive ends."""

    def __init__(self, state: ShardState, cid: ChannelId, max_buffer_size: int | float) -> None:
        self.state = state
        self.cid = cid
        self.max_buffer_size = max_buffer_size
        self.buffer: deque[Any] = deque()
        self.peak = 0
        self.open_send = 0
        self.open_receive = 0
        self.receivers: OrderedDict[Task, ShardReceiveChannel[Any]] = OrderedDict()
        self.senders: OrderedDict[object, _LocalSender | _RemoteSender] = OrderedDict()
        self.streams: dict[int, _Stream] = {}
        self.granted: dict[int, int | float] = {}
        self.reserved: int | float = 0
        self.wanting_credit: set[int] = set()
        self.receive_closed = False
        self.revoked: set[int] = set()
        # Local operations that must wait until a stream got far enough: a
        # task (woken) or a send end whose close is held back (then counted).
        self.barrier_waiters: list[tuple[Barrier, Task | ShardSendChannel[Any]]] = []
        # After the channel came (back) to this shard: every local send end
        # must let this shard's earlier stream messages arrive first, and what
        # this shard's ends were waiting for before (see _arrive_receive_end).
        self.local_barriers: list[Barrier] = []
        # The barriers local send ends arrived with and may still wait for:
        # if the channel leaves, this shard's stream must respect them.
        self.end_barriers: list[Barrier] = []
        # Send ends open on this shard (part of open_send, which counts them
        # on every shard): this shard's count, should the channel leave.
        self.local_send_ends = 0
        # Shards this channel lived on before (each left a forwarder).
        self.former_homes: set[int] = set()
        # This shard's sending side, if it ever sent from elsewhere: kept, so
        # that its stream numbers and pending requests survive the channel
        # coming here and leaving again.
        self.outbound: _Outbound | None = None

    @property
    def bounded(self) -> bool:
        return self.max_buffer_size != math.inf

    # -- space and credit ---------------------------------------------------------

    def free(self) -> int | float:
        if not self.bounded:
            return math.inf
        return self.max_buffer_size - len(self.buffer) - self.reserved

    def grant(self, shard: int) -> int | float:
        """Reserve some free slots for ``shard``; return how many.

        An unbounded channel grants unbounded credit, once: nothing to count.
        """
        if self.senders or self.receive_closed:
            return 0
        if not self.bounded:
            self.granted[shard] = math.inf
            return math.inf
        free = self.free()
        if free <= 0:
            return 0
        amount = min(max(1, int(self.max_buffer_size) // 2), int(free))
        self.granted[shard] = self.granted.get(shard, 0) + amount
        self.reserved += amount
        return amount

    def _credit_used(self, shard: int, count: int) -> None:
        if self.bounded:
            self.granted[shard] = self.granted.get(shard, 0) - count
            self.reserved -= count

    def _space_freed(self) -> None:
        senders = self.senders
        while senders and (self.free() > 0 or self.receivers):
            _, sender = senders.popitem(last=False)
            self._deliver(sender.value)
            sender.taken(self)
        if not senders and self.wanting_credit:
            for shard in list(self.wanting_credit):
                amount = self.grant(shard)
                if not amount:
                    break
                self.wanting_credit.discard(shard)
                self.state.post(shard, _grant, self.cid, amount)

    def _revoke(self) -> None:
        # Senders wait while other shards sit on credit: ask for it back
        # (once per shard until it answers).
        for shard, amount in self.granted.items():
            if amount and shard not in self.revoked:
                self.revoked.add(shard)
                self.state.post(shard, _revoke, self.cid)

    # -- values -------------------------------------------------------------------

    def _deliver(self, value: Any) -> None:
        """A value accepted into the channel: to a waiting receiver, or the buffer."""
        if self.receivers:
            task, _ = self.receivers.popitem(last=False)
            current_runner().reschedule(task, outcome.Value(value))
        else:
            buffer = self.buffer
            buffer.append(value)
            if len(buffer) > self.peak:
                self.peak = len(buffer)

    def offer(self, sender: _LocalSender | _RemoteSender, key: object) -> bool:
        """Take a value now if there is room (or a receiver); else queue the sender."""
        if self.receive_closed:
            sender.refused(self, BrokenResourceError(_BROKEN_TEXT))
            return False
        if not self.senders and (self.receivers or self.free() > 0):
            self._deliver(sender.value)
            sender.taken(self)
            return True
        self.senders[key] = sender
        if self.bounded and self.reserved:
            self._revoke()
        return False

    def take(self) -> Any:
        """The next value for a receiver; raises WouldBlock or EndOfChannel."""
        buffer = self.buffer
        if buffer:
            value = buffer.popleft()
            if self.senders or self.wanting_credit:
                self._space_freed()
            return value
        if self.senders:  # rendezvous: a sender waits with no room at all
            _, sender = self.senders.popitem(last=False)
            sender.taken(self)
            return sender.value
        if not self.open_send:
            raise EndOfChannel
        raise WouldBlock

    # -- the last ends --------------------------------------------------------------

    def send_end_closed(self) -> None:
        self.open_send -= 1
        if not self.open_send and not self.buffer:
            for task in self.receivers:
                current_runner().reschedule(task, outcome.Error(EndOfChannel()))
            self.receivers.clear()
        self._maybe_finished()

    def receive_end_closed(self) -> None:
        self.open_receive -= 1
        if self.open_receive:
            return
        self.receive_closed = True
        self.buffer.clear()
        senders = list(self.senders.values())
        self.senders.clear()
        for sender in senders:
            sender.refused(self, BrokenResourceError(_BROKEN_TEXT))
        for shard in set(self.streams) | set(self.granted):
            if shard != self.state.index:
                self.state.post(shard, _receive_closed, self.cid)
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        """Every end is closed: forget the channel here and everywhere.

        No end can act on it any more (open_send counts every send end on
        every shard, in stream order), so every shard that kept a side for
        it -- a sending side, a forwarder -- is told to drop it.
        """
        if self.open_send or self.open_receive or self.barrier_waiters:
            return
        state = self.state
        if state.channels.get(self.cid) is self:
            del state.channels[self.cid]
        for shard in set(self.streams) | set(self.granted) | self.former_homes:
            if shard != state.index:
                state.post(shard, _channel_finished, self.cid)

    # -- streams --------------------------------------------------------------------

    def passed(self, barrier: Barrier) -> bool:
        shard, seq = barrier
        stream = self.streams.get(shard)
        return stream is not None and stream.expected > seq

    def local_wait(self) -> Barrier | None:
        """What every local send end must still wait for (None: nothing)."""
        for barrier in self.local_barriers:
            if not self.passed(barrier):
                return barrier
        self.local_barriers.clear()
        return None

    def hold_end(self, barriers: tuple[Barrier, ...]) -> tuple[Barrier, ...]:
        """A send end arrived here with ``barriers``: the ones it must wait for."""
        pending = tuple(b for b in barriers if not self.passed(b))
        if pending:
            self.end_barriers = [b for b in self.end_barriers if not self.passed(b)]
            self.end_barriers.extend(pending)
        return pending

    async def wait_for(self, barrier: Barrier) -> None:
        """Wait until a stream got past ``barrier``, or the channel left this
        shard (the caller must look again). A cancel point while waiting."""
        task = current_task()
        entry: tuple[Barrier, Task | ShardSendChannel[Any]] = (barrier, task)
        self.barrier_waiters.append(entry)

        def abort(_: RaiseCancelT) -> Abort:
            self.barrier_waiters.remove(entry)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def close_local_end(self, end: ShardSendChannel[Any]) -> None:
        """Count a local send end's close once its own earlier messages arrived."""
        barrier = end._unpassed(self)
        if barrier is None:
            self.send_end_closed()
        else:
            self.barrier_waiters.append((barrier, end))

    def accept(
        self, src: int, seq: int, kind: int, args: tuple[Any, ...], barriers: list[Barrier]
    ) -> None:
        stream = self.streams.get(src)
        if stream is None:
            stream = self.streams[src] = _Stream()
        if seq != stream.expected or stream.held:
            stream.held[seq] = (kind, args, barriers)
            if seq != stream.expected:
                return
            kind, args, barriers = stream.held.pop(seq)
        self._run_stream(src, stream, kind, args, barriers)

    def _run_stream(
        self, src: int, stream: _Stream, kind: int, args: tuple[Any, ...], barriers: list[Barrier]
    ) -> None:
        progressed = False
        while True:
            if any(not self.passed(b) for b in barriers):
                stream.held[stream.expected] = (kind, args, barriers)
                break
            self._handle(src, kind, args)
            stream.expected += 1
            progressed = True
            entry = stream.held.pop(stream.expected, None)
            if entry is None:
                break
            kind, args, barriers = entry
        if progressed:
            self._stream_advanced()

    def _stream_advanced(self) -> None:
        # Another stream, or a local operation, may have waited for this one.
        for src, stream in list(self.streams.items()):
            entry = stream.held.get(stream.expected)
            if entry is not None and all(self.passed(b) for b in entry[2]):
                del stream.held[stream.expected]
                self._run_stream(src, stream, *entry)
                return
        if self.barrier_waiters:
            ready = [(b, w) for b, w in self.barrier_waiters if self.passed(b)]
            if ready:
                self.barrier_waiters = [
                    (b, w) for b, w in self.barrier_waiters if not self.passed(b)
                ]
                for _, waiter in ready:
                    if isinstance(waiter, ShardSendChannel):
                        self.close_local_end(waiter)  # it may have another barrier
                    else:
                        current_runner().reschedule(waiter)

    def _handle(self, src: int, kind: int, args: tuple[Any, ...]) -> None:
        if kind == _DATA:
            (blob, count, pickled) = args
            self._credit_used(src, count)
            if self.receive_closed:
                return
            values = loads(blob)  # plain values only: see _Outbound.queue
            for index, item_blob in pickled.items():
                values[index] = _rebuild(item_blob, src)
            if self.receivers:
                for value in values:
                    self._deliver(value)
            else:
                self.buffer.extend(values)
                if len(self.buffer) > self.peak:
                    self.peak = len(self.buffer)
        elif kind == _SEND_WAIT:
            req_id, blob = args
            value = _rebuild(blob, src)
            self.offer(_RemoteSender(src, req_id, value), (src, req_id))
        elif kind == _CANCEL_SEND:
            (req_id,) = args
            sender = self.senders.pop((src, req_id), None)
            if sender is not None:
                self.state.post(src, _resolve_send, self.cid, req_id, _DROPPED, 0)
        elif kind == _OPEN:
            self.open_send += args[0]
        elif kind == _CLOSE:
            for _ in range(args[0]):
                self.send_end_closed()
        elif kind == _WANT_CREDIT:
            amount = self.grant(src)
            if amount:
                self.state.post(src, _grant, self.cid, amount)
            else:
                self.wanting_credit.add(src)
        elif kind == _RETURN:
            (count,) = args
            self.revoked.discard(src)
            self._credit_used(src, count)
            self._space_freed()

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            current_buffer_used=len(self.buffer),
            max_buffer_size=self.max_buffer_size,
            open_send_channels=self.open_send,
            open_receive_channels=self.open_receive,
            tasks_waiting_send=sum(isinstance(s, _LocalSender) for s in self.senders.values()),
            tasks_waiting_receive=len(self.receivers),
            peak_buffer_used=self.peak,
            receiving_shard=self.state.index,
        )


class _Undeliverable:
    """Stands in the buffer for a value that could not be rebuilt here.

    It moves with the buffer as its message alone: the error and its
    traceback belong to the shard where the rebuild failed.
    """

    __slots__ = ("error", "message")

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        self.message = message
        self.error = error

    def raise_(self) -> NoReturn:
        raise BrokenResourceError(self.message) from self.error

    def __reduce__(self) -> Any:
        return (_Undeliverable, (self.message,))


# The channel ends rebuilt so far by each value being rebuilt (innermost
# last): closed if that value fails, so that nothing waits on an end that
# nobody holds.
_ARRIVING: list[list[ShardSendChannel[Any] | ShardReceiveChannel[Any]]] = []


def _rebuild(blob: bytes, src: int, moved: bool = False) -> Any:
    """Unpickle one value; a failure of any kind becomes an _Undeliverable.

    The value's ``__setstate__``/``__reduce__`` code is the user's and may
    raise anything, ``KeyboardInterrupt`` and ``SystemExit`` included. This
    runs in a message handler, outside any task: letting that escape would
    stop the shard's scheduler. It fails this one value instead.
    """
    arrived: list[ShardSendChannel[Any] | ShardReceiveChannel[Any]] = []
    _ARRIVING.append(arrived)
    try:
        value = loads(blob)
    except BaseException as exc:
        _ARRIVING.pop()
        for end in arrived:
            end.close()
        here = current_state().index
        origin = (
            f"that moved with the channel from shard {src}" if moved else f"sent from shard {src}"
        )
        return _Undeliverable(
            f"a value {origin} could not be rebuilt (unpickled) on shard {here}: {exc!r}", exc
        )
    _ARRIVING.pop()
    if _ARRIVING:
        _ARRIVING[-1].extend(arrived)
    return value


def _arrived(end: ShardSendChannel[Any] | ShardReceiveChannel[Any]) -> None:
    """An end was rebuilt here: remember it, should its enclosing value fail."""
    if _ARRIVING:
        _ARRIVING[-1].append(end)


_StreamEntry = tuple[
    int, int, int, tuple[Any, ...], list[Barrier]
]  # src, seq, kind, args, barriers


class _Forwarder:
    """A former home: passes the channel's messages on to where it went.

    ``outbound`` is this shard's own sending side from now on: its send ends
    talk to the new home through a stream like any other shard's.
    """

    def __init__(self, outbound: _Outbound) -> None:
        self.new_home: int | None = None  # None until the moved receive end arrives
        self.queue: list[_StreamEntry] = []
        self.told: set[int] = set()
        self.outbound = outbound


# ---------------------------------------------------------------------------
# The outbound side: a shard that sends to a home elsewhere
# ---------------------------------------------------------------------------


class _Request:
    __slots__ = ("cancel_sent", "end", "task")

    def __init__(self, task: Task, end: ShardSendChannel[Any]) -> None:
        self.task = task
        self.end = end
        self.cancel_sent = False


class _Outbound:
    """This shard's side of a channel whose home is another shard."""

    def __init__(
        self, state: ShardState, cid: ChannelId, home: int, max_buffer_size: int | float
    ) -> None:
        self.state = state
        self.cid = cid
        self.home = home
        self.max_buffer_size = max_buffer_size
        self.seq = 0
        self.credits: int | float = 0
        self.credit_asked = False
        # Values sent in this pass: plain ones as they are, the rest
        # pickled at the send (index -> blob), so errors surface there.
        self.pending: list[Any] = []
        self.pickled: dict[int, bytes] = {}
        self.flush_registered = False
        self.requests: dict[int, _Request] = {}
        self._req_ids = 0
        self.barriers: list[Barrier] = []
        self.broken: BaseException | None = None
        self.open_here = 0

    def post(self, kind: int, *args: Any) -> None:
        barriers, self.barriers = self.barriers, []
        seq = self.seq
        self.seq += 1
        self.state.post(self.home, _stream, self.cid, self.state.index, seq, kind, args, barriers)

    def last_seq(self) -> int:
        """Flush what is queued; the seq of this shard's last message (-1: none)."""
        self.flush()
        return self.seq - 1

    def ask_credit(self) -> None:
        if not self.credit_asked and self.broken is None:
            self.credit_asked = True
            self.post(_WANT_CREDIT)

    def queue(self, value: Any) -> None:
        """Queue a value for this pass's batch (the caller holds a credit).

        Plain data (numbers, strings, bytes, None, and flat tuples or lists
        of them) is pickled with the whole batch at flush: one pickle per
        pass, however many values. Anything else is pickled here, so that a
        value that cannot cross shards fails the send that tried it.
        """
        if not _plain(value):
            try:
                self.pickled[len(self.pending)] = dumps(value)
            except Exception as exc:
                raise TypeError(
                    f"a {type(value).__name__} cannot be sent to shard {self.home}: {exc}"
                ) from exc
            value = None
        self.credits -= 1
        self.pending.append(value)
        if not self.flush_registered:
            self.flush_registered = True
            messenger = self.state.messenger
            assert messenger is not None
            messenger.before_flush.append(self.flush)

    def flush(self) -> None:
        """Send the values queued so far as one batch."""
        self.flush_registered = False
        pending = self.pending
        if not pending:
            return
        self.pending = []
        pickled, self.pickled = self.pickled, {}
        self.post(_DATA, _fast_dumps(pending, 5), len(pending), pickled)
        if self.credits < self.max_buffer_size / 4:
            self.ask_credit()

    def next_request(self) -> int:
        self._req_ids += 1
        return self._req_ids

    def fail_requests(self, crash: ShardCrashed) -> None:
        """A shard died: every send waiting for an answer fails, each with
        its own exception."""
        requests, self.requests = self.requests, {}
        runner = current_runner()
        for request in requests.values():
            runner.reschedule(request.task, outcome.Error(_fresh(crash)))


#: What a shard keeps for a channel (``ShardState.channels``): the home, its
#: way to the home, or, on a former home, the forwarder.
ChannelSide = _Home | _Outbound | _Forwarder


def _fresh(error: BaseException) -> BaseException:
    """A new exception like ``error`` (a side's ``broken``), so that two tasks
    that raise it do not share, and chain, one traceback."""
    if isinstance(error, ShardCrashed):
        return ShardCrashed(error.shard, error.exitcode, error.signal)
    return BrokenResourceError(*error.args)


# ---------------------------------------------------------------------------
# The ends
# ---------------------------------------------------------------------------


def _side(state: ShardState, cid: ChannelId) -> _Home | _Outbound:
    """This shard's side of the channel: the home, or the way to it."""
    side = state.channels.get(cid)
    if isinstance(side, _Forwarder):
        return side.outbound
    if side is None:
        raise ClosedResourceError("this channel end no longer exists on this shard")
    return side


class ShardSendChannel(SyncCloseable, Generic[T]):
    """The sending end of a cross-shard channel (see :func:`open_channel`).

    Use it on any shard: pass it to another shard as an argument (``run_on``,
    ``start_soon(..., shard=k)``) or through a channel; the object you passed
    is then closed here.
    """

    __slots__ = ("_barriers", "_cid", "_closed", "_max_buffer_size", "_state")

    def __init__(self, state: ShardState, cid: ChannelId, max_buffer_size: int | float) -> None:
        self._state = state
        self._cid = cid
        self._max_buffer_size = max_buffer_size
        self._closed = False
        # On the home: this end's sends wait until these stream positions
        # are reached (its values sent from elsewhere are still on their way).
        self._barriers: tuple[Barrier, ...] = ()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<shardio.ShardSendChannel {self._cid} ({state}) on shard {self._state.index}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError("this send channel was closed (or moved to another shard)")

    def _unpassed(self, home: _Home) -> Barrier | None:
        """What this end must wait for before it acts on the home, so as not
        to overtake its own messages still on their way (None: nothing).
        See "Order" in the module docs."""
        if self._barriers:
            for barrier in self._barriers:
                if not home.passed(barrier):
                    return barrier
            self._barriers = ()
        return home.local_wait()

    @enable_ki_protection
    def send_nowait(self, value: T) -> None:
        """Send without blocking; :class:`WouldBlock` if there is no room now.

        On a shard other than the channel's home, "room" means credit this
        shard holds; lacking it, this asks the home for some and raises
        :class:`WouldBlock`.
        """
        self._check_open()
        side = _side(self._state, self._cid)
        if isinstance(side, _Home):
            if self._unpassed(side) is not None:
                raise WouldBlock
            if side.receive_closed:
                raise BrokenResourceError(_BROKEN_TEXT)
            if side.senders or not (side.receivers or side.free() > 0):
                raise WouldBlock
            side._deliver(value)
            return
        assert isinstance(side, _Outbound)
        if side.broken is not None:
            raise _fresh(side.broken)
        if side.credits < 1:
            side.ask_credit()
            raise WouldBlock
        side.queue(value)

    @enable_ki_protection
    async def send(self, value: T) -> None:
        """Send ``value``, waiting for room. A checkpoint.

        If cancelled, ``value`` was not sent. Raises
        :class:`BrokenResourceError` once every receive end is closed,
        :class:`ClosedResourceError` if this end is closed,
        :class:`ShardCrashed` if the channel's home shard died.
        """
        # Hot path: checkpoint_if_cancelled() and the credit case with a
        # plain value (see _Outbound.queue) inlined.
        status = GLOBAL_RUN_CONTEXT.runner.current_task._cancel_status  # type: ignore[union-attr]
        if status.effectively_cancelled:
            status.raise_cancelled()
        if self._closed:
            raise ClosedResourceError("this send channel was closed (or moved to another shard)")
        side = self._state.channels.get(self._cid)
        if type(side) is _Forwarder:
            side = side.outbound
        if type(side) is _Outbound and side.broken is None and side.credits >= 1:
            # Complete once queued: the batch leaves with this pass's flush.
            if side.flush_registered and _plain(value):
                side.credits -= 1
                side.pending.append(value)
            else:
                side.queue(value)
            await cancel_shielded_checkpoint()
            return
        while True:
            side = _side(self._state, self._cid)
            if not isinstance(side, _Home):
                break
            barrier = self._unpassed(side)
            if barrier is None:
                await self._send_here(side, value)
                return
            # This end's earlier values are still on their way here. The
            # channel may leave while we wait: look it up again after.
            await side.wait_for(barrier)
            self._check_open()
        assert isinstance(side, _Outbound)
        if side.broken is not None:
            raise _fresh(side.broken)
        if side.credits >= 1:
            side.queue(value)
            await cancel_shielded_checkpoint()
            return
        await self._send_waiting(side, current_task(), value)

    async def _send_here(self, side: _Home, value: T) -> None:
        if side.receive_closed:
            raise BrokenResourceError(_BROKEN_TEXT)
        if not side.senders and (side.receivers or side.free() > 0):
            side._deliver(value)
            await cancel_shielded_checkpoint()
            return
        task = current_task()
        side.offer(_LocalSender(task, self, value), task)
        senders = side.senders

        def abort_local(_: RaiseCancelT) -> Abort:
            del senders[task]
            return Abort.SUCCEEDED

        # None: taken here. If the channel moved away meanwhile, this wait
        # became a request to the new home, answered like _send_waiting's.
        result = await wait_task_rescheduled(abort_local)
        if result is not None:
            await self._request_answered(result)

    async def _send_waiting(self, side: _Outbound, task: Task, value: T) -> None:
        dead = side.state.dead
        if dead:
            # A shard died: the run is ending, and the answer may never come
            # (see "Crashes" in the module docs).
            raise _fresh(next(iter(dead.values())))
        try:
            blob = dumps(value)
        except Exception as exc:
            raise TypeError(
                f"a {type(value).__name__} cannot be sent to shard {side.home}: {exc}"
            ) from exc
        side.flush()  # values queued earlier in this pass go first
        req_id = side.next_request()
        request = _Request(task, self)
        side.requests[req_id] = request
        side.post(_SEND_WAIT, req_id, blob)
        await self._request_answered(
            await wait_task_rescheduled(_request_abort(side, req_id, request))
        )

    async def _request_answered(self, result: int) -> None:
        if result == _TAKEN:
            return
        if result == _BROKEN:
            raise BrokenResourceError(_BROKEN_TEXT)
        # Dropped at our request: we were cancelled, or this end was closed.
        if self._closed:
            raise ClosedResourceError("this send channel was closed while sending")
        await checkpoint()  # raises our Cancelled, the reason the send was withdrawn
        raise BrokenResourceError(
            "the send was withdrawn because this task was cancelled, but the task is no "
            "longer cancelled (its scope was shielded meanwhile)"
        )

    @enable_ki_protection
    def clone(self) -> ShardSendChannel[T]:
        """Another send end of the same channel, on this shard."""
        self._check_open()
        side = _side(self._state, self._cid)
        if isinstance(side, _Home):
            side.open_send += 1
            side.local_send_ends += 1
        else:
            assert isinstance(side, _Outbound)
            side.open_here += 1
            side.post(_OPEN, 1)
        end: ShardSendChannel[T] = ShardSendChannel(self._state, self._cid, self._max_buffer_size)
        end._barriers = self._barriers
        return end

    @enable_ki_protection
    def close(self) -> None:
        """Close this end. Not a checkpoint. Values this shard already sent
        still arrive; receivers see :class:`EndOfChannel` after them once
        every send end is closed."""
        if self._closed:
            return
        self._closed = True
        side = self._state.channels.get(self._cid)
        if isinstance(side, _Forwarder):
            side = side.outbound
        if isinstance(side, _Home):
            side.local_send_ends -= 1
            mine = [
                key
                for key, s in side.senders.items()
                if isinstance(s, _LocalSender) and s.end is self
            ]
            for key in mine:
                sender = side.senders.pop(key)
                assert isinstance(sender, _LocalSender)
                sender.refused(side, ClosedResourceError("this send channel was closed"))
            side.close_local_end(self)
        elif isinstance(side, _Outbound):
            side.flush()
            side.open_here -= 1
            side.post(_CLOSE, 1)
            for req_id, request in side.requests.items():
                if request.end is self and not request.cancel_sent:
                    request.cancel_sent = True
                    side.post(_CANCEL_SEND, req_id)

    def statistics(self) -> ChannelStatistics:
        """See :class:`ChannelStatistics`. Also after closing."""
        side = self._state.channels.get(self._cid)
        if isinstance(side, _Forwarder):
            side = side.outbound
        if side is None:
            # Every end of the channel is closed and it was forgotten.
            return ChannelStatistics(0, self._max_buffer_size, 0, 0, 0, 0, 0, self._state.index)
        if isinstance(side, _Home):
            return side.statistics()
        assert isinstance(side, _Outbound)
        return ChannelStatistics(
            current_buffer_used=len(side.pending),
            max_buffer_size=self._max_buffer_size,
            open_send_channels=side.open_here,
            open_receive_channels=0,
            tasks_waiting_send=len(side.requests),
            tasks_waiting_receive=0,
            peak_buffer_used=0,
            receiving_shard=side.home,
        )

    # -- moving ---------------------------------------------------------------------

    @enable_ki_protection
    def __reduce__(self) -> Any:
        if self._closed:
            return (_closed_send_end, (self._cid, self._max_buffer_size))
        state = self._state
        cid = self._cid
        side = _side(state, cid)
        barriers: tuple[Barrier, ...]
        if isinstance(side, _Home):
            home = state.index
            # What this end still had to wait for here, and what every local
            # end does (this shard's messages from before the channel came).
            barriers = tuple(
                b for b in (*self._barriers, *side.local_barriers) if not side.passed(b)
            )
        else:
            assert isinstance(side, _Outbound)
            home = side.home
            last = side.last_seq()  # flushes: pending barriers ride on that batch
            # Barriers that arrived here but are not on any message yet.
            barriers = tuple(side.barriers)
            if last >= 0:
                barriers += ((state.index, last),)

        def commit() -> None:
            self._closed = True
            # Where the channel is now: a receive end in the same pickle may
            # have moved the home away since __reduce__.
            now = _side(state, cid)
            if isinstance(now, _Home):
                now.local_send_ends -= 1
            else:
                now.open_here -= 1

        register_move(self, commit)
        return (_arrive_send_end, (cid, home, self._max_buffer_size, barriers))


class ShardReceiveChannel(SyncCloseable, Generic[T]):
    """The receiving end of a cross-shard channel (see :func:`open_channel`).

    All receive ends of a channel are on one shard, its home. Passing the
    last open one to another shard moves the channel there.
    """

    __slots__ = ("_cid", "_closed", "_home_ref", "_max_buffer_size", "_state")

    def __init__(
        self,
        state: ShardState,
        cid: ChannelId,
        max_buffer_size: int | float,
        home: _Home | None,
    ) -> None:
        self._state = state
        self._cid = cid
        self._max_buffer_size = max_buffer_size
        # An open receive end is always on its channel's home (it closes when
        # it moves), so it keeps the home at hand.
        self._home_ref = home
        self._closed = home is None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<shardio.ShardReceiveChannel {self._cid} ({state}) on shard {self._state.index}>"

    def _home(self) -> _Home:
        if self._closed:
            raise ClosedResourceError("this receive channel was closed (or moved to another shard)")
        home = self._home_ref
        assert home is not None
        return home

    @enable_ki_protection
    def receive_nowait(self) -> T:
        """Receive without blocking; :class:`WouldBlock` if nothing is ready,
        :class:`EndOfChannel` if nothing ever will be."""
        value = self._home().take()
        if type(value) is _Undeliverable:
            value.raise_()
        return value  # type: ignore[no-any-return]

    @enable_ki_protection
    async def receive(self) -> T:
        """Receive the next value, waiting for one. A checkpoint.

        If cancelled, nothing was taken. :class:`EndOfChannel` once every
        send end is closed and everything they sent was received.
        """
        # Hot path: checkpoint_if_cancelled() inlined.
        status = current_task()._cancel_status
        if status.effectively_cancelled:
            status.raise_cancelled()
        home = self._home()
        try:
            value = home.take()
        except WouldBlock:
            task = current_task()
            receivers = home.receivers
            receivers[task] = self

            def abort(_: RaiseCancelT) -> Abort:
                del receivers[task]
                return Abort.SUCCEEDED

            value = await wait_task_rescheduled(abort)
        else:
            await cancel_shielded_checkpoint()
        if type(value) is _Undeliverable:
            value.raise_()
        return value  # type: ignore[no-any-return]

    def __aiter__(self) -> Self:
        return self

    @enable_ki_protection
    async def __anext__(self) -> T:
        # Hot path (``async for``): receive()'s common case inlined -- not
        # cancelled, a value buffered, nobody waiting for the room it frees.
        # (Always inside a task here: a coroutine only runs in a task step.)
        status = GLOBAL_RUN_CONTEXT.runner.current_task._cancel_status  # type: ignore[union-attr]
        home = self._home_ref
        if (
            not status.effectively_cancelled
            and not self._closed
            and home is not None
            and home.buffer
            and not home.senders
            and not home.wanting_credit
        ):
            value = home.buffer.popleft()
            await cancel_shielded_checkpoint()
            if type(value) is _Undeliverable:
                value.raise_()
            return value  # type: ignore[no-any-return]
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    @enable_ki_protection
    def clone(self) -> ShardReceiveChannel[T]:
        """Another receive end, on this shard. Each value goes to one of them."""
        home = self._home()
        home.open_receive += 1
        return ShardReceiveChannel(self._state, self._cid, self._max_buffer_size, home)

    @enable_ki_protection
    def close(self) -> None:
        """Close this end. Not a checkpoint. If it was the last, the buffer is
        dropped and senders, here and on other shards, get
        :class:`BrokenResourceError`."""
        if self._closed:
            return
        home = self._home()
        self._closed = True
        mine = [task for task, end in home.receivers.items() if end is self]
        for task in mine:
            del home.receivers[task]
            current_runner().reschedule(
                task, outcome.Error(ClosedResourceError("this receive channel was closed"))
            )
        home.receive_end_closed()

    def statistics(self) -> ChannelStatistics:
        """See :class:`ChannelStatistics`. Also after closing."""
        home = self._home_ref
        if home is None:
            raise ClosedResourceError("this receive end moved to another shard")
        return home.statistics()

    # -- moving: the channel goes with its last receive end ------------------------------

    @enable_ki_protection
    def __reduce__(self) -> Any:
        if self._closed:
            return (_closed_receive_end, (self._cid, self._max_buffer_size))
        state = self._state
        home = self._home()
        if home.open_receive > 1:
            raise TypeError(
                "only the last open receive end of a channel can move to another shard (the "
                "channel's buffer moves with it); close the other receive clones first"
            )
        # Senders blocked here become requests to the new home, numbered as
        # this shard's sending side will number them.
        first_request = 1 if home.outbound is None else home.outbound._req_ids + 1
        packed = _pack_home(home, first_request)

        def commit() -> None:
            self._closed = True
            self._home_ref = None
            moved = ClosedResourceError("this receive channel moved to another shard")
            for task in list(home.receivers):
                current_runner().reschedule(task, outcome.Error(moved))
            home.receivers.clear()
            out = _own_outbound(state, home)
            for sender in home.senders.values():
                if isinstance(sender, _LocalSender):
                    req_id = out.next_request()
                    request = _Request(sender.task, sender.end)
                    out.requests[req_id] = request
                    sender.task._abort_func = _request_abort(out, req_id, request)
            _become_forwarder(state, home)
            _leave_local_waits(state, home, out)

        register_move(self, commit)
        return (_arrive_receive_end, (self._cid, state.index, packed))


# ---------------------------------------------------------------------------
# Moving the home
# ---------------------------------------------------------------------------


def _pack_home(home: _Home, first_request: int) -> tuple[Any, ...]:
    """The channel's state, to travel with its last receive end.

    The values -- buffered, and those of blocked senders -- travel each
    pickled on its own (see _pack_values), so that one that cannot be
    rebuilt on the new home fails alone there.
    """
    senders = []
    req_id = first_request
    for sender in home.senders.values():
        if isinstance(sender, _RemoteSender):
            senders.append((sender.src, sender.req_id))
        else:
            senders.append((home.state.index, req_id))
            req_id += 1
    streams = {src: (s.expected, dict(s.held)) for src, s in home.streams.items()}
    return (
        home.max_buffer_size,
        _pack_values(home.buffer, "the channel's buffer holds"),
        home.open_send,
        senders,
        _pack_values(
            [sender.value for sender in home.senders.values()],
            "a send waiting on the channel holds",
        ),
        streams,
        dict(home.granted),
        home.reserved,
        set(home.wanting_credit),
        set(home.revoked),
        set(home.former_homes),
        home.peak,
    )


PackedValues = tuple[list[Any], dict[int, bytes]]


def _pack_values(values: Iterable[Any], holder: str) -> PackedValues:
    """Values for the trip: plain ones as they are, the others pickled one by one.

    This runs inside the pickling of the receive end, and pickles with the
    bare picklers rather than ``dumps``: channel ends inside a value then
    register their move with the enclosing pickle, so they move if and only
    if the receive end does.
    """
    plain: list[Any] = []
    blobs: dict[int, bytes] = {}
    for index, value in enumerate(values):
        if _plain(value):
            plain.append(value)
            continue
        plain.append(None)
        try:
            blobs[index] = _fast_dumps(value, 5)
            continue
        except Exception:
            pass
        buffer = io.BytesIO()
        try:
            _ShardPickler(buffer, protocol=5).dump(value)
        except Exception as exc:
            raise TypeError(
                f"{holder} a {type(value).__name__} that cannot be sent to another shard "
                f"({exc}); a receive end moves with the channel's buffer: receive the value "
                "before moving it"
            ) from exc
        blobs[index] = buffer.getvalue()
    return plain, blobs


def _unpack_values(packed: PackedValues, old_home: int) -> list[Any]:
    values, blobs = packed
    for index, blob in blobs.items():
        values[index] = _rebuild(blob, old_home, moved=True)
    return values


def _own_outbound(state: ShardState, home: _Home) -> _Outbound:
    if home.outbound is None:
        home.outbound = _Outbound(state, home.cid, state.index, home.max_buffer_size)
    return home.outbound


def _become_forwarder(state: ShardState, home: _Home) -> None:
    """This shard gave its channel away; its own senders go through the forwarder.

    Until the new home claims the channel, this shard's stream is posted to
    itself and queued in the forwarder, in order with everybody else's.
    """
    out = _own_outbound(state, home)
    out.home = state.index
    out.open_here = home.local_send_ends
    state.channels[home.cid] = _Forwarder(out)


def _leave_local_waits(state: ShardState, home: _Home, out: _Outbound) -> None:
    """The channel left: what local operations waited for on the old home now
    holds this shard's stream instead (see "Moving" in the module docs).

    Barriers on this shard's own stream need nothing: its later messages
    come after it by their numbers. The others ride on its next message.
    Sends waiting for a barrier are woken and look the channel up again;
    closes held back go out as ``_CLOSE``, after those barriers.
    """
    here = state.index
    out.barriers.extend(
        b for b in (*home.local_barriers, *home.end_barriers) if b[0] != here and not home.passed(b)
    )
    waiters, home.barrier_waiters = home.barrier_waiters, []
    runner = current_runner()
    for _, waiter in waiters:
        if isinstance(waiter, ShardSendChannel):
            out.post(_CLOSE, 1)
        else:
            runner.reschedule(waiter)


def _arrive_receive_end(
    cid: ChannelId, old_home: int, packed: tuple[Any, ...]
) -> ShardReceiveChannel[Any]:
    state = current_state()
    (
        max_size,
        buffer,
        open_send,
        senders,
        sender_values,
        streams,
        granted,
        reserved,
        wanting,
        revoked,
        former,
        peak,
    ) = packed
    home = _Home(state, cid, max_size)
    home.open_send = open_send
    home.open_receive = 1
    for src, (expected, held) in streams.items():
        stream = home.streams[src] = _Stream(expected)
        stream.held.update(held)
    home.granted.update(granted)
    home.reserved = reserved
    home.wanting_credit.update(wanting)
    home.revoked.update(revoked)
    home.former_homes.update(former)
    home.peak = peak
    if old_home != state.index:
        home.former_homes.add(old_home)
    previous = state.channels.get(cid)
    state.channels[cid] = home
    outbound = previous.outbound if isinstance(previous, _Forwarder) else previous
    if isinstance(outbound, _Outbound):
        # What this shard sent as a remote sender must arrive before its
        # next, now local, sends; and what its ends were waiting for but
        # had not sent on yet holds them too.
        outbound.flush()
        home.outbound = outbound
        home.local_send_ends = outbound.open_here
        if outbound.seq:
            home.local_barriers.append((state.index, outbound.seq - 1))
        home.local_barriers.extend(outbound.barriers)
        outbound.barriers = []
    # The values, rebuilt one by one once the home is in place (a value may
    # hold an end of this very channel); before anything queued here, which
    # was sent after them.
    home.buffer.extend(_unpack_values(buffer, old_home))
    for (src, req_id), value in zip(senders, _unpack_values(sender_values, old_home), strict=True):
        home.senders[(src, req_id)] = _RemoteSender(src, req_id, value)
    if isinstance(previous, _Forwarder):
        # It came back: what waited in the forwarder is ours to process.
        for entry in previous.queue:
            _deliver_stream(state, cid, *entry)
    state.post(old_home, _claim, cid, state.index)
    end: ShardReceiveChannel[Any] = ShardReceiveChannel(state, cid, max_size, home)
    _arrived(end)
    return end


def _closed_receive_end(cid: ChannelId, max_size: int | float) -> ShardReceiveChannel[Any]:
    return ShardReceiveChannel(current_state(), cid, max_size, None)


def _closed_send_end(cid: ChannelId, max_size: int | float) -> ShardSendChannel[Any]:
    end: ShardSendChannel[Any] = ShardSendChannel(current_state(), cid, max_size)
    end._closed = True
    return end


def _arrive_send_end(
    cid: ChannelId, home: int, max_size: int | float, barriers: tuple[Barrier, ...]
) -> ShardSendChannel[Any]:
    state = current_state()
    end: ShardSendChannel[Any] = ShardSendChannel(state, cid, max_size)
    side = state.channels.get(cid)
    if isinstance(side, _Home):
        side.local_send_ends += 1
        end._barriers = side.hold_end(barriers)
    else:
        out = _outbound(state, cid, home, max_size)
        out.open_here += 1
        # This shard's own stream is in order by itself.
        out.barriers.extend(b for b in barriers if b[0] != state.index)
        if out.credits < 1:
            out.ask_credit()
    _arrived(end)
    return end


def _outbound(state: ShardState, cid: ChannelId, home: int, max_size: int | float) -> _Outbound:
    side = state.channels.get(cid)
    if isinstance(side, _Outbound):
        return side
    if isinstance(side, _Forwarder):
        return side.outbound
    out = _Outbound(state, cid, home, max_size)
    state.channels[cid] = out
    return out


# ---------------------------------------------------------------------------
# Message handlers
# ---------------------------------------------------------------------------


def _deliver_stream(
    state: ShardState,
    cid: ChannelId,
    src: int,
    seq: int,
    kind: int,
    args: tuple[Any, ...],
    barriers: list[Barrier],
) -> None:
    side = state.channels.get(cid)
    if isinstance(side, _Home):
        side.accept(src, seq, kind, args, barriers)
    elif isinstance(side, _Forwarder):
        if side.new_home is None:
            side.queue.append((src, seq, kind, args, barriers))
            return
        state.post(side.new_home, _stream, cid, src, seq, kind, args, barriers)
        if src not in side.told and src != side.new_home:
            side.told.add(src)
            state.post(src, _new_home, cid, side.new_home)


@message_handler
def _stream(
    cid: ChannelId, src: int, seq: int, kind: int, args: tuple[Any, ...], barriers: list[Barrier]
) -> None:
    _deliver_stream(current_state(), cid, src, seq, kind, args, barriers)


@message_handler
def _claim(cid: ChannelId, new_home: int) -> None:
    state = current_state()
    side = state.channels.get(cid)
    if not isinstance(side, _Forwarder):
        return
    side.new_home = new_home
    side.outbound.home = new_home
    queued, side.queue = side.queue, []
    for entry in queued:
        _deliver_stream(state, cid, *entry)


def _outbound_side(cid: ChannelId) -> _Outbound | None:
    """This shard's sending side, whatever else this shard is for the channel."""
    side = current_state().channels.get(cid)
    if isinstance(side, (_Forwarder, _Home)):
        return side.outbound
    return side if isinstance(side, _Outbound) else None


@message_handler
def _new_home(cid: ChannelId, home: int) -> None:
    out = _outbound_side(cid)
    if out is not None:
        out.home = home
        crash = current_state().dead.get(home)
        if crash is not None:
            out.broken = crash
            out.credits = 0


@message_handler
def _grant(cid: ChannelId, amount: int | float) -> None:
    out = _outbound_side(cid)
    if out is None:
        return
    out.credits += amount
    out.credit_asked = False


@message_handler
def _revoke(cid: ChannelId) -> None:
    # Always answered, even with nothing to give back: the home waits for
    # the answer before it asks this shard again.
    out = _outbound_side(cid)
    if out is None:
        return
    unused, out.credits = out.credits, 0
    out.post(_RETURN, unused)


@message_handler
def _resolve_send(cid: ChannelId, req_id: int, result: int, grant: int | float) -> None:
    out = _outbound_side(cid)
    if out is None:
        return
    if grant:
        out.credits += grant
        out.credit_asked = False
    request = out.requests.pop(req_id, None)
    if request is not None:
        current_runner().reschedule(request.task, outcome.Value(result))


@message_handler
def _receive_closed(cid: ChannelId) -> None:
    out = _outbound_side(cid)
    if out is not None and out.broken is None:
        out.credits = 0
        out.broken = BrokenResourceError(_BROKEN_TEXT)


def _request_abort(
    side: _Outbound, req_id: int, request: _Request
) -> Callable[[RaiseCancelT], Abort]:
    """The abort function of a send waiting at another shard's home: ask the
    home to drop the value, and keep waiting for its answer."""

    def abort(_: RaiseCancelT) -> Abort:
        if not request.cancel_sent:
            request.cancel_sent = True
            side.post(_CANCEL_SEND, req_id)
        return Abort.FAILED

    return abort


_PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})


def _plain(value: Any) -> bool:
    """Certainly picklable by the C pickler, and cheap to check: scalars,
    and flat tuples or lists of scalars."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return True
    if kind is tuple or kind is list:
        # A loop, not all(<generator>): this runs on every cross-shard send.
        for item in value:  # noqa: SIM110
            if type(item) not in _PLAIN_TYPES:
                return False
        return True
    return False


@message_handler
def _channel_finished(cid: ChannelId) -> None:
    state = current_state()
    side = state.channels.get(cid)
    if isinstance(side, (_Outbound, _Forwarder)):
        del state.channels[cid]


def peer_crashed(state: ShardState, crash: ShardCrashed) -> None:
    """A shard died, and the run ends: nothing may wait for an answer.

    Every send of this shard that waits for one fails, whatever shard the
    channel's home is on: the answer may have to come through the dead shard
    (a forwarder there), or from it (the receive end may have been on its
    way there). Later sends that would wait fail at once (_send_waiting);
    sends to a home on the dead shard fail, credit or not.
    """
    for side in list(state.channels.values()):
        out = side if isinstance(side, _Outbound) else side.outbound
        if out is None:
            continue
        if out.home == crash.shard:
            out.broken = crash
            out.credits = 0
        out.fail_requests(crash)


# ---------------------------------------------------------------------------
# open_channel
# ---------------------------------------------------------------------------


@enable_ki_protection
def open_channel(
    max_buffer_size: int | float,
) -> tuple[ShardSendChannel[Any], ShardReceiveChannel[Any]]:
    """Open a channel whose ends may be used on, and passed to, any shard.

    Like :func:`open_memory_channel` -- same API, same semantics -- with the
    additions described in the module docs: per-sender FIFO, exactly-once,
    ``max_buffer_size`` enforced across shards by credits. The channel's
    buffer lives where its receive end is.
    """
    if max_buffer_size != math.inf and not isinstance(max_buffer_size, int):
        raise TypeError(f"max_buffer_size must be an int or math.inf, not {max_buffer_size!r}")
    if max_buffer_size < 0:
        raise ValueError(f"max_buffer_size must be >= 0, not {max_buffer_size}")
    state = current_state()
    cid = state.next_channel_id()
    home = _Home(state, cid, max_buffer_size)
    home.open_send = home.local_send_ends = 1
    home.open_receive = 1
    state.channels[cid] = home
    return (
        ShardSendChannel(state, cid, max_buffer_size),
        ShardReceiveChannel(state, cid, max_buffer_size, home),
    )
