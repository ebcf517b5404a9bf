"""Closing a connection: active, passive and simultaneous close, half-close,
TIME_WAIT, FIN retransmission, and what close() does with unread data
(RFC 9293 3.6 and 3.10.7.4, RFC 6191, RFC 2525; Linux's behaviour)."""

from __future__ import annotations

import pytest

from shardio_net.native.tcp import TcpConfig, TcpStateError
from shardio_net.native.wire.tcp import SYN

from .tcp_script import CONNECT, CONNECT_PLAIN, PEER_ISN, Script, segment

NO_TS = TcpConfig(timestamps=False)


def test_active_close_goes_through_fin_wait_and_time_wait_to_closed() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0    state FIN_WAIT_1
        +0.1  < . 1:1(0) ack 2 win 1000
        +0    state FIN_WAIT_2
        +0    timer none      # a half-close waits for the peer's FIN as long as it takes
        +0.1  < F. 1:1(0) ack 2 win 1000
        +0    > . 2:2(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state TIME_WAIT
        +0    timer 60.3
        60.29 state TIME_WAIT
        60.3  event Closed
        +0    state CLOSED
        +0    timer none
        """
    )


def test_passive_close_goes_through_close_wait_and_last_ack_to_closed() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < F. 1:1(0) ack 1 win 1000
        +0    > . 1:1(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state CLOSE_WAIT
        +0    send 100                     # the other direction is still open
        +0    > P. 1:101(100) ack 2 win 32768
        +0    shutdown
        +0    > F. 101:101(0) ack 2 win 32768
        +0    state LAST_ACK
        +0.1  < . 2:2(0) ack 102 win 1000
        +0    event BuffersReleased 1 100
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        """
    )


def test_simultaneous_close_goes_through_closing_to_time_wait() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0.05 < F. 1:1(0) ack 1 win 1000      # the peer's FIN crosses ours
        +0    > . 2:2(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state CLOSING
        +0.05 < . 2:2(0) ack 2 win 1000
        +0    state TIME_WAIT
        +60   event Closed
        """
    )


def test_a_fin_acknowledging_our_fin_goes_from_fin_wait_1_straight_to_time_wait() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0.1  < F. 1:1(0) ack 2 win 1000
        +0    > . 2:2(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state TIME_WAIT
        """
    )


def test_half_closed_connection_still_receives_but_refuses_to_send() -> None:
    script = Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768
        +0    shutdown
        +0    > F. 101:101(0) ack 1 win 32768
        +0.1  < . 1:1(0) ack 102 win 1000
        +0    event BuffersReleased 1 100
        +0    state FIN_WAIT_2
        +0.1  < P. 1:1001(1000) ack 102 win 1000
        +0    event DataReceived 1000
        +0.04 > . 102:102(0) ack 1001 win 32643  # the edge moves by an MSS or not at all
        +0.1  < F. 1001:1001(0) ack 102 win 1000
        +0    > . 102:102(0) ack 1002 win 32643
        +0    event EndOfStream
        +0    state TIME_WAIT
        """
    )
    with pytest.raises(TcpStateError, match="sending side was shut down"):
        script.c.send([b"more"])


def test_data_and_fin_in_one_segment_and_fin_piggybacked_on_our_last_data() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100; shutdown
        +0    > FP. 1:101(100) ack 1 win 32768
        +0.1  < FP. 1:51(50) ack 102 win 1000
        +0    event BuffersReleased 1 100
        +0    event DataReceived 50
        +0    > . 102:102(0) ack 52 win 32762
        +0    event EndOfStream
        +0    state TIME_WAIT
        """
    )


def test_time_wait_acknowledges_a_repeated_fin_and_restarts_its_timer() -> None:
    Script(TcpConfig(timestamps=False, time_wait=5.0)).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0.1  < F. 1:1(0) ack 2 win 1000
        +0    > . 2:2(0) ack 2 win 32768
        +0    event EndOfStream
        +0    timer 5.2
        +2    < F. 1:1(0) ack 2 win 1000     # our last ACK was lost
        +0    > . 2:2(0) ack 2 win 32768
        +0    state TIME_WAIT
        +0    timer 7.2
        7.2   event Closed
        """
    )


def test_our_fin_is_retransmitted_when_its_ack_does_not_come() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0.3  > F. 1:1(0) ack 1 win 32768
        +0.6  > F. 1:1(0) ack 1 win 32768
        +0.1  < . 1:1(0) ack 2 win 1000
        +0    state FIN_WAIT_2
        +0    timer none
        """
    )


def test_a_fin_ahead_of_missing_data_waits_for_the_data() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < F. 101:101(0) ack 1 win 1000
        +0    > . 1:1(0) ack 1 win 32768
        +0    state ESTABLISHED
        +0.1  < . 1:101(100) ack 1 win 1000
        +0    event DataReceived 100
        +0    > . 1:1(0) ack 102 win 32756
        +0    event EndOfStream
        +0    state CLOSE_WAIT
        """
    )


def test_close_with_unread_data_resets_instead_of_closing() -> None:
    script = Script(NO_TS, auto_consume=False).run(
        CONNECT_PLAIN
        + """
        +0.1  < P. 1:101(100) ack 1 win 1000
        +0    event DataReceived 100
        +0    close
        +0    > R. 1:1(0) ack 101 win 0
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        """
    )
    assert script.c.error is None


def test_data_arriving_after_close_is_answered_with_rst() -> None:
    script = Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    close
        +0    > F. 1:1(0) ack 1 win 32768
        +0.1  < P. 1:101(100) ack 2 win 1000
        +0    > R. 2:2(0) ack 101 win 0
        +0    event Closed
        +0    state CLOSED
        """
    )
    assert script.c.error == "connection reset: data arrived after close()"


def test_a_closed_connection_gives_up_waiting_in_fin_wait_2() -> None:
    Script(TcpConfig(timestamps=False, fin_wait2_timeout=10.0)).run(
        CONNECT_PLAIN
        + """
        +0    close
        +0    > F. 1:1(0) ack 1 win 32768
        +0.1  < . 1:1(0) ack 2 win 1000
        +0    state FIN_WAIT_2
        +0    timer 10.2
        10.2  event Closed
        +0    state CLOSED
        """
    )


def test_close_before_the_handshake_completes_just_ends_the_connection() -> None:
    Script(NO_TS).run(
        """
        0     connect
        0     > S 0:0(0) <...>
        +0.1  close
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        """
    )


def test_abort_sends_rst_and_releases_the_unacknowledged_buffers() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100,200
        +0    > P. 1:301(300) ack 1 win 32768
        +0.05 abort
        +0    > R. 301:301(0) ack 1 win 0
        +0    event BuffersReleased 2 300
        +0    event Closed
        +0    timer none
        """
    )


def test_time_wait_lets_a_newer_syn_reopen_the_four_tuple() -> None:
    script = Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 win 32768
        +0.1  < F. 1:1(0) ack 2 win 1000
        +0    > . 2:2(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state TIME_WAIT
        """
    )
    assert script.c.time_wait_accepts(segment(SYN, PEER_ISN + 100_000))
    assert not script.c.time_wait_accepts(segment(SYN, PEER_ISN))


def test_time_wait_judges_a_new_syn_by_its_timestamp_when_there_are_timestamps() -> None:
    script = Script().run(
        CONNECT
        + """
        +0    shutdown
        +0    > F. 1:1(0) ack 1 <...>
        +0.1  < F. 1:1(0) ack 2 win 1000 <nop,nop,TS val 800 ecr 100>
        +0    > . 2:2(0) ack 2 <...>
        +0    event EndOfStream
        +0    state TIME_WAIT
        """
    )
    conn = script.c
    # An old sequence number but a newer timestamp: a new incarnation (RFC 6191).
    assert conn.time_wait_accepts(segment(SYN, PEER_ISN, timestamp=(900, 0)))
    assert not conn.time_wait_accepts(segment(SYN, PEER_ISN + 100_000, timestamp=(700, 0)))


def test_data_after_the_peers_fin_is_ignored() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < F. 1:1(0) ack 1 win 1000
        +0    > . 1:1(0) ack 2 win 32768
        +0    event EndOfStream
        +0    state CLOSE_WAIT
        +0.1  < P. 2:102(100) ack 1 win 1000
        +0    check s.bytes_received == 0
        """
    )
