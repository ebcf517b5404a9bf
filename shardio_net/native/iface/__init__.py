"""The interface: ARP, IPv4 routing to one subnet and a gateway, ICMP, reassembly.

smoltcp's ``iface``, sans-io: :class:`Interface` takes Ethernet frames and
the time, answers what it can (ARP, pings, ICMP errors), puts fragments
together, and hands TCP, UDP and the ICMP messages about them to the stack;
the other way it routes, resolves and frames the stack's datagrams. See
``interface.py`` and docs/design/native-stack.md, section 5.
"""

from .config import InterfaceConfig
from .ingress import EchoReplyIngress, IcmpErrorIngress, Ingress, TcpIngress, UdpIngress
from .interface import Interface, InterfaceStatistics

__all__ = [
    "EchoReplyIngress",
    "IcmpErrorIngress",
    "Ingress",
    "Interface",
    "InterfaceConfig",
    "InterfaceStatistics",
    "TcpIngress",
    "UdpIngress",
]
