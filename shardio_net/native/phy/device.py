"""The Device interface: how frames enter and leave a native stack.

A device is the bottom of the stack, smoltcp's ``phy``: whole Ethernet frames
in, whole Ethernet frames out, and no opinion about what is inside them. The
simulated link, the fault injector, the pcap writer and (in part 2) the TAP
queue are devices; the wrappers take any device and are one themselves, so
they stack: ``PcapWriter(FaultInjector(link.attach()), path)``.

Batches
-------
A stack works in *passes*, one per wake-up of its task: it calls
``receive(now)`` once and gets every frame that has arrived by ``now``,
processes them all, then calls ``transmit(frames, now)`` once with every
frame the pass produced. One call per pass, not per frame: the per-call cost
(a system call on TAP, a lookup and a wake-up on a simulated link) is paid
once per batch, as Seastar's ``net::device`` does with its packet batches.

Time
----
A device reads no clock. Every method whose result depends on time takes
``now`` (seconds, from the shard's clock or a ``MockClock``), and
``next_deadline()`` says when the device will next have work without any
outside event: a delayed frame becoming due, a held-back frame to release.
The rule for the stack is one line: **call** ``receive(now)`` **whenever**
``now >= next_deadline()``. ``receive`` is where a device does all its timed
work (a fault injector on the transmit path releases its held frames there
too). ``next_deadline()`` may change after any call into the device, so the
stack reads it after each pass. ``now`` must not go backwards between calls.

Buffer ownership
----------------
*Received frames.* ``receive`` returns each frame as a **read-only**
``memoryview`` **of memory that belongs to that frame alone** (a ``bytes``
object, usually). The device never writes into it and never reuses it: the
stack may keep the view, and slices of it, for as long as it likes -- a TCP
connection keeps views of a frame's payload until the application has read
them, and an out-of-order segment may wait for seconds. The memory goes when
the last view of it does. This costs an allocation per frame, and buys
zero-copy parsing with no lifetime rules for the layers above: nothing a
device does later can change a frame the stack holds. (A device that reads
into a reusable ring, as a DPDK driver would, would instead need the stack to
hand buffers back; we do not, because in Python the allocation is cheap
next to everything else done per frame.) Two frames may share memory only if
they are identical and immutable (a hub delivering one frame to three ports,
a duplicate): the views are still separate objects.

*Transmitted frames.* ``transmit`` takes each frame as a sequence of
*parts* -- header bytes followed by payload views, typically -- never joined
by the caller. The device reads the parts before ``transmit`` returns and
keeps no reference to them, so the caller may reuse or release them as soon
as it returns. This is the contract of ``writev()``: a TAP device hands the
parts to the kernel, which copies them; a simulated link joins them into one
``bytes`` (the one copy a real NIC's DMA would make), except that a frame
given as a single ``bytes`` part is kept as it is, since it cannot change.
Parts are byte buffers: ``bytes``, ``bytearray``, or a ``memoryview`` of
format ``"B"``.

Waking
------
Frames arrive from outside the stack's own calls: another stack on the same
simulated link transmits, or the TAP fd becomes readable. ``set_waker(fn)``
gives the device a function to call then, with no arguments. Its meaning is
"``next_deadline()`` may have moved earlier": the frame may be due at once,
or only after the link's latency. It is called on the shard's own thread,
possibly from inside *another* device's ``transmit`` (both ends of a
simulated link usually live in one shard), so it must not call ``receive`` or
``transmit``; it may read ``next_deadline()``, and it should only arrange for
the stack to run (reschedule a task, move a deadline, set a flag a
``Poller`` checks). Changes the stack causes itself are not signalled: it
reads ``next_deadline()`` after each pass anyway. A device on an fd (part 2's
TAP queue) implements the same hook by registering its fd with the scheduler
and calling the waker when it is readable, so a stack has one way to wait
whatever its device. :class:`~shardio_net.native.phy.waiter.DeviceWaiter`
is that way for a stack run by a task: one sleep that ends at the device's
deadline, at the stack's own timer deadline, or when the waker fires.

MTU
---
``mtu`` is the *IP* MTU, as Linux counts it (1500 on Ethernet): the largest
frame a device carries is ``mtu + ETHERNET_HEADER_LENGTH`` bytes (no FCS,
no VLAN tag). A device drops a larger frame and counts it, as a real link
would; it never raises for one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "ETHERNET_HEADER_LENGTH",
    "MAX_MTU",
    "MIN_MTU",
    "Device",
    "Waker",
    "check_mac",
    "check_mtu",
]

#: Bytes of an Ethernet II header (destination, source, EtherType): a frame
#: is at most ``mtu + ETHERNET_HEADER_LENGTH`` bytes long.
ETHERNET_HEADER_LENGTH = 14

#: The smallest IP MTU a device accepts: IPv4's minimum (RFC 791: every host
#: must take a 68-byte datagram without fragmenting it further).
MIN_MTU = 68

#: The largest IP MTU a device accepts: an IPv4 datagram's length is 16 bits.
MAX_MTU = 65535

#: What :meth:`Device.set_waker` takes: a function called with no arguments.
Waker = Callable[[], None]


class Device(Protocol):
    """The interface every device offers a stack; see the module docs.

    Wrappers (:class:`~shardio_net.native.phy.faults.FaultInjector`,
    :class:`~shardio_net.native.phy.pcap.PcapWriter`) take any ``Device``
    and are one.
    """

    @property
    def mtu(self) -> int:
        """The IP MTU: frames are at most ``mtu + 14`` bytes."""
        ...

    @property
    def mac(self) -> bytes:
        """This device's Ethernet address, 6 bytes."""
        ...

    def receive(self, now: float) -> list[memoryview]:
        """Every frame that has arrived by ``now``, oldest first, each a
        read-only view of its own memory (the stack may keep it). Also does
        the device's timed work; call it whenever ``now >= next_deadline()``."""
        ...

    def transmit(self, frames: Sequence[Sequence[Buffer]], now: float) -> None:
        """Send ``frames``, in order, each given as its parts (a vectored
        write). The parts are read before this returns and not kept. A frame
        the device cannot carry (too large) is dropped and counted."""
        ...

    def next_deadline(self) -> float:
        """The earliest ``now`` at which :meth:`receive` has work to do
        (``math.inf`` if none without an outside event)."""
        ...

    def set_waker(self, waker: Waker | None) -> None:
        """Call ``waker()`` whenever a frame is queued for this device from
        outside (``next_deadline()`` may have moved earlier); ``None``
        removes it. See the module docs for what a waker may do."""
        ...

    def close(self) -> None:
        """Release the device (a wrapper closes the device it wraps too).
        Idempotent; afterwards ``receive`` and ``transmit`` raise
        :class:`~shardio.ClosedResourceError`."""
        ...


def check_mtu(mtu: object, what: str = "mtu") -> int:
    """Return ``mtu`` if it is an int in ``MIN_MTU..MAX_MTU``; otherwise
    raise ``TypeError``/``ValueError`` saying what is wrong (``what`` names
    the argument in the message)."""
    if not isinstance(mtu, int) or isinstance(mtu, bool):
        raise TypeError(f"{what} must be an int (an IP MTU such as 1500), not {mtu!r}")
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError(
            f"{what} must be between {MIN_MTU} and {MAX_MTU} (an IP MTU, without the "
            f"14-byte Ethernet header), not {mtu}"
        )
    return mtu


def check_mac(mac: object) -> bytes:
    """Return ``mac`` as ``bytes`` if it is 6 bytes long; otherwise raise
    ``TypeError``/``ValueError`` saying what is wrong."""
    if not isinstance(mac, bytes | bytearray):
        raise TypeError(
            f"a MAC address is 6 bytes (e.g. bytes.fromhex('020000000001')), not {mac!r}"
        )
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}: {bytes(mac).hex(':')}")
    return bytes(mac)
