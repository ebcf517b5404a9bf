"""Flow control and timing of what is sent: delayed ACKs (RFC 9293 3.8.6.3,
RFC 5681 4.2), Nagle (RFC 896), both sides of silly window avoidance
(RFC 9293 3.8.6.2), window updates and the never-shrinking window, zero-window
probing (RFC 9293 3.8.6.1), keepalive (3.8.4), and the send buffer."""

from __future__ import annotations

from shardio_net.native.tcp import TcpConfig

from .tcp_script import CONNECT_PLAIN, Script

NO_TS = TcpConfig(timestamps=False)

# A 4000-byte receive buffer: no scaling, and windows small enough to watch.
SMALL_BUFFER = TcpConfig(timestamps=False, receive_buffer=4000)
CONNECT_SMALL = """
0     connect
0     > S 0:0(0) win 4000 <mss 1460,sackOK,nop,wscale 0>
+0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 7>
+0    > . 1:1(0) ack 1 win 4000
+0    event Connected
"""


def test_one_segment_is_acknowledged_after_the_delayed_ack_timeout() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < P. 1:101(100) ack 1 win 1000
        +0    event DataReceived 100
        +0    timer 0.24
        0.24  > . 1:1(0) ack 101
        """
    )


def test_every_second_full_sized_segment_is_acknowledged_at_once() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < . 1:1461(1460) ack 1 win 1000
        +0    < . 1461:2921(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 2921
        +0    < . 2921:4381(1460) ack 1 win 1000
        +0.04 > . 1:1(0) ack 4381
        """
    )


def test_a_delayed_ack_rides_on_data_sent_meanwhile() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < P. 1:101(100) ack 1 win 1000
        +0.01 send 50
        +0    > P. 1:51(50) ack 101
        +0.1  < . 101:101(0) ack 51 win 1000     # no lone ACK was sent at 0.24
        """
    )


def test_with_delayed_acks_off_every_segment_is_acknowledged_at_once() -> None:
    Script(TcpConfig(timestamps=False, delayed_ack=0.0)).run(
        CONNECT_PLAIN
        + """
        +0.1  < P. 1:101(100) ack 1 win 1000
        +0    > . 1:1(0) ack 101
        """
    )


def test_nagle_holds_small_segments_while_data_is_unacknowledged() -> None:
    Script(TcpConfig(timestamps=False, nagle=True)).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1
        +0    send 100
        +0    send 100
        +0.1  < . 1:1(0) ack 101 win 1000
        +0    > P. 101:301(200) ack 1
        +0    send 3000                          # full segments go; the tail waits
        +0    > . 301:1761(1460) ack 1
        +0    > . 1761:3221(1460) ack 1
        +0.1  < . 1:1(0) ack 3221 win 1000
        +0    > P. 3221:3301(80) ack 1
        """
    )


def test_without_nagle_small_segments_go_at_once() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 100
        +0    > P. 1:101(100) ack 1
        +0    send 100
        +0    > P. 101:201(100) ack 1
        """
    )


def test_the_receive_window_closes_as_data_waits_and_reopens_by_an_mss_at_least() -> None:
    Script(SMALL_BUFFER, auto_consume=False).run(
        CONNECT_SMALL
        + """
        +0.1  < . 1:1461(1460) ack 1 win 1000
        +0    < . 1461:2921(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 2921 win 1080
        +0    < P. 2921:4001(1080) ack 1 win 1000
        +0.04 > . 1:1(0) ack 4001 win 0
        +0    < . 4001:4101(100) ack 1 win 1000     # no room: nothing taken
        +0    > . 1:1(0) ack 4001 win 0
        +0    < . 4000:4000(0) ack 1 win 1000       # the peer's zero-window probe
        +0    > . 1:1(0) ack 4001 win 0
        +0    consume 1000                          # less than an MSS: no update
        +0    consume 1000
        +0    > . 1:1(0) ack 4001 win 2000          # a window update
        +0    check s.bytes_received == 4000
        """
    )


def test_the_right_edge_of_the_advertised_window_never_moves_left() -> None:
    script = Script(SMALL_BUFFER, auto_consume=False).run(
        CONNECT_SMALL
        + """
        +0.1  < . 1:1461(1460) ack 1 win 1000
        +0    < . 1461:2921(1460) ack 1 win 1000
        +0    > . 1:1(0) ack 2921 win 1080
        +0    consume 100
        +0    < . 2921:3021(100) ack 1 win 1000
        +0.04 > . 1:1(0) ack 3021 win 980           # 100 more free, but less than an MSS
        +0    consume 2920
        +0    > . 1:1(0) ack 3021 win 4000
        """
    )
    edges = [seg.ack + seg.window for _, seg, _ in script.sent if seg.flags & 0x10]
    assert edges == sorted(edges)


def test_a_zero_window_is_probed_with_backoff_until_it_opens() -> None:
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0    send 1000
        +0    > P. 1:1001(1000) ack 1
        +0.1  < . 1:1(0) ack 1001 win 0
        +0    send 500
        +0    timer 0.5
        0.5   > . 1000:1000(0) ack 1               # a probe: an old sequence number
        +0.1  < . 1:1(0) ack 1001 win 0
        1.1   > . 1000:1000(0) ack 1
        +0.1  < . 1:1(0) ack 1001 win 0
        2.3   > . 1000:1000(0) ack 1
        +0.1  < . 1:1(0) ack 1001 win 100          # open: 12800 bytes
        +0    > P. 1001:1501(500) ack 1
        +0    check s.zero_window_probes == 3
        """
    )


def test_unanswered_zero_window_probes_end_the_connection_at_the_retry_limit() -> None:
    Script(TcpConfig(timestamps=False, retries=2)).run(
        CONNECT_PLAIN
        + """
        +0.1  < . 1:1(0) ack 1 win 0
        +0    send 500
        0.5   > . 0:0(0) ack 1
        1.1   > . 0:0(0) ack 1
        2.3   event BuffersReleased 1 500
        +0    event TimedOut zero-window probes
        +0    event Closed
        """
    )


def test_a_window_too_small_to_use_waits_for_the_override_timer() -> None:
    # Sender-side silly window avoidance: 512 bytes of window is neither an
    # MSS, nor all the data, nor half the largest window seen (65535).
    Script(NO_TS).run(
        CONNECT_PLAIN
        + """
        +0.1  < . 1:1(0) ack 1 win 0
        +0    send 3000
        +0.1  < . 1:1(0) ack 1 win 4                 # 4 << 7 = 512 bytes
        0.5   > . 1:513(512) ack 1                   # the override timeout sends it
        """
    )


def test_keepalive_probes_an_idle_connection_and_gives_up_after_the_count() -> None:
    config = TcpConfig(
        timestamps=False,
        keepalive=True,
        keepalive_idle=10.0,
        keepalive_interval=2.0,
        keepalive_count=3,
    )
    Script(config).run(
        CONNECT_PLAIN
        + """
        +0    timer 10.1
        10.1  > . 0:0(0) ack 1
        +0.1  < . 1:1(0) ack 1 win 1000             # alive: idle again from here
        20.2  > . 0:0(0) ack 1
        22.2  > . 0:0(0) ack 1
        24.2  > . 0:0(0) ack 1
        26.2  > R. 1:1(0) ack 1 win 0
        +0    event TimedOut keepalive probes went unanswered
        +0    event Closed
        +0    check s.keepalive_probes == 4
        """
    )


def test_send_takes_what_the_send_buffer_holds_and_releases_buffers_as_acked() -> None:
    Script(TcpConfig(timestamps=False, send_buffer=3000)).run(
        CONNECT_PLAIN
        + """
        +0    send 2000,2000 -> 3000
        +0    check c.send_space == 0
        +0    > . 1:1461(1460) ack 1
        +0    > . 1461:2921(1460) ack 1
        +0    > P. 2921:3001(80) ack 1
        +0.1  < . 1:1(0) ack 1461 win 1000           # the first buffer is not all acked
        +0    check c.send_space == 1460
        +0    < . 1:1(0) ack 3001 win 1000
        +0    event BuffersReleased 2 3000
        +0    check c.send_space == 3000
        """
    )


def test_with_segmentation_offload_new_data_leaves_in_multi_mss_segments() -> None:
    # The initial window is ten segments: with TSO it leaves as segments of
    # whole MSS multiples for the device to cut, not as ten 1460-byte ones.
    Script(TcpConfig(timestamps=False, segment_offload=8 * 1460)).run(
        CONNECT_PLAIN
        + """
        +0.1  send 20000
        +0    > . 1:11681(11680) ack 1
        +0    > . 11681:14601(2920) ack 1
        +0.05 < . 1:1(0) ack 14601 win 2000
        +0    > P. 14601:20001(5400) ack 1
        """
    )
