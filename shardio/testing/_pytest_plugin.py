"""The shardio pytest plugin (registered through the ``pytest11`` entry point).

``async def`` tests run under :func:`shardio.run` when they are marked
``@pytest.mark.shardio`` -- or all of them, with ``shardio_mode = true`` in
the pytest ini settings -- except tests marked ``@pytest.mark.anyio``, which
are AnyIO's plugin's (it runs them on shardio when their ``anyio_backend`` is
``"shardio"``). The marker's keyword arguments go to ``shardio.run``
(``shards=2``, say). A test that asks for the ``mock_clock`` or
``autojump_clock`` fixture runs on that clock.

Fixtures are the ordinary synchronous pytest fixtures; set up async
resources inside the test (an ``async with`` block is the shardio way).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from .._core import MockClock


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "shardio_mode",
        "run every 'async def' test under shardio.run, marked or not",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "shardio(**run_kwargs): run this async test under shardio.run(**run_kwargs), "
        "e.g. @pytest.mark.shardio(shards=2)",
    )


@pytest.fixture
def mock_clock() -> MockClock:
    """A frozen :class:`~shardio.testing.MockClock`; the test runs on it."""
    return MockClock()


@pytest.fixture
def autojump_clock() -> MockClock:
    """A :class:`~shardio.testing.MockClock` that jumps over idle time."""
    return MockClock(autojump_threshold=0)


def _wants_shardio(item: pytest.Function) -> bool:
    if not inspect.iscoroutinefunction(item.obj):
        return False
    if item.get_closest_marker("shardio") is not None:
        return True
    if item.get_closest_marker("anyio") is not None:
        return False  # AnyIO's plugin runs it (on shardio with anyio_backend = "shardio")
    return bool(item.config.getini("shardio_mode"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not _wants_shardio(pyfuncitem):
        return None
    import shardio

    marker = pyfuncitem.get_closest_marker("shardio")
    run_kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    names = pyfuncitem._fixtureinfo.argnames
    funcargs = {name: pyfuncitem.funcargs[name] for name in names}
    for clock in ("autojump_clock", "mock_clock"):
        if clock in pyfuncitem.funcargs and "clock" not in run_kwargs:
            run_kwargs["clock"] = pyfuncitem.funcargs[clock]
    shardio.run(functools.partial(pyfuncitem.obj, **funcargs), **run_kwargs)
    return True
