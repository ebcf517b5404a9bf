"""The memcached job: the sharded server under a load, in about fifteen seconds.

Run it from the repository root with ``make demo`` (or ``.venv/bin/python -m
examples.memcached.demo``). It needs the loopback interface and nothing else,
and stops by itself.

1. The server starts on every shard -- one process per CPU, each pinned to
   its CPU, each owning a slice of the keys -- listening on 127.0.0.1 (a port
   the kernel picks). It is the same server as ``make serve``, started in
   this program with ``nursery.start``.
2. A load generator starts on every shard too, beside the server: a few
   connections per shard (shardio's ``open_tcp_stream``), each sending
   pipelines of requests, nine gets for one set, over a fixed set of keys.
   Every connection owns some of the keys -- it alone writes them, and
   remembers what it wrote last -- and reads all of them. Each value says
   which key and which version it is, so every value read is checked.
3. While it runs, each shard reports its progress to shard 0 through a
   cross-shard channel, and shard 0 prints the requests per second.
4. Then each shard prints nothing but returns its figures (``run_on``):
   requests, throughput, and the latency of a request -- from the send of
   its pipeline to the arrival of its reply -- at the 50th, 90th, 99th and
   99.9th percentiles. The server's own view follows (``stats shards``:
   the items each shard owns and the requests it ran).
5. Every connection reads back a sample of its keys, which must hold the
   last value it wrote; then the server is stopped, by cancelling it.

The clients share the CPUs with the server, so the throughput printed is
what one machine does as client and server at once; ``make bench`` measures
the server alone against memcached (see bench/README.md).
"""

from __future__ import annotations

import argparse
import math
import random
import time
import zlib

import attrs

import shardio

from .client import Connection, Reply, Value, get_request, set_request, stats_request
from .server import serve
from .settings import Settings

HOST = "127.0.0.1"
KEYS = 10_000
CONNECTIONS_PER_SHARD = 8
PIPELINE = 16
GET_SHARE = 0.9
LOAD_SECONDS = 8.0
SAMPLE_PER_CONNECTION = 100
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def say(text: str = "") -> None:
    """A line on shard 0's stdout (only shard 0 prints)."""
    print(text, flush=True)


# -- keys and values -------------------------------------------------------------


def key_name(index: int) -> bytes:
    """The demo's ``index``-th key."""
    return b"demo:%05d" % index


def value_for(key: bytes, version: int) -> bytes:
    """The ``version``-th value written to ``key``: ``key:version:`` and a
    filler of 100 to 1000 bytes, both derived from the key and version."""
    head = b"%s:%d:" % (key, version)
    size = 100 + zlib.crc32(head) % 900
    return head + (b"%08x" % zlib.crc32(head)) * (size // 8)


def check_value(key: bytes, value: bytes) -> int:
    """The version a value read for ``key`` says it is; ValueError if it is
    not a value the demo writes to that key (damaged, or another key's)."""
    prefix = key + b":"
    version, _, _ = value.removeprefix(prefix).partition(b":")
    if not value.startswith(prefix) or not version.isdigit():
        raise ValueError(f"{key!r} holds a value of another key: {value[:40]!r}")
    if value != value_for(key, int(version)):
        raise ValueError(f"{key!r} holds a damaged value: {value[:40]!r}")
    return int(version)


# -- the load, on each shard ---------------------------------------------------------


@attrs.frozen
class ShardFigures:
    """What the connections of one shard did during the load."""

    shard: int
    connections: int
    requests: int
    seconds: float
    latencies_ms: tuple[float, ...]
    """At :data:`PERCENTILES`."""
    bad_values: int


def percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(math.ceil(percent / 100 * len(ordered)) - 1, 0)
    return ordered[rank]


@attrs.define(eq=False)
class Client:
    """One load connection: the keys it owns, the versions it wrote."""

    connection: Connection
    owned: list[int]
    rng: random.Random
    written: dict[int, int] = attrs.Factory(dict)
    requests: int = 0
    bad_values: int = 0

    def next_pipeline(self) -> tuple[list[bytes | None], list[tuple[bytes, int] | None]]:
        """The next pipeline: for each request, the key it reads (or None
        for a set) and the (key, version) it writes (or None for a get)."""
        reads: list[bytes | None] = []
        writes: list[tuple[bytes, int] | None] = []
        for _ in range(PIPELINE):
            if self.rng.random() < GET_SHARE:
                reads.append(key_name(self.rng.randrange(KEYS)))
                writes.append(None)
            else:
                index = self.rng.choice(self.owned)
                self.written[index] = self.written.get(index, 0) + 1
                reads.append(None)
                writes.append((key_name(index), self.written[index]))
        return reads, writes

    async def run_pipeline(self) -> None:
        """Send one pipeline and check its replies."""
        reads, writes = self.next_pipeline()
        requests = [
            get_request(key) if key is not None else set_request(*_written(write))
            for key, write in zip(reads, writes, strict=True)
        ]
        replies = await self.connection.pipeline(requests)
        for key, reply in zip(reads, replies, strict=True):
            if key is None:
                self.bad_values += reply != b"STORED"
            else:
                self.bad_values += not _valid_read(key, reply)
        self.requests += len(requests)


def _written(write: tuple[bytes, int] | None) -> tuple[bytes, bytes]:
    assert write is not None
    key, version = write
    return key, value_for(key, version)


def _valid_read(key: bytes, reply: Reply) -> bool:
    if not isinstance(reply, list) or len(reply) != 1 or reply[0].key != key:
        return False
    try:
        check_value(key, reply[0].value)
    except ValueError:
        return False
    return True


def owned_keys(shard: int, connection: int) -> list[int]:
    """The keys connection ``connection`` of ``shard`` writes."""
    slot = shard * CONNECTIONS_PER_SHARD + connection
    slots = shardio.shard_count() * CONNECTIONS_PER_SHARD
    return list(range(slot, KEYS, slots))


async def preload(port: int) -> None:
    """On one shard: its connections store version 1 of their keys."""
    shard = shardio.current_shard()

    async def one(number: int) -> None:
        async with await Connection.open(HOST, port) as connection:
            keys = owned_keys(shard, number)
            for start in range(0, len(keys), 100):
                chunk = [key_name(index) for index in keys[start : start + 100]]
                replies = await connection.pipeline(
                    [set_request(key, value_for(key, 1)) for key in chunk]
                )
                assert replies == [b"STORED"] * len(chunk), replies[:3]

    async with shardio.open_nursery() as nursery:
        for number in range(CONNECTIONS_PER_SHARD):
            nursery.start_soon(one, number)


async def load(
    port: int, seconds: float, progress: shardio.ShardSendChannel[tuple[int, int]]
) -> ShardFigures:
    """On one shard: run the load for ``seconds``; report progress through
    ``progress`` (this shard's end of a cross-shard channel); return the
    figures. Every connection then checks a sample of its keys."""
    shard = shardio.current_shard()
    clients = [
        Client(
            await Connection.open(HOST, port, record_latency=True),
            owned_keys(shard, number),
            random.Random(shard * 1000 + number),
            dict.fromkeys(owned_keys(shard, number), 1),
        )
        for number in range(CONNECTIONS_PER_SHARD)
    ]
    start = shardio.current_time()

    async def drive(client: Client) -> None:
        while shardio.current_time() - start < seconds:
            await client.run_pipeline()

    async def report() -> None:
        async with progress:
            while True:
                await shardio.sleep(0.25)
                await progress.send((shard, sum(client.requests for client in clients)))

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(report)
        async with shardio.open_nursery() as drivers:
            for client in clients:
                drivers.start_soon(drive, client)
        elapsed = shardio.current_time() - start
        nursery.cancel_scope.cancel()
    bad = sum(client.bad_values for client in clients)
    for client in clients:
        bad += await check_sample(client)
        await client.connection.aclose()
    latencies = sorted(
        latency * 1000 for client in clients for latency in client.connection.latencies
    )
    return ShardFigures(
        shard,
        len(clients),
        sum(client.requests for client in clients),
        elapsed,
        tuple(percentile(latencies, percent) for percent in PERCENTILES),
        bad,
    )


async def check_sample(client: Client) -> int:
    """Read back some of the client's keys: each must hold the last version
    the client wrote. The number that do not."""
    sample = client.rng.sample(client.owned, min(SAMPLE_PER_CONNECTION, len(client.owned)))
    keys = [key_name(index) for index in sample]
    [reply] = await client.connection.pipeline([get_request(*keys)])
    assert isinstance(reply, list)
    found: dict[bytes, Value] = {value.key: value for value in reply}
    wrong = 0
    for index, key in zip(sample, keys, strict=True):
        value = found.get(key)
        wrong += value is None or value.value != value_for(key, client.written[index])
    return wrong


# -- shard 0: the show ------------------------------------------------------------------


async def show_progress(receive: shardio.ShardReceiveChannel[tuple[int, int]]) -> None:
    """Print the requests per second, every second, from the shards' reports."""
    counts: dict[int, int] = {}
    shown: dict[int, int] = {}
    started = last = shardio.current_time()
    async with receive:
        async for shard, count in receive:
            counts[shard] = count
            now = shardio.current_time()
            if now - last >= 1.0:
                rates = {s: (counts[s] - shown.get(s, 0)) / (now - last) for s in counts}
                per_shard = "  ".join(f"shard {s}: {rates[s]:>7,.0f}" for s in sorted(rates))
                total = sum(rates.values())
                say(f"  {now - started:4.0f} s  {total:>8,.0f} requests/s   {per_shard}")
                shown, last = dict(counts), now


def print_figures(figures: list[ShardFigures]) -> None:
    """The table of results, one row per shard and a total."""
    heads = "".join(f"{f'p{percent:g} ms':>9}" for percent in PERCENTILES)
    say(f"  {'shard':>5} {'conns':>6} {'requests':>10} {'req/s':>9}{heads}")
    for row in figures:
        cells = "".join(f"{latency:>9.2f}" for latency in row.latencies_ms)
        say(
            f"  {row.shard:>5} {row.connections:>6} {row.requests:>10,} "
            f"{row.requests / row.seconds:>9,.0f}{cells}"
        )
    total = sum(row.requests for row in figures)
    seconds = max(row.seconds for row in figures)
    connections = sum(row.connections for row in figures)
    say(f"  {'all':>5} {connections:>6} {total:>10,} {total / seconds:>9,.0f}")


async def print_server_view(port: int) -> None:
    """The server's own figures per shard (``stats shards``)."""
    async with await Connection.open(HOST, port) as connection:
        [figures] = await connection.pipeline([stats_request(b"shards")])
    assert isinstance(figures, dict)
    say(f"  {'shard':>5} {'items':>7} {'gets':>10} {'sets':>9} {'hit ratio':>10}")
    for shard in range(shardio.shard_count()):

        def stat(name: str, shard: int = shard) -> int:
            return int(figures[f"shard:{shard}:{name}"])

        gets = stat("cmd_get")
        ratio = stat("get_hits") / gets if gets else 0.0
        items, sets = stat("curr_items"), stat("cmd_set")
        say(f"  {shard:>5} {items:>7,} {gets:>10,} {sets:>9,} {ratio:>10.1%}")


async def main(seconds: float = LOAD_SECONDS) -> None:
    """Start the server, load it for ``seconds``, report, check, stop."""
    began = time.monotonic()
    shards = shardio.shard_count()
    say(f"memcached demo on {shards} shard(s): one process per CPU, pinned, sharing nothing")
    settings = Settings(port=0, interface=HOST, shards=shards)
    async with shardio.open_nursery() as server:
        [(_, port)] = await server.start(serve, settings, HOST)
        say(f"server: listening on {HOST}:{port}; each shard owns the keys that hash to it")

        say(f"preload: {KEYS:,} keys of 100 to 1000 bytes, pipelined sets from every shard")
        async with shardio.open_nursery() as nursery:
            for shard in range(shards):
                nursery.start_soon(preload, port, shard=shard)

        say(
            f"load: {CONNECTIONS_PER_SHARD} connections per shard, pipelines of {PIPELINE}, "
            f"{GET_SHARE:.0%} get / {1 - GET_SHARE:.0%} set, for {seconds:g} s"
        )
        send: shardio.ShardSendChannel[tuple[int, int]]
        receive: shardio.ShardReceiveChannel[tuple[int, int]]
        send, receive = shardio.open_channel(16)
        figures: list[ShardFigures] = []
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(show_progress, receive)

            async def run_load(
                shard: int, progress: shardio.ShardSendChannel[tuple[int, int]]
            ) -> None:
                figures.append(await shardio.run_on(shard, load, port, seconds, progress))

            async with send:
                for shard in range(shards):
                    nursery.start_soon(run_load, shard, send.clone())
        figures.sort(key=lambda row: row.shard)

        say("results, per shard of the clients (latency: pipeline sent -> its reply):")
        print_figures(figures)
        say("the server's view, per shard that owns the keys (stats shards):")
        await print_server_view(port)
        checked = shards * CONNECTIONS_PER_SHARD * SAMPLE_PER_CONNECTION
        bad = sum(row.bad_values for row in figures)
        verdict = "all as expected" if not bad else f"{bad} WRONG"
        say(f"checked every value read, then {checked:,} keys read back: {verdict}")
        server.cancel_scope.cancel()
    say(f"server stopped; {time.monotonic() - began:.1f} s in all")
    if bad:
        raise SystemExit(1)


def run(argv: list[str] | None = None) -> None:
    """Entry point: ``--seconds`` of load (default 8) on ``--shards`` shards
    (default: one per CPU)."""
    parser = argparse.ArgumentParser(prog="python -m examples.memcached.demo")
    parser.add_argument("--seconds", type=float, default=LOAD_SECONDS, help="load duration")
    parser.add_argument("--shards", type=int, default=None, help="default: one per CPU")
    arguments = parser.parse_args(argv)
    shardio.run(main, arguments.seconds, shards=arguments.shards)


if __name__ == "__main__":
    run()
