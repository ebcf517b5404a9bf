"""Congestion control: NewReno (RFC 5681) and CUBIC (RFC 9438).

A controller owns two numbers, in bytes: the congestion window ``cwnd`` (how
much may be in flight) and the slow-start threshold ``ssthresh``. The
connection tells it four things and otherwise reads ``cwnd``:

``on_ack(acked, now, rtt)``
    ``acked`` new bytes were cumulatively acknowledged outside loss recovery,
    while the window was in use (an application-limited sender does not grow
    its window: RFC 7661's idea, Linux's ``tcp_is_cwnd_limited``). Slow start
    (``cwnd < ssthresh``) and congestion avoidance differ per algorithm.
``on_congestion(now, flight)``
    Loss was detected by duplicate ACKs or SACK: fast recovery begins. The
    controller lowers ``ssthresh`` and sets ``cwnd = ssthresh`` (RFC 6675's
    recovery then sends while the pipe is below ``cwnd``; NewReno recovery
    without SACK inflates the window itself, RFC 6582).
``on_timeout(now, flight, first)``
    The retransmission timer expired: ``cwnd`` drops to one segment (the loss
    window) and, on the first expiry of a series only, ``ssthresh`` is lowered
    (RFC 5681 section 3.1: a backed-off retransmission does not lower it again).

**Slow start** is the same for both: ``cwnd += acked`` per ACK, up to
``ssthresh`` (RFC 3465's appropriate byte counting without its L limit, as
Linux's ``tcp_slow_start`` does: a receiver that acknowledges a whole batch
of segments at once -- ours does, Linux's GRO does -- must not slow the
doubling down; RFC 5681's "at most one SMSS per ACK" would grow a window
acknowledged ten segments at a time by a tenth).

**NewReno's congestion avoidance** adds one SMSS per window of acknowledged
bytes (byte counting, RFC 5681 section 3.1), and a congestion event halves:
``ssthresh = max(FlightSize / 2, 2 * SMSS)``.

**CUBIC** grows along a cubic function of the time since the last congestion
event, independent of the RTT, which is what lets it fill long fat pipes
(RFC 9438 section 4; window in segments, time in seconds)::

    W_cubic(t) = C (t - K)^3 + W_max          C = 0.4
    K = cbrt((W_max - cwnd_epoch) / C)        (cwnd_epoch: cwnd when the epoch began)

``W_max`` is the window just before the last reduction; the curve is concave
up to it (a quick return to where loss happened, then a plateau) and convex
beyond (probing for more). Per ACK, the window moves a fraction of the way to
``W_cubic(t + RTT)`` (clamped to at most 1.5 times the window per RTT). A
Reno-friendly estimate ``W_est`` grows as NewReno would with CUBIC's gentler
decrease (``alpha = 3 (1 - beta) / (1 + beta)``, then 1 once it reaches
``W_max``), and the window never falls below it: in short-RTT networks, where
the cubic curve is slow, CUBIC is at least as fast as Reno. A congestion
event multiplies by ``beta = 0.7`` (not 0.5), and with *fast convergence* a
flow that lost before reaching its previous ``W_max`` lowers ``W_max``
further, releasing bandwidth to newer flows.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CongestionControl", "Cubic", "NewReno", "make_congestion_control"]

#: ssthresh before the first congestion event: "arbitrarily high" (RFC 5681).
INITIAL_SSTHRESH = 1 << 62


class CongestionControl(Protocol):
    """What the connection needs of a congestion controller."""

    name: str
    mss: int
    cwnd: int
    ssthresh: int

    def on_ack(self, acked: int, now: float, rtt: float) -> None: ...

    def on_congestion(self, now: float, flight: int) -> None: ...

    def on_timeout(self, now: float, flight: int, first: bool) -> None: ...


class NewReno:
    """RFC 5681 slow start and congestion avoidance, halving on loss."""

    __slots__ = ("_counted", "cwnd", "mss", "ssthresh")

    name = "newreno"

    def __init__(self, mss: int, initial_window: int) -> None:
        self.mss = mss
        self.cwnd = initial_window * mss
        self.ssthresh = INITIAL_SSTHRESH
        # Bytes acknowledged in congestion avoidance towards the next SMSS.
        self._counted = 0

    def on_ack(self, acked: int, now: float, rtt: float) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + acked, self.ssthresh)
            return
        self._counted += acked
        if self._counted >= self.cwnd:
            self._counted -= self.cwnd
            self.cwnd += mss

    def on_congestion(self, now: float, flight: int) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._counted = 0

    def on_timeout(self, now: float, flight: int, first: bool) -> None:
        if first:
            self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._counted = 0


class Cubic:
    """RFC 9438 CUBIC with fast convergence and the Reno-friendly region."""

    __slots__ = ("_carry", "_epoch", "_k", "_w_est", "_w_max", "cwnd", "mss", "ssthresh")

    name = "cubic"
    C = 0.4
    BETA = 0.7
    ALPHA = 3 * (1 - BETA) / (1 + BETA)

    def __init__(self, mss: int, initial_window: int) -> None:
        self.mss = mss
        self.cwnd = initial_window * mss
        self.ssthresh = INITIAL_SSTHRESH
        # Window before the last reduction, in segments (0: no reduction yet).
        self._w_max = 0.0
        # Start of the current congestion-avoidance epoch (-1: none yet).
        self._epoch = -1.0
        self._k = 0.0
        # The Reno-friendly estimate, in segments.
        self._w_est = 0.0
        # Growth below one byte, kept for the next ACK.
        self._carry = 0.0

    @property
    def w_max(self) -> float:
        """W_max in segments: the window before the last reduction."""
        return self._w_max

    @property
    def k(self) -> float:
        """K: seconds from the epoch's start until the curve reaches W_max."""
        return self._k

    def on_ack(self, acked: int, now: float, rtt: float) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + acked, self.ssthresh)
            return
        segments = self.cwnd / mss
        if self._epoch < 0:
            self._epoch = now
            if segments < self._w_max:
                self._k = ((self._w_max - segments) / self.C) ** (1 / 3)
            else:
                self._k = 0.0
                self._w_max = segments
            self._w_est = segments
        t = now - self._epoch
        acked_segments = acked / mss
        alpha = 1.0 if self._w_est >= self._w_max else self.ALPHA
        self._w_est += alpha * acked_segments / segments
        cubic_now = self.C * (t - self._k) ** 3 + self._w_max
        if cubic_now < self._w_est:
            growth = self._w_est - segments
        else:
            target = self.C * (t + rtt - self._k) ** 3 + self._w_max
            if target < segments:
                target = segments
            elif target > 1.5 * segments:
                target = 1.5 * segments
            growth = (target - segments) / segments * acked_segments
        if growth > 0:
            self._carry += growth * mss
            whole = int(self._carry)
            self.cwnd += whole
            self._carry -= whole

    def _reduce(self) -> float:
        segments = self.cwnd / self.mss
        if segments < self._w_max:
            self._w_max = segments * (1 + self.BETA) / 2
        else:
            self._w_max = segments
        self._epoch = -1.0
        self._carry = 0.0
        return segments

    def on_congestion(self, now: float, flight: int) -> None:
        segments = self._reduce()
        self.ssthresh = max(round(segments * self.BETA * self.mss), 2 * self.mss)
        self.cwnd = self.ssthresh

    def on_timeout(self, now: float, flight: int, first: bool) -> None:
        if first:
            segments = self._reduce()
            self.ssthresh = max(round(segments * self.BETA * self.mss), 2 * self.mss)
        self._epoch = -1.0
        self.cwnd = self.mss


def make_congestion_control(name: str, mss: int, initial_window: int) -> CongestionControl:
    """The controller ``name`` ("newreno" or "cubic") for a given SMSS."""
    if name == "cubic":
        return Cubic(mss, initial_window)
    return NewReno(mss, initial_window)
