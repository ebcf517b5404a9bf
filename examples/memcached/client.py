"""A small memcached client on shardio: pipelined requests over one TCP
stream, with a sans-io reply parser.

:class:`ReplyParser` turns the server's bytes back into replies, given what
kind of reply each request expects, in order (memcached answers in request
order, so a pipeline's replies come back in the order it was sent).
:class:`Connection` sends a whole pipeline with one ``send_all`` and reads
until every reply is in::

    async with await Connection.open("127.0.0.1", 11211) as connection:
        stored, values = await connection.pipeline([set_request(b"k", b"v"), get_request(b"k")])

Only what the demo and the tutorial need: retrievals (``get``/``gets``) and
commands answered by one line (storage, ``delete``, ``incr``...). It is
not a general client: use pymemcache or any other for real work.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, TypeAlias

import attrs

import shardio_net

__all__ = [
    "Connection",
    "ProtocolError",
    "Reply",
    "ReplyParser",
    "Request",
    "Value",
    "get_request",
    "line_request",
    "set_request",
    "stats_request",
]

ReplyKind: TypeAlias = Literal["values", "line", "stats"]


@attrs.frozen
class Value:
    """One ``VALUE`` block of a retrieval reply (``cas`` for ``gets``)."""

    key: bytes
    flags: int
    value: bytes
    cas: int | None = None


Reply: TypeAlias = list[Value] | bytes | dict[str, str]
"""A retrieval's values (none for a miss); a one-line reply without its
``\\r\\n`` (``b"STORED"``, ``b"DELETED"``, ``b"5"``, an error line...); or
the figures of a ``stats`` reply, by name."""


@attrs.frozen
class Request:
    """A request's bytes, and the kind of reply it gets."""

    data: bytes
    kind: ReplyKind


def get_request(*keys: bytes, with_cas: bool = False) -> Request:
    """``get`` (or ``gets``) of ``keys``."""
    return Request(b"%s %s\r\n" % (b"gets" if with_cas else b"get", b" ".join(keys)), "values")


def set_request(
    key: bytes, value: bytes, flags: int = 0, exptime: int = 0, verb: bytes = b"set"
) -> Request:
    """A storage command (``set`` by default; ``add``, ``replace``, ...)."""
    header = b"%s %s %d %d %d\r\n" % (verb, key, flags, exptime, len(value))
    return Request(b"".join((header, value, b"\r\n")), "line")


def line_request(line: bytes) -> Request:
    """Any command answered by one line (``delete k``, ``incr k 1``...)."""
    return Request(line + b"\r\n", "line")


def stats_request(*args: bytes) -> Request:
    """``stats`` (or ``stats <args>``, e.g. ``stats shards``)."""
    return Request(b" ".join((b"stats", *args)) + b"\r\n", "stats")


class ProtocolError(Exception):
    """The server's bytes are not the reply that was expected."""


@attrs.define(eq=False, slots=True)
class ReplyParser:
    """Bytes in, replies out, for the requests :meth:`expect` was told of."""

    _buffer: bytearray = attrs.field(factory=bytearray)
    _expected: collections.deque[ReplyKind] = attrs.field(factory=collections.deque)
    _values: list[Value] = attrs.field(factory=list)
    _figures: dict[str, str] = attrs.field(factory=dict)

    def expect(self, kind: ReplyKind) -> None:
        """A request was sent: its reply comes after those expected before."""
        self._expected.append(kind)

    @property
    def waiting(self) -> int:
        """Replies expected and not yet complete."""
        return len(self._expected)

    def feed(self, data: bytes) -> list[Reply]:
        """The next bytes from the server; the replies they complete."""
        buffer = self._buffer
        buffer += data
        replies: list[Reply] = []
        position = 0
        while self._expected:
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            line = bytes(buffer[position:end])
            kind = self._expected[0]
            if kind == "line":
                replies.append(line)
                self._expected.popleft()
                position = end + 2
            elif line == b"END":
                replies.append(self._figures if kind == "stats" else self._values)
                self._values, self._figures = [], {}
                self._expected.popleft()
                position = end + 2
            elif kind == "stats":
                name, _, figure = line.removeprefix(b"STAT ").partition(b" ")
                if not line.startswith(b"STAT "):
                    raise ProtocolError(f"expected STAT or END, got {line[:100]!r}")
                self._figures[name.decode()] = figure.decode()
                position = end + 2
            elif line.startswith(b"VALUE "):
                value = self._value(line, buffer, end + 2)
                if value is None:
                    break  # its data has not all arrived
                self._values.append(value)
                position = end + 2 + len(value.value) + 2
            else:
                raise ProtocolError(f"expected VALUE or END, got {line[:100]!r}")
        del buffer[:position]
        return replies

    @staticmethod
    def _value(line: bytes, buffer: bytearray, start: int) -> Value | None:
        fields = line.split(b" ")
        if len(fields) not in (4, 5):
            raise ProtocolError(f"bad VALUE line {line[:100]!r}")
        size = int(fields[3])
        if len(buffer) < start + size + 2:
            return None
        if buffer[start + size : start + size + 2] != b"\r\n":
            raise ProtocolError(f"the data of {fields[1]!r} does not end with CRLF")
        cas = int(fields[4]) if len(fields) == 5 else None
        return Value(fields[1], int(fields[2]), bytes(buffer[start : start + size]), cas)


@attrs.define(eq=False, slots=True)
class Connection:
    """A connection to a memcached server that sends pipelines.

    ``latencies`` collects, for every reply, the seconds between the send
    of its pipeline and its arrival (when ``record_latency`` is true).
    """

    stream: shardio_net.SocketStream
    parser: ReplyParser = attrs.field(factory=ReplyParser)
    record_latency: bool = False
    latencies: list[float] = attrs.field(factory=list)

    @classmethod
    async def open(cls, host: str, port: int, *, record_latency: bool = False) -> Connection:
        """Connect to the server at ``host``:``port``."""
        return cls(await shardio_net.open_tcp_stream(host, port), record_latency=record_latency)

    async def pipeline(self, requests: Sequence[Request]) -> list[Reply]:
        """Send ``requests`` at once; their replies, in order."""
        for request in requests:
            self.parser.expect(request.kind)
        sent = time.perf_counter()
        await self.stream.send_all(b"".join(request.data for request in requests))
        replies: list[Reply] = []
        while len(replies) < len(requests):
            data = await self.stream.receive_some()
            if not data:
                raise ProtocolError("the server closed the connection")
            arrived = self.parser.feed(data)
            if self.record_latency and arrived:
                self.latencies.extend([time.perf_counter() - sent] * len(arrived))
            replies += arrived
        return replies

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
