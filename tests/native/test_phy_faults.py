"""FaultInjector: each fault at its rate over many frames (fixed seeds, so the
binomial bounds are checks of the rate, not chances of a flake), delays,
rate limit, MTU, both directions, determinism."""

from __future__ import annotations

from collections import Counter
from math import ceil, floor, sqrt

import attrs
import pytest

from shardio import ClosedResourceError
from shardio_net.native.phy import FaultInjector, SimulatedLink

from ._phy import drive, number_of, numbered_frame

N = 10_000


def binomial_bounds(n: int, p: float, sigmas: float = 6.0) -> tuple[int, int]:
    """Where the count of ``n`` trials of probability ``p`` lands but for a
    one-in-a-billion chance: ``n p`` plus or minus six standard deviations.
    With a fixed seed nothing varies between runs; the bound says the rate is
    the one asked for (a doubled or ignored probability falls far outside)."""
    deviation = sigmas * sqrt(n * p * (1 - p))
    return floor(n * p - deviation), ceil(n * p + deviation)


def one_frame_per_tick(count: int = N, spacing: float = 0.0001) -> list[tuple[float, list[bytes]]]:
    return [(i * spacing, [numbered_frame(i)]) for i in range(count)]


def test_loss_drops_a_binomial_share_of_frames_and_counts_each() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, loss=0.1, seed=1)
    arrivals = drive(one_frame_per_tick(), a, injector)
    numbers = [number_of(frame) for _, frame in arrivals]
    assert numbers == sorted(set(numbers))
    stats = injector.statistics()
    low, high = binomial_bounds(N, 0.1)
    assert low <= stats.lost <= high
    assert len(numbers) == N - stats.lost
    assert (stats.frames_in, stats.frames_out, stats.held) == (N, len(numbers), 0)


def test_duplicate_delivers_a_binomial_share_of_frames_twice_in_a_row() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, duplicate=0.05, seed=2)
    arrivals = drive(one_frame_per_tick(), a, injector)
    numbers = [number_of(frame) for _, frame in arrivals]
    twice = [number for number, count in Counter(numbers).items() if count == 2]
    assert sorted(set(numbers)) == list(range(N))
    assert len(numbers) == N + len(twice)
    assert all(numbers[numbers.index(n) + 1] == n for n in twice)
    stats = injector.statistics()
    assert stats.duplicated == len(twice)
    low, high = binomial_bounds(N, 0.05)
    assert low <= stats.duplicated <= high
    assert stats.frames_out == N + stats.duplicated


def test_reorder_holds_frames_back_so_that_later_ones_overtake_them() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, reorder=0.1, reorder_delay=0.001, seed=3)
    # One frame per 0.1 ms, so a frame held 1 ms has the next ten behind it.
    arrivals = drive(one_frame_per_tick(), a, injector)
    numbers = [number_of(frame) for _, frame in arrivals]
    assert sorted(numbers) == list(range(N))
    held = set()
    for when, frame in arrivals:
        number = number_of(frame)
        if when != pytest.approx(number * 0.0001):
            assert when == pytest.approx(number * 0.0001 + 0.001)
            held.add(number)
    overtaken = set()
    highest = -1
    for number in numbers:
        if number < highest:
            overtaken.add(number)
        highest = max(highest, number)
    # Only held frames are overtaken, and every one is but for the last few
    # (too few frames came after them).
    assert {n for n in held if n < N - 10} <= overtaken <= held
    stats = injector.statistics()
    assert stats.reordered == len(held)
    low, high = binomial_bounds(N, 0.1)
    assert low <= stats.reordered <= high


def test_corrupt_flips_exactly_one_bit_in_a_binomial_share_of_frames() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, corrupt=0.1, seed=4)
    sends = one_frame_per_tick()
    arrivals = drive(sends, a, injector)
    assert len(arrivals) == N
    damaged = 0
    for (_, [sent]), (_, received) in zip(sends, arrivals, strict=True):
        flipped = sum(bin(x ^ y).count("1") for x, y in zip(sent, received, strict=True))
        assert flipped in (0, 1)
        damaged += flipped
    stats = injector.statistics()
    assert stats.corrupted == damaged
    low, high = binomial_bounds(N, 0.1)
    assert low <= damaged <= high


def test_delay_and_jitter_hold_each_frame_within_its_window_and_keep_order() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, delay=0.05, jitter=0.02, seed=5)
    arrivals = drive(one_frame_per_tick(1000, spacing=0.01), a, injector)
    numbers = [number_of(frame) for _, frame in arrivals]
    assert numbers == list(range(1000))
    extra = [when - n * 0.01 - 0.05 for n, (when, _) in zip(numbers, arrivals, strict=True)]
    assert all(-1e-9 <= e < 0.02 for e in extra)
    # The jitter is spread over its window, not a constant.
    assert min(extra) < 0.001
    assert max(extra) > 0.019


def test_jitter_never_reorders_frames_sent_closer_than_the_jitter() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, jitter=0.01, seed=6)
    arrivals = drive(one_frame_per_tick(1000, spacing=0.0001), a, injector)
    assert [number_of(frame) for _, frame in arrivals] == list(range(1000))
    assert injector.statistics().reordered == 0


def test_rate_limit_spaces_frames_and_drops_the_tail_of_a_full_queue() -> None:
    link = SimulatedLink(mtu=500)
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, rate=1000, queue_bytes=1000, seed=0)
    arrivals = drive([(0.0, [numbered_frame(i, 300) for i in range(5)])], a, injector)
    assert [number_of(frame) for _, frame in arrivals] == [0, 1, 2]
    assert [when for when, _ in arrivals] == pytest.approx([0.3, 0.6, 0.9])
    assert injector.statistics().dropped_queue_full == 2


def test_mtu_narrows_the_device_and_drops_larger_frames_from_the_peer() -> None:
    link = SimulatedLink(mtu=1500)
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, mtu=1000)
    assert injector.mtu == 1000
    assert FaultInjector(b, mtu=9000).mtu == 1500
    assert FaultInjector(b).mtu == 1500
    arrivals = drive([(0.0, [numbered_frame(1, 1014), numbered_frame(2, 1015)])], a, injector)
    assert [number_of(frame) for _, frame in arrivals] == [1]
    assert injector.statistics().dropped_oversize == 1


def test_transmit_direction_impairs_what_the_stack_sends() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(a, direction="transmit", loss=0.5, delay=0.1, seed=7)
    sends = one_frame_per_tick(1000, spacing=0.01)
    arrivals = drive(sends, injector, b)
    numbers = [number_of(frame) for _, frame in arrivals]
    stats = injector.statistics()
    low, high = binomial_bounds(1000, 0.5)
    assert low <= stats.lost <= high
    assert len(numbers) == 1000 - stats.lost
    assert all(
        when == pytest.approx(n * 0.01 + 0.1)
        for n, (when, _) in zip(numbers, arrivals, strict=True)
    )
    # The frames coming the other way are left alone.
    b.transmit([(numbered_frame(i),) for i in range(100)], 20.0)
    assert len(injector.receive(20.0)) == 100


def test_transmit_direction_keeps_its_own_copy_of_a_held_frame() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(a, direction="transmit", delay=1.0)
    original = numbered_frame(1, 100)
    header, payload = bytearray(original[:14]), bytearray(original[14:])
    injector.transmit([(header, memoryview(payload))], 0.0)
    header[:] = payload[:14] = b"\x00" * 14
    assert injector.next_deadline() == 1.0
    assert injector.receive(0.5) == []
    assert b.receive(1.0) == []
    injector.receive(1.0)
    assert [bytes(frame) for frame in b.receive(1.0)] == [original]


def test_a_fault_left_at_zero_draws_nothing_so_adding_a_delay_keeps_the_same_losses() -> None:
    def lost_numbers(delay: float) -> set[int]:
        link = SimulatedLink()
        a, b = link.attach(), link.attach()
        injector = FaultInjector(b, loss=0.2, delay=delay, seed=8)
        received = {number_of(frame) for _, frame in drive(one_frame_per_tick(1000), a, injector)}
        return set(range(1000)) - received

    assert lost_numbers(delay=0.0) == lost_numbers(delay=0.5)


def test_faults_changed_mid_run_take_effect_from_the_next_frame() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, seed=9)
    assert len(drive(one_frame_per_tick(100), a, injector)) == 100
    # The path goes dead: a peer that vanished.
    injector.loss = 1.0
    a.transmit([(numbered_frame(i),) for i in range(100)], 1.0)
    assert injector.receive(1.0) == []
    injector.loss = 0
    injector.delay = 0.5
    a.transmit([(numbered_frame(7),)], 2.0)
    assert injector.receive(2.0) == []
    assert [number_of(f) for f in injector.receive(2.5)] == [7]
    assert injector.statistics().lost == 100


def test_fault_changed_to_a_bad_value_or_a_fixed_parameter_changed_is_refused() -> None:
    link = SimulatedLink()
    injector = FaultInjector(link.attach(), rate=1_000_000)
    with pytest.raises(ValueError, match="loss must be a probability from 0 to 1, not 2"):
        injector.loss = 2
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        injector.rate = 10
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        injector.seed = 1
    assert injector.loss == 0


def every_fault(seed: int) -> list[tuple[float, bytes]]:
    link = SimulatedLink(latency=0.001)
    a, b = link.attach(), link.attach()
    injector = FaultInjector(
        b,
        loss=0.05,
        duplicate=0.01,
        reorder=0.05,
        corrupt=0.01,
        delay=0.002,
        jitter=0.001,
        rate=10_000_000,
        seed=seed,
    )
    sends = [
        (i * 0.001, [numbered_frame(i * 4 + k, 60 + 37 * k) for k in range(4)]) for i in range(500)
    ]
    return drive(sends, a, injector)


def test_same_seed_gives_the_same_frames_at_the_same_times_and_another_seed_does_not() -> None:
    first = every_fault(seed=11)
    assert first == every_fault(seed=11)
    assert first != every_fault(seed=12)
    assert len(first) > 1500


def test_close_drops_held_frames_and_closes_the_wrapped_device() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, delay=1.0)
    a.transmit([(numbered_frame(1),)], 0.0)
    assert injector.receive(0.0) == []
    assert injector.statistics().held == 1
    injector.close()
    injector.close()
    assert injector.statistics().held == 0
    assert b.link is None
    with pytest.raises(ClosedResourceError):
        injector.receive(2.0)
    with pytest.raises(ClosedResourceError):
        injector.transmit([], 2.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"loss": 1.5}, ValueError, "loss must be a probability from 0 to 1, not 1.5"),
        ({"corrupt": -0.1}, ValueError, "corrupt must be a probability"),
        ({"duplicate": "0.1"}, TypeError, "duplicate must be a probability"),
        ({"delay": -1}, ValueError, "delay must be a finite number of seconds >= 0"),
        ({"jitter": float("inf")}, ValueError, "jitter must be a finite number"),
        ({"rate": -5}, ValueError, "rate must be a finite number of bytes per second > 0"),
        ({"mtu": 10}, ValueError, "mtu must be between 68 and 65535"),
        ({"direction": "both"}, ValueError, "wrap the device twice"),
        ({"seed": None}, TypeError, "seed must be an int"),
    ],
)
def test_bad_fault_parameters_say_what_is_wrong(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    link = SimulatedLink()
    with pytest.raises(error, match=message):
        FaultInjector(link.attach(), **kwargs)  # type: ignore[arg-type]


def test_an_injector_refuses_a_device_whose_checksums_the_stack_would_not_check() -> None:
    class Offloading:
        checksums_verified = True
        mtu = 1500
        mac = b"\x02\x00\x00\x00\x00\x09"

    with pytest.raises(ValueError, match="checksum_offload=False"):
        FaultInjector(Offloading())  # type: ignore[arg-type]
