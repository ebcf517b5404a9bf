"""The sharded server end to end: ``python -m examples.memcached`` driven by
pymemcache (including its HashClient over two servers) and by raw sockets."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

import shardio_net
from examples.memcached.engine import LocalEngine
from examples.memcached.sharding import shard_for_key

from .server_process import running_server

pymemcache = pytest.importorskip("pymemcache", reason="pymemcache is in the 'test' extra")
from pymemcache.client.base import Client  # noqa: E402
from pymemcache.client.hash import HashClient  # noqa: E402

pytestmark = pytest.mark.skipif(
    not hasattr(shardio_net, "serve_tcp"), reason="shardio_net.serve_tcp is not available"
)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with running_server("--smp", "2") as bound:
        yield bound


def client(port: int) -> Client:
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)


def raw(port: int, data: bytes, until: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while not received.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_pymemcache_set_get_many_and_delete_across_shards(port: int) -> None:
    mc = client(port)
    values = {f"key:{i}": f"value {i}".encode() for i in range(200)}
    assert mc.set_many(values) == []
    assert {shard_for_key(key.encode(), 2) for key in values} == {0, 1}
    assert mc.get_many(list(values)) == values
    assert mc.delete("key:0") is True
    assert mc.get("key:0") is None
    assert mc.delete("key:0") is False
    mc.close()


def test_pymemcache_cas_incr_decr_touch_append(port: int) -> None:
    mc = client(port)
    mc.set("counter", "10")
    assert mc.incr("counter", 5) == 15
    assert mc.decr("counter", 100) == 0
    assert mc.incr("missing-counter", 1) is None
    value, unique = mc.gets("counter")
    assert value == b"0 "
    assert mc.cas("counter", "7", unique) is True
    assert mc.cas("counter", "8", unique) is False
    assert mc.get("counter") == b"7"
    assert mc.add("counter", "x") is False
    assert mc.replace("counter", "9") is True
    assert mc.append("counter", "!") is True
    assert mc.prepend("counter", "^") is True
    assert mc.get("counter") == b"^9!"
    assert mc.touch("counter", 100) is True
    assert mc.touch("never-set", 100) is False
    assert mc.version() == b"1.6.18"
    mc.close()


def test_pymemcache_stats_add_up_over_shards(port: int) -> None:
    mc = client(port)
    mc.flush_all()
    for i in range(50):
        mc.set(f"s{i}", "x")
    time.sleep(1.1)  # items stored in the flush's second would count as flushed
    for i in range(50, 60):
        mc.set(f"s{i}", "x")
    stats = mc.stats()
    assert stats[b"threads"] == 2
    assert stats[b"version"] == b"1.6.18"
    assert stats[b"limit_maxbytes"] == 64 * 1024 * 1024
    shards = mc.stats("shards")
    per_shard = [shards[b"shard:%d:curr_items" % shard] for shard in (0, 1)]
    assert sum(per_shard) == stats[b"curr_items"]
    # The keys of the other shard went there in batches, one call each.
    calls = sum(shards[b"shard:%d:forward_calls" % shard] for shard in (0, 1))
    lists = sum(shards[b"shard:%d:forward_lists" % shard] for shard in (0, 1))
    assert 0 < calls <= lists
    mc.close()


def test_a_pipeline_over_both_shards_is_answered_in_request_order(port: int) -> None:
    keys = [b"p%d" % i for i in range(40)]
    script = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(key), key) for key in keys)
    script += b"get " + b" ".join(reversed(keys)) + b"\r\n"
    script += b"".join(b"incr %s 1\r\ndelete %s\r\n" % (key, key) for key in keys[:5])
    script += b"mn\r\n"
    expected = LocalEngine().converse(script)
    assert raw(port, script, until=b"MN\r\n") == expected


def test_errors_and_quit_over_the_network(port: int) -> None:
    script = b"bogus\r\nset k 0 0 -1\r\nget " + b"k" * 251 + b"\r\nquit\r\nversion\r\n"
    assert raw(port, script, until=b"never") == (
        b"ERROR\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"
    )


def test_hash_client_spreads_keys_over_two_servers() -> None:
    with running_server("--smp", "2") as first, running_server("--smp", "1") as second:
        servers = [("127.0.0.1", first), ("127.0.0.1", second)]
        mc = HashClient(servers, connect_timeout=5, timeout=5, default_noreply=False)
        values = {f"user:{i}": str(i).encode() for i in range(300)}
        mc.set_many(values)
        assert mc.get_many(list(values)) == values
        counts = []
        for _, server_port in servers:
            direct = client(server_port)
            counts.append(direct.stats()[b"curr_items"])
            direct.close()
        assert sum(counts) == 300
        assert all(count > 0 for count in counts)
        mc.close()


def test_item_size_and_connection_limits() -> None:
    with running_server("--smp", "1", "-I", "2k", "-c", "2") as bound:
        big = b"x" * 3000
        assert raw(bound, b"set big 0 0 3000\r\n" + big + b"\r\nmn\r\n", until=b"MN\r\n") == (
            b"SERVER_ERROR object too large for cache\r\nMN\r\n"
        )
        with (
            socket.create_connection(("127.0.0.1", bound)) as one,
            socket.create_connection(("127.0.0.1", bound)) as two,
        ):
            for sock in (one, two):
                sock.sendall(b"version\r\n")
                assert sock.recv(100) == b"VERSION 1.6.18\r\n"
            third = raw(bound, b"version\r\n", until=b"\r\n")
            assert third == b"ERROR Too many open connections\r\n"


@pytest.mark.requires_program("memccapable", apt="libmemcached-tools")
def test_memccapable_ascii_suite_passes_every_test() -> None:
    with running_server("--smp", "2") as bound:
        result = subprocess.run(
            ["memccapable", "-a", "-t", "5", "-h", "127.0.0.1", "-p", str(bound)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests passed" in result.stdout
    assert "[pass]" in result.stdout and "[FAIL]" not in result.stdout
