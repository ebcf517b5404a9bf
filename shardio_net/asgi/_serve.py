"""serve(): an ASGI application on every shard.

``serve`` starts one :class:`~._shard.ShardServer` per shard -- each loads
the application on its own shard and runs its lifespan startup there --
and only when every shard has started does it listen, with
``serve_tcp(shards=...)``: each shard accepts its own connections (or, on
the native stack, owns them by their hash) and serves them with its own
copy of the application. Nothing is shared between shards; a handler that
needs another shard says so (``run_on``, a ``sharded`` service, a channel).

Stopping: ``serve`` returns only by being cancelled (Ctrl-C, SIGTERM, or a
cancel scope of the caller's). The cancellation stops the accept loops at
once, and reaches each shard's lifespan task, which starts the graceful
shutdown described in :mod:`._shard` and runs the lifespan shutdown once
its shard's connections are gone.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

import shardio
from shardio import TASK_STATUS_IGNORED, TaskStatus
from shardio.abc import HalfCloseableStream

from .._serve_tcp import serve_tcp, target_shards
from ._app import AppLoadError, ASGIApp, import_name, load_app
from ._config import Config
from ._http_connection import HttpConnection
from ._lifespan import Lifespan, LifespanFailure
from ._shard import ShardServer, find_server, register_server, unregister_server

__all__ = ["serve"]

LOGGER = logging.getLogger("shardio_net.asgi")

#: An address ``serve`` reports: ``(host, port)`` (IPv6 has more fields).
BoundAddress = tuple[Any, ...]


async def serve(
    app: ASGIApp | str,
    *,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    shards: Literal["all"] | Sequence[int] | None = "all",
    factory: bool = False,
    root_path: str = "",
    access_log: bool = False,
    timeout_graceful_shutdown: float | None = 30.0,
    timeout_keep_alive: float = 5.0,
    lifespan: Literal["auto", "on", "off"] = "auto",
    limit_concurrency: int | None = None,
    max_header_size: int = 16384,
    max_header_count: int = 100,
    max_body_size: int | None = None,
    ws_max_size: int = 16 * 1024 * 1024,
    ws_per_message_deflate: bool = True,
    backlog: int | None = None,
    task_status: TaskStatus[list[BoundAddress]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve the ASGI 3 application ``app`` over HTTP/1.1 and WebSockets on
    ``shards`` (default: every shard), until cancelled.

    ``app`` is the application, or an import string ``"module:attribute"``
    that every shard imports for itself (with ``factory=True``, what it
    names is called to build the application, once per shard). An object
    reaches the other shards pickled, as arguments of ``run_on`` do: give
    a string when the application does not pickle well.

    Every shard runs the application's lifespan (``lifespan``: ``"auto"``,
    ``"on"`` or ``"off"``) before any connection is accepted; a startup
    failure on any shard raises :class:`LifespanFailure`. Then ``host`` and
    ``port`` are served as ``serve_tcp(..., shards=shards)`` serves them
    (``port=0``: the kernel picks one; ``host=None``: every address), on
    the native stack if one is installed. With ``nursery.start``, returns
    the bound addresses.

    When cancelled (Ctrl-C, SIGTERM), stops accepting, closes idle
    connections, gives requests in flight ``timeout_graceful_shutdown``
    seconds (``None``: as long as they take) and cancels what is left,
    then runs the lifespan shutdown on every shard, and re-raises.

    The other settings: ``root_path`` (the application's mount point,
    prefixed to ``path`` and given as ``root_path``), ``access_log`` (one
    INFO line per response on ``shardio_net.asgi.access``),
    ``timeout_keep_alive`` (seconds an idle connection is kept),
    ``limit_concurrency`` (requests served at once per shard; more get
    503), ``max_header_size``, ``max_header_count`` and ``max_body_size``
    (the parser's limits: 431, 431 and 413), ``ws_max_size`` (largest
    WebSocket message; more closes with 1009), ``ws_per_message_deflate``,
    and ``backlog``. Bad settings raise ``ValueError`` before anything
    starts.
    """
    config = Config(
        root_path=root_path,
        access_log=access_log,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        timeout_keep_alive=timeout_keep_alive,
        lifespan=lifespan,
        limit_concurrency=limit_concurrency,
        max_header_size=max_header_size,
        max_header_count=max_header_count,
        max_body_size=max_body_size,
        ws_max_size=ws_max_size,
        ws_per_message_deflate=ws_per_message_deflate,
    )
    if not isinstance(app, str) and not callable(app):
        raise TypeError(f"app must be an ASGI application or a 'module:attribute' string: {app!r}")
    targets = target_shards(shards)
    if not isinstance(app, str) and targets != [shardio.current_shard()]:
        app = import_name(app) or app  # by name where a module holds it
    token = uuid.uuid4().hex
    handler = functools.partial(_handle, token)
    startup_error: Exception | None = None
    async with shardio.open_nursery() as nursery:
        try:
            for shard in targets:
                await nursery.start(_serve_shard, app, factory, config, token, shard=shard)
        except (LifespanFailure, AppLoadError) as exc:
            # Raised as itself, as serve_tcp raises a bind error: the shards
            # already started stop (with their lifespan shutdown).
            startup_error = exc
            nursery.cancel_scope.cancel()
        else:
            addresses: list[BoundAddress] = await nursery.start(
                functools.partial(
                    serve_tcp, handler, port, host=host, backlog=backlog, shards=targets
                )
            )
            LOGGER.info(
                "serving on %s, %d shard(s)",
                ", ".join(f"{a[0]}:{a[1]}" for a in addresses),
                len(targets),
            )
            task_status.started(addresses)
    if startup_error is not None:
        raise startup_error
    raise AssertionError("serving ends only by being cancelled")


async def _serve_shard(
    app: ASGIApp | str,
    factory: bool,
    config: Config,
    token: str,
    *,
    task_status: TaskStatus[None],
) -> None:
    """One shard's server: load the application, run its lifespan startup,
    serve until cancelled, drain, run the lifespan shutdown."""
    server = ShardServer(load_app(app, factory=factory), config)
    lifespan = Lifespan(server.app, server.state, config.lifespan)
    register_server(token, server)
    startup_error: LifespanFailure | None = None
    try:
        async with shardio.open_nursery() as nursery:
            try:
                await lifespan.startup(nursery)
            except LifespanFailure as exc:
                startup_error = exc
                await lifespan.shutdown()
                return
            try:
                nursery.start_soon(server.close_idle_connections, name="keep-alive timeout")
                task_status.started()
                await shardio.sleep_forever()
            finally:
                with shardio.CancelScope(shield=True):
                    server.begin_shutdown()
                    await server.wait_drained()
                    await lifespan.shutdown()
    finally:
        unregister_server(token)
        if startup_error is not None:
            raise startup_error


async def _handle(token: str, stream: HalfCloseableStream) -> None:
    """``serve_tcp``'s handler: serve one connection on this shard."""
    server = find_server(token)
    if server is None or server.stopping:
        return
    await HttpConnection(server, stream).run()
