"""The shared behaviour the interfaces of shardio.abc give their subclasses."""

from __future__ import annotations

import pytest

import shardio
from shardio import EndOfChannel
from shardio.abc import (
    AsyncResource,
    Channel,
    Clock,
    HalfCloseableStream,
    Instrument,
    Listener,
    ReceiveChannel,
    ReceiveStream,
    SendChannel,
    SendStream,
    Stream,
)


class RecordingResource(AsyncResource):
    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


class ChunkStream(ReceiveStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def aclose(self) -> None:
        self.chunks = []


class ListChannel(ReceiveChannel[int]):
    def __init__(self, values: list[int]) -> None:
        self.values = values

    async def receive(self) -> int:
        if not self.values:
            raise EndOfChannel
        return self.values.pop(0)

    async def aclose(self) -> None:
        self.values = []


def test_shardio_abc_is_an_attribute_of_the_package() -> None:
    assert shardio.abc.SendChannel is SendChannel


def test_clock_and_instrument_are_the_run_loop_interfaces() -> None:
    assert Clock is shardio.lowlevel.Clock
    assert Instrument is shardio.lowlevel.Instrument


def test_interfaces_cannot_be_instantiated_without_their_abstract_methods() -> None:
    for interface in (
        AsyncResource,
        SendStream,
        ReceiveStream,
        Stream,
        HalfCloseableStream,
        Listener,
        SendChannel,
        ReceiveChannel,
        Channel,
    ):
        with pytest.raises(TypeError, match="abstract"):
            interface()  # type: ignore[abstract]


def test_stream_and_channel_combine_their_halves() -> None:
    assert issubclass(Stream, SendStream)
    assert issubclass(Stream, ReceiveStream)
    assert issubclass(HalfCloseableStream, Stream)
    assert issubclass(Channel, SendChannel)
    assert issubclass(Channel, ReceiveChannel)


async def test_async_with_returns_the_resource_and_closes_it_on_exit() -> None:
    resource = RecordingResource()
    with pytest.raises(KeyError):
        async with resource as entered:
            assert entered is resource
            assert resource.closed == 0
            raise KeyError
    assert resource.closed == 1


async def test_async_for_over_a_receive_stream_stops_at_end_of_file() -> None:
    stream = ChunkStream([b"ab", b"c"])
    assert [chunk async for chunk in stream] == [b"ab", b"c"]


async def test_async_for_over_a_receive_channel_stops_at_end_of_channel() -> None:
    channel = ListChannel([1, 2, 3])
    assert [value async for value in channel] == [1, 2, 3]
