"""The demo's client: its reply parser matches replies to requests in
order, however the bytes are cut; its connection pipelines against the real
server (in-process, two shards)."""

from __future__ import annotations

import pytest

import shardio
from examples.memcached.client import (
    Connection,
    ProtocolError,
    ReplyParser,
    Value,
    get_request,
    line_request,
    set_request,
    stats_request,
)
from examples.memcached.engine import LocalEngine
from examples.memcached.server import serve
from examples.memcached.settings import Settings

SCRIPT = [
    set_request(b"a", b"one\r\ntwo", flags=5),
    get_request(b"a", b"missing", b"a"),
    get_request(b"a", with_cas=True),
    line_request(b"incr a 1"),
    get_request(b"missing"),
    stats_request(b"settings"),
]


def expected_replies(replies: list[object]) -> None:
    stored, values, with_cas, incr, missing, stats = replies
    assert stored == b"STORED"
    assert values == [Value(b"a", 5, b"one\r\ntwo"), Value(b"a", 5, b"one\r\ntwo")]
    assert with_cas == [Value(b"a", 5, b"one\r\ntwo", cas=1)]
    assert incr == b"CLIENT_ERROR cannot increment or decrement non-numeric value"
    assert missing == []
    assert isinstance(stats, dict) and stats["item_size_max"] == "1048576"


@pytest.mark.parametrize("chunk", [1, 3, 64, 100_000])
def test_replies_come_out_in_request_order_however_the_bytes_are_cut(chunk: int) -> None:
    reply_bytes = LocalEngine().converse(b"".join(request.data for request in SCRIPT))
    parser = ReplyParser()
    for request in SCRIPT:
        parser.expect(request.kind)
    replies: list[object] = []
    for start in range(0, len(reply_bytes), chunk):
        replies += parser.feed(reply_bytes[start : start + chunk])
    assert parser.waiting == 0
    expected_replies(replies)


def test_a_reply_that_is_not_what_was_expected_is_an_error() -> None:
    parser = ReplyParser()
    parser.expect("values")
    with pytest.raises(ProtocolError, match="expected VALUE or END"):
        parser.feed(b"STORED\r\n")


@pytest.mark.shardio(shards=2)
async def test_a_pipeline_against_the_server_on_two_shards() -> None:
    async with shardio.open_nursery() as nursery:
        [(host, port)] = await nursery.start(serve, Settings(port=0, shards=2), "127.0.0.1")
        async with await Connection.open(host, port, record_latency=True) as connection:
            expected_replies(await connection.pipeline(SCRIPT))
            assert len(connection.latencies) == len(SCRIPT)
        nursery.cancel_scope.cancel()
