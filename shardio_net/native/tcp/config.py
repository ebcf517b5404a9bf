"""TcpConfig: every tunable of a connection, frozen, checked once.

The defaults are Linux's where Linux is the peer we must interoperate with
(initial RTO 1 s, minimum RTO 200 ms, maximum 120 s, 6 SYN retries, 15 data
retries, a 60 s TIME_WAIT, a 40 ms delayed ACK, an initial window of ten
segments, CUBIC), and the RFCs' where Linux has no opinion. A stack holds one
config and gives it to every connection it makes.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

__all__ = ["CongestionControlName", "TcpConfig"]

CongestionControlName = Literal["newreno", "cubic"]


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0 or (isinstance(value, float) and math.isinf(value)):
        raise ValueError(f"TcpConfig.{attribute.name} must be a positive number, not {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0 or (isinstance(value, float) and math.isinf(value)):
        raise ValueError(f"TcpConfig.{attribute.name} must be zero or more, not {value!r}")


def _int_at_least(least: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(
                f"TcpConfig.{attribute.name} must be an integer of at least {least}, not {value!r}"
            )

    return check


def _congestion_control(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("newreno", "cubic"):
        raise ValueError(
            f"TcpConfig.congestion_control must be 'newreno' or 'cubic', not {value!r}"
        )


@attrs.frozen
class TcpConfig:
    """The settings of a TCP connection (and of a listener's connections).

    Sizes are in bytes, times in seconds.
    """

    #: The IP MTU of the path: the MSS we announce is ``mtu - 40`` (IPv4 and
    #: TCP headers without options), and we never send larger segments.
    mtu: int = attrs.field(default=1500, validator=_int_at_least(68))
    #: The receive buffer: the most received bytes the application may leave
    #: unconsumed; the advertised window is what is left of it.
    receive_buffer: int = attrs.field(default=256 * 1024, validator=_int_at_least(1))
    #: The send buffer: how many bytes :meth:`TcpConnection.send` takes
    #: before the peer acknowledges some.
    send_buffer: int = attrs.field(default=256 * 1024, validator=_int_at_least(1))
    #: Nagle's algorithm (RFC 896): hold back a small segment while data is
    #: unacknowledged. Off, as the posix stack sets TCP_NODELAY.
    nagle: bool = False
    #: How long an ACK for in-order data may wait for a second segment or for
    #: data to ride on (RFC 9293 3.8.6.3); 0 acknowledges every segment at once.
    delayed_ack: float = attrs.field(default=0.04, validator=_non_negative)
    #: "newreno" (RFC 5681) or "cubic" (RFC 9438).
    congestion_control: CongestionControlName = attrs.field(
        default="cubic", validator=_congestion_control
    )
    #: The initial congestion window in segments (RFC 6928).
    initial_window: int = attrs.field(default=10, validator=_int_at_least(1))
    #: Offer and accept selective acknowledgements (RFC 2018).
    sack: bool = True
    #: Offer and accept timestamps (RFC 7323: RTTM and PAWS).
    timestamps: bool = True
    #: Offer and accept window scaling (RFC 7323).
    window_scaling: bool = True
    #: RTO before the first RTT measurement (RFC 6298 2.1).
    initial_rto: float = attrs.field(default=1.0, validator=_positive)
    #: The floor of the RTO's variance term: RTO = SRTT + max(4 RTTVAR, min_rto),
    #: as Linux computes it with TCP_RTO_MIN (see rtt.py).
    min_rto: float = attrs.field(default=0.2, validator=_positive)
    #: The ceiling of the RTO and of its exponential backoff (Linux's TCP_RTO_MAX).
    max_rto: float = attrs.field(default=120.0, validator=_positive)
    #: Retransmissions of a SYN (or SYN-ACK) before giving up (Linux's tcp_syn_retries).
    syn_retries: int = attrs.field(default=6, validator=_int_at_least(0))
    #: Retransmissions of data (RTO expiries in a row), or unanswered
    #: zero-window probes, before giving up (Linux's tcp_retries2).
    retries: int = attrs.field(default=15, validator=_int_at_least(0))
    #: How long TIME_WAIT lasts: 2 * MSL (Linux's TCP_TIMEWAIT_LEN is 60 s).
    time_wait: float = attrs.field(default=60.0, validator=_non_negative)
    #: How long a connection the application closed waits in FIN_WAIT_2 for
    #: the peer's FIN (Linux's tcp_fin_timeout).
    fin_wait2_timeout: float = attrs.field(default=60.0, validator=_positive)
    #: Send keepalive probes (RFC 9293 3.8.4) on an idle connection.
    keepalive: bool = False
    #: Idle time before the first keepalive probe.
    keepalive_idle: float = attrs.field(default=7200.0, validator=_positive)
    #: Time between unanswered keepalive probes.
    keepalive_interval: float = attrs.field(default=75.0, validator=_positive)
    #: Unanswered keepalive probes before the connection is declared dead.
    keepalive_count: int = attrs.field(default=9, validator=_int_at_least(1))
    #: The most out-of-order segments held for reassembly; more are dropped
    #: (and retransmitted by the peer). Each holds a whole received frame.
    max_out_of_order: int = attrs.field(default=1024, validator=_int_at_least(0))
    #: Challenge ACKs (RFC 5961) sent per second at most, per connection.
    challenge_ack_limit: int = attrs.field(default=100, validator=_int_at_least(1))
    #: Segmentation offload (TSO): the most payload bytes one segment of new
    #: data may carry for the device to cut into MSS-sized ones; 0 (the
    #: default) sends MSS-sized segments only. The stack sets it from a
    #: device that segments (a TAP device with ``tso``).
    segment_offload: int = attrs.field(default=0, validator=_int_at_least(0))

    @property
    def mss(self) -> int:
        """The MSS we announce: the MTU less the IPv4 and TCP headers."""
        return self.mtu - 40

    def __attrs_post_init__(self) -> None:
        if self.min_rto > self.max_rto:
            raise ValueError(
                f"TcpConfig.min_rto ({self.min_rto}) must not exceed max_rto ({self.max_rto})"
            )
