"""The server with ``--data-dir`` on a filesystem that fills up, for real: a
small ext4 image on a loop device, and a small tmpfs, each mounted in a
private mount namespace (so needs root; skipped otherwise).

A full disk under the log stops the server with an error that names ENOSPC
and the file -- not a bare "short write" -- and loses no write it
acknowledged. A compaction that runs out of space fails alone: the server
goes on with its log, which is intact.

The filesystem is mounted in the namespace of a holder process, and reached
from here (and by the server) through ``/proc/<holder>/root``; it goes away
with the holder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from .conftest import supports_direct_io
from .server_process import ServerProcess, running_server

pymemcache = pytest.importorskip("pymemcache", reason="pymemcache is in the 'test' extra")
from pymemcache.client.base import Client  # noqa: E402

SIZE = 32 << 20
"""The filesystem's size; a ballast file takes what a test does not want."""


@attrs.frozen
class SmallFilesystem:
    """A filesystem of :data:`SIZE` bytes, at ``path`` as seen from here."""

    path: Path

    def leave_free(self, free: int) -> None:
        """Fill the filesystem with a ballast file until ``free`` bytes are left."""
        ballast = self.path / "ballast"
        ballast.unlink(missing_ok=True)
        stats = os.statvfs(self.path)
        available = stats.f_bavail * stats.f_frsize
        assert available > free, (available, free)
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, available - free)
        finally:
            os.close(fd)

    def free_space(self) -> None:
        (self.path / "ballast").unlink()


@pytest.fixture(params=["ext4", "tmpfs"])
def small_filesystem(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmallFilesystem]:
    kind: str = request.param
    if os.geteuid() != 0:
        pytest.skip("mounts a small filesystem to fill up: needs root")
    tools = ["unshare", "nsenter", "mount"] + (["mkfs.ext4"] if kind == "ext4" else [])
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to mount a small filesystem")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    if kind == "ext4":
        image = tmp_path / "ext4.img"
        with image.open("wb") as file:
            file.truncate(SIZE)
        # -m 0: no blocks reserved for root (the server runs as root here).
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
        mount = ["mount", "-o", "loop", str(image), str(mountpoint)]
    else:
        mount = ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mountpoint)]
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "echo; exec sleep 3600"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()  # the namespace exists
        namespace = ["nsenter", "--target", str(holder.pid), "--mount"]
        mounted = subprocess.run([*namespace, *mount], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a {kind} filesystem here: {mounted.stderr.strip()}")
        path = Path(f"/proc/{holder.pid}/root{mountpoint}")
        if not supports_direct_io(path):
            pytest.skip(f"{kind} has no O_DIRECT on this kernel")
        yield SmallFilesystem(path)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def client(port: int) -> Client:
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)


def log_figures(mc: Client) -> dict[str, int]:
    """Shard 0's figures from ``stats shards``."""
    return {
        name.decode().removeprefix("shard:0:"): int(value)
        for name, value in mc.stats("shards").items()
        if name.startswith(b"shard:0:")
    }


def test_a_full_disk_stops_the_server_naming_enospc_and_keeps_every_acknowledged_write(
    small_filesystem: SmallFilesystem,
) -> None:
    data = small_filesystem.path / "data"
    server = ServerProcess.start("--smp", "1", "--data-dir", str(data))
    small_filesystem.leave_free(1 << 20)
    acknowledged: dict[str, bytes] = {}
    mc = client(server.port)
    try:
        for i in range(100):  # 5 MB, in a megabyte
            value = b"%03d:" % i + b"x" * 50_000
            assert mc.set(f"k{i}", value) is True
            acknowledged[f"k{i}"] = value
    except (OSError, pymemcache.exceptions.MemcacheError):
        pass  # the server stopped under us
    finally:
        mc.close()
    code, stderr = server.wait_for_exit()
    assert code == 1
    log = data / "shard-0-of-1.log"
    assert f"shard 0 could not write its log {log}: No space left on device (ENOSPC)" in stderr
    assert "short write" not in stderr
    assert 5 <= len(acknowledged) < 100

    small_filesystem.free_space()
    with running_server("--smp", "1", "--data-dir", str(data)) as port:
        mc = client(port)
        assert mc.get_many(list(acknowledged)) == acknowledged
        mc.close()


def test_a_compaction_that_runs_out_of_space_fails_alone_and_the_server_goes_on(
    small_filesystem: SmallFilesystem,
) -> None:
    data = small_filesystem.path / "data"
    options = ["--smp", "1", "--data-dir", str(data), "--compact-min", "64k"]
    options += ["--compact-ratio", "2"]
    values: dict[str, bytes] = {}
    server = ServerProcess.start(*options)
    try:
        mc = client(server.port)
        # Ten keys of 40 kB, overwritten: a compaction starts once the log
        # passes twice the live data (800 kB), with about 300 kB left -- less
        # than the copy of the live data (400 kB) it writes.
        small_filesystem.leave_free(1_100_000)
        figures = log_figures(mc)
        while figures["log_file_bytes"] <= 2 * figures["bytes"] or figures["bytes"] < 400_000:
            key = f"k{len(values) % 10}"
            values[key] = b"%d:" % len(values) + b"x" * 40_000
            assert mc.set(key, values[key]) is True
            figures = log_figures(mc)
        deadline = time.monotonic() + 30
        while not figures.get("log_compaction_failures"):
            assert server.process.poll() is None, "the server stopped"
            assert time.monotonic() < deadline, "no compaction failed"
            time.sleep(0.05)
            figures = log_figures(mc)
        assert figures["log_compaction_failures"] == 1
        assert figures["log_compactions"] == 0
        assert not (data / "shard-0-of-1.log.compact").exists()
        # The server goes on, on its log.
        assert mc.set("after", b"still here") is True
        values["after"] = b"still here"
        assert mc.get_many(list(values)) == values
        mc.close()
    finally:
        if server.process.poll() is None:
            stderr = server.stop()
        else:
            print(server.wait_for_exit()[1])  # why it stopped, for the failure's report
    log = data / "shard-0-of-1.log"
    assert "shard 0: compacting its log failed: [Errno 28] No space left on device" in stderr
    assert f"(ENOSPC); the log {log} (" in stderr and ") is intact and still in use" in stderr

    small_filesystem.free_space()
    with running_server(*options) as port:
        mc = client(port)
        assert mc.get_many(list(values)) == values
        mc.close()
