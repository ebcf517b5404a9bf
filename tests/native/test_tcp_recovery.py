"""Loss recovery driven by ACKs: fast retransmit after three duplicate ACKs,
limited transmit (RFC 3042), NewReno's partial ACKs (RFC 6582) for a peer
without SACK, SACK both ways (RFC 2018: the blocks we send, the scoreboard we
keep) and SACK-based recovery (RFC 6675: what is deemed lost, the pipe, what
is retransmitted), and how a timeout during recovery hands over to it."""

from __future__ import annotations

from shardio_net.native.tcp import TcpConfig

from .tcp_script import CONNECT, CONNECT_NO_SACK, CONNECT_PLAIN, Script

# Five segments of initial window, NewReno's halving: easy numbers.
FIVE = TcpConfig(timestamps=False, congestion_control="newreno", initial_window=5)

# One segment out and back: the peer's window is known (128000), the RTO 0.25 s.
WARM_UP = """
+0    send 1460
+0    > P. 1:1461(1460) ack 1 win 32768
+0.1  < . 1:1(0) ack 1461 win 1000
+0    event BuffersReleased 1 1460
"""

# Five more segments, 1461..8761, the whole window.
FIVE_OUT = """
+0    send 7300
+0    > . 1461:2921(1460) ack 1 win 32768
+0    > . 2921:4381(1460) ack 1 win 32768
+0    > . 4381:5841(1460) ack 1 win 32768
+0    > . 5841:7301(1460) ack 1 win 32768
+0    > P. 7301:8761(1460) ack 1 win 32768
"""


def test_three_duplicate_acks_trigger_fast_retransmit_and_newreno_inflation() -> None:
    Script(FIVE).run(
        CONNECT_NO_SACK
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000       # 1461:2921 was lost
        +0    < . 1:1(0) ack 1461 win 1000
        +0    check s.recovery == "open" and s.retransmits == 0
        +0    < . 1:1(0) ack 1461 win 1000       # the third: fast retransmit
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    check s.recovery == "recovery" and s.fast_recoveries == 1
        +0    check s.ssthresh == 3650 and s.cwnd == 3650 + 3 * 1460
        +0    send 2920                          # the window is full: nothing goes
        +0    < . 1:1(0) ack 1461 win 1000       # a fourth inflates it by one segment
        +0    > . 8761:10221(1460) ack 1 win 32768
        +0    check s.cwnd == 3650 + 4 * 1460
        +0.1  < . 1:1(0) ack 8761 win 1000       # all of it: recovery is over
        +0    event BuffersReleased 1 7300
        +0    > P. 10221:11681(1460) ack 1 win 32768
        +0    check s.recovery == "open" and s.cwnd == 2 * 1460   # min(ssthresh, flight + SMSS)
        """
    )


def test_two_duplicate_acks_send_new_data_by_limited_transmit() -> None:
    Script(TcpConfig(timestamps=False, initial_window=2)).run(
        CONNECT_NO_SACK
        + """
        +0    send 5840
        +0    > . 1:1461(1460) ack 1 win 32768
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0.1  < . 1:1(0) ack 1 win 1000          # a window update, not a duplicate
        +0    < . 1:1(0) ack 1 win 1000
        +0    > . 2921:4381(1460) ack 1 win 32768
        +0    < . 1:1(0) ack 1 win 1000
        +0    > P. 4381:5841(1460) ack 1 win 32768
        +0    check s.recovery == "open" and s.dup_acks_received == 2
        """
    )


def test_newreno_partial_ack_retransmits_the_next_hole_at_once() -> None:
    Script(FIVE).run(
        CONNECT_NO_SACK
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000       # 1461:2921 and 4381:5841 lost
        +0    < . 1:1(0) ack 1461 win 1000
        +0    < . 1:1(0) ack 1461 win 1000
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0.1  < . 1:1(0) ack 4381 win 1000       # partial: below the recovery point
        +0    > . 4381:5841(1460) ack 1 win 32768
        +0    check s.recovery == "recovery"
        +0    check s.cwnd == 3650 + 3 * 1460 - 2920 + 1460   # deflated, one added back
        +0.1  < . 1:1(0) ack 8761 win 1000
        +0    event BuffersReleased 1 7300
        +0    check s.recovery == "open" and s.retransmits == 2 and s.timeouts == 0
        """
    )


def test_sack_recovery_retransmits_the_lost_hole_and_counts_the_pipe() -> None:
    Script(FIVE).run(
        CONNECT_PLAIN
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000 <sack 2921:4381>
        +0    check s.sacked == 1460 and s.recovery == "open"
        +0    < . 1:1(0) ack 1461 win 1000 <sack 2921:5841>
        +0    < . 1:1(0) ack 1461 win 1000 <sack 2921:7301>
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    check s.recovery == "recovery" and s.sacked == 4380
        +0    check s.ssthresh == 3650 and s.cwnd == 3650
        # Un-SACKed: the retransmitted hole and 7301:8761, one segment each.
        +0    check s.in_flight == 2920
        +0    send 2920
        +0    < . 1:1(0) ack 1461 win 1000 <sack 2921:8761>
        +0    > . 8761:10221(1460) ack 1 win 32768
        +0    check s.in_flight == 2920
        +0.1  < . 1:1(0) ack 8761 win 1000
        +0    event BuffersReleased 1 7300
        +0    > P. 10221:11681(1460) ack 1 win 32768
        +0    check s.recovery == "open" and s.sacked == 0 and s.retransmits == 1
        """
    )


def test_one_ack_sacking_three_segments_starts_recovery_without_waiting_for_dupacks() -> None:
    # RFC 6675's IsLost: more than 2 SMSS SACKed above the first hole.
    Script(FIVE).run(
        CONNECT_PLAIN
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000 <sack 2921:7301>
        +0    > . 1461:2921(1460) ack 1 win 32768
        +0    check s.recovery == "recovery" and s.dup_acks_received == 1
        """
    )


def test_sack_recovery_skips_sacked_data_and_sends_unlost_holes_when_idle() -> None:
    Script(FIVE).run(
        CONNECT_PLAIN
        + WARM_UP
        + FIVE_OUT
        + """
        # 1461:2921 and 4381:5841 lost.
        +0.1  < . 1:1(0) ack 1461 win 1000 <sack 2921:4381>
        +0    < . 1:1(0) ack 1461 win 1000 <sack 5841:7301 2921:4381>
        +0    < . 1:1(0) ack 1461 win 1000 <sack 5841:8761 2921:4381>
        +0    > . 1461:2921(1460) ack 1 win 32768
        # 4381:5841 has only 2 SMSS SACKed above it: not yet deemed lost.
        +0    check s.in_flight == 2920
        +0.1  < . 1:1(0) ack 4381 win 1000 <sack 5841:8761>
        # Nothing new to send: RFC 6675 rule 3 retransmits it anyway.
        +0    > . 4381:5841(1460) ack 1 win 32768
        +0.1  < . 1:1(0) ack 8761 win 1000
        +0    event BuffersReleased 1 7300
        +0    check s.recovery == "open" and s.retransmits == 2
        """
    )


def test_sack_blocks_outside_the_outstanding_data_are_ignored() -> None:
    Script(FIVE).run(
        CONNECT_PLAIN
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000 <sack 1:1461>          # below SND.UNA (D-SACK)
        +0    < . 1:1(0) ack 1461 win 1000 <sack 8761:10221>      # beyond SND.NXT
        +0    < . 1:1(0) ack 1461 win 1000 <sack 2921:2000>       # inverted
        +0    check s.sacked == 0 and s.dup_acks_received == 0
        """
    )


def test_a_timeout_in_recovery_resends_only_what_was_not_sacked() -> None:
    Script(FIVE).run(
        CONNECT_PLAIN
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000 <sack 2921:4381>
        +0    < . 1:1(0) ack 1461 win 1000 <sack 5841:7301 2921:4381>
        +0    < . 1:1(0) ack 1461 win 1000 <sack 5841:8761 2921:4381>
        +0    > . 1461:2921(1460) ack 1 win 32768
        # The retransmission was lost too; the timer, re-armed when it went
        # out, expires an RTO (0.1 + max(4 * 0.0375, 0.2)) later.
        0.6   > . 1461:2921(1460) ack 1 win 32768
        +0    check s.recovery == "loss" and s.cwnd == 1460
        +0.1  < . 1:1(0) ack 2921 win 1000 <sack 5841:8761 2921:4381>
        # Slow start: two segments' worth, but only the hole needs sending.
        +0    > . 4381:5841(1460) ack 1 win 32768
        +0.1  < . 1:1(0) ack 8761 win 1000
        +0    event BuffersReleased 1 7300
        +0    check s.recovery == "open" and s.timeouts == 1
        """
    )


def test_a_receiver_that_reneges_on_its_sacks_gets_the_data_again_after_a_timeout() -> None:
    Script(FIVE).run(
        CONNECT_PLAIN
        + WARM_UP
        + FIVE_OUT
        + """
        +0.1  < . 1:1(0) ack 1461 win 1000 <sack 2921:4381>
        +0    < . 1:1(0) ack 2921 win 1000 <sack 2921:4381>   # acked up to a SACKed block?
        # The timeout (an RTO of 0.3 s after the last ACK) forgets the scoreboard.
        0.6   > . 2921:4381(1460) ack 1 win 32768
        +0    check s.sacked == 0
        """
    )


def test_out_of_order_data_is_acknowledged_at_once_with_sack_blocks_newest_first() -> None:
    Script(TcpConfig(timestamps=False)).run(
        CONNECT_PLAIN
        + """
        +0.1  < . 1461:2921(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 1 <sack 1461:2921>
        +0    < . 4381:5841(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 1 <sack 4381:5841 1461:2921>
        +0    < . 7301:8761(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 1 <sack 7301:8761 4381:5841 1461:2921>
        +0    < . 2921:4381(1460) ack 1 win 1000            # joins two blocks
        +0    > . 1:1(0) ack 1 <sack 1461:5841 7301:8761>
        +0    < . 10221:11681(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 1 <sack 10221:11681 1461:5841 7301:8761>
        +0    < . 1:1461(1460) ack 1 win 1000                # fills the first hole
        +0    > . 1:1(0) ack 5841 <sack 10221:11681 7301:8761>
        +0    event DataReceived 5840
        +0    check s.out_of_order_received == 5 and s.reassembly_queued == 2920
        """
    )


def _five_holes(options: str) -> str:
    """Five out-of-order segments with holes between them; each answered at once."""
    return (
        "".join(
            f"+0 < . {1 + 2000 * i}:{1001 + 2000 * i}(1000) ack 1 win 1000 {options}\n"
            f"+0 > . 1:1(0) ack 1 <...>\n"
            for i in range(1, 5)
        )
        + f"+0 < . 10001:11001(1000) ack 1 win 1000 {options}\n"
    )


def test_sack_option_holds_four_blocks_or_three_beside_timestamps() -> None:
    Script(TcpConfig(timestamps=False)).run(
        CONNECT_PLAIN
        + "+0.1 check True\n"
        + _five_holes("")
        + "+0 > . 1:1(0) ack 1 <sack 10001:11001 8001:9001 6001:7001 4001:5001>\n"
    )
    # Out-of-order segments do not update TS.Recent (RFC 7323 4.3): echo 700.
    Script().run(
        CONNECT
        + "+0.1 check True\n"
        + _five_holes("<nop,nop,TS val 800 ecr 100>")
        + "+0 > . 1:1(0) ack 1 <nop,nop,TS val 200 ecr 700,sack 10001:11001 8001:9001 6001:7001>\n"
    )


def test_the_reassembly_queue_bound_drops_what_does_not_fit() -> None:
    Script(TcpConfig(timestamps=False, max_out_of_order=2)).run(
        CONNECT_PLAIN
        + """
        +0.1  < . 1461:2921(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 1 <sack 1461:2921>
        +0    < . 4381:5841(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 1 <sack 4381:5841 1461:2921>
        +0    < . 7301:8761(1460) ack 1 win 1000            # no room: dropped
        +0    > . 1:1(0) ack 1 <sack 4381:5841 1461:2921>
        +0    check s.reassembly_queued == 2920
        """
    )
