"""Every disk test runs twice: on io_uring and on the thread pool.

``dma_dir`` is a directory on a filesystem that supports O_DIRECT: pytest's
``tmp_path`` when it does (tmpfs only since Linux 6.6), else a fresh
directory under /var/tmp or /work.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardio_disk._uring import uring_unavailable_reason


def _supports_direct_io(directory: Path) -> bool:
    probe = directory / ".o_direct_probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    probe.unlink()
    return True


@pytest.fixture(params=["io_uring", "threads"], autouse=True)
def disk_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend this run of the test uses (forced with SHARDIO_DISK_BACKEND)."""
    name: str = request.param
    if name == "io_uring":
        reason = uring_unavailable_reason()
        if reason is not None:
            pytest.skip(f"io_uring is unavailable here: {reason}")
    monkeypatch.setenv("SHARDIO_DISK_BACKEND", name)
    return name


@pytest.fixture
def dma_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory where O_DIRECT works."""
    if _supports_direct_io(tmp_path):
        yield tmp_path
        return
    for parent in ("/var/tmp", "/work"):
        if not os.path.isdir(parent):
            continue
        directory = Path(tempfile.mkdtemp(prefix="shardio-disk-test-", dir=parent))
        try:
            if _supports_direct_io(directory):
                yield directory
                return
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    pytest.skip(f"no filesystem with O_DIRECT support: not {tmp_path}, /var/tmp or /work")
