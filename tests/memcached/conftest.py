"""``data_dir``: a fresh directory where O_DIRECT works, for the server's
logs -- pytest's ``tmp_path`` when its filesystem supports direct I/O
(tmpfs only since Linux 6.6), else a directory under /var/tmp or /work."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def supports_direct_io(directory: Path) -> bool:
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


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh, empty directory on a filesystem with O_DIRECT."""
    if supports_direct_io(tmp_path):
        yield tmp_path / "data"
        return
    for parent in ("/var/tmp", "/work"):
        if not os.path.isdir(parent):
            continue
        directory = Path(tempfile.mkdtemp(prefix="shardio-memcached-test-", dir=parent))
        try:
            if supports_direct_io(directory):
                yield directory / "data"
                return
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    pytest.skip(f"no filesystem with O_DIRECT support: not {tmp_path}, /var/tmp or /work")
