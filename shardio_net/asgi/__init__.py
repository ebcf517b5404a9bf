"""shardio_net.asgi: an ASGI 3 server (HTTP/1.1, WebSockets, lifespan) on every shard.

Run an application from the command line::

    python -m shardio_net.asgi module:app --smp 4 --host 0.0.0.0 --port 8000

or from a program, inside :func:`shardio.run`::

    shardio.run(functools.partial(shardio_net.asgi.serve, "module:app", port=8000), shards=4)

The reference is ``docs/reference/asgi.md``; the tutorial's chapter 9 serves
a FastAPI application on every core. This module only re-exports the public
names.
"""

from ._app import AppLoadError, ASGIApp, Message, Receive, Scope, Send, load_app
from ._http_connection import ClientDisconnected
from ._lifespan import LifespanFailure
from ._serve import serve

__all__ = [
    "ASGIApp",
    "AppLoadError",
    "ClientDisconnected",
    "LifespanFailure",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "load_app",
    "serve",
]
