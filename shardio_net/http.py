"""HTTP/1.1 for servers, as a pure state machine with no I/O ("sans-io").

:class:`ServerConnection` turns received bytes into events (:class:`Request`,
:class:`Data`, :class:`EndOfMessage`, :class:`ConnectionClosed`) and the
server's events (:class:`Response`, :class:`InformationalResponse`,
:class:`Data`, :class:`EndOfMessage`) into bytes to send. The rules it keeps
(framing, keep-alive, pipelining, limits on hostile input) are described in
its module, ``shardio_net._http``.

This module only re-exports the public names.
"""

from ._http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    LocalProtocolError,
    Pause,
    RemoteProtocolError,
    Request,
    Response,
    ServerConnection,
)

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "InformationalResponse",
    "LocalProtocolError",
    "Pause",
    "RemoteProtocolError",
    "Request",
    "Response",
    "ServerConnection",
]
