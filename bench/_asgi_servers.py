"""A1's servers, one per process: ``python -m bench._asgi_servers SERVER APP PORT``.

SERVER is one of :data:`SERVERS`, APP ``raw`` or ``starlette`` (from
:mod:`bench._asgi_apps`); the server listens on 127.0.0.1:PORT, on one core
(one shard, one worker, one event loop), with access logs off, until SIGTERM.
Each is run the way its users run it in production on one core:

- shardio: ``shardio_net.asgi.serve`` on one shard (shardio_net's own HTTP
  parser);
- shardio-httptools: the same server, requests parsed by httptools
  (:mod:`bench._asgi_httptools`) -- the parser comparison;
- uvicorn: one worker on uvloop with httptools (``--loop uvloop --http
  httptools``), uvicorn's fastest configuration;
- hypercorn: hypercorn's trio worker.
"""

from __future__ import annotations

import functools
import signal
import sys

SERVERS = ("shardio", "shardio-httptools", "uvicorn", "hypercorn")


def _shardio(app: str, port: int, httptools: bool) -> None:
    import shardio
    import shardio_net.asgi

    if httptools:
        from ._asgi_httptools import install

        install()
    try:
        shardio.run(
            functools.partial(shardio_net.asgi.serve, app, host="127.0.0.1", port=port, shards=None)
        )
    except SystemExit:
        pass


def _uvicorn(app: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        workers=None,
    )


def _hypercorn(app: str, port: int) -> None:
    import importlib

    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    module, _, name = app.partition(":")
    application = getattr(importlib.import_module(module), name)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        trio.run(functools.partial(serve, application, config, mode="asgi"))
    except KeyboardInterrupt:
        pass


def main(argv: list[str]) -> None:
    server, app, port = argv[0], f"bench._asgi_apps:{argv[1]}", int(argv[2])
    if server == "shardio":
        _shardio(app, port, httptools=False)
    elif server == "shardio-httptools":
        _shardio(app, port, httptools=True)
    elif server == "uvicorn":
        _uvicorn(app, port)
    elif server == "hypercorn":
        _hypercorn(app, port)
    else:
        raise SystemExit(f"unknown server {server!r}; there are {', '.join(SERVERS)}")


if __name__ == "__main__":
    main(sys.argv[1:])
