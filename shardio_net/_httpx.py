"""An httpx transport on shardio_net: HTTP/1.1 with h11, over shardio's streams.

httpx sends every request through a *transport*, and takes any
``httpx.AsyncBaseTransport`` its user gives it (``httpx.AsyncClient(
transport=...)``): the supported way to change how requests travel. Its
default transport is httpcore's connection pool, which refuses to run under
any async library but asyncio and Trio (see ``_httpcore.py``); this one runs
on shardio, with no patching of either library.

What it does: HTTP/1.1 (h11's state machine, the parser httpcore itself
uses), ``http`` and ``https`` (``shardio_net.TLSStream``, verified with the
``ssl.SSLContext`` httpx would build from ``verify``/``cert``/``trust_env``),
keep-alive connections reused per origin, request bodies and response bodies
streamed both ways, and httpx's ``connect``/``read``/``write`` timeouts, each
raising httpx's own exception (``ConnectTimeout``, ``ReadError``,
``RemoteProtocolError``...). What it does not: HTTP/2, proxies, a bound on
open connections (``pool`` timeouts never fire), retries.

A connection is kept for reuse once its response has been read to the end (or
closed early with nothing left to read) and both sides may go on; anything
else closes it. An idle connection found readable when taken (the server
closed it, or sent something unasked) is dropped, and one idle for longer than
``keepalive_expiry`` too. Like every shardio_net object, a transport belongs to
the shard that made it.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Generator
from contextlib import contextmanager

import h11
import httpx

import shardio

from ._httpcore import socket_is_readable
from ._socket_stream import SocketStream
from ._tcp_stream import open_tcp_stream
from ._tls import TLSStream

__all__ = ["AsyncHTTPTransport"]

_Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_RECEIVE_SIZE = 65536


@contextmanager
def _mapped(
    timeout: float | None,
    on_timeout: type[httpx.TransportError],
    on_error: type[httpx.TransportError],
    request: httpx.Request,
) -> Generator[None, None, None]:
    """The block under ``timeout`` (``None``: no limit), with httpx's errors."""
    try:
        with shardio.fail_after(math.inf if timeout is None else timeout):
            yield
    except shardio.TooSlowError as exc:
        raise on_timeout("timed out", request=request) from exc
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (shardio.BrokenResourceError, shardio.ClosedResourceError, OSError) as exc:
        raise on_error(str(exc) or type(exc).__name__, request=request) from exc


class _Connection:
    """One HTTP/1.1 connection: a stream and h11's view of it."""

    def __init__(self, origin: _Origin, stream: SocketStream | TLSStream[SocketStream]) -> None:
        self.origin = origin
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = math.inf

    def socket_readable(self) -> bool:
        stream = self.stream
        if isinstance(stream, TLSStream):
            if stream.pending():
                return True
            stream = stream.transport_stream
        return socket_is_readable(stream.socket)

    async def send(self, event: h11.Event, request: httpx.Request, timeout: float | None) -> None:
        data = self.h11.send(event)
        if data:
            with _mapped(timeout, httpx.WriteTimeout, httpx.WriteError, request):
                await self.stream.send_all(data)

    async def next_event(self, request: httpx.Request, timeout: float | None) -> h11.Event:
        while True:
            with _mapped(timeout, httpx.ReadTimeout, httpx.ReadError, request):
                event = self.h11.next_event()
                if event is not h11.NEED_DATA:
                    assert isinstance(event, h11.Event)
                    return event
                self.h11.receive_data(bytes(await self.stream.receive_some(_RECEIVE_SIZE)))

    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def close(self) -> None:
        await shardio.aclose_forcefully(self.stream)


class _ResponseBody(httpx.AsyncByteStream):
    """The response's body, read from its connection as httpx asks for it."""

    def __init__(
        self,
        transport: AsyncHTTPTransport,
        connection: _Connection,
        request: httpx.Request,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._request = request
        self._read_timeout = read_timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._done:
            event = await self._connection.next_event(self._request, self._read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
            else:
                raise httpx.RemoteProtocolError(
                    f"unexpected {type(event).__name__} in a response body", request=self._request
                )

    async def aclose(self) -> None:
        await self._transport._release(self._connection, self._done)


class AsyncHTTPTransport(httpx.AsyncBaseTransport):
    """httpx's transport on shardio_net (HTTP/1.1): give it to
    ``httpx.AsyncClient(transport=AsyncHTTPTransport())``.

    ``verify``, ``cert`` and ``trust_env`` mean what they mean to httpx (they
    make the ``ssl.SSLContext`` for ``https``); at most
    ``max_keepalive_connections`` idle connections are kept, each for at most
    ``keepalive_expiry`` seconds.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: httpx._types.CertTypes | None = None,
        trust_env: bool = True,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        self._max_idle = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("this AsyncHTTPTransport was closed")
        scheme = request.url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"AsyncHTTPTransport speaks http and https, not {scheme!r}", request=request
            )
        host = request.url.raw_host.decode("ascii")
        origin = (scheme, host, request.url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        connection = await self._take_idle(origin) or await self._connect(origin, request, timeouts)
        try:
            response = await self._exchange(connection, request, timeouts)
        except BaseException:
            await connection.close()
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ResponseBody(self, connection, request, timeouts.get("read")),
            extensions={
                "http_version": b"HTTP/" + response.http_version,
                "reason_phrase": response.reason,
            },
        )

    async def _exchange(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> h11.Response:
        target = request.url.raw_path
        headers = list(request.headers.raw)
        write = timeouts.get("write")
        await connection.send(
            h11.Request(method=request.method, target=target, headers=headers), request, write
        )
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            if chunk:
                await connection.send(h11.Data(data=chunk), request, write)
        await connection.send(h11.EndOfMessage(), request, write)
        while True:
            event = await connection.next_event(request, timeouts.get("read"))
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise httpx.RemoteProtocolError(
                    f"expected a response, got {type(event).__name__}", request=request
                )

    async def _connect(
        self, origin: _Origin, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        timeout = timeouts.get("connect")
        with _mapped(timeout, httpx.ConnectTimeout, httpx.ConnectError, request):
            tcp = await open_tcp_stream(host, port)
        stream: SocketStream | TLSStream[SocketStream] = tcp
        if scheme == "https":
            stream = TLSStream(tcp, self._ssl_context, server_hostname=host, https_compatible=True)
            try:
                with _mapped(timeout, httpx.ConnectTimeout, httpx.ConnectError, request):
                    await stream.do_handshake()
            except BaseException:
                await shardio.aclose_forcefully(stream)
                raise
        return _Connection(origin, stream)

    async def _take_idle(self, origin: _Origin) -> _Connection | None:
        """An idle connection to ``origin`` still fit for a request, if any;
        closes the unfit ones met on the way."""
        now = shardio.current_time()
        for connection in list(self._idle):
            stale = now - connection.idle_since > self._keepalive_expiry
            if stale or connection.socket_readable():
                self._idle.remove(connection)
                await connection.close()
            elif connection.origin == origin:
                self._idle.remove(connection)
                return connection
        return None

    async def _release(self, connection: _Connection, complete: bool) -> None:
        if complete and connection.reusable() and not self._closed:
            connection.h11.start_next_cycle()
            connection.idle_since = shardio.current_time()
            self._idle.append(connection)
            while len(self._idle) > self._max_idle:
                await self._idle.pop(0).close()
            await shardio.lowlevel.checkpoint()
        else:
            await connection.close()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
