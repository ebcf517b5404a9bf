"""The acceptance test of the AnyIO backend: AnyIO's own test suite, from the
sdist of the pinned version, on Trio and on shardio (see ``anyio_suite.py``).

It fails if a test that passes on AnyIO's Trio backend fails or is missing on
shardio, unless ``suite_exceptions.txt`` lists it with a reason, and if a
listed test passes (the list must stay true). The first run fetches the sdist
from PyPI into ``build/anyio-suite`` (``SHARDIO_ANYIO_SUITE_CACHE`` to move
it); the two runs take about a minute together.
"""

from __future__ import annotations

import subprocess
import sys

from tests.anyio import anyio_suite


def test_every_anyio_test_that_passes_on_trio_passes_on_shardio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.anyio.anyio_suite"],
        cwd=anyio_suite.REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    summary = result.stdout[result.stdout.rfind("AnyIO ") :]
    assert result.returncode == 0, summary or result.stdout[-5000:] + result.stderr[-5000:]
    assert "0 unexpected difference(s)" in summary
