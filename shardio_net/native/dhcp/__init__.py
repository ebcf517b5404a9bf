"""DHCP (RFC 2131): the message format and a sans-io client.

``message.py`` parses and emits DHCP messages with the options of RFC 2132
a client needs; ``client.py`` is the client's state machine (INIT,
SELECTING, REQUESTING, REBOOTING, BOUND, RENEWING, REBINDING) with its
timers and retransmissions, fed datagrams and the time like a TCP
connection. ``NativeStack.dhcp()`` runs one on a stack. See
docs/design/native-stack.md, section 8.
"""

from .client import (
    DhcpClient,
    DhcpConfig,
    DhcpState,
    DhcpStatistics,
    Lease,
    LeaseLost,
    LeaseObtained,
    Outgoing,
)
from .message import DhcpMessage, dhcp_message, parse_dhcp

__all__ = [
    "DhcpClient",
    "DhcpConfig",
    "DhcpMessage",
    "DhcpState",
    "DhcpStatistics",
    "Lease",
    "LeaseLost",
    "LeaseObtained",
    "Outgoing",
    "dhcp_message",
    "parse_dhcp",
]
