"""TcpListener: the LISTEN state, a bounded SYN queue and an accept backlog.

A listener is sans-io like a connection. The stack hands it the segments
for its address and port that match no connection, and registers the
connection it returns::

    listener = TcpListener(local, config, isn_generator, backlog=128)
    conn = listener.on_segment(segment, remote, now)  # a SYN: a new connection
    ...                                               # (SYN_RECEIVED) or None
    listener.segments_to_send()   # RSTs answering stray segments: [(remote, segment)]
    conn = listener.accept()      # an ESTABLISHED connection, or None
    listener.close(now)           # reset what was never accepted

Two queues, as in Linux:

* the **SYN queue** holds connections in SYN_RECEIVED (embryonic: we sent a
  SYN-ACK and wait for the ACK). A SYN that finds it full (``syn_backlog``)
  is dropped; the peer's SYN retransmission will try again.
* the **accept queue** holds ESTABLISHED connections the application has
  not taken yet. A SYN that finds it full (``backlog``) is dropped too, and so
  is the final ACK of a handshake that would overflow it: that connection
  stays in SYN_RECEIVED, its SYN-ACK is retransmitted, and the peer's
  answer to it -- or its data -- completes the handshake once there is room
  (Linux's behaviour with ``tcp_abort_on_overflow`` off). Every drop is
  counted in :meth:`statistics`.

We keep no SYN cookies: a SYN flood fills the SYN queue and further SYNs are
dropped (Linux falls back to cookies there; we count the drops instead).

Connections report back to their listener: a connection that completes its
handshake moves itself to the accept queue, and one that dies before being
accepted (reset, timed out) removes itself. Once accepted, a connection no
longer knows its listener.

Segments the listener answers by the LISTEN rules (RFC 9293 3.10.7.2): a RST
is ignored; anything with ACK gets a RST (``reset_for``); a SYN opens a
connection; anything else is dropped.
"""

from __future__ import annotations

from collections import deque

import attrs

from ..wire.tcp import ACK, RST, SYN, TcpSegment
from .config import TcpConfig
from .connection import TcpConnection
from .isn import IsnGenerator
from .reset import reset_for

__all__ = ["TcpListener", "TcpListenerStatistics"]


@attrs.frozen
class TcpListenerStatistics:
    """A listener's queues and counters."""

    #: Connections in SYN_RECEIVED, and the bound.
    syn_queue: int
    syn_backlog: int
    #: Established connections waiting for accept(), and the bound.
    accept_queue: int
    backlog: int
    syns_received: int
    #: SYNs dropped because the SYN queue was full.
    syn_queue_drops: int
    #: SYNs and handshake-completing ACKs dropped because the accept queue was full.
    accept_queue_overflows: int
    resets_sent: int


class TcpListener:
    """The passive side of TCP for one local address and port; see the module docs."""

    __slots__ = (
        "_accept",
        "_closed",
        "_isn",
        "_out",
        "_overflows",
        "_resets",
        "_syn_drops",
        "_syn_queue",
        "_syns",
        "backlog",
        "config",
        "local",
        "syn_backlog",
    )

    def __init__(
        self,
        local: tuple[int, int],
        config: TcpConfig,
        isn: IsnGenerator,
        *,
        backlog: int = 128,
        syn_backlog: int | None = None,
    ) -> None:
        if backlog < 1:
            raise ValueError(f"backlog must be at least 1, not {backlog}")
        if syn_backlog is None:
            syn_backlog = max(backlog, 256)
        if syn_backlog < 1:
            raise ValueError(f"syn_backlog must be at least 1, not {syn_backlog}")
        #: The (address, port) listened on.
        self.local = local
        self.config = config
        self.backlog = backlog
        self.syn_backlog = syn_backlog
        self._isn = isn
        self._syn_queue: dict[TcpConnection, None] = {}
        self._accept: deque[TcpConnection] = deque()
        self._out: list[tuple[tuple[int, int], TcpSegment]] = []
        self._closed = False
        self._syns = 0
        self._syn_drops = 0
        self._overflows = 0
        self._resets = 0

    def __repr__(self) -> str:
        return (
            f"<TcpListener port {self.local[1]}: {len(self._syn_queue)} in the SYN queue, "
            f"{len(self._accept)} to accept>"
        )

    @property
    def pending(self) -> int:
        """How many established connections wait for :meth:`accept`."""
        return len(self._accept)

    def on_segment(
        self, segment: TcpSegment, remote: tuple[int, int], now: float
    ) -> TcpConnection | None:
        """A segment from ``remote`` that matches no connection. Returns the new
        connection (SYN_RECEIVED, its SYN-ACK ready) for a SYN the queues have
        room for; None otherwise."""
        if self._closed:
            raise RuntimeError("this listener is closed")
        flags = segment.flags
        if flags & RST:
            return None
        if flags & ACK:
            reply = reset_for(segment)
            if reply is not None:
                self._out.append((remote, reply))
                self._resets += 1
            return None
        if not flags & SYN:
            return None
        self._syns += 1
        if len(self._accept) >= self.backlog:
            self._overflows += 1
            return None
        if len(self._syn_queue) >= self.syn_backlog:
            self._syn_drops += 1
            return None
        local = self.local
        conn = TcpConnection.from_syn(
            segment,
            local,
            remote,
            self.config,
            now,
            self._isn.isn(local, remote, now),
            ts_offset=self._isn.timestamp_offset(local, remote),
        )
        conn._listener = self
        self._syn_queue[conn] = None
        return conn

    def segments_to_send(self) -> list[tuple[tuple[int, int], TcpSegment]]:
        """RSTs answering stray segments, each with the address to send it to."""
        out = self._out
        self._out = []
        return out

    def accept(self) -> TcpConnection | None:
        """The oldest established connection not yet accepted, or None."""
        if not self._accept:
            return None
        conn = self._accept.popleft()
        conn._listener = None
        return conn

    def close(self, now: float) -> list[TcpConnection]:
        """Stop listening: reset every connection not yet accepted. Returns
        them, for the stack to drain (their RSTs and events)."""
        self._closed = True
        conns = list(self._syn_queue) + list(self._accept)
        for conn in conns:
            conn.abort(now)
        self._syn_queue.clear()
        self._accept.clear()
        return conns

    def statistics(self) -> TcpListenerStatistics:
        """The queues and the drop counters."""
        return TcpListenerStatistics(
            syn_queue=len(self._syn_queue),
            syn_backlog=self.syn_backlog,
            accept_queue=len(self._accept),
            backlog=self.backlog,
            syns_received=self._syns,
            syn_queue_drops=self._syn_drops,
            accept_queue_overflows=self._overflows,
            resets_sent=self._resets,
        )

    # Called by the connections this listener made.

    def _has_room(self, conn: TcpConnection) -> bool:
        return len(self._accept) < self.backlog

    def _overflowed(self) -> None:
        self._overflows += 1

    def _established(self, conn: TcpConnection) -> None:
        self._syn_queue.pop(conn, None)
        self._accept.append(conn)

    def _forget(self, conn: TcpConnection) -> None:
        if conn in self._syn_queue:
            del self._syn_queue[conn]
        elif conn in self._accept:
            self._accept.remove(conn)
