"""RSTs, challenge ACKs and unacceptable segments: RFC 9293 3.10.7.4's checks
with RFC 5961's hardening (exact-match RST, challenge ACKs for in-window RST
and any SYN, the acceptable ACK range), PAWS (RFC 7323 5), and the reply to
segments for no connection (RFC 9293 3.10.7.1)."""

from __future__ import annotations

import pytest

from shardio_net.native.tcp import TcpConfig, reset_for
from shardio_net.native.wire.tcp import ACK, FIN, RST, SYN

from .tcp_script import CONNECT, CONNECT_PLAIN, Script, segment

NO_TS = TcpConfig(timestamps=False)


def test_rst_with_exactly_the_expected_sequence_number_resets_the_connection() -> None:
    script = Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768
        +0.05 < R. 1:1(0) ack 1 win 0
        +0    event BuffersReleased 1 100
        +0    event Reset reset connection reset by peer
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        """
    )
    assert script.c.error == "connection reset by peer"


def test_rst_inside_the_window_but_not_exact_gets_a_challenge_ack_and_changes_nothing() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.05 < R 100:100(0) win 0
        +0    > . 1:1(0) ack 1 win 32768
        +0    state ESTABLISHED
        +0    check s.challenge_acks_sent == 1
        +0.05 < R 1:1(0) win 0               # the real peer, answering the challenge
        +0    event Reset reset
        +0    event Closed
        """
    )


def test_rst_outside_the_window_is_dropped_silently() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.05 < R 300000:300000(0) win 0     # beyond the 256 KiB window
        +0    < R -10:-10(0) win 0           # before it
        +0    state ESTABLISHED
        +0    check s.dropped == 2 and s.challenge_acks_sent == 0
        """
    )


def test_a_syn_on_an_established_connection_gets_a_challenge_ack_in_or_out_of_window() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.05 < S 500:500(0) win 65535
        +0    > . 1:1(0) ack 1 win 32768
        +0    < S 0:0(0) win 65535 <mss 1460>
        +0    > . 1:1(0) ack 1 win 32768
        +0    state ESTABLISHED
        +0    check s.challenge_acks_sent == 2
        """
    )


def test_challenge_acks_are_rate_limited_per_second() -> None:
    Script(TcpConfig(timestamps=False, challenge_ack_limit=2)).run(
        CONNECT_PLAIN
        + """
        +0.05 < R 100:100(0) win 0
        +0    > . 1:1(0) ack 1 win 32768
        +0    < R 200:200(0) win 0
        +0    > . 1:1(0) ack 1 win 32768
        +0    < R 300:300(0) win 0           # a third in the same second: no answer
        +0    check s.challenge_acks_sent == 2
        1.0   < R 400:400(0) win 0
        +0    > . 1:1(0) ack 1 win 32768
        """
    )


def test_an_ack_for_data_never_sent_is_answered_and_its_data_dropped() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.05 < P. 1:101(100) ack 500 win 1000
        +0    > . 1:1(0) ack 1 win 32768
        +0    check s.bytes_received == 0 and s.dropped == 1
        """
    )


def test_an_ack_older_than_the_largest_window_gets_a_challenge_ack() -> None:
    # RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.05 < P. 1:101(100) ack -70000 win 1000   # the SYN-ACK's window was 65535
        +0    > . 1:1(0) ack 1 win 32768
        +0    check s.challenge_acks_sent == 1 and s.bytes_received == 0
        +0    < P. 1:101(100) ack -60000 win 1000   # old but plausible: data accepted
        +0    event DataReceived 100
        +0.04 > . 1:1(0) ack 101 <...>
        """
    )


def test_data_outside_the_window_is_answered_with_a_duplicate_ack() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.05 < P. 300000:300100(100) ack 1 win 1000
        +0    > . 1:1(0) ack 1 win 32768
        +0    < P. 1:101(100) ack 1 win 1000
        +0    event DataReceived 100
        +0    < P. 1:101(100) ack 1 win 1000         # a duplicate: acknowledged at once
        +0    > . 1:1(0) ack 101 <...>
        # (The duplicate ends where our next ACK starts, so Linux's test lets
        # it in -- to find no new byte in it.)
        +0    check s.bytes_received == 100 and s.dropped == 1
        """
    )


def test_paws_drops_a_segment_with_an_older_timestamp_and_acknowledges() -> None:
    Script().run(
        CONNECT
        + """
        +0.1  < P. 1:101(100) ack 1 win 1000 <nop,nop,TS val 600 ecr 100>
        +0    > . 1:1(0) ack 1 <nop,nop,TS val 200 ecr 700>
        +0    check s.bytes_received == 0 and s.dropped == 1
        +0    < P. 1:101(100) ack 1 win 1000 <nop,nop,TS val 800 ecr 100>
        +0    event DataReceived 100
        +0.04 > . 1:1(0) ack 101 <nop,nop,TS val 240 ecr 800>
        """
    )


def test_paws_does_not_apply_to_rst() -> None:
    Script().run(
        CONNECT
        + """
        +0.1  < R 1:1(0) win 0 <nop,nop,TS val 5 ecr 0>
        +0    event Reset reset
        +0    event Closed
        """
    )


@pytest.mark.parametrize(
    ("close", "state"),
    [("shutdown", "FIN_WAIT_1"), ("", "ESTABLISHED")],
)
def test_rst_reports_a_reset_while_the_application_may_still_use_the_connection(
    close: str, state: str
) -> None:
    steps = f"+0 {close}\n+0 > F. 1:1(0) ack 1 win 32768\n" if close else ""
    Script(NO_TS).run(
        CONNECT_PLAIN
        + steps
        + f"""
        +0    state {state}
        +0.1  < R 1:1(0) win 0
        +0    event Reset reset
        +0    event Closed
        """
    )


def test_rst_in_last_ack_is_reported_and_in_time_wait_just_closes() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < F. 1:1(0) ack 1 win 1000
        +0    > . 1:1(0) ack 2 win 32768
        +0    event EndOfStream
        +0    shutdown
        +0    > F. 1:1(0) ack 2 win 32768
        +0    state LAST_ACK
        +0.1  < R 2:2(0) win 0
        +0    event Reset reset
        +0    event Closed
        +0    state CLOSED
        """
    )
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0.1  < F. 1:1(0) ack 2 win 1000
        +0    > . 2:2(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state TIME_WAIT
        +1    < R 2:2(0) win 0
        +0    event Closed
        +0    state CLOSED
        """
    )


def test_a_closed_port_answers_an_ack_with_rst_at_its_ack_number() -> None:
    reply = reset_for(segment(ACK, 1000, 5000))
    assert reply is not None
    assert (reply.flags, reply.seq, reply.src_port, reply.dst_port) == (RST, 5000, 40000, 80)


def test_a_closed_port_answers_a_syn_with_rst_ack_covering_it() -> None:
    reply = reset_for(segment(SYN, 2**32 - 1))
    assert reply is not None
    assert (reply.flags, reply.seq, reply.ack) == (RST | ACK, 0, 0)


def test_a_closed_port_counts_data_and_fin_in_the_rst_ack_number() -> None:
    reply = reset_for(segment(FIN, 1000, payload=b"x" * 10))
    assert reply is not None
    assert (reply.flags, reply.ack) == (RST | ACK, 1011)


def test_a_rst_is_never_answered() -> None:
    assert reset_for(segment(RST, 1000)) is None
    assert reset_for(segment(RST | ACK, 1000, 2000)) is None


def test_a_pure_ack_at_the_right_edge_of_our_window_is_accepted() -> None:
    # When both windows are full and segments were lost both ways, each
    # side's ACKs carry SEG.SEQ = RCV.NXT + RCV.WND of the other. RFC 9293's
    # letter refuses them and both sides deadlock; Linux's test takes them.
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768
        +0.1  < . 262145:262145(0) ack 101 win 1000     # 1 + 256 KiB: the edge
        +0    event BuffersReleased 1 100
        +0    < . 262146:262146(0) ack 101 win 1000     # one beyond: refused
        +0    > . 101:101(0) ack 1 win 32768
        +0    check s.dropped == 1
        """
    )
