"""Congestion control: slow start and NewReno's congestion avoidance
(RFC 5681), CUBIC's window curve, fast convergence and Reno-friendly region
(RFC 9438), driven by a scripted ACK clock and loss pattern; then the two
compared end to end over a long path with periodic loss, and the rule that
an application-limited sender does not grow its window."""

from __future__ import annotations

import pytest

from shardio_net.native.tcp import TcpConfig
from shardio_net.native.tcp.congestion import CongestionControl, Cubic, NewReno

from .tcp_pipe import Pipe, drop_data_at
from .tcp_script import CONNECT_PLAIN, Script

MSS = 1000


def ack_clock(
    cc: CongestionControl,
    duration: float,
    *,
    rtt: float = 0.1,
    per_ack: int = 2,
    losses: tuple[float, ...] = (),
) -> list[tuple[float, float]]:
    """Acknowledge one window per RTT, ``per_ack`` segments per ACK, for
    ``duration`` seconds, with a congestion event at each time in ``losses``;
    return (time, window in segments) after each RTT."""
    pending = sorted(losses)
    samples = []
    t = 0.0
    while t < duration - 1e-9:
        if pending and t >= pending[0] - 1e-9:
            pending.pop(0)
            cc.on_congestion(t, cc.cwnd)
        left = cc.cwnd
        acks = -(-left // (per_ack * MSS))
        for i in range(acks):
            acked = min(per_ack * MSS, left)
            cc.on_ack(acked, t + rtt * i / acks, rtt)
            left -= acked
        t += rtt
        samples.append((t, cc.cwnd / MSS))
    return samples


@pytest.mark.parametrize("algorithm", [NewReno, Cubic])
def test_slow_start_adds_what_each_ack_acknowledges_up_to_ssthresh(
    algorithm: type[NewReno] | type[Cubic],
) -> None:
    cc = algorithm(MSS, 10)
    assert cc.cwnd == 10 * MSS
    cc.on_ack(2 * MSS, 0.0, 0.1)
    cc.on_ack(10 * MSS, 0.0, 0.1)  # one ACK for a whole batch counts whole
    assert cc.cwnd == 22 * MSS
    cc.ssthresh = 25 * MSS
    cc.on_ack(10 * MSS, 0.0, 0.1)
    assert cc.cwnd == 25 * MSS


def test_newreno_adds_one_segment_per_window_acknowledged_in_congestion_avoidance() -> None:
    cc = NewReno(MSS, 10)
    cc.ssthresh = cc.cwnd
    for _ in range(5):
        cc.on_ack(2 * MSS, 0.0, 0.1)
    assert cc.cwnd == 11 * MSS
    samples = ack_clock(cc, 1.0)
    assert [round(w) for _, w in samples] == list(range(12, 22))


def test_newreno_halves_on_loss_and_drops_to_one_segment_on_timeout() -> None:
    cc = NewReno(MSS, 10)
    cc.cwnd = 40 * MSS
    cc.on_congestion(0.0, 40 * MSS)
    assert (cc.ssthresh, cc.cwnd) == (20 * MSS, 20 * MSS)
    cc.on_timeout(1.0, 20 * MSS, first=True)
    assert (cc.ssthresh, cc.cwnd) == (10 * MSS, MSS)
    # A second expiry of the same episode does not lower ssthresh again.
    cc.on_timeout(2.0, 1 * MSS, first=False)
    assert (cc.ssthresh, cc.cwnd) == (10 * MSS, MSS)
    # Never below two segments.
    cc.on_congestion(3.0, MSS)
    assert cc.ssthresh == 2 * MSS


def test_cubic_cuts_by_beta_and_climbs_back_to_w_max_after_k_seconds() -> None:
    cc = Cubic(MSS, 10)
    cc.cwnd = 100 * MSS
    cc.on_congestion(0.0, cc.cwnd)
    assert cc.cwnd == cc.ssthresh == 70 * MSS and cc.w_max == 100
    window = {round(t, 1): w for t, w in ack_clock(cc, 10.0)}
    k = (100 * (1 - 0.7) / 0.4) ** (1 / 3)
    assert cc.k == pytest.approx(k)  # 4.22 s
    at_k = round(k, 1)
    # Concave up to W_max: fast at first, slow near it...
    assert window[1.0] - 70 > 4 * (window[at_k] - window[round(at_k - 1.0, 1)])
    assert 98 <= window[at_k] <= 102
    # ...then convex beyond it: W(2K) = C K^3 + W_max = 130.
    assert window[round(2 * k, 1)] == pytest.approx(130, abs=3)


def test_cubic_fast_convergence_lowers_w_max_when_losing_below_the_last_one() -> None:
    cc = Cubic(MSS, 10)
    cc.cwnd = 100 * MSS
    cc.on_congestion(0.0, cc.cwnd)
    cc.cwnd = 90 * MSS
    cc.on_congestion(5.0, cc.cwnd)
    assert cc.w_max == pytest.approx(90 * (1 + 0.7) / 2)
    assert cc.cwnd == 63 * MSS


def test_cubic_is_never_slower_than_its_reno_friendly_estimate_on_short_rtts() -> None:
    # With a 1 ms RTT the cubic curve hardly moves in 100 RTTs; the window
    # must still grow at least as W_est does: alpha = 3(1 - 0.7)/(1 + 0.7)
    # segments per RTT.
    cc = Cubic(MSS, 10)
    cc.cwnd = 100 * MSS
    cc.on_congestion(0.0, cc.cwnd)
    samples = ack_clock(cc, 0.1, rtt=0.001)
    alpha = 3 * (1 - 0.7) / (1 + 0.7)
    assert samples[-1][1] >= 70 + alpha * 99 - 1


def test_cubic_keeps_a_larger_window_than_newreno_over_the_same_loss_pattern() -> None:
    # A 1000-segment window at 100 ms, a loss every 10 s: NewReno would need
    # 500 RTTs (50 s) to climb back by one segment per RTT; CUBIC's curve
    # returns to W_max in K = cbrt(1000 * 0.3 / 0.4) = 9.1 s.
    losses = (0.0, 10.0, 20.0)
    curves = {}
    for algorithm in (NewReno, Cubic):
        cc = algorithm(MSS, 10)
        cc.cwnd = cc.ssthresh = 1000 * MSS
        curves[algorithm.name] = [w for _, w in ack_clock(cc, 30.0, per_ack=10, losses=losses)]
    newreno, cubic = curves["newreno"], curves["cubic"]
    assert min(cubic) >= 690 and max(cubic[180:200]) > 990
    assert max(newreno) < 610 and min(newreno) < 310
    assert sum(cubic) > 1.8 * sum(newreno)


def test_cubic_moves_more_data_than_newreno_over_a_long_path_with_periodic_loss() -> None:
    acked = {}
    for name in ("newreno", "cubic"):
        drop = drop_data_at(1.0, 3.0, 5.0, 7.0, 9.0)
        config = TcpConfig(
            congestion_control=name,  # type: ignore[arg-type]
            receive_buffer=8 << 20,
            send_buffer=8 << 20,
        )
        pipe = Pipe(config, data_a=bytes(32 << 20), delay=0.1, wire=False, drop=drop)
        pipe.run(until=10.5)
        assert pipe.a.conn is not None
        stats = pipe.a.conn.statistics()
        # One segment lost each time: fast recovery, never a timeout.
        assert (stats.fast_recoveries, stats.timeouts) == (5, 0)
        acked[name] = stats.bytes_acked
    assert acked["cubic"] > 1.5 * acked["newreno"]


def test_an_application_limited_sender_does_not_grow_its_window() -> None:
    rounds = "".join(
        f"+0 send 100\n+0 > P. {1 + 100 * i}:{101 + 100 * i}(100) ack 1\n"
        f"+0.1 < . 1:1(0) ack {101 + 100 * i} win 1000\n+0 event BuffersReleased 1 100\n"
        for i in range(20)
    )
    Script(TcpConfig(timestamps=False)).run(
        CONNECT_PLAIN + rounds + "+0 check s.cwnd == 10 * 1460\n"
    )
