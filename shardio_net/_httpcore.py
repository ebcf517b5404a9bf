"""httpcore's network backend on shardio_net.

httpcore (under httpx) lets its user hand it the network: an
``httpcore.AsyncNetworkBackend`` opens TCP and Unix-domain connections and
gives back ``AsyncNetworkStream``s to read, write, upgrade to TLS and close.
:class:`NetworkBackend` is that, on shardio_net's streams: ``open_tcp_stream``
(happy eyeballs, name resolution off the shard), ``open_unix_socket``, and
``TLSStream`` for ``start_tls``. Its errors are httpcore's (``ConnectError``,
``ReadTimeout``...), and each call's ``timeout`` is a ``shardio.fail_after``.

It is built for ``httpcore.AsyncConnectionPool(network_backend=...)``, but
httpcore 1.0 cannot run that pool under shardio yet: besides the network, the
pool uses locks, events and shields that it picks by
``sniffio.current_async_library()``, and it refuses any name but "asyncio" and
"trio". Until httpcore takes AnyIO's primitives for the other names (AnyIO
runs on shardio), httpx runs on :class:`shardio_net.http_client.AsyncHTTPTransport`,
which drives HTTP/1.1 itself over this backend's streams.
"""

from __future__ import annotations

import math
import socket
import ssl
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from typing import Any

import httpcore

import shardio

from ._socket_stream import SocketStream
from ._tcp_stream import open_tcp_stream
from ._tls import TLSStream
from ._unix import open_unix_socket

__all__ = ["NetworkBackend", "NetworkStream"]

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


@contextmanager
def _mapped(
    timeout: float | None,
    on_timeout: type[Exception],
    on_error: type[Exception],
) -> Generator[None, None, None]:
    """Run the block under ``timeout`` seconds (``None``: no limit), raising
    httpcore's ``on_timeout`` when it runs out and ``on_error`` for a broken or
    refused connection, with the original as its cause."""
    try:
        with shardio.fail_after(math.inf if timeout is None else timeout):
            yield
    except shardio.TooSlowError as exc:
        raise on_timeout(str(exc) or "timed out") from exc
    except (shardio.BrokenResourceError, shardio.ClosedResourceError, OSError) as exc:
        raise on_error(str(exc) or type(exc).__name__) from exc


class NetworkStream(httpcore.AsyncNetworkStream):
    """A shardio_net stream (a ``SocketStream``, or a ``TLSStream`` over one)
    as httpcore's ``AsyncNetworkStream``."""

    def __init__(self, stream: SocketStream | TLSStream[Any]) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(timeout, httpcore.ReadTimeout, httpcore.ReadError):
            return bytes(await self._stream.receive_some(max_bytes))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(timeout, httpcore.WriteTimeout, httpcore.WriteError):
            await self._stream.send_all(buffer)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        tls = TLSStream(
            self._stream, ssl_context, server_hostname=server_hostname, https_compatible=True
        )
        try:
            with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
                await tls.do_handshake()
        except BaseException:
            await shardio.aclose_forcefully(tls)
            raise
        return NetworkStream(tls)

    def _socket(self) -> socket.socket:
        stream: Any = self._stream
        while isinstance(stream, TLSStream):
            stream = stream.transport_stream
        assert isinstance(stream, SocketStream)
        return stream.socket

    def get_extra_info(self, info: str) -> Any:
        """``"ssl_object"`` (the ``TLSStream``, which answers the ``SSLObject``
        questions httpcore asks), ``"client_addr"``, ``"server_addr"``,
        ``"socket"``, ``"is_readable"`` (data or end-of-file waiting: an idle
        connection the server has closed); otherwise ``None``."""
        if info == "ssl_object":
            return self._stream if isinstance(self._stream, TLSStream) else None
        if info == "client_addr":
            return self._socket().getsockname()
        if info == "server_addr":
            return self._socket().getpeername()
        if info == "socket":
            return self._socket()
        if info == "is_readable":
            return socket_is_readable(self._socket())
        return None


def socket_is_readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has data or an end-of-file waiting, without reading."""
    import select

    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _apply(stream: SocketStream, options: Iterable[_SocketOption] | None) -> None:
    for option in options or ():
        stream.setsockopt(*option)


class NetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's ``AsyncNetworkBackend`` on shardio_net: connections are
    shardio_net streams of the calling shard."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> NetworkStream:
        with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            stream = await open_tcp_stream(host, port, local_address=local_address)
        _apply(stream, socket_options)
        return NetworkStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> NetworkStream:
        with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            stream = await open_unix_socket(path)
        _apply(stream, socket_options)
        return NetworkStream(stream)

    async def sleep(self, seconds: float) -> None:
        await shardio.sleep(seconds)
