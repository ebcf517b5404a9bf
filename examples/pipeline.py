"""A pipeline across shards: parse -> hash -> aggregate, connected by channels.

Run it from the repository root: ``.venv/bin/python -m examples.pipeline [LINES]``
(100,000 lines by default). It runs on up to four shards, one per CPU (one
shard on a single-CPU machine), and finishes by itself in a second or two.

The input is a web server's access log, generated before the run from a fixed
seed, so that every run computes the same figures (only the timing varies).
Each line goes through three stages, and each stage runs where the design of a
sharded program puts it:

    shard 0              shards 1..N-1 (or 0)              every shard
    parse  --channel-->  hash  -----channel to owner----->  aggregate
    (regex)              (keyed BLAKE2b of the client:     (counters in the owner's
                          a pseudonym, and its owner)       instance of a sharded
                                                            service)

- **parse** (shard 0) reads the log and turns each line into a plain tuple
  ``(client, method, path, status, size)``; it deals the tuples out to the
  hashers, each of which has a channel of its own, received on its shard.
- **hash** (every other shard) replaces the client's address with a keyed
  BLAKE2b digest -- a pseudonym: the aggregates never hold an address -- and
  sends the record to the pseudonym's *owner* shard (the digest modulo N)
  through that shard's inbox channel.
- **aggregate** (every shard) receives the records of the visitors it owns and
  counts them in its own instance of a sharded service: hits, bytes, status
  classes and distinct visitors per page. Each instance is updated by its own
  shard only, so nothing is locked, and nothing is merged until the end, when
  ``map_reduce`` gathers the results on shard 0. Partitioning by visitor makes
  that merge a sum: a visitor is counted on one shard only, so the distinct
  visitors of a page are the sum of each shard's.

Every channel has a bounded buffer (``max_buffer_size``): a stage that runs ahead
of the next one waits for it, so memory stays bounded however long the log is --
the summary shows the most values each kind of channel ever held. The end of the
input travels down the pipeline as the closing of the send ends: the parser
closes its channels, each hasher's ``async for`` ends and it closes its clones of
the inboxes, and the aggregators end when the last hasher has closed them.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator

import attrs

import shardio

#: The buffer of every channel, in records: enough to keep values flowing between
#: shards without waiting for each credit (see docs/design/channels.md).
BUFFER = 256

#: The key of the pseudonyms. A real deployment would read it from a secret
#: store; it is fixed here so that every run prints the same figures.
PSEUDONYM_KEY = b"shardio example key"

Record = tuple[str, str, str, int, int]  # client, method, path, status, size
Visit = tuple[bytes, str, int, int]  # visitor (a pseudonym), path, status, size

# ---------------------------------------------------------------------------
# The input: a synthetic access log
# ---------------------------------------------------------------------------

PAGES = [
    "/",
    "/index.html",
    "/docs/tutorial.html",
    "/docs/reference.html",
    "/docs/design/channels.html",
    "/download/shardio.tar.gz",
    "/blog/2026/shard-per-core.html",
    "/blog/2026/cancellation.html",
    "/api/status",
    "/favicon.ico",
    "/robots.txt",
    "/login",
]
PAGE_WEIGHTS = [30, 20, 12, 9, 5, 3, 8, 4, 15, 10, 2, 6]
STATUSES = [200, 200, 200, 200, 200, 200, 200, 304, 404, 500]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "python-httpx/0.27"]


def synthetic_log(lines: int, seed: int = 2026) -> Iterator[str]:
    """``lines`` lines in the Combined Log Format, the same ones for a given seed."""
    rng = random.Random(seed)
    networks = ["192.0.2", "198.51.100", "203.0.113"]  # the documentation ranges
    for number in range(lines):
        # A few clients come back often, most rarely: an exponential popularity.
        index = min(int(rng.expovariate(1 / 150)), 3 * 254 - 1)
        client = f"{networks[index // 254]}.{index % 254 + 1}"
        page = rng.choices(PAGES, PAGE_WEIGHTS)[0]
        method = "POST" if page == "/login" and rng.random() < 0.5 else "GET"
        status = rng.choice(STATUSES)
        size = 0 if status == 304 else rng.randrange(200, 60_000)
        second = number // 50
        stamp = f"26/Nov/2026:{second // 3600 % 24:02}:{second // 60 % 60:02}:{second % 60:02}"
        agent = rng.choice(AGENTS)
        yield (
            f'{client} - - [{stamp} +0000] "{method} {page} HTTP/1.1" {status} {size} "-" "{agent}"'
        )


# ---------------------------------------------------------------------------
# The per-shard state: a sharded service
# ---------------------------------------------------------------------------


class PageStats:
    """One instance per shard: what that shard did, and the visitors it owns."""

    def __init__(self) -> None:
        self.work: Counter[str] = Counter()  # records handled, per stage
        self.hits: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.visitors: dict[str, set[bytes]] = {}  # the visitors of each page
        self.peak_buffer: dict[str, int] = {}  # the most a channel received here held

    def count(self, visitor: bytes, path: str, status: int, size: int) -> None:
        self.hits[path] += 1
        self.bytes[path] += size
        self.statuses[f"{status // 100}xx"] += 1
        self.visitors.setdefault(path, set()).add(visitor)

    def note_peak(
        self,
        channel: str,
        receive: shardio.ShardReceiveChannel[Record] | shardio.ShardReceiveChannel[Visit],
    ) -> None:
        peak = receive.statistics().peak_buffer_used
        self.peak_buffer[channel] = max(peak, self.peak_buffer.get(channel, 0))

    def summary(self) -> Summary:
        """What shard 0 needs from this shard: counts, not the visitors themselves."""
        visitors = Counter({path: len(seen) for path, seen in self.visitors.items()})
        return Summary(self.statuses, self.hits, self.bytes, visitors, self.peak_buffer)


@attrs.frozen
class Summary:
    """What a shard counted, or all of them: hits, bytes and distinct visitors
    per page, status classes, and the most a channel of each kind held."""

    statuses: Counter[str] = attrs.field(factory=Counter)
    hits: Counter[str] = attrs.field(factory=Counter)
    bytes_served: Counter[str] = attrs.field(factory=Counter)
    visitors: Counter[str] = attrs.field(factory=Counter)
    peak_buffer: dict[str, int] = attrs.field(factory=dict)


def merge(total: Summary, part: Summary) -> Summary:
    """The reducer of ``map_reduce``: one shard's summary into the total."""
    peaks = dict(total.peak_buffer)
    for channel, peak in part.peak_buffer.items():
        peaks[channel] = max(peak, peaks.get(channel, 0))
    # Every count is a sum, the distinct visitors too: each visitor has one owner.
    return Summary(
        total.statuses + part.statuses,
        total.hits + part.hits,
        total.bytes_served + part.bytes_served,
        total.visitors + part.visitors,
        peaks,
    )


# ---------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------

LINE = re.compile(r'(\S+) \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+)')


def parse_line(line: str) -> Record | None:
    """One log line as a plain tuple, or None if it is malformed."""
    match = LINE.match(line)
    if match is None:
        return None
    client, method, path, status, size = match.groups()
    return client, method, path, int(status), int(size)


def pseudonym(client: str) -> bytes:
    """A keyed digest of the client's address: stable, and says nothing about it."""
    return hashlib.blake2b(client.encode(), key=PSEUDONYM_KEY, digest_size=8).digest()


def owner(visitor: bytes) -> int:
    """The shard that aggregates ``visitor``: the same on every shard, in every run."""
    return int.from_bytes(visitor[:4]) % shardio.shard_count()


async def parse(
    log: list[str],
    hashers: list[shardio.ShardSendChannel[Record]],
    stats: shardio.Sharded[PageStats],
) -> None:
    """Stage 1, on shard 0: parse the log, deal the records out to the hashers."""
    work = stats.local().work
    try:
        for number, line in enumerate(log):
            record = parse_line(line)
            if record is None:
                work["malformed"] += 1
                continue
            work["parsed"] += 1
            # A plain tuple of str and int: the cheapest kind of value to send.
            await hashers[number % len(hashers)].send(record)
    finally:
        for channel in hashers:
            channel.close()


async def hash_records(
    records: shardio.ShardReceiveChannel[Record],
    inboxes: list[shardio.ShardSendChannel[Visit]],
    stats: shardio.Sharded[PageStats],
) -> None:
    """Stage 2: pseudonymize each client, send the record to the pseudonym's owner."""
    local = stats.local()
    try:
        async with records:
            async for client, _method, path, status, size in records:
                visitor = pseudonym(client)
                local.work["hashed"] += 1
                await inboxes[owner(visitor)].send((visitor, path, status, size))
            local.note_peak("parse -> hash", records)
    finally:
        for inbox in inboxes:
            inbox.close()


async def aggregate(
    inbox: shardio.ShardReceiveChannel[Visit],
    stats: shardio.Sharded[PageStats],
) -> None:
    """Stage 3, on every shard: count the records of the visitors this shard owns."""
    local = stats.local()  # this shard's instance: updated by this shard only
    async with inbox:
        async for visitor, path, status, size in inbox:
            local.count(visitor, path, status, size)
            local.work["aggregated"] += 1
        local.note_peak("hash -> aggregate", inbox)


# ---------------------------------------------------------------------------
# Wiring the stages together
# ---------------------------------------------------------------------------


async def main(log: list[str]) -> None:
    shards = shardio.shard_count()
    hash_shards = list(range(1, shards)) or [0]
    print(
        f"{len(log):,} log lines, {shards} shard(s): parse on shard 0, hash on "
        f"{', '.join(map(str, hash_shards))}, aggregate on every shard",
        flush=True,
    )
    started = time.perf_counter()
    async with shardio.sharded(PageStats) as stats:
        async with shardio.open_nursery() as nursery:
            # One inbox per shard, received there by its aggregator. Passing the
            # receive end to start_soon(shard=k) moves the channel to shard k.
            inboxes = [shardio.open_channel(BUFFER) for _ in range(shards)]
            for shard, (_, receive) in enumerate(inboxes):
                nursery.start_soon(aggregate, receive, stats, shard=shard)

            # One input channel per hasher; each hasher gets a clone of every inbox.
            to_hashers = []
            for shard in hash_shards:
                send, receive = shardio.open_channel(BUFFER)
                clones = [inbox_send.clone() for inbox_send, _ in inboxes]
                nursery.start_soon(hash_records, receive, clones, stats, shard=shard)
                to_hashers.append(send)
            for inbox_send, _ in inboxes:
                inbox_send.close()  # the hashers' clones keep the inboxes open

            await parse(log, to_hashers, stats)
        # The nursery is done: every record has been counted on its owner shard.
        elapsed = time.perf_counter() - started
        per_shard = await stats.invoke_on_all(lambda part: part.work)
        total = await stats.map_reduce(PageStats.summary, merge, Summary())
    report(len(log), elapsed, per_shard, total)


def report(lines: int, elapsed: float, per_shard: list[Counter[str]], total: Summary) -> None:
    print(f"done in {elapsed:.2f} s ({lines / elapsed:,.0f} lines/s)\n")
    print(f"{'work per shard':<16}{'parsed':>10}{'hashed':>10}{'aggregated':>12}")
    for shard, work in enumerate(per_shard):
        print(
            f"  shard {shard:<8}{work['parsed']:>10,}{work['hashed']:>10,}{work['aggregated']:>12,}"
        )
    statuses = total.statuses
    print("\nstatus classes:", "  ".join(f"{k} {statuses[k]:,}" for k in sorted(statuses)))
    print("top pages by hits:")
    hits = total.hits
    for path in sorted(hits, key=lambda path: (-hits[path], path))[:5]:
        print(
            f"  {path:<32} {hits[path]:>7,} hits {total.bytes_served[path] / 1e6:>7.1f} MB "
            f"{total.visitors[path]:>6,} distinct visitors"
        )
    peaks = ", ".join(f"{name}: {peak}" for name, peak in sorted(total.peak_buffer.items()))
    print(f"most values buffered in a channel (max_buffer_size={BUFFER}): {peaks}")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    # The input, made before the shards are forked: it stands in for a file that
    # shard 0 reads (every shard inherits the list; only shard 0 uses it).
    log = list(synthetic_log(count))
    # Up to four shards, one per CPU this process may use; shards are pinned one
    # per CPU, so there cannot be more shards than CPUs.
    shardio.run(main, log, shards=min(4, len(os.sched_getaffinity(0))))
