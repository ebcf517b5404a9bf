"""Two connections back to back through a faulty simulated link (tcp_pipe.py):
bulk transfers that must arrive intact, in bounded simulated time, and
hypothesis's search over fault patterns, configurations and write sizes for
a run that loses, duplicates or corrupts a byte, raises, or never ends."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardio_net.native.tcp import TcpConfig

from .tcp_pipe import Pipe

MIB = 1 << 20


def _data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize(
    ("name", "config", "faults"),
    [
        ("sack, timestamps, cubic", TcpConfig(time_wait=1.0), {}),
        (
            "no sack, no timestamps, newreno",
            TcpConfig(time_wait=1.0, sack=False, timestamps=False, congestion_control="newreno"),
            {},
        ),
        (
            "reordered, duplicated, corrupted",
            TcpConfig(time_wait=1.0),
            {"duplicate": 0.01, "reorder": 0.05, "corrupt": 0.001, "jitter": 0.002},
        ),
    ],
)
def test_four_mib_each_way_arrive_intact_through_five_percent_loss(
    name: str, config: TcpConfig, faults: dict[str, float]
) -> None:
    data_a, data_b = _data(4 * MIB, 1), _data(4 * MIB, 2)
    pipe = Pipe(config, data_a=data_a, data_b=data_b, loss=0.05, seed=7, **faults).run(600)
    assert pipe.finished, f"{name}: not finished after {pipe.now:.1f} s"
    assert pipe.a.error is None and pipe.b.error is None
    assert pipe.b.digest == hashlib.sha256(data_a).hexdigest()
    assert pipe.a.digest == hashlib.sha256(data_b).hexdigest()
    # Without loss this takes about 0.5 s of simulated time; 5% loss costs a
    # few dozen recoveries and timeouts, not minutes.
    assert pipe.now < 60
    stats = pipe.a.conn.statistics() if pipe.a.conn is not None else None
    assert stats is not None and stats.retransmits > 0 and stats.state == "CLOSED"


def test_a_clean_link_needs_no_retransmission_and_releases_every_buffer() -> None:
    data_a, data_b = _data(MIB, 3), _data(MIB // 2, 4)
    pipe = Pipe(TcpConfig(time_wait=1.0), data_a=data_a, data_b=data_b, write_size=1000).run()
    assert pipe.finished and pipe.a.error is None and pipe.b.error is None
    assert pipe.b.digest == hashlib.sha256(data_a).hexdigest()
    assert pipe.a.released == len(data_a) and pipe.b.released == len(data_b)
    assert pipe.a.conn is not None and pipe.a.conn.statistics().retransmits == 0


def test_a_reader_that_stops_for_ten_seconds_gets_every_byte_when_it_resumes() -> None:
    data = _data(MIB, 8)
    config = TcpConfig(time_wait=1.0, receive_buffer=65536)
    pipe = Pipe(config, data_a=data, stall=(0.05, 10.0), keep=True).run()
    assert pipe.finished and pipe.a.error is None
    assert pipe.b.received == data
    assert pipe.a.conn is not None
    stats = pipe.a.conn.statistics()
    # The window shut, the sender probed it with backoff, and resumed.
    assert 3 <= stats.zero_window_probes <= 8 and stats.timeouts == 0
    assert 10.0 < pipe.now < 12.0


def test_the_same_seed_gives_the_same_run() -> None:
    def run() -> tuple[float, dict[str, int], int]:
        pipe = Pipe(
            TcpConfig(time_wait=1.0),
            data_a=_data(200_000, 5),
            data_b=_data(100_000, 6),
            loss=0.05,
            reorder=0.05,
            seed=11,
        ).run()
        return pipe.now, pipe.transmitted, pipe.dropped

    assert run() == run()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    size_a=st.integers(0, 120_000),
    size_b=st.integers(0, 60_000),
    write_size=st.integers(1, 70_000),
    loss=st.sampled_from([0.0, 0.02, 0.1, 0.25]),
    duplicate=st.sampled_from([0.0, 0.05]),
    reorder=st.sampled_from([0.0, 0.1, 0.3]),
    corrupt=st.sampled_from([0.0, 0.02]),
    jitter=st.sampled_from([0.0, 0.01]),
    sack=st.booleans(),
    timestamps=st.booleans(),
    window_scaling=st.booleans(),
    congestion_control=st.sampled_from(["newreno", "cubic"]),
    nagle=st.booleans(),
    delayed_ack=st.sampled_from([0.0, 0.04]),
    receive_buffer=st.sampled_from([3000, 20_000, 262_144]),
    max_out_of_order=st.sampled_from([0, 3, 1024]),
    stall=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.floats(0.1, 30))),
)
def test_no_fault_pattern_loses_or_duplicates_a_byte_and_every_connection_ends(
    seed: int,
    size_a: int,
    size_b: int,
    write_size: int,
    loss: float,
    duplicate: float,
    reorder: float,
    corrupt: float,
    jitter: float,
    sack: bool,
    timestamps: bool,
    window_scaling: bool,
    congestion_control: str,
    nagle: bool,
    delayed_ack: float,
    receive_buffer: int,
    max_out_of_order: int,
    stall: tuple[float, float] | None,
) -> None:
    config = TcpConfig(
        sack=sack,
        timestamps=timestamps,
        window_scaling=window_scaling,
        congestion_control=congestion_control,  # type: ignore[arg-type]
        nagle=nagle,
        delayed_ack=delayed_ack,
        receive_buffer=receive_buffer,
        send_buffer=max(receive_buffer, 4096),
        max_out_of_order=max_out_of_order,
        time_wait=1.0,
        # An end whose peer vanished learns it from the peer's RST to a probe.
        keepalive=True,
        keepalive_idle=10.0,
        keepalive_interval=5.0,
        keepalive_count=5,
    )
    data_a, data_b = _data(size_a, seed), _data(size_b, seed + 1)
    pipe = Pipe(
        config,
        data_a=data_a,
        data_b=data_b,
        write_size=write_size,
        keep=True,
        seed=seed,
        loss=loss,
        duplicate=duplicate,
        reorder=reorder,
        corrupt=corrupt,
        jitter=jitter,
        stall=None if stall is None else (stall[0], stall[0] + stall[1]),
    ).run(until=7200)
    # (During a stall b's window shuts: a probes it, and resumes when b reads.)
    # Whatever happened, what arrived is the start of what was sent, no
    # advertised window ever shrank, and every buffer taken was given back.
    assert data_a.startswith(pipe.b.received)
    assert data_b.startswith(pipe.a.received)
    assert pipe.shrinks == []
    assert pipe.finished, f"still open after {pipe.now:.0f} s"
    assert pipe.a.released == pipe.a.sent and pipe.b.released == pipe.b.sent
    if pipe.a.error is None and pipe.b.error is None:
        assert pipe.b.received == data_a and pipe.a.received == data_b
        assert pipe.a.eof and (pipe.b.eof or pipe.b.conn is None)
    else:
        # Only a retry limit (at 25% loss) or the RST it provokes may end a run early.
        for error in (pipe.a.error, pipe.b.error):
            assert error is None or "timed out" in error or "reset" in error
