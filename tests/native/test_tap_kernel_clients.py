"""The examples on the native stack, 2 shards, served to the kernel's clients.

Each test makes a network namespace of its own (``_netns.py``) with a
persistent multi-queue TAP ``tap0``, the kernel's side at 10.99.0.1/24, and
starts one of the example servers as its users would, with Seastar's flags::

    python -m examples.echo --smp 2 --network-stack native --tap-device tap0 \\
        --host-ipv4-addr 10.99.0.2 --gw-ipv4-addr 10.99.0.1

one native stack per shard, each on its own queue of ``tap0``. The clients
are the kernel's: Python sockets, ``http.client``, ``curl``, ``ping``,
``memccapable`` and pymemcache, run from the test's main thread (the one in
the namespace) or as its child processes. Every server is stopped with
Ctrl-C at the end and must exit cleanly, having logged no error but the
ones a test provokes. Without root and /dev/net/tun the tests skip (under
CI they fail).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._netns import KERNEL_ADDRESS, STACK_ADDRESS, configure_kernel_side, ip, network_namespace

pytestmark = pytest.mark.requires_program("ip", apt="iproute2")

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
#: A bound on a test that hangs, not a timing assertion.
PATIENCE = 120.0
NATIVE_FLAGS = (
    "--smp", "2", "--network-stack", "native", "--tap-device", "tap0",
    "--host-ipv4-addr", STACK_ADDRESS, "--gw-ipv4-addr", KERNEL_ADDRESS,
)  # fmt: skip


@pytest.fixture(autouse=True)
def tap0() -> Iterator[None]:
    """A namespace with a persistent multi-queue ``tap0``, the kernel's side
    configured; both go when the test's processes and sockets do."""
    with network_namespace():
        ip("tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
        configure_kernel_side("tap0")
        yield


class Server:
    """An example server run on the native stack, as a child process."""

    def __init__(self, stderr_path: Path, module: str, *arguments: str) -> None:
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *arguments, *NATIVE_FLAGS],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.process.stdout is not None
        #: What the server wrote to stderr, once stopped.
        self.logged = ""
        #: The line the server prints once it listens.
        self.first_line = self.process.stdout.readline()
        if "listening on" not in self.first_line and " on http://" not in self.first_line:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server did not start: {self.first_line!r}\n{self.errors()}")

    def errors(self) -> str:
        """What the server wrote to stderr so far."""
        self._stderr.flush()
        return self._stderr_path.read_text()

    def stop(self) -> str:
        """Ctrl-C; check that it exits with status 0; what it logged."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"Ctrl-C did not stop the server\n{self.errors()}") from None
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()
            self._stderr.close()
        self.logged = self._stderr_path.read_text()
        assert code == 0, self.logged
        return self.logged


@contextlib.contextmanager
def native_server(
    tmp_path: Path, module: str, *arguments: str, quiet: bool = True
) -> Iterator[Server]:
    """Run ``python -m MODULE ARGUMENTS`` on the native stack for the block;
    stop it, and (if ``quiet``) check that it logged nothing: no traceback,
    no error."""
    server = Server(tmp_path / "server.stderr", module, *arguments)
    try:
        yield server
    except BaseException:
        server.process.kill()
        server.process.wait()
        raise
    errors = server.stop()
    assert errors == "" or not quiet, errors


def _echo_round(port: int, payload: bytes) -> str:
    """Send ``payload`` to the echo server on one connection while reading
    the echo back; the sha256 of what came back."""
    digest = hashlib.sha256()
    with socket.create_connection((STACK_ADDRESS, port), timeout=PATIENCE) as sock:
        sender = threading.Thread(target=_send_then_eof, args=(sock, payload))
        sender.start()  # from the main thread: it is in the namespace too
        buffer = bytearray(MIB)
        while count := sock.recv_into(buffer):
            digest.update(memoryview(buffer)[:count])
        sender.join()
    return digest.hexdigest()


def _send_then_eof(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)


def test_python_sockets_get_100_mib_echoed_intact_by_the_echo_example(tmp_path: Path) -> None:
    payload = random.Random(1).randbytes(100 * MIB)
    with native_server(tmp_path, "examples.echo", "--port", "7000"):
        assert _echo_round(7000, payload) == hashlib.sha256(payload).hexdigest()


@pytest.mark.requires_program("ping", apt="iputils-ping")
def test_the_kernel_pings_the_native_stack_on_both_shards_and_gets_every_reply(
    tmp_path: Path,
) -> None:
    with native_server(tmp_path, "examples.echo", "--port", "7000"):
        for size in ("56", "1472", "4000"):  # the last is fragmented, both ways
            done = subprocess.run(
                ["ping", "-n", "-c", "20", "-i", "0.01", "-W", "5", "-s", size, STACK_ADDRESS],
                capture_output=True,
                text=True,
                timeout=PATIENCE,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert "20 packets transmitted, 20 received" in done.stdout, done.stdout
            replies = re.findall(r"^(\d+) bytes from", done.stdout, re.MULTILINE)
            assert replies == [str(int(size) + 8)] * 20


@pytest.mark.requires_program("curl", apt="curl")
def test_curl_fetches_pages_from_the_httpd_example(tmp_path: Path) -> None:
    url = f"http://{STACK_ADDRESS}:8080"
    with native_server(tmp_path, "examples.httpd", "--port", "8080"):

        def curl(*arguments: str) -> str:
            done = subprocess.run(
                ["curl", "-sS", "--max-time", "30", *arguments],
                capture_output=True,
                timeout=PATIENCE,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout.decode()

        page = curl("-i", f"{url}/")
        assert page.startswith("HTTP/1.1 200 OK\r\n")
        assert page.endswith("\r\n\r\nHello, World!")
        assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{url}/nowhere") == "404"
        assert curl("-I", f"{url}/").startswith("HTTP/1.1 200 OK\r\ncontent-length: 13\r\n")
        # Several URLs: curl sends them on one kept-alive connection.
        both = curl(f"{url}/", f"{url}/shard", "-w", "%{num_connects} ")
        assert re.fullmatch(r"Hello, World!1 served by shard [01]\n0 ", both), both


@pytest.mark.requires_program("curl", apt="curl")
def test_the_asgi_server_listens_on_the_stacks_own_address_by_default(tmp_path: Path) -> None:
    # No --host: 127.0.0.1, uvicorn's default, is on no native stack.
    arguments = ("tests.asgi._apps:hello", "--lifespan", "off", "--log-level", "warning")
    with native_server(tmp_path, "shardio_net.asgi", *arguments) as server:
        assert f"on http://{STACK_ADDRESS}:8000 (2 shard(s)" in server.first_line
        done = subprocess.run(
            ["curl", "-sS", "--max-time", "30", f"http://{STACK_ADDRESS}:8000/"],
            capture_output=True,
            timeout=PATIENCE,
        )
        assert (done.returncode, done.stdout) == (0, b"Hello, World!"), done.stderr


def test_http_client_keeps_a_connection_alive_for_many_requests_to_httpd(
    tmp_path: Path,
) -> None:
    with native_server(tmp_path, "examples.httpd", "--port", "8080"):
        conn = http.client.HTTPConnection(STACK_ADDRESS, 8080, timeout=PATIENCE)
        shards = set()
        for _ in range(200):
            conn.request("GET", "/shard")
            response = conn.getresponse()
            assert response.status == 200
            shards.add(response.read())
        conn.request("HEAD", "/")
        head = conn.getresponse()
        assert (head.status, head.getheader("content-length"), head.read()) == (200, "13", b"")
        conn.request("POST", "/", body=b"x" * 100_000)
        refused = conn.getresponse()
        assert (refused.status, refused.getheader("allow")) == (405, "GET, HEAD")
        refused.read()
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"Hello, World!"
        conn.close()
    # One connection, one owner: every request was served by the same shard.
    assert len(shards) == 1, shards


def _get_shard_on_many_connections(port: int, count: int) -> Counter[bytes]:
    """Open ``count`` connections at once (non-blocking connects, all in
    flight together), send ``GET /shard`` on each once all are established,
    read every response with all of them still open; which shards served."""
    selector = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            socks.append(sock)
            sock.setblocking(False)
            sock.connect_ex((STACK_ADDRESS, port))
            selector.register(sock, selectors.EVENT_WRITE)
        connecting = count
        while connecting:
            events = selector.select(PATIENCE)
            assert events, f"{connecting} connections still connecting after {PATIENCE} s"
            for key, _ in events:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                assert error == 0, f"a connection failed: {error}"
                selector.unregister(sock)
                connecting -= 1
        responses: dict[socket.socket, bytes] = {}
        for sock in socks:
            sock.send(b"GET /shard HTTP/1.1\r\nhost: stack\r\n\r\n")
            responses[sock] = b""
            selector.register(sock, selectors.EVENT_READ)
        served: Counter[bytes] = Counter()
        while len(selector.get_map()):
            events = selector.select(PATIENCE)
            assert events, f"{len(selector.get_map())} responses missing after {PATIENCE} s"
            for key, _ in events:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data = sock.recv(4096)
                assert data, "a connection closed before its response"
                responses[sock] += data
                head, _, body = responses[sock].partition(b"\r\n\r\n")
                if body.endswith(b"\n"):
                    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
                    served[body] += 1
                    selector.unregister(sock)
        return served
    finally:
        for sock in socks:
            sock.close()
        selector.close()


def test_a_thousand_concurrent_kernel_connections_are_each_served_by_both_shards(
    tmp_path: Path,
) -> None:
    with native_server(tmp_path, "examples.httpd", "--port", "8080"):
        served = _get_shard_on_many_connections(8080, 1000)
    assert sum(served.values()) == 1000
    assert set(served) == {b"served by shard 0\n", b"served by shard 1\n"}, served


@pytest.mark.requires_program("memccapable", apt="libmemcached-tools")
def test_memccapable_passes_every_ascii_test_against_the_memcached_example(
    tmp_path: Path,
) -> None:
    with native_server(tmp_path, "examples.memcached", "-p", "11211"):
        done = subprocess.run(
            ["memccapable", "-a", "-t", "5", "-h", STACK_ADDRESS, "-p", "11211"],
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All tests passed" in done.stdout
    assert "[pass]" in done.stdout and "[FAIL]" not in done.stdout


def test_pymemcache_stores_and_reads_back_items_of_every_size_from_the_memcached_example(
    tmp_path: Path,
) -> None:
    from pymemcache.client.base import Client

    rng = random.Random(2)
    items = {f"key{i}": rng.randbytes(rng.choice((1, 100, 1500, 5000, 70_000))) for i in range(500)}
    with native_server(tmp_path, "examples.memcached", "-p", "11211"):
        writer = Client((STACK_ADDRESS, 11211), timeout=PATIENCE)
        reader = Client((STACK_ADDRESS, 11211), timeout=PATIENCE)
        assert writer.set_many(items, noreply=False) == []
        assert reader.get_many(list(items)) == items
        assert writer.add("key0", b"other", noreply=False) is False
        assert writer.delete("key1", noreply=False) is True
        assert writer.set("counter", b"41", noreply=False) is True
        assert writer.incr("counter", 1) == 42
        assert reader.get("key1") is None
        assert reader.get("counter") == b"42"
        writer.close()
        reader.close()


def _reset_mid_transfer(port: int, payload: bytes) -> None:
    """Send ``payload`` and read its echo, both at once, and reset the
    connection halfway: after 2 MiB sent and 1 MiB read back."""
    view = memoryview(payload)
    sent = received = 0
    with socket.create_connection((STACK_ADDRESS, port), timeout=PATIENCE) as sock:
        sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while sent < 2 * MIB or received < MIB:
                assert selector.select(PATIENCE), "the echo stalled"
                with contextlib.suppress(BlockingIOError):
                    sent += sock.send(view[sent : sent + 256 * 1024])
                with contextlib.suppress(BlockingIOError):
                    data = sock.recv(MIB)
                    assert data, "the server closed the connection"
                    received += len(data)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_the_echo_example_carries_on_after_a_client_resets_mid_transfer(
    tmp_path: Path,
) -> None:
    steady = random.Random(3).randbytes(16 * MIB)
    with native_server(tmp_path, "examples.echo", "--port", "7000", quiet=False) as server:
        # A connection that keeps transferring while another is reset.
        result: list[str] = []
        transfer = threading.Thread(
            target=lambda: result.append(_echo_round(7000, steady)), daemon=True
        )
        transfer.start()
        # The reset one: an abortive close (SO_LINGER 0) once 2 MiB went out
        # and 1 MiB of echo came back, with more in flight both ways.
        _reset_mid_transfer(7000, random.Random(4).randbytes(4 * MIB))
        transfer.join(PATIENCE)
        assert result == [hashlib.sha256(steady).hexdigest()]
        # A new connection after the reset is served too.
        fresh = b"after the reset"
        assert _echo_round(7000, fresh) == hashlib.sha256(fresh).hexdigest()
    errors = server.logged
    # The reset connection's handler, and it alone, saw its stream broken by
    # the reset (the example does not catch that, so serve_tcp logs it).
    assert errors.count("Traceback") == errors.count("connection handler") == 1, errors
    assert errors.rstrip().endswith(
        "shardio.BrokenResourceError: connection broken: connection reset by peer"
    ), errors
