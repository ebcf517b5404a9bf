"""Where the scheduler keeps "the current run" and "the current task".

One thread runs at most one scheduler, so it lives in a thread-local, and
the runner knows its current task (a plain attribute: the scheduler sets it
on every task step, and a thread-local store costs five times more). Every
module of the core reaches them through here, which keeps the import graph a
tree (the cancel-scope code needs the current task; the run loop needs cancel
scopes).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from ._run import Runner, Task


class _RunContext(threading.local):
    runner: Runner


GLOBAL_RUN_CONTEXT = _RunContext()


def outside_run(what: str) -> NoReturn:
    raise RuntimeError(f"{what} must be called from inside shardio.run(); no run is active here")


def current_runner() -> Runner:
    try:
        return GLOBAL_RUN_CONTEXT.runner
    except AttributeError:
        outside_run("this function")


def current_task() -> Task:
    """Return the :class:`~shardio.lowlevel.Task` that is running this code."""
    try:
        task = GLOBAL_RUN_CONTEXT.runner.current_task
    except AttributeError:
        outside_run("current_task()")
    if task is None:
        raise RuntimeError(
            "this must be called from a task, but this code runs in the scheduler "
            "outside any task (a sync function called on another shard with run_on, "
            "or a run_sync_soon callback); make the function async to run it in a task"
        )
    return task
