"""The stream contract (shardio.testing's conformance checks) on TCP and Unix streams."""

from __future__ import annotations

from pathlib import Path

from shardio.testing import check_half_closeable_stream
from shardio_net import SocketStream

from ._pairs import clog, tcp_pair, unix_pair


async def clogged(pair: tuple[SocketStream, SocketStream]) -> tuple[SocketStream, SocketStream]:
    left, right = pair
    clog(left)
    clog(right)
    return left, right


async def test_tcp_streams_keep_the_half_closeable_stream_contract() -> None:
    async def clogged_tcp_pair() -> tuple[SocketStream, SocketStream]:
        return await clogged(await tcp_pair())

    await check_half_closeable_stream(tcp_pair, clogged_tcp_pair)


async def test_tcp_over_ipv6_keeps_the_half_closeable_stream_contract() -> None:
    async def ipv6_pair() -> tuple[SocketStream, SocketStream]:
        return await tcp_pair("::1")

    await check_half_closeable_stream(ipv6_pair, None)


async def test_unix_streams_keep_the_half_closeable_stream_contract(tmp_path: Path) -> None:
    async def make_pair() -> tuple[SocketStream, SocketStream]:
        return await unix_pair(tmp_path)

    async def clogged_pair() -> tuple[SocketStream, SocketStream]:
        return await clogged(await unix_pair(tmp_path))

    await check_half_closeable_stream(make_pair, clogged_pair)
