"""Calling into a run from a thread (Trio's ``trio.from_thread``).

In a thread started by :func:`shardio.to_thread.run_sync` the run is known;
any other thread passes ``token=shardio.lowlevel.current_token()``, taken in
the run (Trio calls this argument ``trio_token``).
"""

from ._threads import from_thread_check_cancelled as check_cancelled
from ._threads import from_thread_run as run
from ._threads import from_thread_run_sync as run_sync

__all__ = ["check_cancelled", "run", "run_sync"]
