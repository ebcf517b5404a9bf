"""shardio's own TCP/IP stack (Seastar's native stack): one stack per shard.

Layers as smoltcp's: ``wire`` (packet formats), ``phy`` (devices: a
simulated link, a fault injector, a pcap writer), ``iface`` (ARP, IPv4,
ICMP), ``tcp`` (the connection as a sans-io state machine), and on top the
stack with its streams, listeners and UDP sockets. See
docs/design/native-stack.md.
"""

from ._arguments import add_stack_arguments, start_stack
from ._listener import NativeListener
from ._on_shards import install, installed, start_tap_stacks
from ._simulated import simulated_pair
from ._stack import Capture, NativeStack, StackStatistics
from ._stream import COPY_THRESHOLD, NativeStream
from ._udp import NativeUDPSocket, UDPStatistics
from .tcp.config import TcpConfig
from .tcp.connection import TcpStatistics

__all__ = [
    "COPY_THRESHOLD",
    "Capture",
    "NativeListener",
    "NativeStack",
    "NativeStream",
    "NativeUDPSocket",
    "StackStatistics",
    "TcpConfig",
    "TcpStatistics",
    "UDPStatistics",
    "add_stack_arguments",
    "install",
    "installed",
    "simulated_pair",
    "start_stack",
    "start_tap_stacks",
]
