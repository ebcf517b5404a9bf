"""examples/httpd.py answers real HTTP/1.1 clients over loopback, on every shard."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ncontent-type: text/plain\r\n\r\nHello, World!"
)


class Server:
    """``python -m examples.httpd`` on two shards, on a port of the kernel's choice."""

    def __init__(self, *options: str) -> None:
        command = [sys.executable, "-m", "examples.httpd", "--smp", "2", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", *options],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert self.process.stdout is not None
        first_line = self.process.stdout.readline()
        match = re.search(r"2 shard\(s\), posix stack, listening on 127\.0\.0\.1:(\d+)", first_line)
        if not match:
            self.process.kill()
            _, errors = self.process.communicate()
            raise AssertionError(f"the server did not start: {first_line!r}\n{errors}")
        self.port = int(match.group(1))

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def http(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C; the exit status and what the server printed after the first line."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            output, errors = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, errors = self.process.communicate()
        return self.process.returncode, output, errors


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        status, _, errors = running.stop()
        assert status == 0, errors
        # Every connection the tests made ended without a handler error.
        assert "Traceback" not in errors, errors


def receive_until_closed(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def read_response(client: socket.socket, pending: bytearray) -> bytes:
    """One complete response (framed by its Content-Length) from ``client``."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-response: {bytes(pending)!r}"
        pending += chunk
    length = re.search(rb"content-length: (\d+)", bytes(pending[:end]))
    assert length is not None, bytes(pending[:end])
    size = end + 4 + int(length.group(1))
    while len(pending) < size:
        chunk = client.recv(65536)
        assert chunk, "the connection closed mid-body"
        pending += chunk
    response = bytes(pending[:size])
    del pending[:size]
    return response


def test_get_returns_hello_world_with_its_content_length(server: Server) -> None:
    connection = server.http()
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == "13"
    assert response.getheader("Content-Type") == "text/plain"
    assert response.read() == b"Hello, World!"
    connection.close()


def test_keep_alive_serves_many_requests_on_one_connection(server: Server) -> None:
    connection = server.http()
    connection.request("GET", "/shard")
    first = connection.getresponse()
    shard = first.read()
    sock = connection.sock
    for _ in range(50):
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.read() == b"Hello, World!"
        assert not response.will_close
    connection.request("GET", "/shard")
    assert connection.getresponse().read() == shard  # the same connection, the same shard
    assert connection.sock is sock  # http.client never had to reconnect
    connection.close()


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    with server.connect() as client:
        client.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
            b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /?query=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        pending = bytearray()
        assert read_response(client, pending) == HELLO_RESPONSE
        assert read_response(client, pending).startswith(b"HTTP/1.1 404 Not Found\r\n")
        not_allowed = read_response(client, pending)
        assert not_allowed.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
        assert b"\r\nallow: GET, HEAD\r\n" in not_allowed
        # A HEAD response has the headers of the GET response and no body: read
        # it by hand, since its Content-Length does not frame it.
        head = HELLO_RESPONSE[: -len(b"Hello, World!")]
        while len(pending) < len(head):
            pending += client.recv(65536)
        assert bytes(pending[: len(head)]) == head
        del pending[: len(head)]
        assert read_response(client, pending) == HELLO_RESPONSE
        assert not pending


def test_a_request_body_is_read_and_the_connection_goes_on(server: Server) -> None:
    with server.connect() as client:
        client.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"  # the body, not a request
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        pending = bytearray()
        assert read_response(client, pending).startswith(b"HTTP/1.1 405 ")
        assert read_response(client, pending) == HELLO_RESPONSE
        assert read_response(client, pending) == HELLO_RESPONSE


def test_connection_close_is_honoured_after_the_response(server: Server) -> None:
    with server.connect() as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = receive_until_closed(client)
    assert received == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ncontent-type: text/plain\r\n"
        b"connection: close\r\n\r\nHello, World!"
    )


def test_requests_pipelined_after_connection_close_are_not_answered(server: Server) -> None:
    with server.connect() as client:
        client.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET /shard HTTP/1.1\r\nHost: x\r\n\r\n" * 3
        )
        received = receive_until_closed(client)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\nconnection: close\r\n\r\nHello, World!")


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    quick = Server("--idle-timeout", "0.2")
    try:
        with quick.connect() as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            pending = bytearray()
            assert read_response(client, pending) == HELLO_RESPONSE
            start = time.monotonic()
            assert client.recv(1) == b""  # closed by the server, not by us
            assert 0.1 < time.monotonic() - start < 5
    finally:
        status, _, errors = quick.stop()
    assert status == 0, errors


def test_an_http_1_0_request_without_keep_alive_closes_after_the_response(
    server: Server,
) -> None:
    with server.connect() as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        received = receive_until_closed(client)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in received
    assert received.endswith(b"\r\n\r\nHello, World!")


def test_a_header_section_over_the_limit_gets_431_and_the_connection_closes(
    server: Server,
) -> None:
    with server.connect() as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        received = receive_until_closed(client)
    assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"\r\nconnection: close\r\n" in received


def test_the_header_limit_is_an_option() -> None:
    small = Server("--max-header-size", "100")
    try:
        with small.connect() as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100 + b"\r\n\r\n")
            assert receive_until_closed(client).startswith(b"HTTP/1.1 431 ")
        with small.connect() as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            pending = bytearray()
            assert read_response(client, pending) == HELLO_RESPONSE
    finally:
        status, _, errors = small.stop()
    assert status == 0, errors


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
    ],
)
def test_garbage_gets_400_and_the_connection_closes(server: Server, garbage: bytes) -> None:
    with server.connect() as client:
        client.sendall(garbage)
        received = receive_until_closed(client)
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nconnection: close\r\n" in received


def test_responses_before_a_broken_request_are_still_sent(server: Server) -> None:
    with server.connect() as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\n")
        received = receive_until_closed(client)
    assert received.startswith(HELLO_RESPONSE + b"HTTP/1.1 400 Bad Request\r\n")


def test_a_client_reset_ends_only_its_own_connection(server: Server) -> None:
    reset = server.connect()
    reset.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    reset.close()  # RST, with a response and half a request in flight
    connection = server.http()
    connection.request("GET", "/")
    assert connection.getresponse().read() == b"Hello, World!"
    connection.close()


def test_connections_are_served_by_both_shards(server: Server) -> None:
    # The kernel spreads connections by a hash of their addresses: 40
    # connections all landing on one of two shards would happen once in 2**39.
    clients = [server.http() for _ in range(40)]
    seen = set()
    for connection in clients:
        connection.request("GET", "/shard")
        seen.add(connection.getresponse().read())
    for connection in clients:
        connection.close()
    assert seen == {b"served by shard 0\n", b"served by shard 1\n"}


def test_least_connections_alternates_shards_and_ctrl_c_stops_the_server() -> None:
    balanced = Server("--balance", "least-connections")
    try:
        clients = [balanced.http() for _ in range(4)]
        shards = []
        for connection in clients:
            connection.request("GET", "/shard")
            shards.append(connection.getresponse().read())
        for connection in clients:
            connection.close()
    finally:
        status, output, errors = balanced.stop()
    assert sorted(shards) == [b"served by shard 0\n"] * 2 + [b"served by shard 1\n"] * 2
    assert status == 0, errors
    assert output.strip() == "stopped"
