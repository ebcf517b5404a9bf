"""FaultInjector: a bad network in front of any device, reproducible from a seed.

A protocol is only tested once it has met loss, duplicates, reordering,
corruption, a slow and bursty path and a small MTU -- and met them the same
way twice, so that a failure found once can be run again under a debugger.
:class:`FaultInjector` wraps any :class:`~.device.Device` and does all of
that to the frames going one way through it (``direction="receive"``, the
default: the frames the wrapped device delivers; ``"transmit"``: the frames
the stack sends). To impair both ways, wrap twice, or wrap both ends of a
link (each end's receive path is one direction of the link).

The pipeline
------------
Each frame, in the order frames come, goes through these steps; each
probability is drawn per frame, and a step whose parameter is 0 draws
nothing:

1. *MTU*: a frame longer than ``mtu + 14`` is dropped (``dropped_oversize``).
   The injector's own ``mtu`` is the smaller of this and the wrapped
   device's, so a stack over it sizes its frames to fit, while frames from a
   peer that thinks the path is wider are lost -- a narrower hop.
2. *Loss*: dropped with probability ``loss`` (``lost``).
3. *Corruption*: with probability ``corrupt`` one bit, chosen uniformly over
   the frame, is flipped in a copy of it (``corrupted``). One bit, as
   smoltcp does, because it is the commonest damage and because every
   Internet checksum catches any single-bit error: a corrupted TCP, UDP,
   ICMP or IPv4 header frame is always detectable upstream (an Ethernet
   header or an ARP body has no checksum, as on a real wire past its FCS).
4. *Duplication*: with probability ``duplicate`` the frame goes on as two
   identical copies (``duplicated``); each copy takes the remaining steps on
   its own.
5. *Rate*: with a ``rate``, the frame is serialized through a queue of
   ``queue_bytes`` and may be tail-dropped (``dropped_queue_full``); see
   ``_serializer.py``.
6. *Delay and jitter*: it is held ``delay`` seconds plus a uniform random
   extra in ``[0, jitter)``. Jitter never reorders: a frame is never due
   before the one admitted before it, so that reordering happens only where
   ``reorder`` says.
7. *Reordering*: with probability ``reorder`` the frame is held back
   ``reorder_delay`` seconds more (``reordered``); the frames behind it that
   come in that time overtake it.

A frame's times count from the ``now`` of the call that brought it in: on
the receive path the ``receive(now)`` that took it from the wrapped device
(which a stack makes at that device's deadline, i.e. on arrival), on the
transmit path the ``transmit(now)``. Frames due come out of ``receive`` (or,
on the transmit path, go to the wrapped device's ``transmit`` in any
``receive`` or ``transmit`` call) in the order they are due.

Determinism
-----------
Every random choice comes from one ``random.Random(seed)`` owned by the
injector, drawn in the order above; times come only from ``now``. So the same
seed, parameters and calls give the same frames, byte for byte and at the
same times. Two injectors need two seeds to be independent (the same seed on
both ends of a link makes both directions lose the same frame numbers).

Buffers: on the receive path a frame that is neither corrupted nor
duplicated is passed on as the very view the wrapped device gave; a
corrupted one is a new ``bytes``. On the transmit path every frame is joined
into one ``bytes`` as it comes in (it may be held after ``transmit``
returns, and the caller may reuse its parts then), and reaches the wrapped
device as a frame of one part.

``receive``, ``transmit`` and the per-frame step ``_admit`` are the hot path
and are written for speed: locals, and no random draw for a fault that is
off.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from heapq import heappop, heappush
from math import inf
from typing import TYPE_CHECKING, Literal, final

import attrs

from shardio import ClosedResourceError

from ._serializer import Serializer, check_rate
from .device import ETHERNET_HEADER_LENGTH, Device, Waker, check_mtu
from .simulated import DEFAULT_QUEUE_BYTES

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FaultInjector", "FaultStatistics"]


def _probability(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    name = attribute.name
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a probability (a number from 0 to 1), not {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability from 0 to 1, not {value}")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    name = attribute.name
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not 0 <= value < inf:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value}")


_FIXED = attrs.setters.frozen


@attrs.frozen
class FaultStatistics:
    """What a :class:`FaultInjector` did to the frames it was given."""

    #: Frames that came in (from the wrapped device, or from ``transmit``).
    frames_in: int
    #: Frames that went out (returned by ``receive``, or passed on to the
    #: wrapped device): ``frames_in`` minus the drops, plus the duplicates,
    #: minus what is still held.
    frames_out: int
    #: Frames dropped by the ``loss`` probability.
    lost: int
    #: Frames that went on as two copies.
    duplicated: int
    #: Frames (copies counted apart) held back to be overtaken.
    reordered: int
    #: Frames with one bit flipped.
    corrupted: int
    #: Frames dropped for being longer than ``mtu + 14``.
    dropped_oversize: int
    #: Frames dropped because the rate limiter's queue was full.
    dropped_queue_full: int
    #: Frames held now, waiting for their time.
    held: int


class _State:
    """What changes per frame, kept apart from the attrs class: attrs checks
    every attribute set on a class with validators, a cost the per-frame
    counters must not pay."""

    __slots__ = (
        "closed",
        "corrupted",
        "dropped_oversize",
        "dropped_queue_full",
        "duplicated",
        "frames_in",
        "frames_out",
        "held",
        "last_due",
        "lost",
        "reordered",
        "sequence",
    )

    def __init__(self) -> None:
        # Frames waiting for their time: (due, sequence, frame), and the due
        # time of the last frame admitted in order (jitter never goes before it).
        self.held: list[tuple[float, int, memoryview | bytes]] = []
        self.sequence = 0
        self.last_due = -inf
        self.closed = False
        self.frames_in = self.frames_out = 0
        self.lost = self.duplicated = self.reordered = self.corrupted = 0
        self.dropped_oversize = self.dropped_queue_full = 0


@final
@attrs.define(eq=False, slots=True, repr=False)
class FaultInjector:
    """Faults on the frames going one way through ``inner``; a
    :class:`~.device.Device` itself. See the module docs for the pipeline.

    ``loss``, ``duplicate``, ``reorder`` and ``corrupt`` are probabilities
    per frame; ``delay``, ``jitter`` and ``reorder_delay`` seconds; ``rate``
    bytes per second (``None``: unlimited) through a queue of
    ``queue_bytes``; ``mtu`` an IP MTU (``None``: the wrapped device's). All
    random choices come from ``random.Random(seed)``.

    The seven fault parameters may be changed while frames flow -- a path
    that goes bad in the middle of a test, ``injector.loss = 1.0`` for a peer
    that vanishes -- and take effect from the next frame; the rest is fixed.
    """

    #: The device this one wraps (closed with it).
    inner: Device = attrs.field(on_setattr=_FIXED)
    #: Which frames are impaired: those ``inner`` receives, or those sent to it.
    direction: Literal["receive", "transmit"] = attrs.field(
        default="receive", kw_only=True, on_setattr=_FIXED
    )
    # The faults: these may be changed while frames flow (validated again).
    loss: float = attrs.field(default=0.0, kw_only=True, validator=_probability)
    duplicate: float = attrs.field(default=0.0, kw_only=True, validator=_probability)
    reorder: float = attrs.field(default=0.0, kw_only=True, validator=_probability)
    corrupt: float = attrs.field(default=0.0, kw_only=True, validator=_probability)
    delay: float = attrs.field(default=0.0, kw_only=True, validator=_seconds)
    jitter: float = attrs.field(default=0.0, kw_only=True, validator=_seconds)
    reorder_delay: float = attrs.field(default=0.001, kw_only=True, validator=_seconds)
    # Fixed at construction.
    rate: float | None = attrs.field(default=None, kw_only=True, on_setattr=_FIXED)
    queue_bytes: int = attrs.field(default=DEFAULT_QUEUE_BYTES, kw_only=True, on_setattr=_FIXED)
    _mtu: int | None = attrs.field(default=None, kw_only=True, alias="mtu", on_setattr=_FIXED)
    seed: int = attrs.field(default=0, kw_only=True, on_setattr=_FIXED)
    _random: random.Random = attrs.field(init=False)
    _serializer: Serializer | None = attrs.field(default=None, init=False)
    _max_frame: int = attrs.field(default=0, init=False)
    _state: _State = attrs.field(factory=_State, init=False)

    def __attrs_post_init__(self) -> None:
        if self.direction not in ("receive", "transmit"):
            raise ValueError(
                f"direction must be 'receive' or 'transmit', not {self.direction!r} "
                "(to impair both, wrap the device twice)"
            )
        if getattr(self.inner, "checksums_verified", False):
            # Corrupted frames are caught by the checksums upstream -- which
            # the stack skips on a device that vouches for them.
            raise ValueError(
                f"{self.inner!r} promises its frames' checksums were checked (checksum "
                "offload), so the stack would not check them and corrupted frames would "
                "pass: open it without checksum offload (TapDevice(..., "
                "checksum_offload=False, lro=False)) to inject faults"
            )
        if self._mtu is not None:
            check_mtu(self._mtu)
        self._max_frame = self.mtu + ETHERNET_HEADER_LENGTH
        check_rate(self.rate, self.queue_bytes, self._max_frame)
        if self.rate is not None:
            self._serializer = Serializer(self.rate, self.queue_bytes)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(
                f"seed must be an int (the same seed gives the same faults), not {self.seed!r}"
            )
        self._random = random.Random(self.seed)

    def __repr__(self) -> str:
        return f"<FaultInjector {self.direction} seed={self.seed} around {self.inner!r}>"

    @property
    def mtu(self) -> int:
        """The IP MTU: the ``mtu`` given, if it is smaller than the wrapped device's."""
        mtu = self.inner.mtu
        return mtu if self._mtu is None or mtu < self._mtu else self._mtu

    @property
    def mac(self) -> bytes:
        """The wrapped device's MAC."""
        return self.inner.mac

    def receive(self, now: float) -> list[memoryview]:
        """The frames due by ``now``. On the receive path, first takes in
        what the wrapped device has; on the transmit path, first passes the
        frames due to it."""
        # Hot path: once per stack pass.
        if self._state.closed:
            raise ClosedResourceError("this fault injector was closed")
        if self.direction == "transmit":
            self._transmit_due(now)
            return self.inner.receive(now)
        admit = self._admit
        for frame in self.inner.receive(now):
            admit(frame, frame.nbytes, now)
        state = self._state
        held = state.held
        if not held or held[0][0] > now:
            return []
        frames: list[memoryview] = []
        while held and held[0][0] <= now:
            due = heappop(held)[2]
            frames.append(due if type(due) is memoryview else memoryview(due))
        state.frames_out += len(frames)
        return frames

    def transmit(self, frames: Sequence[Sequence[Buffer]], now: float) -> None:
        """Send ``frames``: impaired first on the transmit path, passed
        through as they are on the receive path."""
        # Hot path: once per stack pass.
        if self._state.closed:
            raise ClosedResourceError("this fault injector was closed")
        if self.direction == "receive":
            self.inner.transmit(frames, now)
            return
        admit = self._admit
        for parts in frames:
            frame = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
            admit(frame, len(frame), now)
        self._transmit_due(now)

    def _transmit_due(self, now: float) -> None:
        state = self._state
        held = state.held
        if not held or held[0][0] > now:
            return
        due: list[tuple[Buffer]] = []
        while held and held[0][0] <= now:
            due.append((heappop(held)[2],))
        state.frames_out += len(due)
        self.inner.transmit(due, now)

    def _admit(self, frame: memoryview | bytes, size: int, now: float) -> None:
        # Hot path: once per frame. The steps of the module docs, in order.
        state = self._state
        state.frames_in += 1
        if size > self._max_frame:
            state.dropped_oversize += 1
            return
        rng = self._random
        draw = rng.random
        if self.loss and draw() < self.loss:
            state.lost += 1
            return
        if self.corrupt and draw() < self.corrupt:
            damaged = bytearray(frame)
            bit = rng.randrange(size * 8)
            damaged[bit >> 3] ^= 1 << (bit & 7)
            frame = bytes(damaged)
            state.corrupted += 1
        copies = 1
        if self.duplicate and draw() < self.duplicate:
            state.duplicated += 1
            copies = 2
        serializer = self._serializer
        for copy in range(copies):
            if copy and type(frame) is memoryview:
                # A view object of its own: the stack may release() one.
                frame = memoryview(frame)
            due = now
            if serializer is not None:
                left = serializer.admit(size, now)
                if left is None:
                    state.dropped_queue_full += 1
                    continue
                due = left
            if self.delay:
                due += self.delay
            if self.jitter:
                due += self.jitter * draw()
            if due < state.last_due:
                due = state.last_due
            state.last_due = due
            if self.reorder and draw() < self.reorder:
                due += self.reorder_delay
                state.reordered += 1
            state.sequence += 1
            heappush(state.held, (due, state.sequence, frame))

    def next_deadline(self) -> float:
        """The earlier of the wrapped device's deadline and the first held
        frame's due time."""
        held = self._state.held
        inner = self.inner.next_deadline()
        if held and held[0][0] < inner:
            return held[0][0]
        return inner

    def set_waker(self, waker: Waker | None) -> None:
        """Frames only arrive through the wrapped device: its waker is ours."""
        self.inner.set_waker(waker)

    def close(self) -> None:
        """Drop the held frames and close the wrapped device. Idempotent."""
        state = self._state
        if state.closed:
            return
        state.closed = True
        state.held.clear()
        self.inner.close()

    def statistics(self) -> FaultStatistics:
        """Counters of what this injector did."""
        state = self._state
        return FaultStatistics(
            frames_in=state.frames_in,
            frames_out=state.frames_out,
            lost=state.lost,
            duplicated=state.duplicated,
            reordered=state.reordered,
            corrupted=state.corrupted,
            dropped_oversize=state.dropped_oversize,
            dropped_queue_full=state.dropped_queue_full,
            held=len(state.held),
        )
