"""Two TcpConnections back to back through a simulated link: the test bench
for everything the state machine does over many segments.

A :class:`Pipe` holds the two ends (``a`` connects, ``b`` is made from the
SYN it receives) and a link in each direction with the faults a network
has: loss, duplication, reordering (an extra random delay), corruption (a
flipped byte, which the checksum catches), a one-way delay with jitter, a
rate limit with a drop-tail queue, and a ``drop(sender, segment, payload
length, now)`` hook for scripted losses.
Everything random comes from one ``random.Random(seed)``; time is simulated
and advances straight to the next thing that happens (an arrival or a
connection's deadline), so an hour of TCP runs in the time its segments take
to process.

With ``wire=True`` (the default) each segment crosses the link as bytes:
``tcp_header`` + the payload parts joined (the one copy, as a NIC's DMA
would make), then ``parse_tcp`` -- the real seam between wire/ and tcp/,
checksums included. ``wire=False`` hands over a copy of the segment instead,
to measure the state machine alone.

Each end runs a small application: it sends ``data`` (a memoryview, in
buffers of ``write_size`` bytes -- slices, no copies) as fast as
``send_space`` allows, then ``shutdown_write``; it consumes whatever arrives
at once (hashing it, and keeping it if asked) -- except during ``stall``, a
(start, end) span of simulated time when ``b``'s application reads nothing
and its window closes -- and segments for a connection that has ended are
answered with a RST, as a stack would.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable

from shardio_net.native.tcp import (
    BuffersReleased,
    Closed,
    DataReceived,
    EndOfStream,
    Reset,
    TcpConfig,
    TcpConnection,
    TcpState,
    TimedOut,
    reset_for,
)
from shardio_net.native.tcp.seq import unwrap
from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.tcp import ACK, RST, SYN, TcpSegment, parse_tcp, tcp_header

__all__ = ["Endpoint", "Pipe", "drop_data_at"]

ADDRESS_A = (0x0A000001, 40000)
ADDRESS_B = (0x0A000002, 80)


def drop_data_at(*times: float) -> Callable[[str, TcpSegment, int, float], bool]:
    """A ``drop`` hook: lose the first data segment ``a`` sends at or after
    each of ``times`` (a scripted loss pattern)."""
    pending = sorted(times)

    def drop(sender: str, segment: TcpSegment, length: int, now: float) -> bool:
        if sender == "a" and length and pending and now >= pending[0]:
            pending.pop(0)
            return True
        return False

    return drop


class Endpoint:
    """One end's application: what it sends, what it received, how it ended."""

    def __init__(
        self,
        name: str,
        data: bytes,
        write_size: int,
        keep: bool,
        stall: tuple[float, float] | None = None,
    ) -> None:
        self.name = name
        #: A span of time in which the application reads nothing.
        self.stall = stall
        self.unconsumed = 0
        self.data = memoryview(data)
        self.write_size = write_size
        self.sent = 0
        self.shut = False
        self.keep = keep
        self.received = bytearray()
        self.received_bytes = 0
        self.hasher = hashlib.sha256()
        self.eof = False
        self.closed = False
        self.error: str | None = None
        self.released = 0
        self.conn: TcpConnection | None = None

    @property
    def digest(self) -> str:
        return self.hasher.hexdigest()

    def serve(self, now: float) -> None:
        """Consume what arrived, and send what fits."""
        conn = self.conn
        if conn is None:
            return
        for event in conn.events():
            if isinstance(event, DataReceived):
                for view in event.data:
                    self.hasher.update(view)
                    if self.keep:
                        self.received += view
                self.received_bytes += event.nbytes
                self.unconsumed += event.nbytes
            elif isinstance(event, EndOfStream):
                self.eof = True
            elif isinstance(event, BuffersReleased):
                self.released += event.nbytes
            elif isinstance(event, Reset | TimedOut):
                self.error = event.reason
            elif isinstance(event, Closed):
                self.closed = True
        stalled = self.stall is not None and self.stall[0] <= now < self.stall[1]
        if self.unconsumed and not stalled and conn.state != TcpState.CLOSED:
            conn.consumed(self.unconsumed)
            self.unconsumed = 0
        state = conn.state
        if self.shut or state not in (
            TcpState.SYN_SENT,
            TcpState.SYN_RECEIVED,
            TcpState.ESTABLISHED,
            TcpState.CLOSE_WAIT,
        ):
            return
        while self.sent < len(self.data):
            space = conn.send_space
            if space == 0:
                return
            chunk = self.data[self.sent : self.sent + min(self.write_size, space)]
            taken = conn.send([chunk])
            self.sent += taken
            if taken < len(chunk):
                return
        conn.shutdown_write(now)
        self.shut = True


class Pipe:
    """Two connections and the link between them; see the module docs."""

    def __init__(
        self,
        config_a: TcpConfig | None = None,
        config_b: TcpConfig | None = None,
        *,
        data_a: bytes = b"",
        data_b: bytes = b"",
        write_size: int = 65536,
        keep: bool = False,
        stall: tuple[float, float] | None = None,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        delay: float = 0.005,
        jitter: float = 0.0,
        rate: float | None = None,
        queue: int | None = None,
        drop: Callable[[str, TcpSegment, int, float], bool] | None = None,
        wire: bool = True,
    ) -> None:
        self.config_a = config_a if config_a is not None else TcpConfig()
        self.config_b = config_b if config_b is not None else self.config_a
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.corrupt = corrupt
        self.delay = delay
        self.jitter = jitter
        self.rate = rate
        self.queue = queue
        self.drop = drop
        self.wire = wire
        self.now = 0.0
        self.a = Endpoint("a", data_a, write_size, keep)
        self.b = Endpoint("b", data_b, write_size, keep, stall)
        # Arrivals: (time, order, destination name, wire bytes or segment).
        self._arrivals: list[tuple[float, int, str, object]] = []
        self._order = 0
        self._link_free = {"a": 0.0, "b": 0.0}
        #: Segments handed to the link, per sender; dropped, corrupted, delivered.
        self.transmitted = {"a": 0, "b": 0}
        self.dropped = 0
        self.malformed = 0
        self.delivered = 0
        #: The right edge of the window each end advertised last (absolute),
        #: and every time one moved left (RFC 9293 3.8.6: it must not).
        self._edges: dict[str, int] = {}
        self._shifts: dict[str, int] = {}
        self.shrinks: list[tuple[str, float, int]] = []
        self.a.conn = TcpConnection.connect(
            ADDRESS_A, ADDRESS_B, self.config_a, 0.0, self.rng.randrange(2**32)
        )

    # -- the link ------------------------------------------------------

    def _watch_window(self, sender: str, segment: TcpSegment) -> None:
        end = self.a if sender == "a" else self.b
        if segment.flags & (ACK | SYN | RST) != ACK or end.conn is None:
            return
        # The scale is settled by the time a segment without SYN goes out.
        shift = self._shifts.get(sender)
        if shift is None:
            shift = self._shifts[sender] = end.conn.statistics().rcv_wscale
        edge = segment.ack + (segment.window << shift)
        previous = self._edges.get(sender)
        if previous is None:
            self._edges[sender] = edge
            return
        edge = unwrap(edge & 0xFFFF_FFFF, previous)
        if edge < previous:
            self.shrinks.append((sender, self.now, previous - edge))
        else:
            self._edges[sender] = edge

    def _transmit(self, sender: str, segment: TcpSegment, parts: tuple[memoryview, ...]) -> None:
        src, dst = (ADDRESS_A, ADDRESS_B) if sender == "a" else (ADDRESS_B, ADDRESS_A)
        self.transmitted[sender] += 1
        self._watch_window(sender, segment)
        length = sum(len(part) for part in parts)
        if self.drop is not None and self.drop(sender, segment, length, self.now):
            self.dropped += 1
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self.dropped += 1
            return
        packet: object
        if self.wire:
            header = tcp_header(segment, src[0], dst[0], parts)
            frame = bytearray(header)
            for part in parts:
                frame += part
            if self.corrupt and rng.random() < self.corrupt:
                frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
            packet = bytes(frame)
            size = len(frame) + 20
        else:
            packet = TcpSegment(
                segment.src_port,
                segment.dst_port,
                segment.seq,
                segment.ack,
                segment.flags,
                segment.window,
                segment.urgent,
                segment.mss,
                segment.window_scale,
                segment.sack_permitted,
                segment.sack_blocks,
                segment.timestamp,
                memoryview(b"".join(parts)) if parts else segment.payload,
            )
            size = 40 + sum(len(p) for p in parts)
        start = self.now
        if self.rate is not None:
            start = max(self.now, self._link_free[sender])
            if self.queue is not None and (start - self.now) * self.rate > self.queue:
                self.dropped += 1
                return
            start += size / self.rate
            self._link_free[sender] = start
        arrival = start + self.delay
        if self.jitter:
            arrival += rng.random() * self.jitter
        if self.reorder and rng.random() < self.reorder:
            arrival += rng.random() * 3 * (self.delay + self.jitter)
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        receiver = "b" if sender == "a" else "a"
        for _ in range(copies):
            self._order += 1
            heapq.heappush(self._arrivals, (arrival, self._order, receiver, packet))

    def _arrive(self, receiver: str, packet: object) -> None:
        if isinstance(packet, bytes):
            src = ADDRESS_A[0] if receiver == "b" else ADDRESS_B[0]
            dst = ADDRESS_B[0] if receiver == "b" else ADDRESS_A[0]
            try:
                segment = parse_tcp(memoryview(packet), src, dst)
            except Malformed:
                self.malformed += 1
                return
        else:
            assert isinstance(packet, TcpSegment)
            segment = packet
        self.delivered += 1
        end = self.b if receiver == "b" else self.a
        conn = end.conn
        if conn is None and receiver == "b" and segment.flags & 0x12 == 0x02:
            end.conn = TcpConnection.from_syn(
                segment, ADDRESS_B, ADDRESS_A, self.config_b, self.now, self.rng.randrange(2**32)
            )
            return
        if conn is None or conn.state == TcpState.CLOSED:
            reply = reset_for(segment)
            if reply is not None:
                self._transmit(receiver, reply, ())
            return
        conn.on_segment(segment, self.now)

    # -- running -------------------------------------------------------

    def _pass(self) -> None:
        """Let both applications act and both connections send, until quiet."""
        for _ in range(100):
            busy = False
            for name in ("a", "b"):
                end = self.a if name == "a" else self.b
                if end.conn is None:
                    continue
                end.serve(self.now)
                out = end.conn.segments_to_send(self.now)
                for segment, parts in out:
                    self._transmit(name, segment, parts)
                busy = busy or bool(out)
            if not busy:
                return

    @property
    def finished(self) -> bool:
        """Both ends reached CLOSED (or ``b`` never heard of ``a``)."""
        return self.a.closed and (self.b.closed or self.b.conn is None)

    def next_time(self) -> float:
        times = [self._arrivals[0][0]] if self._arrivals else []
        stall = self.b.stall
        if stall is not None and self.now < stall[1] and self.b.unconsumed:
            times.append(stall[1])  # the application wakes up and reads
        for end in (self.a, self.b):
            if end.conn is not None:
                times.append(end.conn.next_deadline())
        return min(times, default=math.inf)

    def run(self, until: float = 3600.0, stop: Callable[[Pipe], bool] | None = None) -> Pipe:
        """Run until both ends are closed, ``stop(pipe)`` says so, nothing is
        left to happen, or the simulated clock reaches ``until``."""
        self._pass()
        while not self.finished and not (stop is not None and stop(self)):
            t = self.next_time()
            if t > until:
                self.now = until
                break
            self.now = max(self.now, t)
            while self._arrivals and self._arrivals[0][0] <= self.now:
                _, _, receiver, packet = heapq.heappop(self._arrivals)
                self._arrive(receiver, packet)
            for end in (self.a, self.b):
                conn = end.conn
                if conn is not None and conn.next_deadline() <= self.now:
                    conn.on_timer(self.now)
            self._pass()
        return self
