"""DeviceWaiter: a stack's task sleeps until a frame is there, its device's
deadline, its own deadline, or a wake() -- on the scheduler's clock, so a
MockClock with autojump runs these in no real time and exactly."""

from __future__ import annotations

import pytest

import shardio
from shardio.testing import MockClock
from shardio_net.native.phy import DeviceWaiter, FaultInjector, SimulatedLink

from ._phy import number_of, numbered_frame


async def test_wait_returns_when_a_peer_transmits_without_time_passing(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    waiter = DeviceWaiter(b)

    async def peer() -> None:
        await shardio.sleep(1.0)
        a.transmit([(numbered_frame(1),)], shardio.current_time())

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(peer)
        await waiter.wait()
        assert shardio.current_time() == 1.0
        assert [number_of(f) for f in b.receive(shardio.current_time())] == [1]


async def test_wait_sleeps_on_through_the_latency_until_the_frame_arrives(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink(latency=0.25)
    a, b = link.attach(), link.attach()
    waiter = DeviceWaiter(b)

    async def peer() -> None:
        await shardio.sleep(1.0)
        a.transmit([(numbered_frame(1),)], shardio.current_time())

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(peer)
        await waiter.wait(deadline=10.0)
        # Not at 1.0, when the frame was sent: at its arrival.
        assert shardio.current_time() == 1.25
        assert [number_of(f) for f in b.receive(shardio.current_time())] == [1]


async def test_wait_returns_at_a_wrapped_devices_deadline(autojump_clock: MockClock) -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    injector = FaultInjector(b, delay=0.5)
    waiter = DeviceWaiter(injector)
    a.transmit([(numbered_frame(1),)], 0.0)
    await waiter.wait()
    assert shardio.current_time() == 0.0
    assert injector.receive(0.0) == []
    await waiter.wait()
    assert shardio.current_time() == 0.5
    assert [number_of(f) for f in injector.receive(0.5)] == [1]


async def test_wait_returns_at_the_callers_deadline_when_no_frame_comes(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink()
    _, b = link.attach(), link.attach()
    waiter = DeviceWaiter(b)
    await waiter.wait(deadline=3.0)
    assert shardio.current_time() == 3.0


async def test_wake_ends_a_wait_at_once_and_an_early_wake_is_kept(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink()
    _, b = link.attach(), link.attach()
    waiter = DeviceWaiter(b)

    async def user() -> None:
        await shardio.sleep(2.0)
        waiter.wake()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(user)
        await waiter.wait()
    assert shardio.current_time() == 2.0
    # Woken before it waits: the next wait returns without sleeping, once.
    waiter.wake()
    await waiter.wait(deadline=100.0)
    assert shardio.current_time() == 2.0
    await waiter.wait(deadline=5.0)
    assert shardio.current_time() == 5.0


async def test_second_task_waiting_on_one_device_is_refused(autojump_clock: MockClock) -> None:
    link = SimulatedLink()
    _, b = link.attach(), link.attach()
    waiter = DeviceWaiter(b)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(waiter.wait)
        await shardio.sleep(1.0)
        with pytest.raises(shardio.BusyResourceError, match="already waiting"):
            await waiter.wait()
        nursery.cancel_scope.cancel()


async def test_close_ends_the_wait_and_frames_no_longer_wake_the_waiter(
    autojump_clock: MockClock,
) -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    waiter = DeviceWaiter(b)
    woken_at: list[float] = []

    async def stack() -> None:
        await waiter.wait()
        woken_at.append(shardio.current_time())

    async def peer() -> None:
        await shardio.sleep(1.0)
        a.transmit([(numbered_frame(1),)], shardio.current_time())

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(stack)
        await shardio.sleep(1.0)
        waiter.close()
    assert woken_at == [1.0]
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(peer)
        await waiter.wait(deadline=5.0)
    assert shardio.current_time() == 5.0
