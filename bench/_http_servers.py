"""The HTTP servers N1 and N2 load with wrk: shardio and its peers, one each.

Run one by hand with ``python -m bench._http_servers NAME`` (``--list`` for
the names); it prints ``port N`` once it listens on 127.0.0.1, and serves
until SIGTERM or Ctrl-C.

Every server answers every request on a keep-alive connection with the same
bytes, :data:`RESPONSE`, and does the same parsing work, the *minimal*
approach: append what arrived to the connection's buffer, count the complete
requests in it by finding each ``\\r\\n\\r\\n`` (the end of a request's header
section; the requests here have no body), drop them, and send that many
responses in one write. Pipelined requests are therefore answered too. The
loop is written in each library's own idiom -- a stream handler with
``receive_some`` / ``send_all`` (trio), ``StreamReader.read`` /
``StreamWriter.write`` + ``drain`` (asyncio streams), ``data_received`` /
``transport.write`` (asyncio protocols), a ``ReceiveBuffer`` filled by
``receive_into`` (shardio) -- so each library's own I/O path is what differs.

One server is not Python: ``c-epoll`` is the project's own C program,
``bench/c_epoll_server.c`` -- the same minimal loop on one thread over a
level-triggered epoll set, with no interpreter or event-loop library in the
way, so it serves as many requests as the kernel lets a server serve here
(N1's target is a ratio to it). :func:`build_c_server` compiles it with
``cc -O2`` into a directory under the system's temporary directory, named by
a hash of the source and the command, so it is built once per version of the
file and rebuilt when the file changes; ``c-epoll`` then replaces this process
with it (``exec``), passing :data:`RESPONSE` as its argument, so it sends the
same bytes by construction, keeps this process's CPU pinning, and announces its
port and stops on SIGTERM as the others do. Without ``cc`` it cannot run (N1
skips it, saying so); a failed build is an error showing the compiler's output.

One server does more: ``shardio-sansio`` is ``examples/httpd.py``'s handler,
which parses every request completely with the sans-io parser
(:mod:`shardio_net.http`): request line, every header field, framing and
keep-alive rules, and builds each response with it. It answers ``GET /``
with the same bytes. It is there to show what full parsing costs, and is
not the figure compared with the peers.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import asyncio

    import trio

    import shardio_net

__all__ = ["RESPONSE", "SERVERS", "build_c_server", "main"]

#: What every server sends for every request: exactly the bytes of
#: ``examples/httpd.py``'s response to ``GET /``.
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ncontent-type: text/plain\r\n\r\nHello, World!"
_END = b"\r\n\r\n"
_READ_SIZE = 65536


def _announce(port: int) -> None:
    """Tell the parent which port to load (the first line it reads)."""
    print(f"port {port}", flush=True)


# -- shardio ---------------------------------------------------------------------


async def _shardio_minimal(stream: shardio_net.SocketStream) -> None:
    import shardio
    from shardio_net import ReceiveBuffer

    buffer = ReceiveBuffer()
    try:
        while await buffer.receive_from(stream):
            count = 0
            while (end := buffer.find(_END)) >= 0:
                buffer.skip(end + 4)
                count += 1
            if count:
                await stream.send_all(RESPONSE * count)
    except shardio.BrokenResourceError:
        pass  # wrk resets its connections when it stops


Balance = Literal["reuseport", "least-connections"]


def _serve_shardio(handler: Any, shards: int, cpus: list[int] | None, balance: Balance) -> None:
    import functools

    import shardio
    import shardio_net

    async def main() -> None:
        async with shardio.open_nursery() as nursery:
            serve = functools.partial(
                shardio_net.serve_tcp,
                handler,
                0,
                host="127.0.0.1",
                shards="all",
                balance=balance,
            )
            addresses = await nursery.start(serve)
            _announce(addresses[0][1])

    shardio.run(main, shards=shards, cpus=cpus)


def shardio_server(
    shards: int = 1, cpus: list[int] | None = None, balance: Balance = "reuseport"
) -> None:
    """shardio: ``serve_tcp`` and the minimal handler, on ``shards`` shards."""
    _serve_shardio(_shardio_minimal, shards, cpus, balance)


def shardio_sansio_server(
    shards: int = 1, cpus: list[int] | None = None, balance: Balance = "reuseport"
) -> None:
    """shardio with ``examples/httpd.py``'s handler: every request fully parsed."""
    from examples.httpd import serve_http

    _serve_shardio(serve_http, shards, cpus, balance)


# -- trio --------------------------------------------------------------------------


async def _trio_minimal(stream: trio.SocketStream) -> None:
    import trio

    buffer = bytearray()
    try:
        while data := await stream.receive_some(_READ_SIZE):
            buffer += data
            count = start = 0
            while (end := buffer.find(_END, start)) >= 0:
                start = end + 4
                count += 1
            if count:
                del buffer[:start]
                await stream.send_all(RESPONSE * count)
    except trio.BrokenResourceError:
        pass


def trio_server() -> None:
    """trio: ``trio.serve_tcp`` and the minimal handler."""
    import functools

    import trio

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, _trio_minimal, 0, host="127.0.0.1")
            listeners = await nursery.start(serve)
            _announce(listeners[0].socket.getsockname()[1])

    trio.run(main)


# -- asyncio and uvloop ------------------------------------------------------------


async def _streams_minimal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = bytearray()
    try:
        while data := await reader.read(_READ_SIZE):
            buffer += data
            count = start = 0
            while (end := buffer.find(_END, start)) >= 0:
                start = end + 4
                count += 1
            if count:
                del buffer[:start]
                writer.write(RESPONSE * count)
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve_streams() -> None:
    import asyncio

    server = await asyncio.start_server(_streams_minimal, "127.0.0.1", 0)
    _announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _protocol_class() -> type[asyncio.Protocol]:
    import asyncio

    class MinimalHTTP(asyncio.Protocol):
        """The minimal parsing, in ``data_received``."""

        # (uvloop's transports are not asyncio.Transport subclasses: no check.)
        transport: asyncio.Transport

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            self.buffer = bytearray()

        def data_received(self, data: bytes) -> None:
            buffer = self.buffer
            buffer += data
            count = start = 0
            while (end := buffer.find(_END, start)) >= 0:
                start = end + 4
                count += 1
            if count:
                del buffer[:start]
                self.transport.write(RESPONSE * count)

    return MinimalHTTP


async def _serve_protocol() -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    server = await loop.create_server(_protocol_class(), "127.0.0.1", 0)
    _announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def asyncio_streams_server() -> None:
    """asyncio: ``asyncio.start_server`` and a stream handler."""
    import asyncio

    asyncio.run(_serve_streams())


def asyncio_protocol_server() -> None:
    """asyncio: ``loop.create_server`` and a ``Protocol``."""
    import asyncio

    asyncio.run(_serve_protocol())


def uvloop_streams_server() -> None:
    """uvloop: the asyncio streams server on uvloop's event loop."""
    import uvloop

    uvloop.run(_serve_streams())


def uvloop_protocol_server() -> None:
    """uvloop: the asyncio protocol server on uvloop's event loop."""
    import uvloop

    uvloop.run(_serve_protocol())


# -- the physical limit: C and epoll ------------------------------------------------

_C_SOURCE = Path(__file__).resolve().with_name("c_epoll_server.c")
#: How the C server is compiled: the source comes on stdin (``-x c -``), so the
#: bytes hashed are the bytes built even if the file changes meanwhile.
_C_BUILD = ("cc", "-O2", "-x", "c", "-")


def build_c_server() -> Path:
    """The C server's executable, compiled with ``cc -O2`` unless this
    version of ``bench/c_epoll_server.c`` is built already.

    It lives in ``$TMPDIR/shardio-bench-<uid>/``, named by a hash of the
    source and the compile command; a new build is written under a temporary
    name and renamed, so a concurrent or interrupted build never leaves a
    partial executable under the final name.
    """
    if shutil.which(_C_BUILD[0]) is None:
        raise RuntimeError(
            f"no C compiler: {_C_BUILD[0]!r} is not on PATH (install one, e.g. apt-get install gcc)"
        )
    source = _C_SOURCE.read_bytes()
    key = hashlib.sha256(repr(_C_BUILD).encode() + b"\0" + source).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"shardio-bench-{os.getuid()}"
    executable = directory / f"c_epoll_server-{key}"
    if executable.exists():
        return executable
    directory.mkdir(mode=0o700, exist_ok=True)
    partial = directory / f"{executable.name}.{os.getpid()}.partial"
    built = subprocess.run(
        [*_C_BUILD, "-o", str(partial)], input=source, capture_output=True, check=False
    )
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        errors = built.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(_C_BUILD)} failed on {_C_SOURCE}:\n{errors}")
    os.replace(partial, executable)
    return executable


def c_epoll_server() -> None:
    """The C server (built if needed), in place of this process."""
    executable = build_c_server()
    sys.stdout.flush()
    os.execv(executable, [os.fsencode(executable), RESPONSE])


#: Server name -> the function that runs it (until stopped). Only the shardio
#: servers take the shard options.
SERVERS: dict[str, Callable[..., None]] = {
    "shardio": shardio_server,
    "shardio-sansio": shardio_sansio_server,
    "c-epoll": c_epoll_server,
    "trio": trio_server,
    "asyncio-streams": asyncio_streams_server,
    "asyncio-protocol": asyncio_protocol_server,
    "uvloop-streams": uvloop_streams_server,
    "uvloop-protocol": uvloop_protocol_server,
}


def main(argv: list[str] | None = None) -> None:
    """Run the server named on the command line until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m bench._http_servers", description=__doc__)
    parser.add_argument("name", nargs="?", choices=sorted(SERVERS), help="the server to run")
    parser.add_argument("--shards", type=int, default=1, help="shards (shardio servers only)")
    parser.add_argument(
        "--cpus", help="comma-separated CPUs to pin the shards to (shardio servers only)"
    )
    parser.add_argument(
        "--balance",
        choices=["reuseport", "least-connections"],
        default="reuseport",
        help="how connections are spread over the shards (shardio servers only)",
    )
    parser.add_argument("--list", action="store_true", help="list the servers and exit")
    args = parser.parse_args(argv)
    if args.list or args.name is None:
        for name in SERVERS:
            print(name)
        return
    serve = SERVERS[args.name]
    cpus = [int(cpu) for cpu in args.cpus.split(",")] if args.cpus else None
    if args.name.startswith("shardio"):
        if cpus is not None:
            # This process may have been pinned by its parent: widen its mask
            # so the shards can be pinned where they are asked to go.
            os.sched_setaffinity(0, cpus)
        serve(args.shards, cpus, args.balance)
    elif args.shards != 1 or cpus is not None:
        parser.error(f"{args.name} runs on one thread: no --shards or --cpus")
    else:
        serve()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
