import functools

import shardio
from kv_protocol import KVClient, serve_kv
from shardio.testing import MockClock
from shardio_net.native import TcpConfig, simulated_pair


def report(who, error):
    print(f"  {who} at {shardio.current_time():6.1f} s: {error.__cause__!r}")


async def watched_server(ended, store, stream):
    """The server's handler, saying how its connection ended."""
    try:
        await serve_kv(store, stream)
    except shardio.BrokenResourceError as error:
        report("server", error)
    finally:
        ended.set()


async def main(config):
    a, b = simulated_pair(delay=0.01, tcp=config)
    server_ended = shardio.Event()
    async with shardio.open_nursery() as nursery:
        handler = functools.partial(watched_server, server_ended, {})
        await nursery.start(b.serve_tcp, handler, 7000)
        client = KVClient(await a.open_tcp_stream("10.0.0.2", 7000))
        await client.set(b"k", b"v")
        await shardio.sleep(1)  # quiet: every segment has been acknowledged
        a.device.loss = b.device.loss = 1.0  # the client's host is unplugged
        try:
            await client.get(b"k")
        except shardio.BrokenResourceError as error:
            report("client", error)
        with shardio.move_on_after(3600):
            await server_ended.wait()
        if not server_ended.is_set():
            print("  server: still waiting an hour later, on a connection that is gone")
        nursery.cancel_scope.cancel()


print("Linux's defaults:")
shardio.run(main, TcpConfig(), clock=MockClock(autojump_threshold=0))
print("five retries, and keepalive (60 s idle, 3 probes 10 s apart):")
quick = TcpConfig(
    retries=5, keepalive=True, keepalive_idle=60, keepalive_interval=10, keepalive_count=3
)
shardio.run(main, quick, clock=MockClock(autojump_threshold=0))
