"""HTTP clients on shardio_net: httpx's transport and httpcore's network
backend (``pip install shardio[httpx]``; this module imports httpx and
httpcore, ``import shardio_net`` does not).

``httpx.AsyncClient(transport=AsyncHTTPTransport())`` runs httpx in a shardio
task, over shardio_net's TCP and TLS streams. :class:`NetworkBackend` is
httpcore's ``AsyncNetworkBackend`` on the same streams, for the day httpcore's
connection pool runs under shardio (see the reference).
"""

from ._httpcore import NetworkBackend, NetworkStream
from ._httpx import AsyncHTTPTransport

__all__ = ["AsyncHTTPTransport", "NetworkBackend", "NetworkStream"]
