"""TLSStream and TLSListener: handshakes, data, closing, errors, over memory and TCP."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
import trustme

import shardio
import shardio_net
from shardio import BrokenResourceError, BusyResourceError, ClosedResourceError
from shardio.abc import Listener, Stream
from shardio.testing import (
    MockClock,
    check_two_way_stream,
    lockstep_stream_pair,
    memory_stream_pair,
    memory_stream_pump,
    wait_all_tasks_blocked,
)
from shardio_net import NeedHandshakeError, TLSListener, TLSStream, http

HOSTNAME = "shardio.example"

TLSPair = tuple[TLSStream[Stream], TLSStream[Stream]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture(scope="module")
def tls12_client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def tls_pair(
    client_context: ssl.SSLContext,
    server_context: ssl.SSLContext,
    transports: Callable[[], tuple[Stream, Stream]] = memory_stream_pair,
    *,
    https_compatible: bool = False,
) -> TLSPair:
    client_transport, server_transport = transports()
    client: TLSStream[Stream] = TLSStream(
        client_transport,
        client_context,
        server_hostname=HOSTNAME,
        https_compatible=https_compatible,
    )
    server: TLSStream[Stream] = TLSStream(
        server_transport, server_context, server_side=True, https_compatible=https_compatible
    )
    return client, server


async def handshake_both(pair: TLSPair) -> TLSPair:
    async with shardio.open_nursery() as nursery:
        for stream in pair:
            nursery.start_soon(stream.do_handshake)
    return pair


# ---------------------------------------------------------------------------
# Conformance
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
@pytest.mark.parametrize("https_compatible", [False, True])
async def test_tls_over_memory_streams_passes_the_two_way_checks(
    client_context: ssl.SSLContext,
    tls12_client_context: ssl.SSLContext,
    server_context: ssl.SSLContext,
    version: str,
    https_compatible: bool,
) -> None:
    context = client_context if version == "TLSv1.3" else tls12_client_context

    async def maker() -> TLSPair:
        return tls_pair(context, server_context, https_compatible=https_compatible)

    async def clogged_maker() -> TLSPair:
        # Handshake first: on an unbuffered transport, a receiver that has
        # to start the handshake would itself have to send first.
        pair = tls_pair(
            context, server_context, lockstep_stream_pair, https_compatible=https_compatible
        )
        return await handshake_both(pair)

    client, server = await handshake_both(await maker())
    assert client.version() == server.version() == version
    await check_two_way_stream(maker, clogged_maker)


# ---------------------------------------------------------------------------
# Handshake and what it reveals
# ---------------------------------------------------------------------------


async def test_connection_details_need_the_handshake_then_pass_through(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = tls_pair(client_context, server_context)
    for method in (
        client.getpeercert,
        client.selected_alpn_protocol,
        client.cipher,
        client.version,
        client.compression,
        client.get_channel_binding,
    ):
        with pytest.raises(NeedHandshakeError):
            method()
    with pytest.raises(NeedHandshakeError):
        _ = client.session_reused
    assert client.server_hostname == HOSTNAME
    assert not client.server_side
    assert server.server_side
    assert client.context is client_context

    await handshake_both((client, server))
    certificate = client.getpeercert()
    assert certificate is not None
    assert ("DNS", HOSTNAME) in certificate["subjectAltName"]
    assert isinstance(client.getpeercert(binary_form=True), bytes)
    assert server.getpeercert() is None  # the client sent no certificate
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == "http/1.1"
    cipher = client.cipher()
    assert cipher is not None and cipher[1] == "TLSv1.3"
    assert server.shared_ciphers()
    assert client.session_reused is False
    assert client.pending() == 0


async def test_handshake_runs_once_for_tasks_that_ask_at_the_same_time(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = tls_pair(client_context, server_context)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    assert client.version() == "TLSv1.3"
    await client.do_handshake()  # already done: returns at once


async def test_tls13_server_handshake_does_not_wait_for_an_idle_client(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    # On an unbuffered transport, a server that sent its session tickets at
    # the end of the handshake would block until the client read them.
    client, server = tls_pair(client_context, server_context, lockstep_stream_pair)
    with shardio.fail_after(10):
        await handshake_both((client, server))
    # The tickets go out ahead of the server's first data.
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(server.send_all, b"welcome")
        assert await client.receive_some() == b"welcome"
    assert client.session is not None


async def test_a_session_can_be_resumed_on_a_new_connection(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await handshake_both(tls_pair(client_context, server_context))
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(server.send_all, b"ticket carrier")
        assert await client.receive_some() == b"ticket carrier"
    session = client.session
    assert session is not None

    client, server = tls_pair(client_context, server_context)
    client.session = session
    await handshake_both((client, server))
    assert client.session_reused is True


@pytest.mark.parametrize("failure", ["wrong hostname", "untrusted certificate"])
async def test_a_failed_verification_breaks_both_ends(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext, failure: str
) -> None:
    hostname = HOSTNAME
    if failure == "wrong hostname":
        hostname = "other.example"
    else:
        client_context = ssl.create_default_context()
        trustme.CA().configure_trust(client_context)
    client_transport, server_transport = memory_stream_pair()
    client = TLSStream(client_transport, client_context, server_hostname=hostname)
    server = TLSStream(server_transport, server_context, server_side=True)

    async def server_side() -> None:
        # The client's alert tells the server why.
        with pytest.raises(BrokenResourceError) as caught:
            await server.do_handshake()
        assert isinstance(caught.value.__cause__, ssl.SSLError)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(server_side)
        with pytest.raises(BrokenResourceError) as caught:
            await client.do_handshake()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    # Broken for good: every operation says so, and closing still works.
    with pytest.raises(BrokenResourceError):
        await client.send_all(b"x")
    with pytest.raises(BrokenResourceError):
        await client.receive_some()
    await client.aclose()
    with pytest.raises(ClosedResourceError):
        await client.send_all(b"x")


async def test_a_failed_handshake_does_not_wait_forever_to_send_its_alert(
    autojump_clock: MockClock, client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client_transport, server_transport = memory_stream_pair()
    sends = 0

    async def stall_after_the_first_send() -> None:
        nonlocal sends
        sends += 1
        if sends > 1:
            await shardio.sleep_forever()  # a peer that stopped reading
        memory_stream_pump(client_transport.send_stream, server_transport.receive_stream)

    client_transport.send_stream.send_all_hook = stall_after_the_first_send
    client = TLSStream(client_transport, client_context, server_hostname="other.example")
    server = TLSStream(server_transport, server_context, server_side=True)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        with pytest.raises(BrokenResourceError) as caught:
            await client.do_handshake()
        nursery.cancel_scope.cancel()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert shardio.current_time() < 2


@pytest.fixture(scope="module")
def client_auth_contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(client, server) contexts for TLS 1.3 post-handshake client authentication."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(server)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    server.post_handshake_auth = True
    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca.issue_cert("client.shardio.example").configure_cert(client)
    client.post_handshake_auth = True
    return client, server


@pytest.mark.parametrize("transports", [memory_stream_pair, lockstep_stream_pair])
async def test_a_receive_that_must_send_works_in_the_middle_of_full_duplex_traffic(
    client_auth_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    transports: Callable[[], tuple[Stream, Stream]],
) -> None:
    # Post-handshake authentication makes the client's *receive* side send
    # (its certificate), while its send side is busy sending: the two must
    # share the transport without losing, reordering or deadlocking.
    client, server = await handshake_both(tls_pair(*client_auth_contexts, transports))
    assert server.getpeercert() is None
    upstream = b"".join(b"up %05d|" % i for i in range(2000))
    downstream = b"".join(b"down %05d|" % i for i in range(2000))

    async def send(stream: TLSStream[Stream], data: bytes, ask_at: int | None) -> None:
        for start in range(0, len(data), 1000):
            if start == ask_at:
                stream.verify_client_post_handshake()
            await stream.send_all(data[start : start + 1000])

    async def receive(stream: TLSStream[Stream], size: int) -> bytes:
        got = bytearray()
        while len(got) < size:
            got += await stream.receive_some(777)
        return bytes(got)

    results: dict[str, bytes] = {}

    async def receive_into_results(name: str, stream: TLSStream[Stream], size: int) -> None:
        results[name] = await receive(stream, size)

    with shardio.fail_after(20):
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(send, client, upstream, None)
            nursery.start_soon(send, server, downstream, 5000)
            nursery.start_soon(receive_into_results, "server", server, len(upstream))
            nursery.start_soon(receive_into_results, "client", client, len(downstream))
    assert results == {"server": upstream, "client": downstream}
    # The client has read the request by now, so its answer comes before this.
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"!")
        assert await server.receive_some() == b"!"
    certificate = server.getpeercert()
    assert certificate is not None
    assert ("DNS", "client.shardio.example") in certificate["subjectAltName"]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


async def test_a_large_send_arrives_whole_and_in_order(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = tls_pair(client_context, server_context)
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit, one send_all

    async def receive_all() -> bytes:
        got = bytearray()
        while len(got) < len(payload):
            got += await server.receive_some()
        return bytes(got)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, memoryview(payload))
        assert await receive_all() == payload


async def test_receive_into_fills_the_callers_buffer_and_returns_0_at_the_end(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = tls_pair(client_context, server_context)
    buffer = bytearray(8)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"0123456789")
        assert await server.receive_into(buffer) == 8
        assert buffer == b"01234567"
        assert await server.receive_into(memoryview(buffer)[2:]) == 2
        assert buffer == b"01894567"
    await client.aclose()
    assert await server.receive_into(buffer) == 0
    with pytest.raises(ValueError, match="non-empty"):
        await server.receive_into(bytearray())


async def test_one_task_sends_while_another_receives(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = tls_pair(client_context, server_context)

    async def echo() -> None:
        async for chunk in server:
            await server.send_all(chunk)

    async def send_lines() -> None:
        for i in range(100):
            await client.send_all(b"line %d\n" % i)

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(echo)
        got = bytearray()
        nursery.start_soon(send_lines)
        while not got.endswith(b"line 99\n"):
            got += await client.receive_some()
        nursery.cancel_scope.cancel()
    assert got == b"".join(b"line %d\n" % i for i in range(100))


async def test_concurrent_sends_are_refused(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, _ = await handshake_both(tls_pair(client_context, server_context, lockstep_stream_pair))
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"blocks: nobody receives")
        await wait_all_tasks_blocked()
        with pytest.raises(BusyResourceError):
            await client.send_all(b"second")
        with pytest.raises(BusyResourceError):
            await client.wait_send_all_might_not_block()
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------------
# Ending the connection
# ---------------------------------------------------------------------------


async def test_aclose_sends_close_notify_so_the_peer_sees_a_clean_end(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await handshake_both(tls_pair(client_context, server_context))
    await client.send_all(b"last words")
    await client.aclose()
    assert await server.receive_some() == b"last words"
    assert await server.receive_some() == b""
    assert await server.receive_some() == b""
    await server.aclose()


async def test_a_transport_cut_without_close_notify_is_broken_by_default(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await handshake_both(tls_pair(client_context, server_context))
    await client.send_all(b"truncated?")
    await client.transport_stream.aclose()  # an attacker cuts the connection
    assert await server.receive_some() == b"truncated?"
    with pytest.raises(BrokenResourceError) as caught:
        await server.receive_some()
    assert isinstance(caught.value.__cause__, ssl.SSLEOFError)


async def test_https_compatible_treats_a_bare_transport_end_as_end_of_file(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await handshake_both(
        tls_pair(client_context, server_context, https_compatible=True)
    )
    await client.send_all(b"response body")
    await client.aclose()  # no close_notify in this mode
    assert await server.receive_some() == b"response body"
    assert await server.receive_some() == b""
    assert await server.receive_some() == b""


async def test_https_compatible_eof_before_the_handshake_is_end_of_file(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = tls_pair(client_context, server_context, https_compatible=True)
    await client.transport_stream.aclose()  # a client that connects and leaves
    assert await server.receive_some() == b""


async def test_cancelled_send_breaks_the_stream_but_aclose_still_closes_the_transport(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await handshake_both(
        tls_pair(client_context, server_context, lockstep_stream_pair)
    )
    with shardio.move_on_after(0.01):
        await client.send_all(b"nobody is receiving this")  # cut off mid-record
    with pytest.raises(BrokenResourceError):
        await client.send_all(b"more")
    await client.aclose()
    assert await server.transport_stream.receive_some() == b""  # transport closed


async def test_unwrap_hands_back_the_transport_for_plaintext(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await handshake_both(tls_pair(client_context, server_context))
    results: dict[str, tuple[Stream, bytes]] = {}

    async def unwrap(name: str, stream: TLSStream[Stream]) -> None:
        results[name] = await stream.unwrap()

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(unwrap, "client", client)
        nursery.start_soon(unwrap, "server", server)
    client_transport, client_trailing = results["client"]
    server_transport, server_trailing = results["server"]
    assert client_transport is client.transport_stream
    assert client_trailing == server_trailing == b""
    await client_transport.send_all(b"plaintext now")
    assert await server_transport.receive_some() == b"plaintext now"
    with pytest.raises(ClosedResourceError):
        await client.send_all(b"x")
    await client.aclose()  # closing the unwrapped stream leaves the transport alone
    await client_transport.send_all(b"still open")
    assert await server_transport.receive_some() == b"still open"


# ---------------------------------------------------------------------------
# TLSListener
# ---------------------------------------------------------------------------


class MemoryListener(Listener[Stream]):
    """Hands out the server ends of memory stream pairs put in by the test."""

    def __init__(self) -> None:
        self.send_channel, self.receive_channel = shardio.open_memory_channel[Stream](10)
        self.closed = False

    async def accept(self) -> Stream:
        return await self.receive_channel.receive()

    async def aclose(self) -> None:
        self.closed = True
        await self.receive_channel.aclose()

    async def connect(self, client_context: ssl.SSLContext) -> TLSStream[Stream]:
        client_transport, server_transport = memory_stream_pair()
        await self.send_channel.send(server_transport)
        return TLSStream(client_transport, client_context, server_hostname=HOSTNAME)


async def test_tls_listener_wraps_each_accepted_connection_as_a_server(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    transport_listener = MemoryListener()
    listener = TLSListener(transport_listener, server_context)
    client = await transport_listener.connect(client_context)
    server = await listener.accept()
    assert server.server_side
    assert listener.transport_listener is transport_listener
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"hello over TLS")
        assert await server.receive_some() == b"hello over TLS"
    await listener.aclose()
    assert transport_listener.closed


# ---------------------------------------------------------------------------
# Over TCP
# ---------------------------------------------------------------------------


async def tcp_tls_pair(client_context: ssl.SSLContext, server_context: ssl.SSLContext) -> TLSPair:
    [listener] = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
    async with TLSListener(listener, server_context) as tls_listener:
        port = listener.socket.getsockname()[1]
        transport = await shardio_net.open_tcp_stream("127.0.0.1", port)
        client: TLSStream[Stream] = TLSStream(transport, client_context, server_hostname=HOSTNAME)
        server: TLSStream[Stream] = await tls_listener.accept()  # type: ignore[assignment]
    return client, server


async def test_tls_over_tcp_passes_the_two_way_checks(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    async def maker() -> TLSPair:
        return await tcp_tls_pair(client_context, server_context)

    client, server = await handshake_both(await maker())
    async with client, server:
        assert client.selected_alpn_protocol() == "http/1.1"
    await check_two_way_stream(maker, None)


async def test_https_request_over_tcp_with_the_sans_io_parser_and_receive_into(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    client, server = await tcp_tls_pair(client_context, server_context)

    async def serve_one_request() -> None:
        conn = http.ServerConnection()
        while True:
            event = conn.next_event()
            if event is http.NEED_DATA:
                # Decrypted straight into the parser's buffer.
                if not await conn.buffer.receive_from(server):
                    conn.receive_data(b"")
            elif isinstance(event, http.EndOfMessage):
                await server.send_all(
                    conn.send(http.Response(200, [(b"content-length", b"5")]))
                    + conn.send(http.Data(b"hello"))
                    + conn.send(http.EndOfMessage())
                )
            elif isinstance(event, http.ConnectionClosed):
                return

    async with shardio.open_nursery() as nursery:
        nursery.start_soon(serve_one_request)
        await client.send_all(b"GET / HTTP/1.1\r\nHost: " + HOSTNAME.encode() + b"\r\n\r\n")
        response = bytearray()
        while not response.endswith(b"hello"):
            response += await client.receive_some()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        await client.aclose()  # close_notify: the server sees ConnectionClosed
    await server.aclose()
