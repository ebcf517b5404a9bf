"""One TCP connection as a sans-io state machine (RFC 9293 and its companions),
and the listen queue. See connection.py for the API and the model."""

from .config import CongestionControlName, TcpConfig
from .connection import TcpConnection, TcpState, TcpStateError, TcpStatistics
from .events import (
    BuffersReleased,
    Closed,
    Connected,
    DataReceived,
    EndOfStream,
    Event,
    Reset,
    TimedOut,
)
from .isn import IsnGenerator
from .listener import TcpListener, TcpListenerStatistics
from .reset import reset_for
from .seq import seq_ge, seq_gt, seq_le, seq_lt

__all__ = [
    "BuffersReleased",
    "Closed",
    "CongestionControlName",
    "Connected",
    "DataReceived",
    "EndOfStream",
    "Event",
    "IsnGenerator",
    "Reset",
    "TcpConfig",
    "TcpConnection",
    "TcpListener",
    "TcpListenerStatistics",
    "TcpState",
    "TcpStateError",
    "TcpStatistics",
    "TimedOut",
    "reset_for",
    "seq_ge",
    "seq_gt",
    "seq_le",
    "seq_lt",
]
