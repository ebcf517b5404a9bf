"""Shared test configuration.

``@pytest.mark.requires_program("memcached", apt="memcached")``: the test
drives an outside program. Run by hand without it, the test is skipped with a
reason; under CI (``.ci/run`` sets SHARDIO_REQUIRE_OUTSIDE_PROGRAMS and
installs the programs) a missing program fails the test instead, so nothing
CI is meant to check is skipped silently.
"""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_program(*names, apt=None): the test needs these programs on PATH",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires_program"):
        missing = [name for name in marker.args if shutil.which(name) is None]
        if not missing:
            continue
        apt = marker.kwargs.get("apt")
        message = f"needs {', '.join(missing)} on PATH" + (
            f" (apt-get install {apt})" if apt else ""
        )
        if os.environ.get("SHARDIO_REQUIRE_OUTSIDE_PROGRAMS"):
            pytest.fail(f"{message}; .ci/run installs it before the tests", pytrace=False)
        pytest.skip(message)
