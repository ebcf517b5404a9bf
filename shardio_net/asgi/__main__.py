"""python -m shardio_net.asgi: serve an ASGI application on every shard.

Usage (the flags uvicorn users know, plus Seastar's)::

    python -m shardio_net.asgi module:app --smp 4 --host 0.0.0.0 --port 8000
        [--factory] [--access-log] [--root-path /api]
        [--timeout-graceful-shutdown 30] [--timeout-keep-alive 5]
        [--lifespan auto|on|off] [--limit-concurrency N] [--log-level info]
        [--network-stack native --tap-device tap0 --host-ipv4-addr ...]

The application is imported in this process first (so that a wrong name
fails at once, with a message saying what to fix) and then on every shard.
Ctrl-C or SIGTERM stops it gracefully; the exit status is 0 then, 1 if the
application cannot be loaded, 3 if its lifespan startup failed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence

import shardio
import shardio_net.native

from ._app import AppLoadError, load_app
from ._lifespan import LifespanFailure
from ._serve import BoundAddress, serve

__all__ = ["main", "parse_arguments"]


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's settings."""
    parser = argparse.ArgumentParser(
        prog="python -m shardio_net.asgi",
        description="Serve an ASGI application (HTTP/1.1, WebSockets, lifespan) on every shard.",
    )
    parser.add_argument("app", help='the application, as "module:attribute"')
    parser.add_argument("--smp", type=int, default=None, help="shards (default: one per CPU)")
    parser.add_argument(
        "--host",
        default=None,
        help="address to bind (default 127.0.0.1; on the native stack, the stack's address)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    parser.add_argument(
        "--factory", action="store_true", help="app names a factory to call, once per shard"
    )
    parser.add_argument("--access-log", action="store_true", help="log one line per response")
    parser.add_argument("--root-path", default="", help="the application's mount point, as '/api'")
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=30.0,
        help="seconds requests in flight get to finish when stopping (default 30)",
    )
    parser.add_argument(
        "--timeout-keep-alive",
        type=float,
        default=5.0,
        help="seconds an idle connection is kept open (default 5)",
    )
    parser.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        help="requests served at once per shard; more are answered 503",
    )
    parser.add_argument(
        "--max-body-size", type=int, default=None, help="largest request body (more: 413)"
    )
    parser.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
    )
    shardio_net.native.add_stack_arguments(parser)
    arguments = parser.parse_args(argv)
    if arguments.smp is not None and arguments.smp < 1:
        parser.error(f"--smp must be at least 1, not {arguments.smp}")
    if arguments.host is None and arguments.network_stack != "native":
        # uvicorn's default; the native stack has no loopback, and there
        # None means its own address.
        arguments.host = "127.0.0.1"
    return arguments


async def _main(arguments: argparse.Namespace) -> None:
    stack = await shardio_net.native.start_stack(arguments)
    async with shardio.open_nursery() as nursery:
        addresses: list[BoundAddress] = await nursery.start(
            functools.partial(
                serve,
                arguments.app,
                host=arguments.host,
                port=arguments.port,
                factory=arguments.factory,
                root_path=arguments.root_path,
                access_log=arguments.access_log,
                timeout_graceful_shutdown=arguments.timeout_graceful_shutdown,
                timeout_keep_alive=arguments.timeout_keep_alive,
                lifespan=arguments.lifespan,
                limit_concurrency=arguments.limit_concurrency,
                max_body_size=arguments.max_body_size,
            )
        )
        where = ", ".join(
            f"http://[{a[0]}]:{a[1]}" if ":" in a[0] else f"http://{a[0]}:{a[1]}" for a in addresses
        )
        print(
            f"shardio_net.asgi: {arguments.app} on {where} "
            f"({shardio.shard_count()} shard(s), {stack}); Ctrl-C to stop",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server the command line describes; return the exit status."""
    arguments = parse_arguments(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        load_app(arguments.app)
    except AppLoadError as exc:
        print(f"shardio_net.asgi: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(arguments)
    except KeyboardInterrupt:
        print("shardio_net.asgi: stopped", flush=True)
        return 0


def _run(arguments: argparse.Namespace) -> int:
    try:
        shardio.run(_main, arguments, shards=arguments.smp)
    except SystemExit as exc:
        if exc.code != 143:  # SIGTERM, the stop a service manager asks for
            raise
        print("shardio_net.asgi: stopped", flush=True)
    except (LifespanFailure, AppLoadError, BaseExceptionGroup) as exc:
        group = exc if isinstance(exc, BaseExceptionGroup) else BaseExceptionGroup("", [exc])
        known, rest = group.split((LifespanFailure, AppLoadError))
        if known is None or rest is not None:
            raise
        for failure in _leaves(known):
            print(f"shardio_net.asgi: {failure}", file=sys.stderr)
        return 3 if known.subgroup(LifespanFailure) is not None else 1
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


if __name__ == "__main__":
    sys.exit(main())
