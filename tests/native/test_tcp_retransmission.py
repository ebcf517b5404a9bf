"""Retransmission by timeout (RFC 6298): the RTO from measured RTTs, its
doubling, Karn's algorithm (and timestamps instead of it, RFC 7323 4), the
timer restarted by ACKs, the retry limit that ends the connection, and the
slow-start retransmission of everything outstanding after a timeout."""

from __future__ import annotations

from shardio_net.native.tcp import TcpConfig

from .tcp_script import CONNECT, CONNECT_NO_SACK, CONNECT_PLAIN, Script

NO_TS = TcpConfig(timestamps=False)


def test_rto_doubles_on_each_expiry_and_the_retry_limit_ends_the_connection() -> None:
    script = Script(TcpConfig(timestamps=False, retries=3)).run(
        CONNECT_PLAIN
        + """
        +0    check s.rto == 0.1 + 4 * 0.05
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768
        +0    timer 0.4
        0.4   > P. 1:101(100) ack 1 win 32768
        1.0   > P. 1:101(100) ack 1 win 32768
        2.2   > P. 1:101(100) ack 1 win 32768
        4.59  state ESTABLISHED
        4.6   event BuffersReleased 1 100
        +0    event TimedOut no acknowledgement after 3 retransmissions
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        +0    check s.timeouts == 3 and s.retransmits == 3
        """
    )
    assert script.c.error is not None and "timed out" in script.c.error


def test_the_backoff_stops_at_max_rto() -> None:
    Script(TcpConfig(timestamps=False, max_rto=1.0)).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768
        0.4   > P. 1:101(100) ack 1 win 32768
        1.0   > P. 1:101(100) ack 1 win 32768
        2.0   > P. 1:101(100) ack 1 win 32768
        3.0   > P. 1:101(100) ack 1 win 32768
        """
    )


def test_karn_no_rtt_sample_from_a_retransmitted_segment_and_the_backoff_stays() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768
        0.4   > P. 1:101(100) ack 1 win 32768
        +0.1  < . 1:1(0) ack 101 win 1000        # which copy does it answer? unknown
        +0    event BuffersReleased 1 100
        +0    check s.srtt == 0.1 and abs(s.rto - 0.6) < 1e-9
        +0    send 100
        +0    > P. 101:201(100) ack 1 win 32768
        +0    timer 1.1                          # the backed-off RTO still applies
        +0.05 < . 1:1(0) ack 201 win 1000        # a fresh segment: a valid sample
        +0    event BuffersReleased 1 100
        +0    check abs(s.srtt - (0.1 * 7 / 8 + 0.05 / 8)) < 1e-9
        +0    check abs(s.rto - (s.srtt + 4 * 0.05)) < 1e-9
        +0    timer none
        """
    )


def test_timestamps_measure_the_rtt_even_across_a_retransmission() -> None:
    Script().run(
        CONNECT
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1 <nop,nop,TS val 100 ecr 700>
        0.4   > P. 1:101(100) ack 1 <nop,nop,TS val 400 ecr 700>
        +0.05 < . 1:1(0) ack 101 win 1000 <nop,nop,TS val 800 ecr 400>
        +0    event BuffersReleased 1 100
        +0    check abs(s.srtt - (0.1 * 7 / 8 + 0.05 / 8)) < 1e-9 and s.rto < 0.3
        """
    )


def test_each_ack_of_new_data_restarts_the_retransmission_timer() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 4000
        +0    > . 1:1461(1460) ack 1 win 32768
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    > P. 2921:4001(1080) ack 1 win 32768
        +0    timer 0.4
        +0.1  < . 1:1(0) ack 1461 win 1000
        +0    check s.rto == 0.1 + 0.2   # 4 * RTTVAR = 0.15 is below the floor
        +0    timer 0.5
        0.5   > . 1461:2921(1460) ack 1 win 32768
        """
    )


def test_after_a_timeout_everything_outstanding_is_resent_in_slow_start() -> None:
    Script(TcpConfig(timestamps=False, congestion_control="newreno")).run(
        CONNECT_NO_SACK
        + """
        +0    send 4380
        +0    > . 1:1461(1460) ack 1 win 32768
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    > P. 2921:4381(1460) ack 1 win 32768
        0.4   > . 1:1461(1460) ack 1 win 32768
        +0    check s.recovery == "loss" and s.cwnd == 1460
        +0    check s.ssthresh == 2920   # max(FlightSize / 2, 2 SMSS)
        +0    check s.in_flight == 1460
        +0.1  < . 1:1(0) ack 1461 win 1000
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    > P. 2921:4381(1460) ack 1 win 32768
        +0    check s.cwnd == 2920
        +0.1  < . 1:1(0) ack 4381 win 1000
        +0    event BuffersReleased 1 4380
        +0    check s.recovery == "open" and s.timeouts == 1 and s.retransmits == 3
        +0    timer none
        """
    )


def test_a_timeout_with_a_cumulative_ack_jump_skips_what_the_peer_already_has() -> None:
    Script(NO_TS).run(
        CONNECT_NO_SACK
        + """
        +0    send 4380
        +0    > . 1:1461(1460) ack 1 win 32768
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    > P. 2921:4381(1460) ack 1 win 32768
        0.4   > . 1:1461(1460) ack 1 win 32768
        +0.1  < . 1:1(0) ack 4381 win 1000     # the peer held the rest
        +0    event BuffersReleased 1 4380
        +0    check s.recovery == "open" and s.retransmits == 1
        +0    timer none
        """
    )
