"""The server with ``--data-dir``, end to end: killed with SIGKILL in the
middle of a write load from many clients, it comes back with every write it
acknowledged; stopped with Ctrl-C, with everything; restarted with another
shard count, with its data resharded."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest

from examples.memcached.datadir import log_path

from .server_process import ROOT, ServerProcess, running_server

pymemcache = pytest.importorskip("pymemcache", reason="pymemcache is in the 'test' extra")
from pymemcache.client.base import Client  # noqa: E402

CLIENTS = 16
KEYS_PER_CLIENT = 40


def client(port: int) -> Client:
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)


@attrs.define
class History:
    """One client's writes, in the order it sent them, and how many of them
    the server acknowledged (each client waits for one before the next, so
    the acknowledged ones are a prefix)."""

    ops: list[tuple[str, bytes | None]] = attrs.Factory(list)
    acknowledged: int = 0


def write_load(port: int, prefix: str, history: History, stop: threading.Event) -> None:
    """Overwrite and now and then delete this client's keys until stopped
    or cut off; record every write sent and every acknowledgement."""
    rng = random.Random(prefix)
    mc = client(port)
    try:
        for round_ in range(1_000_000):
            if stop.is_set():
                return
            key = f"{prefix}:{rng.randrange(KEYS_PER_CLIENT)}"
            if round_ % 9 == 8:
                history.ops.append((key, None))
                mc.delete(key)  # True or False: acknowledged either way
            else:
                value = f"{prefix}:{round_}:".encode() + b"x" * rng.randrange(600)
                history.ops.append((key, value))
                assert mc.set(key, value) is True
            history.acknowledged += 1
    except (OSError, pymemcache.exceptions.MemcacheError):
        return  # the server was killed under us
    finally:
        mc.close()


def possible_values(history: History) -> dict[str, set[bytes | None]]:
    """For each key: what it may hold after the crash -- its last
    acknowledged state, or (if the write after it was in flight) that one."""
    states: dict[str, set[bytes | None]] = {}
    latest: dict[str, bytes | None] = {}
    for index, (key, value) in enumerate(history.ops):
        if index < history.acknowledged:
            latest[key] = value
            states[key] = {value}
        else:  # the one write in flight when the server died
            states[key] = {latest.get(key), value}
    return states


def load_then_kill(server: ServerProcess, round_: int) -> tuple[list[History], dict[bytes, int]]:
    """Run the clients against ``server`` until 4000 writes are acknowledged,
    then SIGKILL it; their histories, and the server's figures just before."""
    histories = [History() for _ in range(CLIENTS)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=write_load, args=(server.port, f"r{round_}c{n}", history, stop))
        for n, history in enumerate(histories)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while sum(h.acknowledged for h in histories) < 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        observer = client(server.port)
        stats = observer.stats("shards")
        observer.close()
        server.kill()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert sum(h.acknowledged for h in histories) >= 4000
    return histories, stats


def test_every_acknowledged_write_survives_a_sigkill_under_load(data_dir: Path) -> None:
    options = ("--smp", "2", "--data-dir", str(data_dir), "--compact-min", "256k")
    found: dict[str, bytes | None] = {}  # what the keys of earlier rounds came back as
    for round_ in range(2):
        histories, stats = load_then_kill(ServerProcess.start(*options), round_)
        # The load went through compactions as well as plain commits (one
        # may have been under way at the kill).
        assert sum(stats[b"shard:%d:log_compactions" % shard] for shard in (0, 1)) >= 1
        with running_server(*options) as port:
            mc = client(port)
            # Earlier rounds' keys: as they came back then.
            present = {key: value for key, value in found.items() if value is not None}
            assert mc.get_many(list(found)) == present
            for history in histories:
                expected = possible_values(history)
                values = mc.get_many(list(expected))
                for key, allowed in expected.items():
                    assert values.get(key) in allowed, (key, values.get(key), allowed)
                    found[key] = values.get(key)
            mc.close()


def test_noreply_writes_survive_ctrl_c_and_a_restart_says_what_it_recovered(data_dir: Path) -> None:
    with running_server("--smp", "2", "--data-dir", str(data_dir)) as port:
        mc = client(port)
        mc.set_many({f"k{i}": f"v{i}" for i in range(300)}, noreply=True)
        assert mc.version() == b"1.6.18"  # answered once every set before it has run
        mc.close()
    server = ServerProcess.start("--smp", "2", "--data-dir", str(data_dir))
    try:
        mc = client(server.port)
        assert mc.get_many([f"k{i}" for i in range(300)]) == {
            f"k{i}": f"v{i}".encode() for i in range(300)
        }
        mc.close()
    finally:
        stderr = server.stop()
    recovered = [line for line in stderr.splitlines() if "recovered" in line]
    assert len(recovered) == 2
    total = sum(int(line.split("recovered ")[1].split()[0]) for line in recovered)
    assert total == 300


def test_a_restart_with_another_shard_count_reshards_the_data(data_dir: Path) -> None:
    values = {f"key{i}": f"value {i}".encode() for i in range(500)}
    with running_server("--smp", "2", "--data-dir", str(data_dir)) as port:
        mc = client(port)
        mc.set_many(values)
        mc.delete_many([f"key{i}" for i in range(0, 500, 5)])
        mc.close()
    for key in [f"key{i}" for i in range(0, 500, 5)]:
        del values[key]
    for shards in ("1", "2"):
        with running_server("--smp", shards, "--data-dir", str(data_dir)) as port:
            mc = client(port)
            assert mc.get_many(list(values)) == values
            assert mc.stats()[b"curr_items"] == len(values)
            mc.close()
        assert (data_dir / "MANIFEST").read_text() == f"shardio-memcached shards={shards}\n"
        logs = sorted(path.name for path in data_dir.glob("*.log"))
        count = int(shards)
        assert logs == sorted(log_path(data_dir, k, count).name for k in range(count))


def test_a_second_server_on_the_same_data_directory_is_refused(data_dir: Path) -> None:
    with running_server("--smp", "1", "--data-dir", str(data_dir)):
        result = subprocess.run(
            [sys.executable, "-m", "examples.memcached", "-p", "0", "--data-dir", str(data_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert "is in use by another server" in result.stderr
