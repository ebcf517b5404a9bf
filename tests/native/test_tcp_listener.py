"""The listener: LISTEN's rules (RFC 9293 3.10.7.2), the SYN queue and the
accept backlog with Linux's behaviour when they are full (drop the SYN; hold
back the ACK that would complete a handshake), and closing it."""

from __future__ import annotations

from shardio_net.native.tcp import (
    Closed,
    Connected,
    IsnGenerator,
    TcpConfig,
    TcpConnection,
    TcpListener,
    TcpState,
)
from shardio_net.native.wire.tcp import ACK, RST, SYN, TcpSegment

from .tcp_script import LOCAL, PEER_ISN

CONFIG = TcpConfig(timestamps=False)
SECRET = IsnGenerator(b"listener-secret!")


def remote(n: int) -> tuple[int, int]:
    return (0x0A000100 + n, 50000 + n)


def syn_from(n: int) -> TcpSegment:
    return TcpSegment(remote(n)[1], LOCAL[1], PEER_ISN + n, 0, SYN, 65535, mss=1460)


def ack_for(n: int, conn: TcpConnection, now: float) -> TcpSegment:
    """Take the SYN-ACK ``conn`` sent to remote ``n``, and make the peer's ACK of it."""
    ((synack, _),) = conn.segments_to_send(now)
    iss = SECRET.isn(LOCAL, remote(n), 0.0)
    assert synack.flags == SYN | ACK and synack.seq == iss
    return TcpSegment(remote(n)[1], LOCAL[1], PEER_ISN + n + 1, iss + 1, ACK, 65535)


def open_listener(**kwargs: int) -> TcpListener:
    return TcpListener(LOCAL, CONFIG, SECRET, **kwargs)


def test_a_syn_opens_a_connection_that_is_accepted_once_established() -> None:
    listener = open_listener()
    conn = listener.on_segment(syn_from(1), remote(1), 0.0)
    assert conn is not None and conn.state == TcpState.SYN_RECEIVED
    assert conn.remote == remote(1) and conn.local == LOCAL
    ack = ack_for(1, conn, 0.0)
    assert listener.accept() is None and listener.statistics().syn_queue == 1
    conn.on_segment(ack, 0.1)
    assert conn.events() == [Connected()]
    assert listener.pending == 1
    assert listener.accept() is conn
    assert listener.accept() is None
    assert listener.statistics().syn_queue == listener.statistics().accept_queue == 0


def test_the_isn_of_each_connection_comes_from_the_secret_and_the_four_tuple() -> None:
    listener = open_listener()
    first = listener.on_segment(syn_from(1), remote(1), 0.0)
    second = listener.on_segment(syn_from(2), remote(2), 0.0)
    assert first is not None and second is not None
    (synack1, _), *_ = first.segments_to_send(0.0)
    (synack2, _), *_ = second.segments_to_send(0.0)
    assert synack1.seq == SECRET.isn(LOCAL, remote(1), 0.0)
    assert synack2.seq == SECRET.isn(LOCAL, remote(2), 0.0)
    assert synack1.seq != synack2.seq


def test_a_full_syn_queue_drops_further_syns() -> None:
    listener = open_listener(backlog=10, syn_backlog=2)
    assert listener.on_segment(syn_from(1), remote(1), 0.0) is not None
    assert listener.on_segment(syn_from(2), remote(2), 0.0) is not None
    assert listener.on_segment(syn_from(3), remote(3), 0.0) is None
    assert listener.segments_to_send() == []  # dropped, not refused
    stats = listener.statistics()
    assert (stats.syn_queue, stats.syn_queue_drops, stats.syns_received) == (2, 1, 3)


def test_a_full_accept_queue_drops_syns_and_holds_back_the_completing_ack() -> None:
    listener = open_listener(backlog=1)
    first = listener.on_segment(syn_from(1), remote(1), 0.0)
    second = listener.on_segment(syn_from(2), remote(2), 0.0)
    assert first is not None and second is not None
    first.on_segment(ack_for(1, first, 0.0), 0.1)
    # The accept queue is full: a new SYN is dropped...
    assert listener.on_segment(syn_from(3), remote(3), 0.1) is None
    # ...and so is the ACK that would complete the second handshake.
    ack2 = ack_for(2, second, 0.0)
    second.on_segment(ack2, 0.1)
    assert second.state == TcpState.SYN_RECEIVED and second.events() == []
    assert listener.statistics().accept_queue_overflows == 2
    # The application accepts; the SYN-ACK is retransmitted, and the peer's
    # answer (or any later segment) now completes the handshake.
    assert listener.accept() is first
    second.on_timer(second.next_deadline())
    (synack, _), *_ = second.segments_to_send(1.0)
    assert synack.flags == SYN | ACK
    second.on_segment(ack2, 1.1)
    assert second.state == TcpState.ESTABLISHED
    assert listener.accept() is second


def test_the_listener_answers_a_stray_ack_with_rst_and_ignores_a_rst() -> None:
    listener = open_listener()
    stray = TcpSegment(remote(1)[1], LOCAL[1], 100, 777, ACK, 1000)
    assert listener.on_segment(stray, remote(1), 0.0) is None
    ((to, reset),) = listener.segments_to_send()
    assert to == remote(1) and (reset.flags, reset.seq) == (RST, 777)
    rst = TcpSegment(remote(1)[1], LOCAL[1], 100, 0, RST, 0)
    assert listener.on_segment(rst, remote(1), 0.0) is None
    assert listener.segments_to_send() == []
    assert listener.statistics().resets_sent == 1


def test_a_connection_reset_before_it_is_accepted_leaves_the_queues() -> None:
    listener = open_listener()
    conn = listener.on_segment(syn_from(1), remote(1), 0.0)
    assert conn is not None
    conn.on_segment(ack_for(1, conn, 0.0), 0.1)
    conn.on_segment(TcpSegment(remote(1)[1], LOCAL[1], PEER_ISN + 2, 0, RST, 0), 0.2)
    assert conn.state == TcpState.CLOSED
    assert listener.pending == 0 and listener.accept() is None


def test_closing_the_listener_resets_every_connection_not_yet_accepted() -> None:
    listener = open_listener()
    established = listener.on_segment(syn_from(1), remote(1), 0.0)
    embryonic = listener.on_segment(syn_from(2), remote(2), 0.0)
    assert established is not None and embryonic is not None
    established.on_segment(ack_for(1, established, 0.0), 0.1)
    embryonic.segments_to_send(0.0)
    established.events()
    aborted = listener.close(0.2)
    assert set(aborted) == {established, embryonic}
    for conn in aborted:
        assert conn.state == TcpState.CLOSED
        assert conn.events() == [Closed()]
        ((reset, _),) = conn.segments_to_send(0.2)
        assert reset.flags & RST
    assert listener.statistics().syn_queue == listener.statistics().accept_queue == 0
