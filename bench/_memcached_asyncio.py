"""M1's asyncio peer: the same memcached server, on asyncio streams.

``python -m bench._memcached_asyncio [--uvloop] [--port N]`` serves
memcached on 127.0.0.1 (on port N, or one the kernel picks; printed as
``port N``) until SIGTERM or SIGINT. It is examples/memcached with the
I/O done by asyncio instead of shardio: the same sans-io parser and the
same engine over one cache (:class:`examples.memcached.engine.LocalEngine`,
one shard), so the replies
are byte for byte the server's and the work per request is the same; only
the event loop and the lack of sharding differ. One process, one thread:
asyncio's model. Each connection is a task reading with ``reader.read``,
and writing with ``writer.write`` (and ``drain`` when the transport's
buffer is full), the idiomatic streams form.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from examples.memcached.engine import LocalEngine
from examples.memcached.settings import Settings

RECEIVE_SIZE = 65536


async def _serve_connection(
    engine: LocalEngine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One client connection, until it closes or quits."""
    parser = engine.parser()
    try:
        while not parser.closed:
            data = await reader.read(RECEIVE_SIZE)
            if not data:
                break
            requests = parser.feed(data)
            if not requests:
                continue
            reply, close = engine.execute(requests)
            if reply:
                writer.write(reply)
                if writer.transport.get_write_buffer_size() > RECEIVE_SIZE:
                    await writer.drain()
            if close:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port: int = 0) -> None:
    """Serve on ``port`` until SIGTERM or SIGINT; print the port first."""
    engine = LocalEngine(Settings(shards=1))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(engine, reader, writer)

    server = await asyncio.start_server(connection, "127.0.0.1", port, backlog=1024)
    async with server:
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line; serve on asyncio's loop or uvloop's."""
    parser = argparse.ArgumentParser(prog="python -m bench._memcached_asyncio")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any)")
    arguments = parser.parse_args(argv)
    if arguments.uvloop:
        import uvloop

        uvloop.run(serve(arguments.port))
    else:
        asyncio.run(serve(arguments.port))


if __name__ == "__main__":
    main()
