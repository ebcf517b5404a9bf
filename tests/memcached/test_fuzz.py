"""Hypothesis: hostile bytes never crash the parser or the engine and never
make the parser hold more than its fixed bound; any chunking of a valid
request stream yields the same requests."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.memcached import protocol as p
from examples.memcached.engine import LocalEngine
from examples.memcached.settings import Settings

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.binary(min_size=1, max_size=40).map(
    lambda raw: bytes(b for b in raw if b not in b" \r\n\x00") or b"k"
)
numbers = st.integers(min_value=0, max_value=2**32 - 1)
exptimes = st.integers(min_value=-(2**31), max_value=2**31 - 1)
noreply = st.booleans()


def _suffix(flag: bool) -> bytes:
    return b" noreply" if flag else b""


@st.composite
def valid_command(draw: st.DrawFn) -> tuple[bytes, p.Request]:
    """One well-formed command and the request it must parse to."""
    kind = draw(
        st.sampled_from(["get", "store", "cas", "delete", "arith", "touch", "flush", "simple"])
    )
    if kind == "get":
        names = tuple(draw(st.lists(keys, min_size=1, max_size=6)))
        cas = draw(st.booleans())
        verb = b"gets" if cas else b"get"
        return verb + b" " + b" ".join(names) + b"\r\n", p.Retrieve(names, cas)
    if kind in ("store", "cas"):
        key = draw(keys)
        flags, exptime = draw(numbers), draw(exptimes)
        value = draw(st.binary(max_size=300))
        quiet = draw(noreply)
        if kind == "cas":
            unique = draw(st.integers(min_value=0, max_value=2**64 - 1))
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
        delay, quiet = draw(st.integers(min_value=0, max_value=1000)), draw(noreply)
        return b"flush_all %d%s\r\n" % (delay, _suffix(quiet)), p.FlushAll(delay, quiet)
    simple: list[tuple[bytes, p.Request]] = [
        (b"version\r\n", p.Version()),
        (b"stats\r\n", p.Stats()),
        (b"mn\r\n", p.MetaNoop()),
        (b"verbosity 1\r\n", p.Verbosity(1)),
    ]
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
def test_hostile_bytes_never_crash_the_engine(chunks: list[bytes], shards: int) -> None:
    engine = LocalEngine(Settings(shards=shards, item_size_max=4096, memory_limit=200_000))
    parser = engine.parser()
    for chunk in chunks:
        reply, close = engine.execute(parser.feed(chunk))
        assert isinstance(reply, bytes)
        if close:
            assert parser.closed
            break
    for partition in engine.partitions:
        assert partition.cache.bytes_used <= partition.cache.memory_limit


def test_a_huge_announced_item_is_swallowed_without_buffering() -> None:
    parser = p.Parser(item_size_max=1024)
    assert parser.feed(b"set k 0 0 1000000000\r\n") == [p.StoreTooLarge("set", b"k")]
    for _ in range(100):
        assert parser.feed(b"\0" * 65536) == []
        assert parser.buffered == 0
