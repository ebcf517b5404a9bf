"""shardio_net: networking for shardio.

This module only re-exports the public names; see the docs for each.
"""

from . import http as http
from ._receive_buffer import ReceiveBuffer
from ._tls import NeedHandshakeError, TLSListener, TLSStream

__all__ = [
    "NeedHandshakeError",
    "ReceiveBuffer",
    "TLSListener",
    "TLSStream",
]
