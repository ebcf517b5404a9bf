"""The retransmission timeout (RFC 6298): smoothed RTT, variance, backoff.

Each RTT sample ``R`` updates two estimators (RFC 6298 section 2)::

    first sample:  SRTT = R            RTTVAR = R / 2
    later:         RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|
                   SRTT   = 7/8 SRTT   + 1/8 R
    RTO = SRTT + max(G, 4 RTTVAR, min_rto), at most max_rto

``G`` is the clock granularity: 1 ms, the resolution of our timestamps.
Before the first sample the RTO is the configured initial one (1 s).

The floor ``min_rto`` (200 ms) applies to the *variance term*, as in Linux
(``__tcp_set_rto``: SRTT plus an RTTVAR that is at least TCP_RTO_MIN), not
to the whole RTO as RFC 6298 2.4 has it (with a floor of 1 s). On a path
with a steady RTT, RTTVAR shrinks towards zero and RFC 6298's formula with a
200 ms floor gives an RTO barely above the RTT: any ACK delayed a little --
or a fast retransmission, which needs a whole RTT to be acknowledged --
fires the timer spuriously. Linux's form keeps a margin of at least 200 ms
over the smoothed RTT.

When the timer expires the RTO doubles (exponential backoff, RFC 6298 5.5)
and stays doubled until a *valid* sample arrives. Which samples are valid is
the connection's business (Karn's algorithm: without timestamps, never time
a retransmitted segment; with timestamps every echoed TSval is unambiguous,
RFC 7323 section 4); this class only counts the backoff and clears it on a
sample.

If the SYN had to be retransmitted and no sample was ever taken, the RTO is
raised to 3 s when data transfer begins (RFC 6298 5.7): the path is slower
than the initial guess.
"""

from __future__ import annotations

import attrs

__all__ = ["RttEstimator"]

#: Clock granularity G: our timestamps count milliseconds.
GRANULARITY = 0.001
#: The RTO after a retransmitted SYN with no sample (RFC 6298 5.7).
SYN_FALLBACK_RTO = 3.0


@attrs.define(eq=False, slots=True)
class RttEstimator:
    """SRTT, RTTVAR and the backed-off RTO of one connection."""

    initial_rto: float
    min_rto: float
    max_rto: float
    #: Smoothed round-trip time (0 until the first sample).
    srtt: float = 0.0
    #: Round-trip time variation (0 until the first sample).
    rttvar: float = 0.0
    #: Whether a sample was taken yet.
    measured: bool = False
    #: How many times the RTO doubled since the last valid sample.
    backoff: int = 0
    #: The current retransmission timeout, backoff included (kept up to date
    #: by every change, since the connection reads it on every ACK).
    rto: float = attrs.field(init=False)
    _base: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._base = min(max(self.initial_rto, self.min_rto), self.max_rto)
        self.rto = self._base

    def sample(self, rtt: float) -> None:
        """Take a valid RTT measurement (seconds); clears the backoff."""
        if rtt < 0.0:
            rtt = 0.0
        if self.measured:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        else:
            self.srtt = rtt
            self.rttvar = rtt / 2
            self.measured = True
        base = self.srtt + max(GRANULARITY, 4.0 * self.rttvar, self.min_rto)
        self._base = self.rto = min(base, self.max_rto)
        self.backoff = 0

    def back_off(self) -> None:
        """The timer expired: double the RTO (up to ``max_rto``)."""
        if self._base * (1 << self.backoff) < self.max_rto:
            self.backoff += 1
        self.rto = min(self._base * (1 << self.backoff), self.max_rto)

    def syn_was_retransmitted(self) -> None:
        """The handshake needed a retransmission: if nothing was measured,
        start data transfer with an RTO of at least 3 s (RFC 6298 5.7)."""
        self.backoff = 0
        if not self.measured:
            self._base = min(max(self._base, SYN_FALLBACK_RTO), self.max_rto)
        self.rto = self._base
