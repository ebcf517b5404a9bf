"""open_tcp_stream: name resolution off the shard, and happy eyeballs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import shardio
import shardio_net

from ._pairs import open_fds

_real_getaddrinfo = socket.getaddrinfo


def entry(host: str, port: int) -> Any:
    [info] = _real_getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    return info


@pytest.fixture
def fake_names(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Names resolved by a fake getaddrinfo: name -> (addresses, delay)."""
    names: dict[str, Any] = {}

    def fake(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        if host not in names:
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "not a numeric host")
        addresses, delay = names[host]
        time.sleep(delay)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [entry(address, port) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield names


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_numeric_hosts_are_resolved_without_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_threads(*args: object, **kwargs: object) -> None:
        raise AssertionError("a numeric lookup started a thread")

    monkeypatch.setattr(threading, "Thread", no_threads)
    [v4] = await shardio_net.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    assert v4[4] == ("127.0.0.1", 80)
    [v6] = await shardio_net.getaddrinfo("::1", "443", type=socket.SOCK_STREAM)
    assert v6[4][:2] == ("::1", 443)


async def test_a_name_lookup_does_not_stop_the_shard(fake_names: dict[str, Any]) -> None:
    fake_names["slow.test"] = (["127.0.0.1"], 0.3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await shardio.sleep(0.01)
            ticks += 1

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        infos = await shardio_net.getaddrinfo("slow.test", 80, type=socket.SOCK_STREAM)
        nursery.cancel_scope.cancel()
    assert [info[4] for info in infos] == [("127.0.0.1", 80)]
    assert ticks >= 10


async def test_a_cancelled_lookup_returns_at_once(fake_names: dict[str, Any]) -> None:
    fake_names["stuck.test"] = (["127.0.0.1"], 1.0)
    start = time.monotonic()
    with shardio.move_on_after(0.05) as scope:
        await shardio_net.getaddrinfo("stuck.test", 80)
    assert scope.cancelled_caught
    assert time.monotonic() - start < 0.5


async def test_an_unknown_name_raises_gaierror(fake_names: dict[str, Any]) -> None:
    fake_names["nowhere.test"] = ([], 0)
    with pytest.raises(socket.gaierror):
        await shardio_net.open_tcp_stream("nowhere.test", 80)


async def test_a_refused_family_moves_on_to_the_next_address_at_once(
    fake_names: dict[str, Any],
) -> None:
    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        fake_names["dual.test"] = (["::1", "127.0.0.1"], 0)
        start = time.monotonic()
        stream = await shardio_net.open_tcp_stream("dual.test", port, happy_eyeballs_delay=5)
        async with stream:
            assert time.monotonic() - start < 1
            assert stream.socket.family == socket.AF_INET
            assert stream.socket.getpeername() == ("127.0.0.1", port)


async def test_a_hanging_attempt_gets_company_after_the_delay_and_is_cancelled(
    fake_names: dict[str, Any],
) -> None:
    [good] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    port = good.socket.getsockname()[1]
    # An IPv6 listener whose accept queue is full: the kernel drops new SYNs,
    # so a connect to it hangs.
    with socket.socket(socket.AF_INET6) as stalled:
        stalled.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        stalled.bind(("::1", port))
        stalled.listen(0)
        with socket.create_connection(("::1", port)):
            fake_names["dual.test"] = (["::1", "127.0.0.1"], 0)
            fds_before = open_fds()
            start = time.monotonic()
            stream = await shardio_net.open_tcp_stream("dual.test", port, happy_eyeballs_delay=0.1)
            elapsed = time.monotonic() - start
            assert open_fds() == fds_before + 1  # the losing attempt's socket is closed
            async with good, stream:
                assert 0.1 <= elapsed < 0.9
                assert stream.socket.family == socket.AF_INET


async def test_addresses_are_tried_alternating_families_and_all_errors_reported(
    fake_names: dict[str, Any],
) -> None:
    port = free_port()
    fake_names["many.test"] = (["127.0.0.1", "127.0.0.2", "::1", "127.0.0.3"], 0)
    with pytest.raises(OSError, match=r"all attempts to connect to many\.test") as info:
        await shardio_net.open_tcp_stream("many.test", port)
    group = info.value.__cause__
    assert isinstance(group, ExceptionGroup)
    assert all(isinstance(error, ConnectionRefusedError) for error in group.exceptions)
    tried = [str(error).split("'")[1] for error in group.exceptions]
    assert tried == ["127.0.0.1", "::1", "127.0.0.2", "127.0.0.3"]


async def test_local_address_chooses_the_source_address() -> None:
    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        async with (
            await shardio_net.open_tcp_stream(
                "127.0.0.1", port, local_address="127.0.0.2"
            ) as client,
            await listener.accept() as server,
        ):
            assert server.socket.getpeername()[0] == "127.0.0.2"
            assert client.socket.getsockname()[0] == "127.0.0.2"
        with pytest.raises(OSError) as info:
            await shardio_net.open_tcp_stream("127.0.0.1", port, local_address="::1")
        assert isinstance(info.value.__cause__, ExceptionGroup)
        [error] = info.value.__cause__.exceptions
        assert "local_address='::1' is incompatible" in str(error)


async def test_open_tcp_stream_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        await shardio_net.open_tcp_stream(None, 80)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await shardio_net.open_tcp_stream("127.0.0.1", "80")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await shardio_net.open_tcp_stream("127.0.0.1", 80, happy_eyeballs_delay=-1)
