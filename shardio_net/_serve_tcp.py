"""serve_tcp: TCP service on one shard or several.

On one shard, :func:`serve_tcp` is :func:`open_tcp_listeners` (without
``SO_REUSEPORT``: nothing may join it) plus :func:`serve_listeners`. On
several, each shard gets its own listening socket, bound to the same
addresses with ``SO_REUSEPORT`` (as in Seastar's posix stack): the kernel
spreads incoming connections between the sockets, and each connection lives
and dies on the shard that accepted it, so nothing is shared. The first
shard opens the addresses -- resolving the host, picking the port if it is
0, and binding before it sets ``SO_REUSEPORT``, so that a port another
server holds is ``EADDRINUSE`` -- and reports what it got; the others join
exactly that (the rules are at the top of :mod:`shardio_net._tcp_listeners`).
The listeners run as children, on their shards, of one nursery here, so
cancelling :func:`serve_tcp` stops them all. The other way to spread
connections, ``balance="least-connections"``, is in
:mod:`shardio_net._balance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NoReturn

import shardio
from shardio import TASK_STATUS_IGNORED, TaskStatus

from ._balance import serve_least_connections
from ._native_route import installed_native_stack, native_address
from ._serve import Handler, serve_listeners
from ._socket_stream import SocketStream
from ._tcp_listeners import BoundAddress, bind_tcp_listeners, open_tcp_listeners

__all__ = ["serve_tcp", "serve_tcp_bound", "serve_tcp_resolving", "target_shards"]


def target_shards(shards: Literal["all"] | Sequence[int] | None) -> list[int]:
    """The shards to serve on: ``None`` is this one, ``"all"`` every shard
    (this one first); a sequence is checked and kept in its order."""
    here = shardio.current_shard()
    count = shardio.shard_count()
    if shards is None:
        return [here]
    if shards == "all":
        return [here, *(k for k in range(count) if k != here)]
    if isinstance(shards, str):
        raise ValueError(
            f"shards must be None, 'all' or a sequence of shard indexes, not {shards!r}"
        )
    targets = list(shards)
    if not targets:
        raise ValueError("shards must name at least one shard")
    for shard in targets:
        if not isinstance(shard, int) or not 0 <= shard < count:
            raise ValueError(f"shard indexes must be in range({count}), not {shard!r}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"shards must not repeat a shard: {targets!r}")
    return targets


async def serve_tcp(
    handler: Handler[SocketStream],
    port: int,
    *,
    host: str | bytes | None = None,
    backlog: int | None = None,
    shards: Literal["all"] | Sequence[int] | None = None,
    balance: Literal["reuseport", "least-connections"] = "reuseport",
    handler_nursery: shardio.Nursery | None = None,
    task_status: TaskStatus[list[BoundAddress]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Listen for TCP connections on ``port`` and run ``handler(stream)`` in a
    new task for each; return only by being cancelled.

    ``host``, ``port`` and ``backlog`` are as for :func:`open_tcp_listeners`
    (``host=None``: every local address, IPv4 and IPv6). With
    ``nursery.start``, returns the bound addresses (``getsockname()`` of each
    listener): with ``port=0``, their port is the one the kernel picked, the
    same for every listener and every shard.

    ``shards`` says where connections are served: ``None`` (default) on this
    shard; ``"all"`` on every shard; or a sequence of shard indexes. How the
    connections are spread over them is ``balance``:

    * ``"reuseport"`` (default): each shard listens on its own socket, bound
      to the same addresses with ``SO_REUSEPORT``; the kernel spreads
      incoming connections between the sockets by a hash of their addresses,
      and each connection is served by the shard that accepted it. Nothing
      is shared between shards. The port is bound first on this shard (or
      the first one listed), and the others join exactly what it got.
    * ``"least-connections"``: this shard alone accepts, and hands each
      connection (its file descriptor) to the shard that has the fewest open
      connections at that moment, where the handler runs. Even when the
      kernel's hash spreads connections unevenly, or some connections live
      much longer than others.

    On other shards ``handler`` runs in that shard's process: it travels
    there pickled (a module-level function by reference, a closure by
    value), as with :func:`shardio.run_on`. An exception from a handler is
    logged (``shardio_net.serve``) and closes only its own connection.

    A port that another server listens on -- another process, or another
    ``serve_tcp`` of this run -- raises ``OSError(EADDRINUSE)``, as in Trio:
    only the shards of one ``serve_tcp`` share its port. (A program of the
    same user that sets ``SO_REUSEPORT`` itself can still join a port served
    on several shards; the kernel allows it, see
    :func:`open_tcp_listeners`.)
    ``handler_nursery`` (where the handler tasks run) is allowed only when
    serving on this shard alone.
    """
    if balance not in ("reuseport", "least-connections"):
        raise ValueError(f"balance must be 'reuseport' or 'least-connections', not {balance!r}")
    targets = target_shards(shards)
    here = shardio.current_shard()
    if handler_nursery is not None and targets != [here]:
        raise ValueError("handler_nursery can be given only when serving on this shard alone")
    if installed_native_stack() is not None:
        if balance != "reuseport":
            raise ValueError(
                "on the native stack connections are spread by flow ownership: "
                "balance='least-connections' is for the kernel's sockets"
            )
        await serve_tcp_native(handler, port, host, backlog, targets, handler_nursery, task_status)
    if balance == "least-connections":
        await serve_least_connections(
            handler, port, host, backlog, targets, handler_nursery, task_status
        )
    if targets == [here]:
        listeners = await open_tcp_listeners(port, host=host, backlog=backlog, reuse_port=False)
        task_status.started([listener.socket.getsockname() for listener in listeners])
        await serve_listeners(handler, listeners, handler_nursery=handler_nursery)
    first, *others = targets
    bind_error: OSError | None = None
    async with shardio.open_nursery() as nursery:
        try:
            addresses: list[BoundAddress] = await nursery.start(
                serve_tcp_resolving, handler, port, host, backlog, bool(others), shard=first
            )
        except OSError as exc:
            # Nothing runs yet: raise the first bind's error itself (a port
            # in use, say), as on one shard and in Trio, not in a group.
            bind_error = exc
        else:
            for shard in others:
                await nursery.start(serve_tcp_bound, handler, addresses, backlog, shard=shard)
            task_status.started(addresses)
    if bind_error is not None:
        raise bind_error
    raise AssertionError("the per-shard servers end only by raising")


async def serve_tcp_native(
    handler: Handler[SocketStream],
    port: int,
    host: str | bytes | None,
    backlog: int | None,
    targets: list[int],
    handler_nursery: shardio.Nursery | None,
    task_status: TaskStatus[list[BoundAddress]],
) -> NoReturn:
    """:func:`serve_tcp` on the native stacks of ``targets``: each shard's
    stack listens on the port (the first one picks it if it is 0) and serves
    the connections it owns (see ``shardio_net.native._on_shards``)."""
    here = shardio.current_shard()
    if targets == [here]:
        await _serve_native_here(handler, port, host, backlog, handler_nursery, task_status)
    first, *others = targets
    async with shardio.open_nursery() as nursery:
        addresses: list[BoundAddress] = await nursery.start(
            _serve_native_here, handler, port, host, backlog, None, shard=first
        )
        for shard in others:
            await nursery.start(
                _serve_native_here, handler, addresses[0][1], host, backlog, None, shard=shard
            )
        task_status.started(addresses)
    raise AssertionError("the per-shard servers end only by raising")


async def _serve_native_here(
    handler: Handler[SocketStream],
    port: int,
    host: str | bytes | None,
    backlog: int | None,
    handler_nursery: shardio.Nursery | None,
    task_status: TaskStatus[list[BoundAddress]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    stack = installed_native_stack()
    if stack is None:
        raise RuntimeError(
            f"serve_tcp on the native stack, but shard {shardio.current_shard()} has none "
            "installed: install one on every shard served (shardio_net.native.start_tap_stacks "
            "does that)"
        )
    native_host = None if host is None else await native_address(host, port)
    listeners = await stack.open_tcp_listeners(port, host=native_host, backlog=backlog)
    task_status.started([listener.getsockname() for listener in listeners])
    await serve_listeners(handler, listeners, handler_nursery=handler_nursery)  # type: ignore[arg-type]


async def serve_tcp_resolving(
    handler: Handler[SocketStream],
    port: int,
    host: str | bytes | None,
    backlog: int | None,
    shared: bool,
    *,
    task_status: TaskStatus[list[BoundAddress]],
) -> NoReturn:
    """One shard's part of :func:`serve_tcp` for the first shard: resolve and
    bind (free addresses only, then ``SO_REUSEPORT`` if ``shared``, for the
    others to join), report the bound addresses, serve."""
    listeners = await open_tcp_listeners(port, host=host, backlog=backlog, reuse_port=shared)
    task_status.started([listener.socket.getsockname() for listener in listeners])
    await serve_listeners(handler, listeners)


async def serve_tcp_bound(
    handler: Handler[SocketStream],
    addresses: list[BoundAddress],
    backlog: int | None,
    *,
    task_status: TaskStatus[None],
) -> NoReturn:
    """One shard's part of :func:`serve_tcp` for the other shards: join the
    first shard's listeners on exactly ``addresses``, report ready, serve."""
    listeners = bind_tcp_listeners(addresses, backlog, join=True)
    task_status.started()
    await serve_listeners(handler, listeners)
