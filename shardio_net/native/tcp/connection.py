"""One TCP connection as a sans-io state machine (RFC 9293 and companions).

The API
=======

A connection is driven like h11: the stack feeds it and drains it; it never
calls out, never does I/O, never reads a clock (time is the ``now`` argument,
a float of seconds: the scheduler's clock, or MockClock's)::

    conn = TcpConnection.connect(local, remote, config, now, iss, ts_offset=0)
    conn = TcpConnection.from_syn(syn, local, remote, config, now, iss, ts_offset=0)
        # local, remote: (IPv4 address as int, port); iss and ts_offset from
        # an IsnGenerator (isn.py); from_syn is what TcpListener uses.

    # feeding it
    conn.on_segment(segment, now)      # a parsed TcpSegment addressed to this connection
    conn.on_timer(now)                 # when now >= conn.next_deadline()
    conn.send(buffers) -> int          # queue buffers by reference; returns bytes taken
    conn.consumed(nbytes)              # the application used nbytes of received data
    conn.shutdown_write(now)           # send FIN after the queued data (half-close)
    conn.close(now)                    # shutdown_write, and the application reads no more
    conn.abort(now)                    # RST now, drop everything

    # draining it
    conn.segments_to_send(now) -> list[tuple[TcpSegment, tuple[memoryview, ...]]]
        # header repr + payload parts (slices of the buffers given to send)
    conn.events() -> list[Event]       # see events.py
    conn.next_deadline() -> float      # math.inf when no timer runs

    # looking at it
    conn.state -> TcpState             conn.send_space -> int
    conn.statistics() -> TcpStatistics conn.time_wait_accepts(syn) -> bool

The stack's loop is: feed a batch of segments (``on_segment``), run
``on_timer`` for connections whose deadline passed, then for every connection
touched drain ``segments_to_send`` (and write them) and ``events`` (and wake
the application). Sending decisions happen in ``segments_to_send``, so a
batch of ACKs costs one pass over the send queue, and a burst of data one
ACK -- except out-of-order segments, each of which is answered at once by a
duplicate ACK (the sender counts them).

Errors in using the API (sending after ``shutdown_write``, consuming more
than was received) raise :class:`TcpStateError` or ``ValueError`` with what
was wrong; nothing the *peer* sends ever raises -- a bad segment is dropped,
answered, or counted.

Buffers
=======

Zero copy both ways (see buffers.py). Sent: ``send`` keeps memoryviews of the
caller's buffers, segments carry slices of them, and a
:class:`BuffersReleased` event says when the oldest ones are no longer
referenced (acknowledged, or the connection ended) -- until then the caller
must not change them. Received: :class:`DataReceived` carries views of the
frames the data arrived in, and the out-of-order queue holds such views too.
The receive window is ``receive_buffer`` less what the application has been
given and not yet declared ``consumed``.

Inside
======

Sequence numbers are absolute integers (see seq.py): ``snd_una``, ``snd_nxt``
(the highest sent, RFC 6675's HighData; retransmissions do not move it back)
and ``rcv_nxt`` only grow, and wire values are unwrapped against them on
arrival. Incoming segments go through RFC 9293 3.10.7's checks in order --
PAWS, sequence acceptability, RST (with RFC 5961's exact-match rule and
challenge ACKs), SYN (challenge ACK), ACK (RFC 5961's acceptable range),
data, FIN -- except the predicted ones (see ``on_segment``), which take a
straight path. Acceptability is Linux's test rather than RFC 9293's four
cases, whose letter deadlocks two peers with full windows (see
``_on_synchronized``); a RST in CLOSING or LAST_ACK is reported as a reset,
as Linux does, since data or our FIN may be unacknowledged.

Loss recovery is one mechanism with three modes (``_recovery``):

* open -- sending new data while the pipe is below ``cwnd`` (the pipe is
  FlightSize less SACKed bytes, or without SACK less one segment per
  duplicate ACK, up to two: limited transmit, RFC 3042);
* fast recovery -- entered on the third duplicate ACK, or with SACK when
  RFC 6675's IsLost holds for the first unacknowledged byte. With SACK it is
  RFC 6675: the pipe is estimated, holes below the *lost edge* (the highest
  byte with more than 2 SMSS SACKed above it) are retransmitted from HighRxt
  upwards, then new data, then (rule 3) other holes below HighSACK. Without
  SACK it is NewReno (RFC 6582): the first hole is retransmitted on entry and
  on each partial ACK, and ``cwnd`` is inflated by duplicate ACKs;
* loss -- after an RTO: ``cwnd`` is one segment and everything un-SACKed
  below the highest byte sent at the timeout is lost, retransmitted in order
  (skipping SACKed ranges) as slow start reopens the window.

In the two SACK-aware modes the pipe follows RFC 6675's SetPipe, computed
from three edges instead of per segment: with ``rxt`` the next byte to
retransmit (HighRxt) and ``lost`` the lost edge, un-SACKed bytes count once,
lost ones not yet retransmitted count zero, retransmitted ones that were not
lost count twice::

    pipe = U(snd_una, snd_nxt) - U(rxt, lost) + U(lost, rxt)

where ``U(a, b)`` is the number of un-SACKed bytes in ``[a, b)`` (0 if
``a >= b``).

Speed
=====

The per-segment paths are written for speed and say so: the receipt of an
in-order data segment, of an ACK, and the emission of a data segment. They
use ints for states and flags (no enums), local variables for attributes
read twice, and allocate nothing beyond the segment, its payload tuple and
the slices of the payload (the window field, timestamps tuple and SACK
blocks are computed once per batch of segments sent, not per segment).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..wire.tcp import TcpSegment
from .buffers import ReassemblyQueue, SendQueue
from .config import TcpConfig
from .congestion import INITIAL_SSTHRESH, CongestionControl, make_congestion_control
from .events import (
    BuffersReleased,
    Closed,
    Connected,
    DataReceived,
    EndOfStream,
    Event,
    Reset,
    TimedOut,
)
from .rtt import RttEstimator
from .sack import Scoreboard

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .listener import TcpListener

__all__ = ["TcpConnection", "TcpState", "TcpStateError", "TcpStatistics"]

# Connection states, as ints on the hot paths (TcpState names them).
CLOSED = 0
SYN_SENT = 1
SYN_RECEIVED = 2
ESTABLISHED = 3
FIN_WAIT_1 = 4
FIN_WAIT_2 = 5
CLOSE_WAIT = 6
CLOSING = 7
LAST_ACK = 8
TIME_WAIT = 9


class TcpState(enum.IntEnum):
    """The RFC 9293 connection states (LISTEN is the listener's)."""

    CLOSED = CLOSED
    SYN_SENT = SYN_SENT
    SYN_RECEIVED = SYN_RECEIVED
    ESTABLISHED = ESTABLISHED
    FIN_WAIT_1 = FIN_WAIT_1
    FIN_WAIT_2 = FIN_WAIT_2
    CLOSE_WAIT = CLOSE_WAIT
    CLOSING = CLOSING
    LAST_ACK = LAST_ACK
    TIME_WAIT = TIME_WAIT


_STATES = tuple(TcpState)

# Flag bits (as wire/tcp.py's), local for speed.
_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_PSH = 0x08
_ACK = 0x10
_URG = 0x20
# The flags that change how a segment is processed (PSH, ECE, CWR do not).
_CONTROL = _FIN | _SYN | _RST | _ACK | _URG

_MASK = 0xFFFF_FFFF
_HALF = 0x8000_0000
_INF = math.inf
_NO_PARTS: tuple[memoryview, ...] = ()
_NO_VIEW = memoryview(b"")
# The MSS assumed when the peer sends no MSS option (RFC 9293 3.7.1).
_DEFAULT_MSS = 536
# The smallest MSS we accept from a peer (Linux's tcp_min_snd_mss).
_MIN_MSS = 48
# Timestamps: the option's bytes in every segment, and how old TS.Recent may
# be before PAWS stops trusting it (RFC 7323 5.5: 24 days).
_TS_LENGTH = 12
_PAWS_IDLE = 24 * 86400.0
# RFC 6675's DupThresh.
_DUP_THRESH = 3

# Loss recovery modes (see the module docs).
_OPEN = 0
_FAST = 1
_LOSS = 2
_RECOVERY_NAMES = ("open", "recovery", "loss")

# States in which we may have data or a FIN to (re)send.
_SENDING = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK))
# States in which received data is accepted.
_RECEIVING = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
# States in which header prediction may apply (see on_segment).
_PREDICTED = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT))


class TcpStateError(RuntimeError):
    """The connection cannot do what was asked in its current state."""


@attrs.frozen
class TcpStatistics:
    """A connection's state and counters, in the spirit of Linux's TCP_INFO."""

    state: str
    #: "open", "recovery" (fast recovery) or "loss" (after an RTO).
    recovery: str
    srtt: float
    rttvar: float
    rto: float
    cwnd: int
    #: -1 until the first congestion event (ssthresh starts "arbitrarily high").
    ssthresh: int
    congestion_control: str
    #: Largest payload we send per segment, and largest seen from the peer.
    snd_mss: int
    rcv_mss: int
    #: The peer's window (scaled) and the one we advertise.
    snd_wnd: int
    rcv_wnd: int
    snd_wscale: int
    rcv_wscale: int
    timestamps: bool
    sack: bool
    #: Bytes sent but not acknowledged (incl. SYN/FIN), SACKed among them,
    #: and the estimate of those still in the network (RFC 6675's pipe).
    unacked: int
    sacked: int
    in_flight: int
    #: Bytes queued by ``send`` and not yet acknowledged.
    send_queued: int
    #: Out-of-order bytes held for reassembly.
    reassembly_queued: int
    bytes_sent: int
    bytes_retransmitted: int
    bytes_acked: int
    bytes_received: int
    segments_sent: int
    segments_received: int
    #: Segments retransmitted (any cause), RTO expiries, fast recoveries entered.
    retransmits: int
    timeouts: int
    fast_recoveries: int
    dup_acks_received: int
    out_of_order_received: int
    challenge_acks_sent: int
    zero_window_probes: int
    keepalive_probes: int
    #: Segments dropped as unacceptable (out of window, PAWS, bad ACK, ...).
    dropped: int


class TcpConnection:
    """One TCP connection; see the module docs for the API and the model."""

    __slots__ = (
        "_ack_now",
        "_app_closed",
        "_bytes_acked",
        "_bytes_received",
        "_bytes_retransmitted",
        "_bytes_sent",
        "_cc",
        "_challenge_acks",
        "_challenge_count",
        "_challenge_second",
        "_close_at",
        "_config",
        "_cwnd_limited",
        "_delack_at",
        "_dropped",
        "_dup_acks_received",
        "_dupacks",
        "_error",
        "_events",
        "_fast_recoveries",
        "_fin_queued",
        "_fin_seq",
        "_iss",
        "_ka_probes",
        "_keepalive_at",
        "_keepalive_probes",
        "_last_ack_sent",
        "_last_rx",
        "_listener",
        "_lost_edge",
        "_lport",
        "_max_snd_wnd",
        "_ooo",
        "_ooo_fin",
        "_ooo_received",
        "_our_mss",
        "_out",
        "_partial_acks",
        "_passive",
        "_persist_at",
        "_persist_backoff",
        "_probes",
        "_rcv_adv",
        "_rcv_buf",
        "_rcv_held",
        "_rcv_mss",
        "_rcv_nxt",
        "_rcv_wscale",
        "_recover",
        "_recovery",
        "_retransmits",
        "_retries",
        "_rport",
        "_rto_at",
        "_rto_first_at",
        "_rtt",
        "_rtt_seq",
        "_rtt_time",
        "_rx_event",
        "_rxt_force",
        "_rxt_nxt",
        "_sack_ok",
        "_sack_recent",
        "_sb",
        "_segments_received",
        "_segments_sent",
        "_snd_mss",
        "_snd_nxt",
        "_snd_una",
        "_snd_wl1",
        "_snd_wl2",
        "_snd_wnd",
        "_snd_wscale",
        "_sq",
        "_state",
        "_sws_threshold",
        "_syn_retransmitted",
        "_timeouts",
        "_ts_offset",
        "_ts_ok",
        "_ts_recent",
        "_ts_recent_at",
        "_unacked_rx",
        "_ws_ok",
        "_zero_window_probes",
        "local",
        "remote",
    )

    def __init__(
        self,
        local: tuple[int, int],
        remote: tuple[int, int],
        config: TcpConfig,
        now: float,
        iss: int,
        ts_offset: int,
    ) -> None:
        """Use :meth:`connect` or :meth:`from_syn`."""
        if not 0 <= iss <= _MASK:
            raise ValueError(f"the initial sequence number must be 0..2**32-1, not {iss}")
        #: Our (address, port) and the peer's.
        self.local = local
        self.remote = remote
        self._config = config
        self._lport = local[1]
        self._rport = remote[1]
        self._state = CLOSED
        self._passive = False
        self._listener: TcpListener | None = None
        self._error: str | None = None
        self._app_closed = False
        # --- send side (absolute sequence numbers) ---
        self._iss = iss
        self._snd_una = iss
        self._snd_nxt = iss
        self._snd_wnd = 0
        self._snd_wl1 = 0
        self._snd_wl2 = 0
        self._max_snd_wnd = 0
        self._snd_wscale = 0
        self._our_mss = config.mss
        self._snd_mss = min(_DEFAULT_MSS, self._our_mss)
        self._sq = SendQueue(iss + 1)
        self._fin_queued = False
        self._fin_seq = -1
        # --- receive side ---
        self._rcv_nxt = 0
        self._rcv_adv = 0
        wscale = 0
        if config.window_scaling:
            while (config.receive_buffer >> wscale) > 0xFFFF and wscale < 14:
                wscale += 1
        self._rcv_wscale = wscale
        self._rcv_buf = config.receive_buffer
        self._sws_threshold = min(self._rcv_buf // 2, self._our_mss)
        self._rcv_held = 0
        self._rcv_mss = min(_DEFAULT_MSS, self._our_mss)
        self._ooo = ReassemblyQueue(config.max_out_of_order)
        self._ooo_fin = -1
        self._unacked_rx = 0
        self._ack_now = False
        self._last_ack_sent = 0
        self._sack_recent: list[tuple[int, int]] = []
        # --- options ---
        self._ws_ok = False
        self._ts_ok = False
        self._sack_ok = False
        self._ts_offset = ts_offset
        self._ts_recent = 0
        self._ts_recent_at = now
        # --- loss recovery and congestion control ---
        self._sb = Scoreboard()
        self._recovery = _OPEN
        self._recover = iss
        self._rxt_nxt = iss
        self._lost_edge = iss
        self._rxt_force = False
        self._dupacks = 0
        self._partial_acks = 0
        self._cwnd_limited = False
        self._cc: CongestionControl = make_congestion_control(
            config.congestion_control, self._snd_mss, config.initial_window
        )
        self._rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self._rtt_seq = -1
        self._rtt_time = 0.0
        # --- timers (absolute times; inf when not running) ---
        self._rto_at = _INF
        self._delack_at = _INF
        self._persist_at = _INF
        self._keepalive_at = _INF
        self._close_at = _INF
        self._retries = 0
        self._rto_first_at = now
        self._probes = 0
        self._persist_backoff = 0
        self._ka_probes = 0
        self._last_rx = now
        self._syn_retransmitted = False
        self._challenge_second = -1
        self._challenge_count = 0
        # --- output ---
        self._events: list[Event] = []
        self._rx_event: DataReceived | None = None
        self._out: list[tuple[TcpSegment, tuple[memoryview, ...]]] = []
        # --- counters ---
        self._bytes_sent = 0
        self._bytes_retransmitted = 0
        self._bytes_acked = 0
        self._bytes_received = 0
        self._segments_sent = 0
        self._segments_received = 0
        self._retransmits = 0
        self._timeouts = 0
        self._fast_recoveries = 0
        self._dup_acks_received = 0
        self._ooo_received = 0
        self._challenge_acks = 0
        self._zero_window_probes = 0
        self._keepalive_probes = 0
        self._dropped = 0

    # ------------------------------------------------------------------
    # Opening
    # ------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        local: tuple[int, int],
        remote: tuple[int, int],
        config: TcpConfig,
        now: float,
        iss: int,
        *,
        ts_offset: int = 0,
    ) -> TcpConnection:
        """An active open: a connection in SYN_SENT whose SYN is ready to send."""
        conn = cls(local, remote, config, now, iss, ts_offset)
        conn._state = SYN_SENT
        conn._snd_nxt = iss + 1
        conn._rtt_time = now
        conn._emit_syn(now)
        conn._rto_at = now + conn._rtt.rto
        return conn

    @classmethod
    def from_syn(
        cls,
        syn: TcpSegment,
        local: tuple[int, int],
        remote: tuple[int, int],
        config: TcpConfig,
        now: float,
        iss: int,
        *,
        ts_offset: int = 0,
    ) -> TcpConnection:
        """A passive open: a connection in SYN_RECEIVED answering ``syn`` (a
        segment with SYN and without ACK or RST) with a SYN-ACK."""
        if syn.flags & (_SYN | _ACK | _RST) != _SYN:
            raise ValueError(
                f"from_syn needs a segment with SYN and without ACK or RST (flags {syn.flags:#x})"
            )
        conn = cls(local, remote, config, now, iss, ts_offset)
        conn._passive = True
        conn._state = SYN_RECEIVED
        conn._take_syn_options(syn, now)
        conn._snd_nxt = iss + 1
        conn._snd_wnd = syn.window
        conn._max_snd_wnd = syn.window
        conn._snd_wl1 = conn._rcv_nxt - 1
        conn._snd_wl2 = iss
        conn._rtt_time = now
        conn._emit_syn(now)
        conn._rto_at = now + conn._rtt.rto
        return conn

    def _take_syn_options(self, syn: TcpSegment, now: float) -> None:
        """Learn the peer's ISN and options from its SYN (or SYN-ACK)."""
        config = self._config
        self._rcv_nxt = syn.seq + 1
        self._last_ack_sent = self._rcv_nxt
        self._ws_ok = config.window_scaling and syn.window_scale is not None
        if self._ws_ok:
            self._snd_wscale = min(syn.window_scale or 0, 14)
        else:
            self._snd_wscale = 0
            self._rcv_wscale = 0
            self._rcv_buf = min(self._rcv_buf, 0xFFFF)
            self._sws_threshold = min(self._rcv_buf // 2, self._our_mss)
        self._sack_ok = config.sack and syn.sack_permitted
        self._ts_ok = config.timestamps and syn.timestamp is not None
        if self._ts_ok and syn.timestamp is not None:
            self._ts_recent = syn.timestamp[0]
            self._ts_recent_at = now
        peer_mss = syn.mss if syn.mss is not None else _DEFAULT_MSS
        mss = max(min(peer_mss, self._our_mss), _MIN_MSS)
        if self._ts_ok:
            mss -= _TS_LENGTH
        self._snd_mss = mss
        self._rcv_mss = min(_DEFAULT_MSS, mss)

    def _emit_syn(self, now: float) -> None:
        """Queue our SYN (SYN_SENT) or SYN-ACK (SYN_RECEIVED), with options."""
        config = self._config
        window = min(self._rcv_buf, 0xFFFF)
        if self._state == SYN_SENT:
            segment = TcpSegment(
                self._lport,
                self._rport,
                self._iss,
                0,
                _SYN,
                window,
                mss=self._our_mss,
                window_scale=self._rcv_wscale if config.window_scaling else None,
                sack_permitted=config.sack,
                timestamp=(self._ts_now(now), 0) if config.timestamps else None,
            )
        else:
            self._rcv_adv = self._rcv_nxt + window
            segment = TcpSegment(
                self._lport,
                self._rport,
                self._iss,
                self._rcv_nxt & _MASK,
                _SYN | _ACK,
                window,
                mss=self._our_mss,
                window_scale=self._rcv_wscale if self._ws_ok else None,
                sack_permitted=self._sack_ok,
                timestamp=(self._ts_now(now), self._ts_recent) if self._ts_ok else None,
            )
            self._last_ack_sent = self._rcv_nxt
        self._out.append((segment, _NO_PARTS))
        self._segments_sent += 1

    def _ts_now(self, now: float) -> int:
        return (int(now * 1000.0) + self._ts_offset) & _MASK

    def _become_established(self, now: float) -> None:
        """Handshake done: size the congestion window, start data transfer."""
        config = self._config
        self._state = ESTABLISHED
        mss = self._snd_mss
        self._cc = make_congestion_control(config.congestion_control, mss, config.initial_window)
        if self._syn_retransmitted:
            # RFC 6928 / RFC 5681 3.1: a lost SYN or SYN-ACK means IW = 1 segment,
            # and RFC 6298 5.7: an RTO of at least 3 s if nothing was measured.
            self._cc.cwnd = mss
            self._rtt.syn_was_retransmitted()
        self._retries = 0
        self._rto_at = _INF
        self._rxt_nxt = self._snd_una
        self._lost_edge = self._snd_una
        if config.keepalive:
            self._keepalive_at = now + config.keepalive_idle
        self._event(Connected())
        if self._listener is not None:
            self._listener._established(self)
        if self._fin_queued:
            self._state = FIN_WAIT_1

    # ------------------------------------------------------------------
    # Looking at it
    # ------------------------------------------------------------------

    @property
    def state(self) -> TcpState:
        """The connection's RFC 9293 state."""
        return _STATES[self._state]

    @property
    def error(self) -> str | None:
        """Why the connection ended abnormally (reset, timeout), else None."""
        return self._error

    @property
    def send_space(self) -> int:
        """How many bytes :meth:`send` would take now."""
        space = self._config.send_buffer - self._send_queued()
        return space if space > 0 else 0

    def _send_queued(self) -> int:
        """Bytes queued by ``send`` and not yet acknowledged."""
        queued = self._sq.end - max(self._snd_una, self._iss + 1)
        return queued if queued > 0 else 0

    def next_deadline(self) -> float:
        """When :meth:`on_timer` must run next (``math.inf``: no timer runs)."""
        return min(
            self._rto_at, self._delack_at, self._persist_at, self._keepalive_at, self._close_at
        )

    def time_wait_accepts(self, syn: TcpSegment) -> bool:
        """Whether a new SYN for this 4-tuple may reopen it from TIME_WAIT
        (RFC 6191: its timestamp, or else its sequence number, is newer than
        the old incarnation's). The stack then drops this connection and hands
        the SYN to the listener."""
        if self._state != TIME_WAIT or syn.flags & (_SYN | _ACK | _RST) != _SYN:
            return False
        if self._ts_ok and syn.timestamp is not None:
            newer_by = (syn.timestamp[0] - self._ts_recent) & _MASK
            return 0 < newer_by < _HALF
        seq = self._rcv_nxt + ((syn.seq - self._rcv_nxt + _HALF) & _MASK) - _HALF
        return seq > self._rcv_nxt

    def statistics(self) -> TcpStatistics:
        """The connection's state and counters (see :class:`TcpStatistics`)."""
        cc = self._cc
        ssthresh = cc.ssthresh if cc.ssthresh < INITIAL_SSTHRESH else -1
        return TcpStatistics(
            state=TcpState(self._state).name,
            recovery=_RECOVERY_NAMES[self._recovery],
            srtt=self._rtt.srtt,
            rttvar=self._rtt.rttvar,
            rto=self._rtt.rto,
            cwnd=cc.cwnd,
            ssthresh=ssthresh,
            congestion_control=cc.name,
            snd_mss=self._snd_mss,
            rcv_mss=self._rcv_mss,
            snd_wnd=self._snd_wnd,
            rcv_wnd=max(self._rcv_adv - self._rcv_nxt, 0),
            snd_wscale=self._snd_wscale,
            rcv_wscale=self._rcv_wscale,
            timestamps=self._ts_ok,
            sack=self._sack_ok,
            unacked=self._snd_nxt - self._snd_una,
            sacked=self._sb.sacked,
            in_flight=self._pipe(),
            send_queued=self._send_queued(),
            reassembly_queued=self._ooo.nbytes,
            bytes_sent=self._bytes_sent,
            bytes_retransmitted=self._bytes_retransmitted,
            bytes_acked=self._bytes_acked,
            bytes_received=self._bytes_received,
            segments_sent=self._segments_sent,
            segments_received=self._segments_received,
            retransmits=self._retransmits,
            timeouts=self._timeouts,
            fast_recoveries=self._fast_recoveries,
            dup_acks_received=self._dup_acks_received,
            out_of_order_received=self._ooo_received,
            challenge_acks_sent=self._challenge_acks,
            zero_window_probes=self._zero_window_probes,
            keepalive_probes=self._keepalive_probes,
            dropped=self._dropped,
        )

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self._lport}->{self._rport} {TcpState(self._state).name} "
            f"una={self._snd_una - self._iss} nxt={self._snd_nxt - self._iss}>"
        )

    # ------------------------------------------------------------------
    # Draining it
    # ------------------------------------------------------------------

    def events(self) -> list[Event]:
        """The events since the last call, oldest first."""
        events = self._events
        if events:
            self._events = []
            self._rx_event = None
        return events

    def _event(self, event: Event) -> None:
        self._events.append(event)
        self._rx_event = None

    def segments_to_send(self, now: float) -> list[tuple[TcpSegment, tuple[memoryview, ...]]]:
        """The segments to transmit now, each a header repr and its payload parts.

        This is where the connection decides what to send: retransmissions,
        new data within the congestion and receive windows, a FIN, an ACK.
        """
        sent = self._send_data(now) if self._state in _SENDING else False
        if self._ack_now and not sent and self._state > SYN_RECEIVED:
            self._emit(self._snd_nxt, _ACK, _NO_PARTS, now)
        out = self._out
        if out:
            self._out = []
        return out

    # ------------------------------------------------------------------
    # Emitting
    # ------------------------------------------------------------------

    def _window_field(self) -> int:
        """The window to advertise, as the 16-bit field; moves ``_rcv_adv``.

        RFC 1122's receiver-side silly window avoidance: the right edge
        advances only by at least min(buffer / 2, MSS). And RFC 9293 3.8.6's
        rule: it never moves left, so rounding to the scale rounds up.
        """
        rcv_nxt = self._rcv_nxt
        adv = self._rcv_adv
        edge = rcv_nxt + self._rcv_buf - self._rcv_held
        if edge - adv >= self._sws_threshold:
            adv = edge
        elif adv < rcv_nxt:
            adv = rcv_nxt
        shift = self._rcv_wscale
        field = (adv - rcv_nxt + (1 << shift) - 1) >> shift
        if field > 0xFFFF:
            field = 0xFFFF
        self._rcv_adv = rcv_nxt + (field << shift)
        return field

    def _sack_option(self) -> tuple[tuple[int, int], ...]:
        """Our SACK blocks, most recently changed first (RFC 2018 4), on the wire."""
        rcv_nxt = self._rcv_nxt
        most = 3 if self._ts_ok else 4
        blocks = []
        for start, end in self._sack_recent:
            if start > rcv_nxt:
                blocks.append((start & _MASK, end & _MASK))
                if len(blocks) == most:
                    break
        return tuple(blocks)

    def _emit(self, seq: int, flags: int, parts: tuple[memoryview, ...], now: float) -> None:
        """Queue a segment with ACK, our window, timestamps and SACK blocks.

        (Data segments in bulk are built in ``_send_data`` directly.)
        """
        sack = self._sack_option() if self._sack_ok and self._ooo.nbytes else ()
        segment = TcpSegment(
            self._lport,
            self._rport,
            seq & _MASK,
            self._rcv_nxt & _MASK,
            flags | _ACK,
            self._window_field(),
            0,
            None,
            None,
            False,
            sack,
            (self._ts_now(now), self._ts_recent) if self._ts_ok else None,
        )
        self._out.append((segment, parts))
        self._segments_sent += 1
        self._acked_now()

    def _acked_now(self) -> None:
        """An ACK for everything received went out: clear the pending-ACK state."""
        self._last_ack_sent = self._rcv_nxt
        self._unacked_rx = 0
        self._ack_now = False
        self._delack_at = _INF

    def _emit_rst(self, seq: int, ack: int | None) -> None:
        """Queue a RST (with ACK if ``ack`` is given); both are wire values."""
        if ack is None:
            segment = TcpSegment(self._lport, self._rport, seq & _MASK, 0, _RST, 0)
        else:
            segment = TcpSegment(self._lport, self._rport, seq & _MASK, ack & _MASK, _RST | _ACK, 0)
        self._out.append((segment, _NO_PARTS))
        self._segments_sent += 1

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961's challenge ACK, at most ``challenge_ack_limit`` a second."""
        second = int(now)
        if second != self._challenge_second:
            self._challenge_second = second
            self._challenge_count = 0
        if self._challenge_count >= self._config.challenge_ack_limit:
            return
        self._challenge_count += 1
        self._challenge_acks += 1
        self._emit(self._snd_nxt, _ACK, _NO_PARTS, now)

    def _send_data(self, now: float) -> bool:
        """Send what the windows allow: retransmissions, new data, FIN.

        Hot path (once per batch). Returns whether a segment went out.
        """
        snd_una = self._snd_una
        snd_nxt = self._snd_nxt
        sq = self._sq
        sq_end = sq.end
        fin_queued = self._fin_queued
        recovery = self._recovery
        if recovery == _OPEN and snd_nxt >= sq_end + fin_queued:
            return False
        mss = self._snd_mss
        sack_ok = self._sack_ok
        sack = self._sack_option() if sack_ok and self._ooo.nbytes else ()
        if sack:
            mss -= 4 + 8 * len(sack)
        cwnd = self._cc.cwnd
        pipe = self._pipe()
        emitted = len(self._out)
        # Per-batch header fields, shared by every segment of this batch.
        lport = self._lport
        rport = self._rport
        ack = self._rcv_nxt & _MASK
        window = self._window_field()
        ts = (self._ts_now(now), self._ts_recent) if self._ts_ok else None
        out = self._out
        fin_seq = self._fin_seq

        if recovery:
            pipe = self._retransmit(now, pipe, cwnd, mss, sack, window, ts, self._lost_edge)

        # New data (RFC 6675 NextSeg rule 2 in recovery). Hot path: one
        # iteration per segment, no attribute written inside the loop, and
        # the payload sliced straight from the buffer being sent (the
        # SendQueue is asked only when a segment starts or crosses a buffer).
        wnd_end = snd_una + self._snd_wnd
        nagle = self._config.nagle
        half_window = self._max_snd_wnd >> 1
        # With segmentation offload a segment of new data carries several
        # MSS (the device cuts it); retransmissions stay MSS-sized.
        offload = self._config.segment_offload
        step = mss if offload <= mss else offload - offload % mss
        cwnd_limited = False
        first = snd_nxt
        view = _NO_VIEW
        view_start = view_end = -1
        while snd_nxt < sq_end:
            avail = sq_end - snd_nxt
            n = step if avail > step else avail
            if pipe + n > cwnd:
                if n <= mss or cwnd - pipe < mss:
                    cwnd_limited = True
                    break
                n = cwnd - pipe
                n -= n % mss  # whole segments once cut
            room = wnd_end - snd_nxt
            if n > room:
                if room <= 0:
                    break
                n = room
            if n < mss and n != avail and n < half_window:
                # Sender-side silly window avoidance (RFC 9293 3.8.6.2.1).
                break
            if n == avail and n < mss and nagle and snd_nxt > snd_una:
                # Nagle: a small segment waits while data is unacknowledged.
                break
            end = snd_nxt + n
            if view_start <= snd_nxt and end <= view_end:
                parts: tuple[memoryview, ...] = (view[snd_nxt - view_start : end - view_start],)
            else:
                view, view_start = sq.buffer_at(snd_nxt)
                view_end = view_start + len(view)
                if end <= view_end:
                    parts = (view[snd_nxt - view_start : end - view_start],)
                else:
                    parts = sq.slices(snd_nxt, n)
            flags = _ACK
            if end == sq_end:
                flags = _ACK | _PSH
                if fin_queued:
                    flags = _ACK | _PSH | _FIN
            # The segment is built positionally (the seam's field order).
            out.append(
                (
                    TcpSegment(
                        lport,
                        rport,
                        snd_nxt & _MASK,
                        ack,
                        flags,
                        window,
                        0,
                        None,
                        None,
                        False,
                        sack,
                        ts,
                    ),
                    parts,
                )
            )
            pipe += n
            snd_nxt = end + 1 if flags & _FIN else end
        else:
            if fin_queued and snd_nxt == fin_seq:
                # A FIN on its own: everything before it is sent.
                out.append(
                    (
                        TcpSegment(
                            lport,
                            rport,
                            snd_nxt & _MASK,
                            ack,
                            _ACK | _FIN,
                            window,
                            0,
                            None,
                            None,
                            False,
                            sack,
                            ts,
                        ),
                        _NO_PARTS,
                    )
                )
                snd_nxt += 1
        if snd_nxt > first:
            self._bytes_sent += min(snd_nxt, sq_end) - first
            if self._rtt_seq < 0 and ts is None:
                # Karn: time one segment at a time (the first of this batch).
                self._rtt_seq = min(first + mss, sq_end)
                self._rtt_time = now
        self._snd_nxt = snd_nxt
        self._cwnd_limited = cwnd_limited

        if recovery == _FAST and sack_ok and not cwnd_limited:
            # RFC 6675 NextSeg rule 3: nothing new to send, so retransmit
            # un-SACKed data below HighSACK even if not yet deemed lost.
            self._retransmit(now, pipe, cwnd, mss, sack, window, ts, self._sb.high)

        sent = len(out) - emitted
        if sent:
            self._segments_sent += sent
            self._acked_now()
            if self._rto_at == _INF and self._snd_nxt > self._snd_una:
                self._rto_at = now + self._rtt.rto
            self._persist_at = _INF
        if (
            self._snd_nxt == self._snd_una
            and self._snd_nxt < sq_end
            and self._persist_at == _INF
            and self._rto_at == _INF
        ):
            # Data waits, nothing is in flight to bring an ACK: the window is
            # shut (or too small to use). Probe it (RFC 9293 3.8.6.1).
            self._persist_at = now + min(
                self._rtt.rto * (1 << self._persist_backoff), self._config.max_rto
            )
        return sent > 0

    def _retransmit(
        self,
        now: float,
        pipe: int,
        cwnd: int,
        mss: int,
        sack: tuple[tuple[int, int], ...],
        window: int,
        ts: tuple[int, int] | None,
        limit: int,
    ) -> int:
        """Retransmit holes from HighRxt up to ``limit`` while the pipe allows
        (the first one regardless, when forced); return the new pipe."""
        sb = self._sb
        sack_ok = self._sack_ok
        snd_una = self._snd_una
        fin_seq = self._fin_seq
        sq = self._sq
        while True:
            seq = self._rxt_nxt
            if seq < snd_una:
                seq = snd_una
            force = self._rxt_force
            if force:
                hole_limit = self._snd_nxt
            else:
                hole_limit = limit if limit < self._snd_nxt else self._snd_nxt
            if sack_ok:
                hole = sb.next_hole(seq, hole_limit)
            else:
                hole = (seq, hole_limit) if seq < hole_limit else None
            if hole is None:
                return pipe
            start, end = hole
            size = end - start
            if size > mss:
                size = mss
            if not force and pipe + size > cwnd:
                return pipe
            self._rxt_force = False
            flags = _ACK
            data = size
            if fin_seq >= 0 and start + size > fin_seq:
                data = fin_seq - start
                flags = _ACK | _PSH | _FIN if data else _ACK | _FIN
            elif start + size == sq.end:
                flags = _ACK | _PSH
            parts = sq.slices(start, data) if data > 0 else _NO_PARTS
            segment = TcpSegment(
                self._lport,
                self._rport,
                start & _MASK,
                self._rcv_nxt & _MASK,
                flags,
                window,
                0,
                None,
                None,
                False,
                sack,
                ts,
            )
            self._out.append((segment, parts))
            if start == snd_una:
                # The oldest segment went out again: give it a whole RTO to be
                # acknowledged (Linux re-arms the timer here too).
                self._rto_at = now + self._rtt.rto
            self._rxt_nxt = start + size
            self._retransmits += 1
            self._bytes_retransmitted += data
            # Karn: a retransmission makes the timed segment's ACK ambiguous.
            self._rtt_seq = -1
            pipe += size

    def _pipe(self) -> int:
        """The bytes in flight, as the recovery mode estimates them (see module docs)."""
        snd_una = self._snd_una
        flight = self._snd_nxt - snd_una
        recovery = self._recovery
        if recovery == _OPEN:
            if self._sack_ok:
                return flight - self._sb.sacked
            dup = self._dupacks if self._dupacks < 2 else 2
            return flight - dup * self._snd_mss
        if recovery == _FAST and not self._sack_ok:
            return flight
        sb = self._sb
        pipe = flight - sb.sacked
        rxt = self._rxt_nxt if self._rxt_nxt > snd_una else snd_una
        lost = self._lost_edge if self._lost_edge > snd_una else snd_una
        if rxt < lost:
            pipe -= (lost - rxt) - sb.sacked_between(rxt, lost)
        elif lost < rxt:
            pipe += (rxt - lost) - sb.sacked_between(lost, rxt)
        return pipe

    # ------------------------------------------------------------------
    # The application's calls
    # ------------------------------------------------------------------

    def send(self, buffers: Sequence[Buffer]) -> int:
        """Queue ``buffers`` by reference, as many bytes as ``send_space`` allows
        (the last one taken may be taken in part); return the bytes taken.

        The connection keeps views of the buffers until a
        :class:`BuffersReleased` event says otherwise: do not modify them
        before. Empty buffers are skipped (not taken, not released).
        """
        state = self._state
        if state not in (SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT) or self._fin_queued:
            raise TcpStateError(self._why_no_send())
        space = self.send_space
        taken = 0
        sq = self._sq
        for buffer in buffers:
            if space <= 0:
                break
            view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
            if view.ndim != 1 or view.format not in ("B", "b", "c"):
                view = view.cast("B")
            size = len(view)
            if size == 0:
                continue
            if size > space:
                view = view[:space]
                size = space
            sq.append(view)
            space -= size
            taken += size
        return taken

    def _why_no_send(self) -> str:
        if self._fin_queued:
            return "cannot send: the sending side was shut down (shutdown_write or close)"
        if self._error is not None:
            return f"cannot send: {self._error}"
        return f"cannot send in state {TcpState(self._state).name}"

    def consumed(self, nbytes: int) -> None:
        """The application has used ``nbytes`` more of the received data: the
        receive window reopens by that much (a window update follows when it
        grew enough to matter: RFC 1122's receiver SWS rule, and Linux's
        "at least doubled")."""
        if nbytes < 0 or nbytes > self._rcv_held:
            raise ValueError(
                f"consumed({nbytes}): only {self._rcv_held} received bytes are unconsumed"
            )
        window = self._rcv_adv - self._rcv_nxt
        self._rcv_held -= nbytes
        if self._state in _RECEIVING:
            free = self._rcv_buf - self._rcv_held
            grow = self._rcv_nxt + free - self._rcv_adv
            if grow >= self._sws_threshold and free >= 2 * window:
                self._ack_now = True

    def shutdown_write(self, now: float) -> None:
        """Send a FIN after the queued data: no more ``send`` (half-close).

        In SYN_SENT or SYN_RECEIVED the FIN waits for the handshake. Calling
        it again, or in a state past it, does nothing.
        """
        state = self._state
        if self._fin_queued or state not in (SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT):
            return
        self._fin_queued = True
        self._fin_seq = self._sq.end
        if state == ESTABLISHED:
            self._state = FIN_WAIT_1
        elif state == CLOSE_WAIT:
            self._state = LAST_ACK

    def close(self, now: float) -> None:
        """Close both directions: FIN after the queued data, and received data
        is no longer wanted.

        As Linux does: if received data was never consumed, or more arrives
        after this, the connection is reset instead (RFC 2525's "failure to
        RST on close with data pending"); a connection that never completed
        its handshake just ends; one left in FIN_WAIT_2 ends after
        ``fin_wait2_timeout``.
        """
        state = self._state
        if self._app_closed or state == CLOSED:
            return
        self._app_closed = True
        if state == SYN_SENT:
            self._terminate(None)
            return
        if self._rcv_held > 0 or self._ooo.nbytes:
            self.abort(now)
            return
        self.shutdown_write(now)
        if self._state == FIN_WAIT_2:
            self._close_at = now + self._config.fin_wait2_timeout

    def abort(self, now: float) -> None:
        """Reset the connection: RST to the peer (if it knows us), drop
        everything, end (a :class:`Closed` event, no error event)."""
        state = self._state
        if state == CLOSED:
            return
        if state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._emit_rst(self._snd_nxt, self._rcv_nxt)
        self._app_closed = True
        self._terminate(None)

    def _terminate(self, event: Event | None, error: str | None = None) -> None:
        """Enter CLOSED: release every buffer, report, stop every timer."""
        count, nbytes = self._sq.release_all()
        if count:
            self._event(BuffersReleased(count, nbytes))
        if event is not None:
            self._event(event)
        if error is not None:
            self._error = error
        self._state = CLOSED
        self._rto_at = self._delack_at = self._persist_at = _INF
        self._keepalive_at = self._close_at = _INF
        self._ack_now = False
        self._event(Closed())
        if self._listener is not None:
            self._listener._forget(self)
            self._listener = None

    # ------------------------------------------------------------------
    # Timers
    # ------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """Run the timers that are due at ``now`` (retransmission, delayed
        ACK, persist, keepalive, TIME_WAIT / FIN_WAIT_2)."""
        if now >= self._rto_at:
            self._on_rto(now)
        if now >= self._delack_at:
            self._delack_at = _INF
            self._ack_now = True
        if now >= self._persist_at:
            self._on_persist(now)
        if now >= self._keepalive_at:
            self._on_keepalive(now)
        if now >= self._close_at:
            self._terminate(None)

    def _on_rto(self, now: float) -> None:
        config = self._config
        state = self._state
        self._rto_at = _INF
        if state in (SYN_SENT, SYN_RECEIVED):
            if self._retries >= config.syn_retries:
                what = "SYN" if state == SYN_SENT else "SYN-ACK"
                reason = (
                    f"connection timed out: no answer to the {what} after "
                    f"{self._retries} retransmissions ({now - self._rto_first_at:.1f} s)"
                )
                self._terminate(TimedOut(reason), reason)
                return
            self._retries += 1
            self._retransmits += 1
            self._timeouts += 1
            self._syn_retransmitted = True
            self._rtt.back_off()
            self._emit_syn(now)
            self._rto_at = now + self._rtt.rto
            return
        if self._snd_nxt == self._snd_una or state not in _SENDING:
            return
        if self._retries >= config.retries:
            reason = (
                f"connection timed out: no acknowledgement after {self._retries} "
                f"retransmissions ({now - self._rto_first_at:.1f} s)"
            )
            self._terminate(TimedOut(reason), reason)
            return
        if self._retries == 0:
            self._rto_first_at = now
        self._retries += 1
        self._timeouts += 1
        snd_una = self._snd_una
        sb = self._sb
        if sb.starts_at(snd_una):
            # The receiver reneged (a SACKed range at the cumulative ACK).
            sb.clear()
        # One congestion episode lowers ssthresh once: not again when a fast
        # recovery or an earlier timeout is still under way (RFC 5681 3.1;
        # Linux's tcp_enter_loss).
        first = self._recovery == _OPEN
        self._cc.on_timeout(now, self._snd_nxt - snd_una, first)
        self._recovery = _LOSS
        self._recover = self._snd_nxt
        self._lost_edge = self._snd_nxt
        self._rxt_nxt = snd_una
        self._rxt_force = True
        self._dupacks = 0
        self._rtt_seq = -1
        self._rtt.back_off()
        self._rto_at = now + self._rtt.rto

    def _on_persist(self, now: float) -> None:
        self._persist_at = _INF
        if self._state not in _SENDING or self._snd_nxt != self._snd_una:
            return
        avail = self._sq.end - self._snd_nxt
        if avail <= 0:
            return
        usable = self._snd_una + self._snd_wnd - self._snd_nxt
        if usable > 0:
            # The window is open but too small for silly window avoidance:
            # the override timeout (RFC 9293 3.8.6.2.1) sends what fits.
            n = min(usable, avail, self._snd_mss)
            end = self._snd_nxt + n
            flags = _ACK | _PSH if end == self._sq.end else _ACK
            if flags & _PSH and self._fin_queued:
                flags |= _FIN
            self._emit(self._snd_nxt, flags, self._sq.slices(self._snd_nxt, n), now)
            self._bytes_sent += n
            self._snd_nxt = end + (1 if flags & _FIN else 0)
            self._rto_at = now + self._rtt.rto
            return
        if self._probes >= self._config.retries:
            reason = (
                f"connection timed out: the peer's window stayed shut through "
                f"{self._probes} unanswered zero-window probes"
            )
            self._terminate(TimedOut(reason), reason)
            return
        # A zero-window probe as Linux sends it: an old sequence number and no
        # data, which the peer must answer with an ACK carrying its window.
        self._probes += 1
        self._zero_window_probes += 1
        self._emit(self._snd_una - 1, _ACK, _NO_PARTS, now)
        self._persist_backoff += 1
        self._persist_at = now + min(
            self._rtt.rto * (1 << self._persist_backoff), self._config.max_rto
        )

    def _on_keepalive(self, now: float) -> None:
        config = self._config
        self._keepalive_at = _INF
        if self._state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2):
            return
        if self._snd_nxt != self._snd_una or self._sq.end > self._snd_nxt:
            # Data in flight or waiting: retransmission or probing covers it.
            self._keepalive_at = now + config.keepalive_idle
            return
        due = self._last_rx + config.keepalive_idle
        if self._ka_probes == 0 and now < due:
            # Something arrived since the timer was set: idle from then on.
            # (Compared as the deadline is computed: now - last_rx < idle may
            # hold while last_rx + idle == now, re-arming at the same instant.)
            self._keepalive_at = due
            return
        if self._ka_probes >= config.keepalive_count:
            reason = f"connection timed out: {self._ka_probes} keepalive probes went unanswered"
            self._emit_rst(self._snd_nxt, self._rcv_nxt)
            self._terminate(TimedOut(reason), reason)
            return
        self._ka_probes += 1
        self._keepalive_probes += 1
        self._emit(self._snd_una - 1, _ACK, _NO_PARTS, now)
        self._keepalive_at = now + config.keepalive_interval

    # ------------------------------------------------------------------
    # Receiving
    # ------------------------------------------------------------------

    def on_segment(self, segment: TcpSegment, now: float) -> None:
        """Process a segment from the peer (RFC 9293 3.10.7).

        Hot path. Header prediction first (Van Jacobson's, as Linux's
        tcp_rcv_established has it): in ESTABLISHED -- or half-closed:
        FIN_WAIT_1 unless the segment acknowledges our FIN (a change of
        state), FIN_WAIT_2, and CLOSE_WAIT for ACKs only -- a segment with
        only ACK set, at exactly RCV.NXT, acknowledging within
        what we sent, without SACK blocks, with an in-order timestamp, while
        nothing waits for reassembly and no loss is being recovered, is the
        common case of a bulk transfer -- the next data segment, or the ACK of
        ours -- and takes a straight path that skips every check it cannot
        fail. Anything else goes through all of RFC 9293's steps.
        """
        self._segments_received += 1
        state = self._state
        if (
            state in _PREDICTED
            and segment.flags & _CONTROL == _ACK
            and not segment.sack_blocks
            and self._recovery == _OPEN
            and not self._ooo.nbytes
            and self._ooo_fin < 0
            and not self._app_closed
        ):
            rcv_nxt = self._rcv_nxt
            if segment.seq == rcv_nxt & _MASK:
                ts = segment.timestamp
                if self._ts_ok:
                    if ts is None or ((ts[0] - self._ts_recent) & _MASK) >= _HALF:
                        self._on_synchronized(segment, now, state)
                        return
                    tsecr = ts[1]
                    if rcv_nxt == self._last_ack_sent:
                        # RFC 7323 4.3 (SEG.SEQ <= Last.ACK.sent).
                        self._ts_recent = ts[0]
                        self._ts_recent_at = now
                else:
                    tsecr = 0
                snd_una = self._snd_una
                ack = snd_una + ((segment.ack - snd_una + _HALF) & _MASK) - _HALF
                payload = segment.payload
                plen = len(payload)
                if (
                    snd_una <= ack <= self._snd_nxt
                    and rcv_nxt + plen <= self._rcv_adv
                    and not (plen and state == CLOSE_WAIT)
                    and not (state == FIN_WAIT_1 and ack > self._fin_seq)
                ):
                    self._fast_path(segment, now, rcv_nxt, ack, payload, plen, tsecr)
                    return
        if state >= SYN_RECEIVED:
            self._on_synchronized(segment, now, state)
        elif state == SYN_SENT:
            self._on_syn_sent(segment, now)

    def _fast_path(
        self,
        segment: TcpSegment,
        now: float,
        rcv_nxt: int,
        ack: int,
        payload: memoryview,
        plen: int,
        tsecr: int,
    ) -> None:
        """The predicted segment: an ACK and/or in-order data (see on_segment)."""
        self._last_rx = now
        self._ka_probes = 0
        self._probes = 0
        window = segment.window << self._snd_wscale
        snd_una = self._snd_una
        if ack > snd_una:
            self._on_new_ack(ack, now, tsecr)
        elif (
            not plen
            and ack == snd_una
            and self._snd_nxt > snd_una
            and window == self._snd_wnd
            and not self._sack_ok
        ):
            self._on_dupack(now)
        # The window update: SND.WL1 <= RCV.NXT and SND.WL2 <= SND.UNA <= ack
        # hold by construction here, so RFC 9293's guard always passes.
        self._snd_wnd = window
        self._snd_wl1 = rcv_nxt
        self._snd_wl2 = ack
        if window > self._max_snd_wnd:
            self._max_snd_wnd = window
        if window:
            self._persist_backoff = 0
        if not plen:
            return
        # In-order data: hand the view up, and decide on the ACK.
        event = self._rx_event
        if event is None:
            event = DataReceived([payload])
            self._events.append(event)
            self._rx_event = event
        else:
            event.data.append(payload)
        self._rcv_nxt = rcv_nxt + plen
        self._rcv_held += plen
        self._bytes_received += plen
        if plen > self._rcv_mss:
            self._rcv_mss = plen if plen < self._our_mss else self._our_mss
        unacked = self._unacked_rx + plen
        self._unacked_rx = unacked
        if unacked >= 2 * self._rcv_mss or self._config.delayed_ack == 0.0:
            self._ack_now = True
        elif self._delack_at == _INF:
            self._delack_at = now + self._config.delayed_ack

    def _on_syn_sent(self, segment: TcpSegment, now: float) -> None:
        flags = segment.flags
        iss = self._iss
        ack = 0
        if flags & _ACK:
            ack = iss + ((segment.ack - iss + _HALF) & _MASK) - _HALF
            if ack <= iss or ack > self._snd_nxt:
                self._dropped += 1
                if not flags & _RST:
                    self._emit_rst(segment.ack, None)
                return
        if flags & _RST:
            if flags & _ACK:
                self._terminate(Reset(True, "connection refused"), "connection refused")
            else:
                self._dropped += 1
            return
        if not flags & _SYN:
            self._dropped += 1
            return
        self._take_syn_options(segment, now)
        self._last_rx = now
        if flags & _ACK:
            self._snd_una = ack
            self._snd_wnd = segment.window
            self._max_snd_wnd = segment.window
            self._snd_wl1 = self._rcv_nxt - 1
            self._snd_wl2 = ack
            self._rcv_adv = self._rcv_nxt + min(self._rcv_buf, 0xFFFF)
            self._sample_rtt_syn(segment, now)
            self._become_established(now)
            self._ack_now = True
        else:
            # Simultaneous open: answer the SYN with a SYN-ACK.
            self._state = SYN_RECEIVED
            self._snd_wnd = segment.window
            self._max_snd_wnd = segment.window
            self._snd_wl1 = self._rcv_nxt - 1
            self._snd_wl2 = iss
            self._emit_syn(now)
            self._rto_at = now + self._rtt.rto

    def _sample_rtt_syn(self, segment: TcpSegment, now: float) -> None:
        """RTT from the handshake: by timestamp, or (Karn) only if the SYN
        was never retransmitted."""
        if self._ts_ok and segment.timestamp is not None and segment.timestamp[1]:
            elapsed = (self._ts_now(now) - segment.timestamp[1]) & _MASK
            if elapsed < _HALF:
                self._rtt.sample(elapsed / 1000.0)
        elif not self._syn_retransmitted:
            self._rtt.sample(now - self._rtt_time)

    def _on_synchronized(self, segment: TcpSegment, now: float, state: int) -> None:
        """SYN_RECEIVED and every synchronized state (RFC 9293 3.10.7.4)."""
        flags = segment.flags
        rcv_nxt = self._rcv_nxt
        seq = rcv_nxt + ((segment.seq - rcv_nxt + _HALF) & _MASK) - _HALF
        payload = segment.payload
        plen = len(payload)
        self._last_rx = now
        self._ka_probes = 0

        # PAWS (RFC 7323 5.3): a timestamp older than TS.Recent is an old
        # duplicate; acknowledge and drop (not for RST).
        ts = segment.timestamp
        if (
            ts is not None
            and self._ts_ok
            and not flags & _RST
            and ((ts[0] - self._ts_recent) & _MASK) >= _HALF
        ):
            if now - self._ts_recent_at < _PAWS_IDLE:
                self._dropped += 1
                self._emit(self._snd_nxt, _ACK, _NO_PARTS, now)
                return
            # TS.Recent is too old to judge by; take the new one.
            self._ts_recent = ts[0]
            self._ts_recent_at = now

        # 1. Sequence acceptability, as Linux's tcp_sequence() judges it: the
        # segment must not end before what our last ACK covered, nor begin
        # beyond the window's right edge. RFC 9293's four cases are stricter
        # at both ends, and the right end deadlocks: when both windows are
        # full and segments were lost both ways, each side's pure ACKs carry
        # SEG.SEQ = SND.NXT, exactly the other's RCV.NXT + RCV.WND, which the
        # RFC refuses -- so neither side ever learns what the other received.
        # (Data beyond the window is cut off by _receive_data.)
        if (
            state == SYN_RECEIVED
            and flags & (_SYN | _ACK | _RST) == _SYN | _ACK
            and seq + 1 == rcv_nxt
        ):
            # Simultaneous open: the peer's SYN-ACK repeats its SYN (Linux
            # lets it through the same way); its ACK completes our side.
            flags &= ~_SYN
            seq = rcv_nxt
        window = self._rcv_adv - rcv_nxt
        if window < 0:
            window = 0
        seg_len = plen + (flags & _SYN != 0) + (flags & _FIN)
        if seq + seg_len < self._last_ack_sent or seq > rcv_nxt + window:
            self._dropped += 1
            if flags & _RST:
                return
            if flags & _SYN and state != SYN_RECEIVED:
                # A SYN, in the window or not: challenge ACK (RFC 5961 4.2).
                self._challenge_ack(now)
            else:
                self._emit(self._snd_nxt, _ACK, _NO_PARTS, now)
            return

        # 2. RST (RFC 5961 3.2): only an exact match resets; in the window,
        # a challenge ACK (a blind attacker cannot guess rcv_nxt exactly).
        if flags & _RST:
            if seq != rcv_nxt:
                self._challenge_ack(now)
                return
            self._on_reset(state)
            return

        # 4. SYN in a synchronized state (RFC 5961 4.2): challenge ACK, drop.
        if flags & _SYN:
            self._dropped += 1
            if state == SYN_RECEIVED:
                self._emit_syn(now)
            else:
                self._challenge_ack(now)
            return

        # 5. ACK.
        if not flags & _ACK:
            self._dropped += 1
            return
        if (
            ts is not None
            and self._ts_ok
            and seq <= self._last_ack_sent
            and ((ts[0] - self._ts_recent) & _MASK) < _HALF
        ):
            # RFC 7323 4.3: TS.Recent follows the segment our last ACK was for.
            self._ts_recent = ts[0]
            self._ts_recent_at = now
        snd_una = self._snd_una
        ack = snd_una + ((segment.ack - snd_una + _HALF) & _MASK) - _HALF
        if state == SYN_RECEIVED:
            if not snd_una < ack <= self._snd_nxt:
                self._dropped += 1
                self._emit_rst(segment.ack, None)
                return
            if self._listener is not None and not self._listener._has_room(self):
                # The accept queue is full: ignore the ACK, as Linux does; the
                # SYN-ACK will be retransmitted and the peer will try again.
                self._dropped += 1
                self._listener._overflowed()
                return
            self._snd_una = ack
            self._snd_wnd = segment.window << self._snd_wscale
            self._max_snd_wnd = max(self._max_snd_wnd, self._snd_wnd)
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            self._sample_rtt_syn(segment, now)
            self._become_established(now)
            state = self._state
            snd_una = ack
        elif not self._on_ack(segment, seq, ack, plen, flags, now):
            return
        state = self._state
        if state == CLOSED:
            return

        # 7. Data.
        # (In CLOSE_WAIT and later the peer sent data after its FIN: ignored.)
        if plen and state in _RECEIVING:
            if self._app_closed and seq + plen > self._rcv_nxt:
                # Data for an application that closed: reset, as Linux does.
                self._emit_rst(self._snd_nxt, self._rcv_nxt + plen)
                reason = "connection reset: data arrived after close()"
                self._terminate(None, reason)
                return
            self._receive_data(seq, payload, now)

        # 8. FIN.
        if flags & _FIN or self._ooo_fin >= 0:
            self._receive_fin(seq + plen if flags & _FIN else self._ooo_fin, plen, now)

    def _on_reset(self, state: int) -> None:
        if state == SYN_RECEIVED:
            if self._passive:
                self._terminate(None, "connection reset by peer during the handshake")
            else:
                self._terminate(Reset(True, "connection refused"), "connection refused")
        elif state == TIME_WAIT:
            self._terminate(None)
        else:
            # Also in CLOSING and LAST_ACK: our data or FIN may never have
            # been acknowledged, and the application may be waiting for it
            # (Linux's tcp_reset reports ECONNRESET there too).
            reason = "connection reset by peer"
            self._terminate(Reset(False, reason), reason)

    def _on_ack(
        self, segment: TcpSegment, seq: int, ack: int, plen: int, flags: int, now: float
    ) -> bool:
        """The ACK field in a synchronized state; False if the segment is dropped.

        Hot path (every segment).
        """
        snd_una = self._snd_una
        snd_nxt = self._snd_nxt
        if ack > snd_nxt:
            # Acknowledges what we never sent (RFC 9293): ACK and drop.
            self._dropped += 1
            self._emit(snd_nxt, _ACK, _NO_PARTS, now)
            return False
        if ack < snd_una - self._max_snd_wnd:
            # Too old to be a duplicate (RFC 5961 5.2): challenge ACK, drop.
            self._dropped += 1
            self._challenge_ack(now)
            return False
        self._probes = 0
        newly_sacked = 0
        if self._sack_ok and segment.sack_blocks:
            newly_sacked = self._take_sack(segment.sack_blocks, ack)
        window = segment.window << self._snd_wscale
        if ack > snd_una:
            ts = segment.timestamp
            self._on_new_ack(ack, now, ts[1] if ts is not None and self._ts_ok else 0)
        elif ack == snd_una and snd_nxt > snd_una and plen == 0 and not flags & (_SYN | _FIN):
            # A duplicate ACK: RFC 5681's definition, or with SACK, RFC 6675's
            # (one that SACKs new data).
            if self._sack_ok:
                if newly_sacked:
                    self._on_dupack(now)
            elif window == self._snd_wnd:
                self._on_dupack(now)
        # Window update (RFC 9293 3.10.7.4: SND.WL1 / SND.WL2 guard against old segments).
        wl1 = self._snd_wl1
        if (wl1 < seq or (wl1 == seq and self._snd_wl2 <= ack)) and ack >= snd_una:
            self._snd_wnd = window
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            if window > self._max_snd_wnd:
                self._max_snd_wnd = window
            if window:
                self._persist_backoff = 0
        if self._recovery == _FAST and self._sack_ok:
            lost = self._sb.lost_edge((_DUP_THRESH - 1) * self._snd_mss, self._snd_una)
            if lost > self._lost_edge:
                self._lost_edge = lost
        # Our FIN acknowledged?
        if self._fin_seq >= 0 and self._snd_una > self._fin_seq:
            state = self._state
            if state == FIN_WAIT_1:
                self._state = FIN_WAIT_2
                if self._app_closed:
                    self._close_at = now + self._config.fin_wait2_timeout
            elif state == CLOSING:
                self._enter_time_wait(now)
            elif state == LAST_ACK:
                self._terminate(None)
                return False
        return True

    def _take_sack(self, blocks: tuple[tuple[int, int], ...], ack: int) -> int:
        """Add the peer's SACK blocks to the scoreboard; return the newly SACKed bytes."""
        snd_una = self._snd_una
        base = ack if ack > snd_una else snd_una
        snd_nxt = self._snd_nxt
        valid = []
        for left, right in blocks:
            start = base + ((left - base + _HALF) & _MASK) - _HALF
            end = start + ((right - left) & _MASK)
            # Only blocks above the cumulative ACK and within what was sent
            # (D-SACK blocks below it, and nonsense, are ignored).
            if base < start < end <= snd_nxt:
                valid.append((start, end))
        if not valid:
            return 0
        return self._sb.add(valid)

    def _on_new_ack(self, ack: int, now: float, tsecr: int) -> None:
        """The cumulative ACK advanced. Hot path."""
        snd_una = self._snd_una
        acked = ack - snd_una
        flight_before = self._snd_nxt - snd_una
        self._snd_una = ack
        self._bytes_acked += acked
        self._retries = 0
        count, nbytes = self._sq.release(ack)
        if count:
            self._event(BuffersReleased(count, nbytes))
        sb = self._sb
        if sb.sacked:
            sb.advance(ack)
        if self._rxt_nxt < ack:
            self._rxt_nxt = ack
        # RTT (RFC 6298 / RFC 7323 RTTM): by timestamp echo, else the timed segment.
        rtt = self._rtt
        if tsecr:
            elapsed = (int(now * 1000.0) + self._ts_offset - tsecr) & _MASK
            if elapsed < _HALF:
                rtt.sample(elapsed / 1000.0)
        elif self._rtt_seq >= 0 and ack >= self._rtt_seq:
            rtt.sample(now - self._rtt_time)
            self._rtt_seq = -1
        cc = self._cc
        recovery = self._recovery
        restart_timer = True
        if recovery == _OPEN:
            if self._cwnd_limited or flight_before + self._snd_mss > cc.cwnd:
                cc.on_ack(acked, now, rtt.srtt)
        elif ack >= self._recover:
            # Recovery is over.
            if recovery == _FAST and not self._sack_ok:
                # RFC 6582 step 5, first option: deflate the window.
                flight = self._snd_nxt - ack
                cc.cwnd = min(cc.ssthresh, max(flight, self._snd_mss) + self._snd_mss)
            elif recovery == _LOSS:
                cc.on_ack(acked, now, rtt.srtt)
            self._recovery = _OPEN
        elif recovery == _FAST:
            if not self._sack_ok:
                # NewReno partial ACK (RFC 6582 step 4): retransmit the next
                # hole now, deflate by what was acknowledged, add one back.
                self._rxt_force = True
                self._rxt_nxt = ack
                self._lost_edge = ack
                cwnd = cc.cwnd - acked
                if acked >= self._snd_mss:
                    cwnd += self._snd_mss
                cc.cwnd = max(cwnd, self._snd_mss)
                self._partial_acks += 1
                # Only the first partial ACK restarts the timer ("impatient").
                restart_timer = self._partial_acks == 1
        else:
            # Slow start during loss recovery after an RTO.
            cc.on_ack(acked, now, rtt.srtt)
        self._dupacks = 0
        if ack == self._snd_nxt:
            self._rto_at = _INF
        elif restart_timer:
            self._rto_at = now + rtt.rto

    def _on_dupack(self, now: float) -> None:
        self._dupacks += 1
        self._dup_acks_received += 1
        recovery = self._recovery
        if recovery == _OPEN:
            # (RFC 6582's guard against a second recovery for the same
            # window, "the ACK must cover more than recover", holds by
            # construction: a recovery ends only once SND.UNA reaches recover.)
            if self._dupacks >= _DUP_THRESH:
                self._enter_fast_recovery(now)
            elif self._sack_ok:
                lost = self._sb.lost_edge((_DUP_THRESH - 1) * self._snd_mss, self._snd_una)
                if lost > self._snd_una:
                    self._enter_fast_recovery(now)
        elif recovery == _FAST and not self._sack_ok:
            # RFC 6582 step 3: each further duplicate ACK inflates the window.
            self._cc.cwnd += self._snd_mss

    def _enter_fast_recovery(self, now: float) -> None:
        snd_una = self._snd_una
        mss = self._snd_mss
        cc = self._cc
        self._fast_recoveries += 1
        self._recovery = _FAST
        self._recover = self._snd_nxt
        self._partial_acks = 0
        flight = self._snd_nxt - snd_una
        cc.on_congestion(now, flight)
        self._rxt_nxt = snd_una
        self._rxt_force = True
        if self._sack_ok:
            self._lost_edge = self._sb.lost_edge((_DUP_THRESH - 1) * mss, snd_una)
        else:
            # NewReno: retransmit one segment now; inflate by the three
            # segments that left the network (RFC 6582 step 2).
            self._lost_edge = snd_una
            cc.cwnd = cc.ssthresh + 3 * mss

    def _receive_data(self, seq: int, payload: memoryview, now: float) -> None:
        """Take in-window data: deliver it in order, or hold it out of order.

        Hot path (every data segment).
        """
        rcv_nxt = self._rcv_nxt
        end = seq + len(payload)
        if seq < rcv_nxt:
            payload = payload[rcv_nxt - seq :]
            seq = rcv_nxt
        edge = self._rcv_adv
        if end > edge:
            payload = payload[: edge - seq]
            end = edge
        size = end - seq
        if size <= 0:
            self._ack_now = True
            return
        if seq == rcv_nxt:
            # In order: hand the view up.
            event = self._rx_event
            if event is None:
                event = DataReceived([payload])
                self._events.append(event)
                self._rx_event = event
            else:
                event.data.append(payload)
            rcv_nxt = end
            self._rcv_held += size
            self._bytes_received += size
            if self._ooo.nbytes:
                ready, rcv_nxt = self._ooo.pop_ready(rcv_nxt)
                for view in ready:
                    event.data.append(view)
                    self._rcv_held += len(view)
                    self._bytes_received += len(view)
                self._sack_recent = [b for b in self._sack_recent if b[0] > rcv_nxt]
                # A segment that fills a hole is acknowledged at once (RFC 5681 4.2).
                self._ack_now = True
            self._rcv_nxt = rcv_nxt
            # Delayed ACK: every second full-sized segment at once, else a timer.
            if size > self._rcv_mss:
                self._rcv_mss = size if size < self._our_mss else self._our_mss
            self._unacked_rx += size
            if self._unacked_rx >= 2 * self._rcv_mss or self._config.delayed_ack == 0.0:
                self._ack_now = True
            elif self._delack_at == _INF:
                self._delack_at = now + self._config.delayed_ack
            return
        # Out of order: hold it, and send a duplicate ACK (with SACK) now.
        self._ooo_received += 1
        block = self._ooo.insert(seq, payload)
        if block is not None:
            start = block[0]
            self._sack_recent = [block] + [
                b for b in self._sack_recent if b[1] < start or b[0] > block[1]
            ]
        self._emit(self._snd_nxt, _ACK, _NO_PARTS, now)

    def _receive_fin(self, fin_seq: int, plen: int, now: float) -> None:
        """The peer's FIN at ``fin_seq``: take it if all data before it is in
        (``plen``: the data the segment carried)."""
        if fin_seq < self._rcv_nxt:
            # A FIN we have: our ACK of it was lost. Acknowledge again, and in
            # TIME_WAIT restart the 2 MSL timer (RFC 9293 3.10.7.4).
            self._ack_now = True
            if self._state == TIME_WAIT:
                self._close_at = now + self._config.time_wait
            return
        if fin_seq > self._rcv_nxt:
            if self._ooo_fin < 0:
                self._ooo_fin = fin_seq
                if not plen:
                    # Out of order and alone: a duplicate ACK, as for data
                    # (with data, _receive_data sent it).
                    self._ack_now = True
            return
        self._ooo_fin = -1
        state = self._state
        if state not in _RECEIVING:
            return
        self._rcv_nxt += 1
        self._ack_now = True
        self._event(EndOfStream())
        if state == ESTABLISHED:
            self._state = CLOSE_WAIT
        elif state == FIN_WAIT_1:
            if self._snd_una > self._fin_seq >= 0:
                self._enter_time_wait(now)
            else:
                self._state = CLOSING
        else:
            self._enter_time_wait(now)

    def _enter_time_wait(self, now: float) -> None:
        self._state = TIME_WAIT
        self._rto_at = self._persist_at = self._keepalive_at = _INF
        self._close_at = now + self._config.time_wait
