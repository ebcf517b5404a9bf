"""Hypothesis: hostile bytes never crash the parser or the engine, never
make the parser hold more than its fixed bound, and get back one
well-formed reply per request, in order; any chunking of a valid request
stream yields the same requests; and valid commands get, byte for byte,
the replies a real memcached gives."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.memcached import protocol as p
from examples.memcached.engine import LocalEngine
from examples.memcached.settings import Settings

from .memcached_server import real_memcached
from .replies import reply_ends, split_replies

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

few_keys = st.sampled_from([b"a", b"b", b"k"])
"""Keys that commands share, so that they meet on them."""
keys = st.one_of(
    few_keys,
    st.binary(min_size=1, max_size=40).map(
        lambda raw: bytes(b for b in raw if b not in b" \r\n\x00") or b"k"
    ),
)
values = st.one_of(
    st.binary(max_size=300),
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: b"%d" % n),  # for incr/decr
)
numbers = st.integers(min_value=0, max_value=2**32 - 1)
exptimes = st.integers(min_value=-(2**31), max_value=2**31 - 1)
flush_delays = st.integers(min_value=0, max_value=1000)
noreply = st.booleans()

steady_exptimes = st.one_of(
    st.just(0),
    st.just(0),
    st.integers(min_value=-(2**31), max_value=-1),
    st.integers(min_value=1000, max_value=2592000),
    st.integers(min_value=2592001, max_value=1_000_000_000),
)
"""Exptimes whose effect cannot change while a test runs: never, already
past (negative, or an absolute time in 2001), or at least 1000 s away. A
deadline a second away passes when the clock ticks, and memcached's clock
ticks on its own, not when the engine's does."""
steady_delays = st.one_of(st.just(0), st.integers(min_value=100, max_value=1000))
"""``flush_all`` delays that cannot come due while a test runs (see above)."""


def _suffix(flag: bool) -> bytes:
    return b" noreply" if flag else b""


@st.composite
def valid_command(
    draw: st.DrawFn,
    keys: st.SearchStrategy[bytes] = keys,
    exptimes: st.SearchStrategy[int] = exptimes,
    flush_delays: st.SearchStrategy[int] = flush_delays,
    with_stats: bool = True,
) -> tuple[bytes, p.Request]:
    """One well-formed command and the request it must parse to."""
    kinds = ["get", "get", "store", "store", "store", "cas", "delete", "arith", "touch"]
    kind = draw(st.sampled_from([*kinds, "flush", "simple"]))
    if kind == "get":
        names = tuple(draw(st.lists(keys, min_size=1, max_size=6)))
        cas = draw(st.booleans())
        verb = b"gets" if cas else b"get"
        return verb + b" " + b" ".join(names) + b"\r\n", p.Retrieve(names, cas)
    if kind in ("store", "cas"):
        key = draw(keys)
        flags, exptime = draw(numbers), draw(exptimes)
        value = draw(values)
        quiet = draw(noreply)
        if kind == "cas":
            unique = draw(st.one_of(st.integers(0, 20), st.integers(0, 2**64 - 1)))
            line = b"cas %s %d %d %d %d" % (key, flags, exptime, len(value), unique)
            request = p.Store("cas", key, flags, exptime, value, unique, quiet)
        else:
            verb = draw(st.sampled_from(["set", "add", "replace", "append", "prepend"]))
            line = b"%s %s %d %d %d" % (verb.encode(), key, flags, exptime, len(value))
            request = p.Store(verb, key, flags, exptime, value, 0, quiet)
        return line + _suffix(quiet) + b"\r\n" + value + b"\r\n", request
    if kind == "delete":
        key, quiet = draw(keys), draw(noreply)
        return b"delete " + key + _suffix(quiet) + b"\r\n", p.Delete(key, quiet)
    if kind == "arith":
        key, quiet, incr = draw(keys), draw(noreply), draw(st.booleans())
        delta = draw(st.integers(min_value=0, max_value=2**64 - 1))
        verb = b"incr" if incr else b"decr"
        line = b"%s %s %d%s\r\n" % (verb, key, delta, _suffix(quiet))
        return line, p.Arithmetic(key, delta, incr, quiet)
    if kind == "touch":
        key, quiet, exptime = draw(keys), draw(noreply), draw(exptimes)
        line = b"touch %s %d%s\r\n" % (key, exptime, _suffix(quiet))
        return line, p.Touch(key, exptime, quiet)
    if kind == "flush":
        delay, quiet = draw(flush_delays), draw(noreply)
        return b"flush_all %d%s\r\n" % (delay, _suffix(quiet)), p.FlushAll(delay, quiet)
    simple: list[tuple[bytes, p.Request]] = [
        (b"version\r\n", p.Version()),
        (b"mn\r\n", p.MetaNoop()),
        (b"verbosity 1\r\n", p.Verbosity(1)),
    ]
    if with_stats:
        simple.append((b"stats\r\n", p.Stats()))
    return draw(st.sampled_from(simple))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


@FUZZ
@given(st.lists(valid_command(), min_size=1, max_size=15), st.lists(st.integers(0, 10**6)))
def test_any_chunking_of_a_valid_stream_gives_the_same_requests(
    commands: list[tuple[bytes, p.Request]], cuts: list[int]
) -> None:
    stream = b"".join(data for data, _ in commands)
    expected = [request for _, request in commands]
    assert p.iter_requests(p.Parser(), [stream]) == expected
    assert p.iter_requests(p.Parser(), split(stream, cuts)) == expected


fragments = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"\r\n",
            b"\n",
            b" ",
            b"\x00",
            b"get ",
            b"gets ",
            b"set k 0 0 5\r\n",
            b"set k 0 0 100000000\r\n",
            b"set k 0 0 -1\r\n",
            b"cas k 0 0 1 1\r\n",
            b"ms k 10 T1\r\n",
            b"ms k 999999999 MZ\r\n",
            b"mg k v c t k Oxx q N1\r\n",
            b"ma k N0 J1 v\r\n",
            b"md k I q\r\n",
            b"incr k 1\r\n",
            b"set k 0 0 2\r\n10\r\n",
            b"decr k 3\r\n",
            b"append k 0 0 1 noreply\r\n5\r\n",
            b"get k\r\n",
            b"gets k x k\r\n",
            b"gat 100 k\r\n",
            b"delete k noreply\r\n",
            b"ms k 2 q\r\nhi\r\n",
            b"mg k s v q\r\n",
            b"me k\r\n",
            b"mn\r\n",
            b"stats\r\n",
            b"stats items\r\n",
            b"stats reset\r\n",
            b"quit\r\n",
            b"HTTP/1.1\r\n",
            b"x" * 3000,
            b"k" * 300,
        ]
    ),
)


@FUZZ
@given(st.lists(fragments, max_size=40))
def test_hostile_bytes_never_crash_and_never_grow_the_buffer(chunks: list[bytes]) -> None:
    parser = p.Parser(item_size_max=4096, max_multiget_line=8192)
    for chunk in chunks:
        parser.feed(chunk)
        assert parser.buffered <= parser.buffer_limit()
        assert parser.buffer_limit() == 16384


@FUZZ
@given(st.lists(fragments, max_size=40), st.integers(min_value=1, max_value=3))
def test_hostile_bytes_get_one_well_formed_reply_per_request(
    chunks: list[bytes], shards: int
) -> None:
    engine = LocalEngine(Settings(shards=shards, item_size_max=4096, memory_limit=200_000))
    parser = engine.parser()
    for chunk in chunks:
        requests = parser.feed(chunk)
        reply, close = engine.execute(requests)
        split_replies(requests, reply)
        if close:
            assert parser.closed
            break
    for partition in engine.partitions:
        assert partition.cache.bytes_used <= partition.cache.memory_limit


def read_reply(sock: socket.socket, request: p.Request) -> bytes:
    """memcached's reply to ``request``, read until it is whole (nothing
    for a request it must not answer)."""
    received = b""
    while len(received) not in reply_ends(request, received, 0):
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            break
        if not data:
            break
        received += data
    return received


@pytest.mark.requires_program("memcached", apt="memcached")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        valid_command(few_keys, steady_exptimes, steady_delays, with_stats=False),
        min_size=8,
        max_size=30,
    )
)
def test_valid_commands_get_the_replies_real_memcached_gives(
    commands: list[tuple[bytes, p.Request]],
) -> None:
    # memcached as the store models it: a flat LRU, which reclaims dead
    # items when it allocates, and no background LRU threads, which reclaim
    # them at moments of their own (a delayed flush_all after an immediate
    # one brings back what the first one flushed, unless it was reclaimed).
    # One command at a time, each reply read whole before the next command
    # is sent: pipelined, memcached writes an incr in place or not depending
    # on whether a get's reply is still being sent (see test_differential).
    engine = LocalEngine()
    parser = engine.parser()
    ours = [engine.execute(parser.feed(data))[0] for data, _ in commands]
    options = ("-o", "no_lru_maintainer,no_lru_crawler")
    with real_memcached(*options) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        # A noreply command gets no reply to carry its ACK: without NODELAY,
        # Nagle holds the next command back until the delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(5)
        theirs = []
        for data, request in commands:
            sock.sendall(data)
            theirs.append(read_reply(sock, request))
    assert ours == theirs


def test_a_huge_announced_item_is_swallowed_without_buffering() -> None:
    parser = p.Parser(item_size_max=1024)
    assert parser.feed(b"set k 0 0 1000000000\r\n") == [p.StoreTooLarge("set", b"k")]
    for _ in range(100):
        assert parser.feed(b"\0" * 65536) == []
        assert parser.buffered == 0
