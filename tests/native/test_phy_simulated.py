"""The simulated link: delivery times and order, rate limit, MTU, switching,
buffer ownership, wakers. Time is only the ``now`` passed in."""

from __future__ import annotations

import attrs
import pytest

from shardio import ClosedResourceError
from shardio_net.native.phy import SimulatedLink

from ._phy import drive, number_of, numbered_frame


def test_frame_arrives_after_the_latency_and_not_before() -> None:
    link = SimulatedLink(latency=0.25)
    a, b = link.attach(), link.attach()
    frame = numbered_frame(1)
    a.transmit([(frame,)], 10.0)
    assert b.next_deadline() == 10.25
    assert b.receive(10.0) == []
    assert b.receive(10.249) == []
    assert [bytes(f) for f in b.receive(10.25)] == [frame]
    assert b.receive(11.0) == []
    assert b.next_deadline() == float("inf")


def test_frames_arrive_in_the_order_sent_across_batches() -> None:
    link = SimulatedLink(latency=0.1)
    a, b = link.attach(), link.attach()
    sends = [(t * 0.01, [numbered_frame(t * 3 + i) for i in range(3)]) for t in range(100)]
    arrivals = drive(sends, a, b)
    assert [number_of(frame) for _, frame in arrivals] == list(range(300))
    assert [when for when, _ in arrivals] == [
        pytest.approx(t * 0.01 + 0.1) for t in range(100) for _ in range(3)
    ]


def test_link_carries_both_directions_independently() -> None:
    link = SimulatedLink(latency=1.0)
    a, b = link.attach(), link.attach()
    a.transmit([(numbered_frame(1),)], 0.0)
    b.transmit([(numbered_frame(2),)], 0.5)
    assert [number_of(f) for f in b.receive(1.0)] == [1]
    assert a.receive(1.0) == []
    assert [number_of(f) for f in a.receive(1.5)] == [2]


def test_received_frame_is_a_read_only_view_that_later_sender_writes_do_not_change() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    original = numbered_frame(7, 200)
    header = bytearray(original[:14])
    payload = bytearray(original[14:])
    a.transmit([(header, memoryview(payload)[:100], memoryview(payload)[100:])], 0.0)
    # The sender reuses its buffers at once, as the contract allows.
    header[:] = b"\x00" * 14
    payload[:] = b"\xee" * len(payload)
    [frame] = b.receive(0.0)
    assert frame.readonly
    assert bytes(frame) == original


def test_frame_given_as_one_bytes_object_reaches_the_peer_without_a_copy() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    original = numbered_frame(1)
    a.transmit([(original,)], 0.0)
    [frame] = b.receive(0.0)
    assert frame.obj is original


def test_frame_longer_than_mtu_plus_header_is_dropped_and_counted() -> None:
    link = SimulatedLink(mtu=1500)
    a, b = link.attach(), link.attach()
    assert a.mtu == b.mtu == 1500
    a.transmit(
        [(numbered_frame(1, 1514),), (numbered_frame(2, 1515),), (numbered_frame(3, 60),)], 0.0
    )
    assert [number_of(f) for f in b.receive(0.0)] == [1, 3]
    stats = a.statistics()
    assert stats.dropped_oversize == 1
    assert stats.frames_sent == 2
    assert stats.bytes_sent == 1514 + 60
    assert b.statistics().frames_received == 2


def test_frame_shorter_than_an_ethernet_header_is_dropped_as_a_runt() -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    a.transmit([(b"\xff" * 13,), (b"\xff" * 14,)], 0.0)
    assert [bytes(f) for f in b.receive(0.0)] == [b"\xff" * 14]
    assert a.statistics().dropped_runt == 1


def test_rate_limit_spaces_frames_by_their_serialization_time() -> None:
    # 1000 bytes/s: a 100-byte frame takes 0.1 s to leave; then the latency.
    link = SimulatedLink(rate=1000, latency=0.5, mtu=500)
    a, b = link.attach(), link.attach()
    arrivals = drive([(0.0, [numbered_frame(i, 100) for i in range(5)])], a, b)
    assert [number_of(frame) for _, frame in arrivals] == [0, 1, 2, 3, 4]
    assert [when for when, _ in arrivals] == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])


def test_rate_limit_lets_an_idle_link_send_at_once() -> None:
    link = SimulatedLink(rate=1000, mtu=500)
    a, b = link.attach(), link.attach()
    arrivals = drive([(0.0, [numbered_frame(0, 100)]), (5.0, [numbered_frame(1, 100)])], a, b)
    assert [when for when, _ in arrivals] == pytest.approx([0.1, 5.1])


def test_full_uplink_queue_drops_the_tail_until_it_drains() -> None:
    link = SimulatedLink(rate=1000, mtu=500, queue_bytes=1000)
    a, b = link.attach(), link.attach()
    # 300-byte frames: three fit in 1000 bytes of queue, the fourth and fifth do not.
    a.transmit([(numbered_frame(i, 300),) for i in range(5)], 0.0)
    assert a.statistics().dropped_queue_full == 2
    # By 0.45 s, 450 of the 900 queued bytes have left: room for one more
    # 300-byte frame, not two.
    a.transmit([(numbered_frame(5, 300),), (numbered_frame(6, 300),)], 0.45)
    assert a.statistics().dropped_queue_full == 3
    arrivals = drive([], a, b)
    assert [number_of(frame) for _, frame in arrivals] == [0, 1, 2, 5]
    assert [when for when, _ in arrivals] == pytest.approx([0.3, 0.6, 0.9, 1.2])


def test_switch_sends_unicast_to_its_port_and_floods_broadcast_and_unknown() -> None:
    link = SimulatedLink()
    a, b, c = link.attach(), link.attach(), link.attach()
    a.transmit(
        [
            (numbered_frame(1, dst=b.mac, src=a.mac),),
            (numbered_frame(2, dst=b"\xff" * 6, src=a.mac),),
            (numbered_frame(3, dst=b"\x02\x99\x99\x99\x99\x99", src=a.mac),),
            (numbered_frame(4, dst=b"\x01\x00\x5e\x00\x00\x01", src=a.mac),),
            (numbered_frame(5, dst=a.mac, src=a.mac),),
        ],
        0.0,
    )
    assert [number_of(f) for f in b.receive(0.0)] == [1, 2, 3, 4]
    assert [number_of(f) for f in c.receive(0.0)] == [2, 3, 4]
    assert a.receive(0.0) == []


def test_hub_sends_every_frame_to_every_other_port() -> None:
    link = SimulatedLink(switched=False)
    a, b, c = link.attach(), link.attach(), link.attach()
    a.transmit([(numbered_frame(1, dst=b.mac),)], 0.0)
    assert [number_of(f) for f in b.receive(0.0)] == [1]
    assert [number_of(f) for f in c.receive(0.0)] == [1]
    assert a.receive(0.0) == []


def test_frames_from_two_ports_merge_by_arrival_time() -> None:
    link = SimulatedLink(latency=1.0)
    a, b, c = link.attach(), link.attach(), link.attach()
    a.transmit([(numbered_frame(1, dst=c.mac),)], 0.2)
    b.transmit([(numbered_frame(2, dst=c.mac),)], 0.1)
    a.transmit([(numbered_frame(3, dst=c.mac),)], 0.2)
    assert [number_of(f) for f in c.receive(2.0)] == [2, 1, 3]


def test_waker_is_called_once_per_batch_and_only_for_ports_that_got_frames() -> None:
    link = SimulatedLink(latency=0.5)
    a, b, c = link.attach(), link.attach(), link.attach()
    calls: list[str] = []
    b.set_waker(lambda: calls.append(f"b, due {b.next_deadline()}"))
    c.set_waker(lambda: calls.append("c"))
    a.transmit([(numbered_frame(i, dst=b.mac),) for i in range(10)], 1.0)
    assert calls == ["b, due 1.5"]
    b.set_waker(None)
    a.transmit([(numbered_frame(10, dst=b.mac),)], 1.0)
    assert calls == ["b, due 1.5"]


def test_latency_changed_mid_run_applies_to_frames_sent_afterwards() -> None:
    link = SimulatedLink(latency=1.0)
    a, b = link.attach(), link.attach()
    a.transmit([(numbered_frame(1),)], 0.0)
    link.latency = 0.1
    a.transmit([(numbered_frame(2),)], 0.0)
    assert [number_of(f) for f in b.receive(0.1)] == [2]
    assert [number_of(f) for f in b.receive(1.0)] == [1]
    with pytest.raises(ValueError, match="latency must be"):
        link.latency = -1
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        link.mtu = 9000


def test_default_macs_are_distinct_and_locally_administered() -> None:
    link = SimulatedLink()
    macs = [link.attach().mac for _ in range(3)]
    assert macs == [bytes.fromhex(f"02000000000{i}") for i in (1, 2, 3)]
    with pytest.raises(ValueError, match="already attached"):
        link.attach(macs[0])


def test_closed_device_refuses_use_and_its_frames_go_nowhere() -> None:
    link = SimulatedLink(latency=1.0)
    a, b = link.attach(), link.attach()
    a.transmit([(numbered_frame(1),)], 0.0)
    b.close()
    b.close()
    assert b.link is None
    assert link.devices == (a,)
    a.transmit([(numbered_frame(2),)], 0.5)
    with pytest.raises(ClosedResourceError):
        b.receive(2.0)
    with pytest.raises(ClosedResourceError):
        b.transmit([(numbered_frame(3),)], 2.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mtu": 67}, ValueError, "between 68 and 65535"),
        ({"mtu": 1500.0}, TypeError, "must be an int"),
        ({"latency": -1}, ValueError, "latency must be a finite number of seconds >= 0"),
        ({"rate": 0}, ValueError, "rate must be a finite number of bytes per second > 0"),
        ({"rate": 1000, "queue_bytes": 1000}, ValueError, "at least one frame of 1514 bytes"),
        ({"switched": 1}, TypeError, "switched must be True or False"),
    ],
)
def test_bad_link_parameters_say_what_is_wrong(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SimulatedLink(**kwargs)  # type: ignore[arg-type]


def test_bad_mac_says_what_a_device_mac_must_be() -> None:
    link = SimulatedLink()
    with pytest.raises(ValueError, match="6 bytes, not 4"):
        link.attach(b"\x02\x00\x00\x01")
    with pytest.raises(ValueError, match="a group \\(multicast\\) address"):
        link.attach(b"\x01\x00\x5e\x00\x00\x01")
    with pytest.raises(TypeError, match="a MAC address is 6 bytes"):
        link.attach("02:00:00:00:00:01")  # type: ignore[arg-type]
