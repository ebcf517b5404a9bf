"""The parts of the TCP connection on their own: sequence arithmetic, the
SACK scoreboard, the reassembly and send queues, the RTO estimator (RFC 6298),
initial sequence numbers (RFC 6528) and the config's checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardio_net.native.tcp import IsnGenerator, TcpConfig, seq_ge, seq_gt, seq_le, seq_lt
from shardio_net.native.tcp.buffers import ReassemblyQueue, SendQueue
from shardio_net.native.tcp.rtt import RttEstimator
from shardio_net.native.tcp.sack import Scoreboard
from shardio_net.native.tcp.seq import unwrap

M = 2**32


def test_sequence_comparisons_wrap_around_2_to_the_32() -> None:
    assert seq_lt(M - 1, 0) and seq_gt(0, M - 1)
    assert seq_lt(M - 10, 5) and seq_le(M - 10, 5)
    assert not seq_lt(5, 5) and seq_le(5, 5) and seq_ge(5, 5)
    assert seq_lt(0, 2**31 - 1) and seq_gt(0, 2**31 + 1)


@given(st.integers(0, 2**48), st.integers(-(2**31), 2**31 - 1))
def test_unwrap_returns_the_absolute_number_within_half_the_space(
    reference: int, delta: int
) -> None:
    absolute = reference + delta
    assert unwrap(absolute & (M - 1), reference) == absolute


@given(st.integers(0, M - 1), st.integers(1, 2**31 - 1))
def test_unwrap_agrees_with_the_modular_comparison(base: int, delta: int) -> None:
    later = (base + delta) % M
    assert seq_lt(base, later)
    assert unwrap(later, base) > base


def test_scoreboard_merges_blocks_and_counts_sacked_bytes() -> None:
    board = Scoreboard()
    assert board.add([(200, 300)]) == 100
    assert board.add([(400, 500), (250, 350)]) == 150
    assert board.ranges == [(200, 350), (400, 500)]
    assert board.add([(350, 400)]) == 50
    assert board.ranges == [(200, 500)]
    assert board.add([(200, 500)]) == 0
    assert board.sacked == 300 and board.high == 500


def test_scoreboard_forgets_what_the_cumulative_ack_passed() -> None:
    board = Scoreboard()
    board.add([(200, 300), (400, 500)])
    board.advance(250)
    assert board.ranges == [(250, 300), (400, 500)] and board.sacked == 150
    board.advance(450)
    assert board.ranges == [(450, 500)] and board.sacked == 50
    assert board.starts_at(450)


def test_scoreboard_finds_holes_and_the_lost_edge() -> None:
    board = Scoreboard()
    # SACKed: [200, 300) and [400, 700); holes [100, 200) and [300, 400).
    board.add([(200, 300), (400, 700)])
    assert board.next_hole(100, 1000) == (100, 200)
    assert board.next_hole(200, 1000) == (300, 400)
    assert board.next_hole(350, 1000) == (350, 400)
    assert board.next_hole(400, 1000) == (700, 1000)
    assert board.next_hole(400, 700) is None
    assert board.sacked_between(150, 450) == 150
    # Lost: an un-SACKed byte with more than `threshold` SACKed bytes above.
    # 250: both holes (the upper one has 300 above it).
    assert board.lost_edge(250, 100) == 450
    # 300 and 350: only the lower hole (400 above it; the upper has 300).
    assert board.lost_edge(300, 100) == 300
    assert board.lost_edge(350, 100) == 250
    # 400: nothing.
    assert board.lost_edge(400, 100) == 100


def test_reassembly_queue_cuts_overlaps_and_delivers_in_order_as_views() -> None:
    frame = bytes(range(256)) * 4
    view = memoryview(frame)
    queue = ReassemblyQueue(limit=10)
    assert queue.insert(300, view[300:400]) == (300, 400)
    assert queue.insert(500, view[500:600]) == (500, 600)
    # Overlaps both: only the new parts are kept.
    assert queue.insert(350, view[350:550]) == (300, 600)
    assert queue.insert(320, view[320:380]) is None
    assert queue.nbytes == 300 and queue.blocks == [(300, 600)]
    ready, rcv_nxt = queue.pop_ready(300)
    assert rcv_nxt == 600
    assert b"".join(ready) == frame[300:600]
    assert all(part.obj is frame for part in ready)
    assert not queue and queue.nbytes == 0


def test_reassembly_queue_refuses_segments_beyond_its_bound() -> None:
    view = memoryview(bytes(1000))
    queue = ReassemblyQueue(limit=2)
    queue.insert(100, view[100:200])
    queue.insert(300, view[300:400])
    assert queue.insert(500, view[500:600]) is None
    assert len(queue) == 2 and queue.blocks == [(100, 200), (300, 400)]


@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300)), max_size=40))
def test_reassembly_queue_holds_each_byte_once_whatever_the_arrival_order(
    segments: list[tuple[int, int]],
) -> None:
    data = bytes(i % 251 for i in range(3000))
    view = memoryview(data)
    queue = ReassemblyQueue(limit=1000)
    covered: set[int] = set()
    for start, length in segments:
        queue.insert(100 + start, view[100 + start : 100 + start + length])
        covered.update(range(100 + start, 100 + start + length))
    assert queue.nbytes == len(covered)
    ready, rcv_nxt = queue.pop_ready(0)
    assert ready == [] and rcv_nxt == 0
    first = min(covered, default=100)
    ready, rcv_nxt = queue.pop_ready(first)
    assert b"".join(ready) == data[first:rcv_nxt]


def test_send_queue_hands_out_slices_of_the_callers_buffers() -> None:
    a, b, c = bytearray(b"a" * 100), bytearray(b"b" * 50), bytearray(b"c" * 200)
    queue = SendQueue(1000)
    for buf in (a, b, c):
        queue.append(memoryview(buf))
    assert queue.end == 1350
    parts = queue.slices(1090, 100)
    assert [bytes(p) for p in parts] == [b"a" * 10, b"b" * 50, b"c" * 40]
    assert [p.obj for p in parts] == [a, b, c]
    (whole,) = queue.slices(1100, 50)
    assert whole.obj is b and len(whole) == 50
    assert queue.release(1120) == (1, 100)
    assert queue.release(1150) == (1, 50)
    assert queue.release_all() == (1, 200)


def test_rto_follows_rfc_6298_and_backs_off_until_the_next_sample() -> None:
    rtt = RttEstimator(initial_rto=1.0, min_rto=0.2, max_rto=60.0)
    assert rtt.rto == 1.0
    rtt.sample(0.1)
    assert (rtt.srtt, rtt.rttvar) == (0.1, 0.05)
    assert rtt.rto == pytest.approx(0.3)
    rtt.sample(0.3)
    # RTTVAR = 3/4 * 0.05 + 1/4 * |0.1 - 0.3|; SRTT = 7/8 * 0.1 + 1/8 * 0.3
    assert rtt.rttvar == pytest.approx(0.0875)
    assert rtt.srtt == pytest.approx(0.125)
    assert rtt.rto == pytest.approx(0.125 + 4 * 0.0875)
    rtt.back_off()
    rtt.back_off()
    assert rtt.rto == pytest.approx(4 * (0.125 + 4 * 0.0875))
    rtt.sample(0.125)
    assert rtt.backoff == 0


def test_rto_stays_within_its_floor_and_ceiling() -> None:
    rtt = RttEstimator(initial_rto=1.0, min_rto=0.2, max_rto=10.0)
    rtt.sample(0.001)
    # The floor applies to the variance term, as in Linux: SRTT + 200 ms.
    assert rtt.rto == pytest.approx(0.001 + 0.2)
    for _ in range(100):
        rtt.back_off()
    assert rtt.rto == 10.0


def test_isn_depends_on_the_four_tuple_and_advances_with_the_clock() -> None:
    isn = IsnGenerator(b"k" * 16)
    a = ((1, 1000), (2, 80))
    b = ((1, 1001), (2, 80))
    assert isn.isn(*a, now=5.0) == isn.isn(*a, now=5.0)
    assert isn.isn(*a, now=5.0) != isn.isn(*b, now=5.0)
    # M ticks every 4 microseconds.
    assert (isn.isn(*a, now=6.0) - isn.isn(*a, now=5.0)) % M == 250_000
    assert IsnGenerator(b"j" * 16).isn(*a, now=5.0) != isn.isn(*a, now=5.0)
    assert isn.timestamp_offset(*a) != isn.timestamp_offset(*b)


def test_isn_generator_wants_a_real_secret() -> None:
    with pytest.raises(ValueError, match="16 to 32 bytes"):
        IsnGenerator(b"short")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mtu": 40}, "mtu must be an integer of at least 68"),
        ({"delayed_ack": -1.0}, "delayed_ack must be zero or more"),
        ({"initial_rto": 0}, "initial_rto must be a positive number"),
        ({"congestion_control": "bbr"}, "'newreno' or 'cubic', not 'bbr'"),
        ({"min_rto": 5.0, "max_rto": 1.0}, "min_rto .5.0. must not exceed max_rto"),
        ({"retries": True}, "retries must be an integer"),
    ],
)
def test_config_rejects_nonsense_with_a_message_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TcpConfig(**kwargs)  # type: ignore[arg-type]
