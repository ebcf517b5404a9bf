"""shardio_net: networking for shardio -- TCP, Unix-domain and UDP sockets as
Trio-style streams and listeners, served on one shard or on all of them,
with zero-copy buffer APIs.

This module only re-exports the public names; see the docs for each.
"""

from . import http as http
from ._receive_buffer import ReceiveBuffer
from ._resolve import MAX_RESOLVER_THREADS, AddressInfo, getaddrinfo
from ._serve import serve_listeners
from ._serve_tcp import serve_tcp
from ._socket_listener import SocketListener
from ._socket_stream import (
    DEFAULT_RECEIVE_SIZE,
    DEFAULT_ZEROCOPY_THRESHOLD,
    SocketStream,
    SocketStreamStatistics,
)
from ._tcp_listeners import open_tcp_listeners
from ._tcp_stream import DEFAULT_HAPPY_EYEBALLS_DELAY, open_tcp_stream
from ._tls import NeedHandshakeError, TLSListener, TLSStream
from ._udp import DEFAULT_DATAGRAM_SIZE, UDPSocket, open_udp_socket
from ._unix import open_unix_listener, open_unix_socket, serve_unix

__all__ = [
    "DEFAULT_DATAGRAM_SIZE",
    "DEFAULT_HAPPY_EYEBALLS_DELAY",
    "DEFAULT_RECEIVE_SIZE",
    "DEFAULT_ZEROCOPY_THRESHOLD",
    "MAX_RESOLVER_THREADS",
    "AddressInfo",
    "NeedHandshakeError",
    "ReceiveBuffer",
    "SocketListener",
    "SocketStream",
    "SocketStreamStatistics",
    "TLSListener",
    "TLSStream",
    "UDPSocket",
    "getaddrinfo",
    "open_tcp_listeners",
    "open_tcp_stream",
    "open_udp_socket",
    "open_unix_listener",
    "open_unix_socket",
    "serve_listeners",
    "serve_tcp",
    "serve_unix",
]
