"""Opening a connection: the three-way handshake, simultaneous open, option
negotiation, SYN retransmission, and the RSTs of SYN_SENT (RFC 9293 3.5,
3.10.7.3; RFC 7323; RFC 2018; RFC 6298 5.7; RFC 6928)."""

from __future__ import annotations

import pytest

from shardio_net.native.tcp import TcpConfig

from .tcp_script import CONNECT, CONNECT_PLAIN, Script

NO_TS = TcpConfig(timestamps=False)

# Each (our ISS, the peer's ISN): ordinary, and both about to wrap 2**32.
WRAPPING = [(1_000_000, 5_000_000), (2**32 - 1000, 2**32 - 2), (2**32 - 1, 0)]


@pytest.mark.parametrize(("iss", "peer_isn"), WRAPPING)
def test_active_open_sends_syn_with_every_option_and_is_established_by_the_syn_ack(
    iss: int, peer_isn: int
) -> None:
    Script(iss=iss, peer_isn=peer_isn).run(
        CONNECT
        + """
        +0    state ESTABLISHED
        +0    check s.snd_mss == 1448 and s.snd_wscale == 7 and s.rcv_wscale == 3
        +0    check s.timestamps and s.sack and s.snd_wnd == 65535  # a SYN-ACK is never scaled
        +0    timer none
        """
    )


@pytest.mark.parametrize(("iss", "peer_isn"), WRAPPING)
def test_data_flows_both_ways_across_the_sequence_number_wrap(iss: int, peer_isn: int) -> None:
    Script(NO_TS, iss=iss, peer_isn=peer_isn).run(
        CONNECT_PLAIN
        + """
        +0    send 3000
        +0    > . 1:1461(1460) ack 1 win 32768
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    > P. 2921:3001(80) ack 1 win 32768
        +0.1  < . 1:1001(1000) ack 3001 win 1000
        +0    event BuffersReleased 1 3000
        +0    event DataReceived 1000
        +0    < . 1001:2001(1000) ack 3001 win 1000
        +0    event DataReceived 1000
        +0    > . 3001:3001(0) ack 2001 win 32518  # 2000 bytes not yet consumed
        +0    check s.bytes_acked == 3000 and s.bytes_received == 2000
        """
    )


def test_passive_open_answers_the_syn_with_a_syn_ack_mirroring_the_offered_options() -> None:
    Script().run(
        """
        0     < S 0:0(0) win 29200 <mss 1400,sackOK,TS val 10 ecr 0,nop,wscale 5>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 0 ecr 10,nop,wscale 3>
        +0    state SYN_RECEIVED
        +0    timer 1.0
        +0.1  < . 1:1(0) ack 1 win 900 <nop,nop,TS val 110 ecr 0>
        +0    event Connected
        +0    state ESTABLISHED
        +0    check s.snd_mss == 1400 - 12 and s.snd_wnd == 900 << 5
        +0    check s.srtt == 0.1
        +0    timer none
        """
    )


def test_passive_open_without_options_uses_mss_536_and_no_scaling_timestamps_or_sack() -> None:
    Script().run(
        """
        0     < S 0:0(0) win 8192
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.1  < . 1:1(0) ack 1 win 8192
        +0    event Connected
        +0    check s.snd_mss == 536 and s.snd_wnd == 8192 and s.rcv_wscale == 0
        +0    check not s.timestamps and not s.sack
        +0    send 1000
        +0    > . 1:537(536) ack 1 win 65535
        +0    > P. 537:1001(464) ack 1 win 65535
        """
    )


def test_active_open_to_a_peer_without_options_falls_back_to_plain_tcp() -> None:
    Script().run(
        """
        0     connect
        0     > S 0:0(0) win 65535 <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 3>
        +0.1  < S. 0:0(0) ack 1 win 5000
        +0    > . 1:1(0) ack 1 win 65535
        +0    event Connected
        +0    check not s.timestamps and not s.sack and s.snd_wscale == 0
        +0    check s.rcv_wscale == 0 and s.snd_mss == 536 and s.snd_wnd == 5000
        """
    )


def test_options_switched_off_in_the_config_are_neither_offered_nor_accepted() -> None:
    config = TcpConfig(sack=False, timestamps=False, window_scaling=False, mtu=1000)
    Script(config).run(
        """
        0     connect
        0     > S 0:0(0) win 65535 <mss 960>
        +0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 700 ecr 0,nop,wscale 7>
        +0    > . 1:1(0) ack 1 win 65535
        +0    event Connected
        +0    check not s.timestamps and not s.sack and s.snd_wscale == 0
        +0    check s.snd_mss == 960 and s.snd_wnd == 65535
        """
    )


def test_simultaneous_open_goes_through_syn_received_to_established() -> None:
    Script().run(
        """
        0     connect
        0     > S 0:0(0) win 65535 <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 3>
        +0.05 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 50 ecr 0,nop,wscale 7>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 50 ecr 50,nop,wscale 3>
        +0    state SYN_RECEIVED
        +0.05 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
        +0    event Connected
        +0    state ESTABLISHED
        +0    send 100
        +0    > P. 1:101(100) ack 1 win 32768 <nop,nop,TS val 100 ecr 100>
        """
    )


def test_syn_is_retransmitted_with_doubling_timeouts_until_the_retry_limit_gives_up() -> None:
    Script().run(
        """
        0     connect
        0     > S 0:0(0) <...>
        1     > S 0:0(0) <...>
        3     > S 0:0(0) <...>
        7     > S 0:0(0) <...>
        15    > S 0:0(0) <...>
        31    > S 0:0(0) <...>
        63    > S 0:0(0) <...>
        126.9 state SYN_SENT
        127   event TimedOut no answer to the SYN after 6 retransmissions
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        +0    check c.error.startswith("connection timed out")
        """
    ).finish(until=1000)


def test_a_retransmitted_syn_means_an_initial_window_of_one_segment_and_an_rto_of_3_s() -> None:
    # Karn: the SYN-ACK may answer either SYN, so nothing is measured, and
    # RFC 6298 5.7 sets the RTO to 3 s; RFC 6928 sets the window to 1 segment.
    Script(NO_TS).run(
        """
        0     connect
        0     > S 0:0(0) <mss 1460,sackOK,nop,wscale 3>
        1     > S 0:0(0) <mss 1460,sackOK,nop,wscale 3>
        +0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 7>
        +0    > . 1:1(0) ack 1 win 32768
        +0    event Connected
        +0    check s.rto == 3.0 and s.cwnd == 1460 and s.srtt == 0
        +0    send 5000
        +0    > . 1:1461(1460) ack 1 win 32768
        +3    > . 1:1461(1460) ack 1 win 32768
        """
    )


def test_syn_ack_lost_is_retransmitted_on_the_peers_repeated_syn_and_on_timeout() -> None:
    Script().run(
        """
        0     < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 10 ecr 0,nop,wscale 7>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 0 ecr 10,nop,wscale 3>
        0.5   < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 510 ecr 0,nop,wscale 7>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 500 ecr 10,nop,wscale 3>
        1     > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 1000 ecr 10,nop,wscale 3>
        +0.1  < . 1:1(0) ack 1 win 1000 <nop,nop,TS val 1100 ecr 1000>
        +0    event Connected
        +0    check s.cwnd == 1448 and s.srtt == 0.1
        """
    )


def test_syn_ack_acknowledging_something_else_is_answered_with_rst_and_ignored() -> None:
    Script().run(
        """
        0     connect
        0     > S 0:0(0) <...>
        +0.1  < S. 0:0(0) ack 5 win 65535
        +0    > R 5:5(0)
        +0    state SYN_SENT
        +0.1  < S. 0:0(0) ack 1 win 65535
        +0    > . 1:1(0) ack 1 win 65535
        +0    event Connected
        """
    )


def test_rst_acknowledging_our_syn_refuses_the_connection() -> None:
    script = Script().run(
        """
        0     connect
        0     > S 0:0(0) <...>
        +0.1  < R. 0:0(0) ack 1 win 0
        +0    event Reset refused
        +0    event Closed
        +0    state CLOSED
        +0    timer none
        """
    )
    assert script.c.error == "connection refused"


def test_rst_in_syn_sent_without_an_acceptable_ack_is_ignored() -> None:
    Script().run(
        """
        0     connect
        0     > S 0:0(0) <...>
        +0.1  < R 0:0(0) win 0
        +0    < R. 0:0(0) ack 7 win 0
        +0    state SYN_SENT
        1     > S 0:0(0) <...>
        """
    )


def test_rst_during_a_passive_handshake_ends_the_connection_without_an_error_event() -> None:
    Script().run(
        """
        0     < S 0:0(0) win 65535 <mss 1460>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.1  < R 1:1(0) win 0
        +0    event Closed
        +0    state CLOSED
        """
    )


def test_an_ack_that_does_not_acknowledge_our_syn_ack_is_answered_with_rst() -> None:
    Script().run(
        """
        0     < S 0:0(0) win 65535 <mss 1460>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.1  < . 1:1(0) ack 9 win 1000
        +0    > R 9:9(0)
        +0    state SYN_RECEIVED
        """
    )


def test_data_queued_before_the_handshake_goes_out_with_it() -> None:
    Script(NO_TS).run(
        """
        0     connect
        0     > S 0:0(0) <mss 1460,sackOK,nop,wscale 3>
        +0    send 100
        +0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 7>
        +0    > P. 1:101(100) ack 1 win 32768
        +0    event Connected
        """
    )


def test_the_first_script_line_checks_the_handshake_constant() -> None:
    # CONNECT is the preamble of most scripts: make sure it leaves no
    # segment or event unaccounted for.
    Script().run(CONNECT)
    Script(NO_TS).run(CONNECT_PLAIN)


def test_shutdown_during_an_active_handshake_sends_fin_right_after_it() -> None:
    Script(NO_TS).run(
        """
        0     connect
        0     > S 0:0(0) <mss 1460,sackOK,nop,wscale 3>
        +0    send 100; shutdown
        +0    state SYN_SENT
        +0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 7>
        +0    > FP. 1:101(100) ack 1 win 32768
        +0    event Connected
        +0    state FIN_WAIT_1
        """
    )


def test_shutdown_during_a_passive_handshake_sends_fin_once_it_completes() -> None:
    Script(NO_TS).run(
        """
        0     < S 0:0(0) win 65535 <mss 1460>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0    shutdown
        +0    state SYN_RECEIVED
        +0.1  < . 1:1(0) ack 1 win 1000
        +0    > F. 1:1(0) ack 1 win 65535
        +0    event Connected
        +0    state FIN_WAIT_1
        """
    )


def test_syn_ack_retransmissions_give_up_after_syn_retries() -> None:
    Script(TcpConfig(timestamps=False, syn_retries=2)).run(
        """
        0     < S 0:0(0) win 65535 <mss 1460>
        +0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
        1     > S. 0:0(0) ack 1 win 65535 <mss 1460>
        3     > S. 0:0(0) ack 1 win 65535 <mss 1460>
        7     event TimedOut no answer to the SYN-ACK after 2 retransmissions
        +0    event Closed
        +0    state CLOSED
        """
    )
