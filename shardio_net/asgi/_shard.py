"""ShardServer: one shard's part of a server, and how it stops gracefully.

Each shard that serves has one :class:`ShardServer`: the application
(loaded on that shard), the settings, the lifespan state, and the
connections it is serving. ``serve_tcp`` runs the connection handler on
whichever shard accepted a connection; the handler finds its shard's server
in a registry of this process, under the token its ``serve`` call made.

**Graceful shutdown** is built on the run's cancellation (Ctrl-C and
SIGTERM cancel every user task, docs/reference/core.md). The accept loops
simply die with it: no new connections. A connection, though, runs inside a
*shielded* cancel scope of its own, so the cancellation does not reach it
directly; instead the shard's lifespan task, which sleeps unshielded, is
cancelled, and calls :meth:`ShardServer.begin_shutdown`, which walks the
shard's connections:

* one waiting for its next request (idle) is cancelled at once, through its
  scope -- nothing is cut, since nothing was under way;
* one serving a request gets a deadline on its scope:
  ``timeout_graceful_shutdown`` seconds from now. Its response carries
  ``Connection: close``, and once it is complete the connection closes
  instead of waiting for another request. At the deadline whatever is
  still running is cancelled (the ``Cancelled`` lands in the application,
  as any cancellation would).

The lifespan task waits, shielded, until the last connection is gone, then
runs the application's lifespan shutdown, and lets the cancellation go on.
A WebSocket connection is told to close with code 1012 (service restart).

The same scope ends a connection idle for ``timeout_keep_alive`` seconds:
a task of the shard's server visits the connections every half timeout, and
one that was idle, with no request in between, at two visits in a row is
cancelled -- after between one and one and a half timeouts. (A deadline on
the scope would do it exactly, but would move twice per request, and that
costs more than the rest of the bookkeeping of a request.)
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any, NoReturn, Protocol

import attrs

import shardio

from ._app import ASGIApp
from ._config import Config

__all__ = ["ShardServer", "find_server", "register_server", "unregister_server"]


class Connection(Protocol):
    """What a shard's server asks of the connections it tracks."""

    def begin_shutdown(self, deadline: float) -> None:
        """Stop at once if idle; otherwise finish by ``deadline``."""

    def tick(self) -> None:
        """Half the keep-alive timeout has passed: close if idle long enough."""


@attrs.define(eq=False)
class ShardServer:
    """One shard's server: its application, settings, state and connections."""

    app: ASGIApp
    config: Config
    #: The lifespan state: a shallow copy goes into every connection's scope.
    state: dict[str, Any] = attrs.field(factory=dict)
    #: The connections being served, each until its handler ends.
    connections: set[Connection] = attrs.field(factory=set)
    #: Requests being served (``limit_concurrency`` counts them).
    requests_in_flight: int = 0
    #: Whether the graceful shutdown has begun.
    stopping: bool = False
    #: When the connections still busy are cancelled (``inf``: never).
    shutdown_deadline: float = math.inf
    _drained: shardio.Event = attrs.field(factory=shardio.Event)
    _date_second: int = -1
    _date_header: tuple[bytes, bytes] = (b"date", b"")

    def date_header(self) -> tuple[bytes, bytes]:
        """The ``Date`` field (RFC 9110 6.6.1), made once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_header = (b"date", email.utils.formatdate(now, usegmt=True).encode())
        return self._date_header

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)

    def discard(self, connection: Connection) -> None:
        connections = self.connections
        connections.discard(connection)
        if not connections and self.stopping:
            self._drained.set()

    def begin_shutdown(self) -> None:
        """Stop taking requests: idle connections close now, busy ones get
        ``timeout_graceful_shutdown`` seconds to finish."""
        if self.stopping:
            return
        self.stopping = True
        timeout = self.config.timeout_graceful_shutdown
        self.shutdown_deadline = math.inf if timeout is None else shardio.current_time() + timeout
        for connection in list(self.connections):
            connection.begin_shutdown(self.shutdown_deadline)
        if not self.connections:
            self._drained.set()

    async def close_idle_connections(self) -> NoReturn:
        """Apply the keep-alive timeout, forever: every half timeout, each
        connection is told (:meth:`Connection.tick`), and closes itself if it
        has been idle since two ticks ago. Cheaper than a deadline per
        connection, which would move twice per request."""
        period = self.config.timeout_keep_alive / 2
        while True:
            await shardio.sleep(period)
            for connection in list(self.connections):
                connection.tick()

    async def wait_drained(self) -> None:
        """Wait until every connection is gone, after :meth:`begin_shutdown`."""
        await self._drained.wait()


# This process's servers, by the token of the ``serve`` call that made them.
_SERVERS: dict[str, ShardServer] = {}


def register_server(token: str, server: ShardServer) -> None:
    _SERVERS[token] = server


def unregister_server(token: str) -> None:
    _SERVERS.pop(token, None)


def find_server(token: str) -> ShardServer | None:
    """This shard's server for ``token``, or ``None`` once it has stopped."""
    return _SERVERS.get(token)
