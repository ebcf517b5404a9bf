"""N1: HTTP/1.1 fixed response, keep-alive, ``wrk -t1 -c64``, one shard; requests/s.

``size`` is the measured wrk run in seconds (each trial warms up with one
more second of wrk first). The server runs in a subprocess pinned, like the
trial, to the harness's CPU (0 by default), on one thread or one shard; wrk
runs with one thread and 64 keep-alive connections pinned to the next CPU
(wrapping), so client and server do not share a core. The servers are in
:mod:`bench._http_servers`: every one sends the same response bytes and
does the same, minimal parsing work (find the end of each request's header
section, answer it), each in its library's idiomatic form:

- shardio: ``shardio_net.serve_tcp`` on one shard, a stream handler filling
  a ``ReceiveBuffer`` with ``receive_into`` and answering with ``send_all``;
- c-epoll: the physical limit, the project's own C server
  (``bench/c_epoll_server.c``): the same minimal loop on one thread, epoll
  and non-blocking sockets, no interpreter. It is built with ``cc -O2`` the
  first time it runs (and again when its source changes) and skipped, with
  the reason, where there is no ``cc``. N1's target is shardio >= 0.9x it:
  what the kernel lets a server do here, less 10% for everything shardio is;
- shardio-sansio: ``examples/httpd.py``'s handler, which parses every
  request fully with ``shardio_net.http`` -- the price of a real parser,
  shown for reference, not compared with the minimal peers (no target);
- trio: ``trio.serve_tcp``, ``receive_some`` / ``send_all``;
- asyncio-streams, uvloop-streams: ``asyncio.start_server``, ``read`` /
  ``write`` + ``drain``, on the default loop and on uvloop's;
- asyncio-protocol, uvloop-protocol: ``loop.create_server`` with a
  ``Protocol`` (``data_received`` / ``transport.write``).

wrk must be installed (``apt-get install wrk``); without it every
implementation is skipped.
"""

from __future__ import annotations

import os

from ._spec import Benchmark, Figures, Implementation, Metric, Target
from ._wrk import requests_per_second

#: wrk's load: one thread, 64 keep-alive connections.
CONNECTIONS = 64
THREADS = 1


def _wrk_cpu() -> int:
    """The CPU after the lowest one this process may run on, wrapping."""
    here = min(os.sched_getaffinity(0))
    return (here + 1) % (os.cpu_count() or 1)


def _load(server: str, seconds: int) -> Figures:
    rate = requests_per_second(
        server,
        seconds=seconds,
        connections=CONNECTIONS,
        threads=THREADS,
        wrk_cpus=[_wrk_cpu()],
    )
    return {"rate": rate}


def shardio_http(seconds: int) -> Figures:
    """shardio, one shard, the minimal handler."""
    return _load("shardio", seconds)


def c_epoll_http(seconds: int) -> Figures:
    """The C epoll server: the minimal loop with nothing in the way."""
    return _load("c-epoll", seconds)


def shardio_sansio_http(seconds: int) -> Figures:
    """shardio, one shard, examples/httpd.py's fully parsing handler."""
    return _load("shardio-sansio", seconds)


def trio_http(seconds: int) -> Figures:
    """trio.serve_tcp and the minimal handler."""
    return _load("trio", seconds)


def asyncio_streams_http(seconds: int) -> Figures:
    """asyncio.start_server and the minimal handler."""
    return _load("asyncio-streams", seconds)


def asyncio_protocol_http(seconds: int) -> Figures:
    """loop.create_server with the minimal Protocol."""
    return _load("asyncio-protocol", seconds)


def uvloop_streams_http(seconds: int) -> Figures:
    """asyncio.start_server on uvloop."""
    return _load("uvloop-streams", seconds)


def uvloop_protocol_http(seconds: int) -> Figures:
    """loop.create_server with the minimal Protocol, on uvloop."""
    return _load("uvloop-protocol", seconds)


_WRK = ("wrk", "taskset")

BENCHMARK = Benchmark(
    name="N1",
    title="HTTP/1.1 fixed response, keep-alive, wrk -t1 -c64 on the next CPU, one shard",
    metrics=(Metric("rate", "req/s"),),
    implementations=(
        Implementation("shardio", shardio_http, requires_programs=_WRK),
        Implementation("c-epoll", c_epoll_http, requires_programs=("cc", *_WRK)),
        Implementation("shardio-sansio", shardio_sansio_http, requires_programs=_WRK),
        Implementation("trio", trio_http, requires_modules=("trio",), requires_programs=_WRK),
        Implementation("asyncio-streams", asyncio_streams_http, requires_programs=_WRK),
        Implementation("asyncio-protocol", asyncio_protocol_http, requires_programs=_WRK),
        Implementation(
            "uvloop-streams",
            uvloop_streams_http,
            requires_modules=("uvloop",),
            requires_programs=_WRK,
        ),
        Implementation(
            "uvloop-protocol",
            uvloop_protocol_http,
            requires_modules=("uvloop",),
            requires_programs=_WRK,
        ),
    ),
    targets=(Target("c-epoll", 0.9),),
    size=5,
    quick_size=1,
)
