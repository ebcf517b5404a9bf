"""Helpers for the device tests: numbered frames, and a driver that calls
devices the way a stack does (``receive`` at every deadline)."""

from __future__ import annotations

from collections.abc import Iterable
from math import inf

from shardio_net.native.phy import Device

#: IEEE 802 "local experimental" EtherType: frames that are nothing but bytes.
EXPERIMENTAL = b"\x88\xb5"
BROADCAST = b"\xff" * 6


def numbered_frame(
    number: int, size: int = 64, *, dst: bytes = BROADCAST, src: bytes = b"\x02" + b"\x00" * 5
) -> bytes:
    """An Ethernet frame of ``size`` bytes carrying ``number`` after its
    header, the rest a pattern that depends on the number too."""
    body = number.to_bytes(4, "big")
    filler = bytes((number + i) & 0xFF for i in range(size - 14 - 4))
    return dst + src + EXPERIMENTAL + body + filler


def number_of(frame: bytes | memoryview) -> int:
    """The number :func:`numbered_frame` put in ``frame``."""
    return int.from_bytes(frame[14:18], "big")


def drive(
    sends: Iterable[tuple[float, list[bytes]]], sender: Device, receiver: Device
) -> list[tuple[float, bytes]]:
    """Transmit each batch on ``sender`` at its time (times in order), and
    call ``receive`` on both devices at every deadline either has, as a stack
    on each would; return what ``receiver`` received, as (time, frame)."""
    arrivals: list[tuple[float, bytes]] = []

    def run_until(limit: float) -> None:
        while (due := min(sender.next_deadline(), receiver.next_deadline())) <= limit:
            if due == inf:
                return
            sender.receive(due)
            arrivals.extend((due, bytes(frame)) for frame in receiver.receive(due))

    for now, batch in sends:
        run_until(now)
        sender.transmit([(frame,) for frame in batch], now)
    run_until(inf)
    return arrivals
