"""DeviceWaiter: the one place a stack's task sleeps between passes.

A native stack runs as a task of its shard (a system task: it outlives user
tasks at shutdown). Each pass it receives, processes, transmits; then it has
nothing to do until the first of:

* a frame arrives from outside -- the device's waker fires;
* the device has timed work -- ``device.next_deadline()`` (a frame delayed by
  the link's latency or a fault injector becomes due);
* one of the stack's own timers expires -- the earliest deadline of its
  connections (retransmission, delayed ACK, TIME_WAIT...), one number per
  stack, not a task or a timer per connection;
* a user task gives it work (a socket's ``send_all`` queued data) -- it
  calls :meth:`DeviceWaiter.wake`.

:meth:`DeviceWaiter.wait` sleeps until exactly that, in one cancel scope
whose deadline is ``min(stack_deadline, device.next_deadline())``; being a
deadline in the scheduler's heap, it is what a ``MockClock`` with autojump
jumps to, so a simulated stack idles through its latencies and timeouts in
no real time.

The waker (see ``device.py``) runs when a frame is queued for the device,
typically inside the *other* stack's ``transmit`` on the same link, in the
same shard. It does the least that can be right: if the frame is due now, it
unparks the sleeping task (the common case with no latency: a reschedule,
no exception); if it is due later, it pulls the sleeping scope's deadline
in to that time, so the task sleeps on, without a useless pass, until the
frame is there; if no task sleeps it does nothing at all, since the next
``wait`` reads ``next_deadline()`` afresh. There is no lost wake-up to guard
against: the device's queue *is* the state, and it is read on the way in.

A stack written as a :class:`shardio.lowlevel.Poller` instead can pass its
own waker to ``device.set_waker`` -- one that sets a flag its ``poll`` checks
-- but it still needs a deadline in the scheduler for the timed part, which
is why the stack is a task and this is its sleep.
"""

from __future__ import annotations

from math import inf
from typing import final

import shardio
from shardio import lowlevel

from .device import Device

__all__ = ["DeviceWaiter"]


@final
class DeviceWaiter:
    """Lets one task sleep until ``device`` has work or a deadline passes.

    Installs itself as the device's waker (replacing any other); call
    :meth:`close` to remove it. One task waits at a time.
    """

    __slots__ = ("_device", "_lot", "_pending", "_scope")

    def __init__(self, device: Device) -> None:
        self._device = device
        self._lot = lowlevel.ParkingLot()
        # The scope of the wait in progress, if a task is waiting.
        self._scope: shardio.CancelScope | None = None
        # wake() was called while no task waited: the next wait returns at once.
        self._pending = False
        device.set_waker(self._on_frame)

    @property
    def device(self) -> Device:
        """The device waited on."""
        return self._device

    @lowlevel.enable_ki_protection
    async def wait(self, deadline: float = inf) -> None:
        """Return when the device has a frame or timed work due
        (``device.next_deadline()``), at ``deadline`` (the stack's own
        timers), or when :meth:`wake` is called -- whichever is first.
        Always a checkpoint; returns at once if something is already due.

        Another task already waiting: :class:`~shardio.BusyResourceError`.
        """
        if self._scope is not None:
            raise shardio.BusyResourceError("another task is already waiting on this device")
        due = self._device.next_deadline()
        if deadline < due:
            due = deadline
        if self._pending or due <= shardio.current_time():
            self._pending = False
            await lowlevel.checkpoint()
            return
        with shardio.move_on_at(due) as scope:
            self._scope = scope
            try:
                await self._lot.park()
            finally:
                self._scope = None

    @lowlevel.enable_ki_protection
    def wake(self) -> None:
        """End the wait in progress now; if none, make the next one return
        at once. For the stack's users: a socket that queued data to send."""
        if self._scope is None:
            self._pending = True
        else:
            self._lot.unpark_all()

    @lowlevel.enable_ki_protection
    def _on_frame(self) -> None:
        # The device's waker: see the module docs. Hot path: once per
        # transmit batch of the peer.
        scope = self._scope
        if scope is None:
            return
        due = self._device.next_deadline()
        if due <= shardio.current_time():
            self._lot.unpark_all()
        elif due < scope.deadline:
            scope.deadline = due

    def close(self) -> None:
        """Stop being the device's waker, and end a wait in progress."""
        self._device.set_waker(None)
        self._lot.unpark_all()
