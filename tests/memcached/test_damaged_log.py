"""The server with a damaged log, end to end, as its users would meet it: a
log damaged in the middle (not torn by a crash) stops the server at start
with a message naming the damaged range, and changes nothing; with
``--salvage-damaged-logs`` it starts with every key whose record was not
damaged, the damaged file kept as found -- also when resharding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from examples.memcached.datadir import log_path
from examples.memcached.records import FRAME_SIZE, LogReader, Put

from .server_process import ROOT, ServerProcess, running_server

pymemcache = pytest.importorskip("pymemcache", reason="pymemcache is in the 'test' extra")
from pymemcache.client.base import Client  # noqa: E402


def client(port: int) -> Client:
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)


def puts_in(path: Path) -> list[tuple[int, int, str]]:
    """The extent (start, end) and key of every put in an undamaged log."""
    data = path.read_bytes()
    found = []
    start = 0
    while start + FRAME_SIZE <= len(data):
        length = int.from_bytes(data[start : start + 4], "little")
        if not length:
            break
        end = start + FRAME_SIZE + length
        (record,) = LogReader(max_record=1 << 31).feed(data[start:end])
        if isinstance(record, Put):
            found.append((start, end, record.key.decode()))
        start = end
    return found


def flip(path: Path, offset: int, count: int) -> bytes:
    """Invert ``count`` bytes of the file at ``offset``; its bytes now."""
    data = bytearray(path.read_bytes())
    for position in range(offset, offset + count):
        data[position] ^= 0xFF
    path.write_bytes(data)
    return bytes(data)


def start_refused(*args: str) -> str:
    """Start the server, expecting it to refuse; what it wrote to stderr."""
    command = [sys.executable, "-m", "examples.memcached", "-p", "0", "-l", "127.0.0.1", *args]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    with process:
        first = process.stdout.readline()  # the "listening" line, or nothing
        if first:
            process.kill()
        stderr = process.stderr.read()
        code = process.wait()
    assert not first, f"the server started: {first!r}; {stderr}"
    assert code == 1, stderr
    return stderr


def test_eight_flipped_bytes_cost_only_the_keys_whose_records_they_hit(data_dir: Path) -> None:
    # The case: 1,000 acknowledged keys, 8 bytes flipped 10% into
    # the log. Before, the restart kept 99 of them and truncated the file.
    values = {f"key{i}": b"%04d" % i + b"v" * 210 for i in range(1000)}
    options = ("--smp", "1", "--data-dir", str(data_dir))
    with running_server(*options) as port:
        mc = client(port)
        for key, value in values.items():
            assert mc.set(key, value) is True
        mc.close()
    path = log_path(data_dir, 0, 1)
    puts = puts_in(path)
    at = path.stat().st_size // 10
    damaged = flip(path, at, 8)
    hit = [(start, end, key) for start, end, key in puts if start < at + 8 and at < end]
    assert 1 <= len(hit) <= 2
    first, last = hit[0][0], hit[-1][1]
    where = f"{path} is damaged: {last - first} bytes at offset {first} hold no valid record"

    stderr = start_refused(*options)
    assert where in stderr and "--salvage-damaged-logs" in stderr
    assert path.read_bytes() == damaged  # nothing changed

    server = ServerProcess.start(*options, "--salvage-damaged-logs")
    try:
        mc = client(server.port)
        lost = {key for _, _, key in hit}
        assert mc.get_many(list(values)) == {
            key: value for key, value in values.items() if key not in lost
        }
        mc.close()
    finally:
        stderr = server.stop()
    (kept,) = data_dir.glob(path.name + ".damaged-*")
    assert kept.read_bytes() == damaged
    assert (
        f"{path} was damaged: {last - first} bytes at offset {first} held no valid record; "
        f"every valid record after them was kept; the file as found is kept as {kept}"
    ) in stderr

    with running_server(*options) as port:  # the log is whole again: no option needed
        mc = client(port)
        assert len(mc.get_many(list(values))) == len(values) - len(hit)
        mc.close()


def test_a_damaged_log_read_to_reshard_is_refused_then_salvaged(data_dir: Path) -> None:
    values = {f"key{i}": f"value {i}".encode() for i in range(400)}
    with running_server("--smp", "2", "--data-dir", str(data_dir)) as port:
        mc = client(port)
        mc.set_many(values)
        mc.close()
    path = log_path(data_dir, 1, 2)
    puts = puts_in(path)
    start, end, key = puts[len(puts) // 2]
    damaged = flip(path, start + FRAME_SIZE + 1, 4)

    stderr = start_refused("--smp", "1", "--data-dir", str(data_dir))
    assert f"{path} is damaged: {end - start} bytes at offset {start}" in stderr
    assert path.read_bytes() == damaged
    assert (data_dir / "MANIFEST").read_text() == "shardio-memcached shards=2\n"

    args = ("--smp", "1", "--data-dir", str(data_dir), "--salvage-damaged-logs")
    with running_server(*args) as port:
        mc = client(port)
        assert mc.get_many(list(values)) == {k: v for k, v in values.items() if k != key}
        mc.close()
    # The old logs are gone with their layout; the damaged one is kept.
    assert sorted(p.name for p in data_dir.glob("*.log")) == [log_path(data_dir, 0, 1).name]
    (kept,) = data_dir.glob(path.name + ".damaged-*")
    assert kept.read_bytes() == damaged
