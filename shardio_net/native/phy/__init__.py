"""Devices: where frames come from and go to (a simulated link, a queue of a
TAP device, and a fault injector and a pcap writer that wrap any device).

See ``device.py`` for the interface and its buffer-ownership and wake-up
rules, and docs/design/native-stack.md ("Devices").
"""

from .device import ETHERNET_HEADER_LENGTH, Device, Waker
from .faults import FaultInjector, FaultStatistics
from .pcap import PcapStatistics, PcapWriter
from .simulated import SimulatedDevice, SimulatedDeviceStatistics, SimulatedLink
from .tap import TapDevice, TapStatistics
from .waiter import DeviceWaiter

__all__ = [
    "ETHERNET_HEADER_LENGTH",
    "Device",
    "DeviceWaiter",
    "FaultInjector",
    "FaultStatistics",
    "PcapStatistics",
    "PcapWriter",
    "SimulatedDevice",
    "SimulatedDeviceStatistics",
    "SimulatedLink",
    "TapDevice",
    "TapStatistics",
    "Waker",
]
