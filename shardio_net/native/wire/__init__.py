"""Packet formats: a checked parse and an emit for each (Ethernet, ARP, IPv4,
ICMPv4, UDP, TCP with options), and the Internet checksum.

One module per format (``ethernet``, ``arp``, ``ipv4``, ``icmpv4``, ``udp``,
``tcp``), each with a repr class, ``parse_<format>()`` and
``<format>_header()``; ``checksum`` holds the sums. Parsers return views into
the frame and raise only :class:`Malformed`. See docs/design/native-stack.md,
section 2.
"""

from ._views import EMPTY
from .errors import Malformed

__all__ = ["EMPTY", "Malformed"]
