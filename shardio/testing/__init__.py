"""Tools for testing code that runs on shardio."""

from .._core import MockClock, wait_all_tasks_blocked

__all__ = ["MockClock", "wait_all_tasks_blocked"]
