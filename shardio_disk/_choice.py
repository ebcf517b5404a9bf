"""Which backend serves a shard's disk I/O, and its life in the run.

io_uring when the kernel lets this process use it; else a thread pool, with
one warning in the log saying why. ``SHARDIO_DISK_BACKEND=threads`` or
``=io_uring`` forces one (forcing io_uring where it is unavailable makes the
first disk operation fail, saying so).

Each run -- each shard's scheduler -- starts its own backend on its first
disk operation, and a system task closes it when the run ends. System tasks
are cancelled only once every user task has finished, so a ``finally`` that
closes a file after Ctrl-C still has the backend it needs.
"""

from __future__ import annotations

import logging
import os

import shardio
from shardio import lowlevel

from ._backend import Backend, DiskStatistics
from ._threads import ThreadBackend
from ._uring import UringBackend, uring_unavailable_reason

ENV_VAR = "SHARDIO_DISK_BACKEND"
BACKENDS = ("io_uring", "threads")

logger = logging.getLogger("shardio_disk")

_CURRENT: lowlevel.RunVar[Backend | None] = lowlevel.RunVar("shardio_disk.backend", None)
_probed = False
_uring_problem: str | None = None
_warned = False


def _uring_unavailable() -> str | None:
    """Why io_uring is unavailable in this process (probed once), or None."""
    global _probed, _uring_problem
    if not _probed:
        _uring_problem = uring_unavailable_reason()
        _probed = True
    return _uring_problem


def _forced() -> str | None:
    forced = os.environ.get(ENV_VAR, "")
    if not forced:
        return None
    if forced not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={forced!r}: expected one of {', '.join(BACKENDS)}")
    return forced


def chosen_backend() -> str:
    """The backend a run starting now would use."""
    global _warned
    forced = _forced()
    if forced is not None:
        return forced
    problem = _uring_unavailable()
    if problem is None:
        return "io_uring"
    if not _warned:
        _warned = True
        logger.warning("io_uring is unavailable (%s): disk I/O runs on a thread pool", problem)
    return "threads"


def current_backend() -> Backend:
    """This run's backend, started on first use."""
    backend = _CURRENT.get()
    if backend is None:
        backend = _start()
    return backend


def _start() -> Backend:
    name = chosen_backend()
    backend: Backend
    if name == "io_uring":
        try:
            backend = UringBackend()
        except OSError as exc:
            if _forced() is None:
                raise
            raise OSError(
                exc.errno, f"{ENV_VAR}=io_uring, but io_uring is unavailable: {exc.strerror}"
            ) from exc
    else:
        backend = ThreadBackend()
    _CURRENT.set(backend)
    lowlevel.spawn_system_task(_close_at_end_of_run, backend, name="shardio_disk backend")
    return backend


async def _close_at_end_of_run(backend: Backend) -> None:
    try:
        await shardio.sleep_forever()
    finally:
        backend.close()


def backend() -> str:
    """``"io_uring"`` or ``"threads"``: what serves disk I/O on this shard.

    Inside a run whose disk I/O has started, the backend it uses; otherwise
    the one it would use (io_uring if the kernel allows it, unless
    ``SHARDIO_DISK_BACKEND`` forces one).
    """
    try:
        current = _CURRENT.get()
    except RuntimeError:  # outside any run
        current = None
    return current.name if current is not None else chosen_backend()


def statistics() -> DiskStatistics:
    """Counters of this shard's disk I/O in the current run (see
    :class:`DiskStatistics`); zeros before its first disk operation."""
    current = _CURRENT.get()
    if current is not None:
        return current.statistics()
    return DiskStatistics(
        backend=chosen_backend(),
        in_flight=0,
        submitted=0,
        completed=0,
        syscalls=0,
        fixed_buffer_ops=0,
        registered_buffers=False,
    )
