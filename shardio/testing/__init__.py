"""Tools for testing code that runs on shardio."""

from .._core import MockClock, wait_all_tasks_blocked
from .._threads import active_thread_count, wait_all_threads_completed
from ._check_streams import (
    check_half_closeable_stream,
    check_one_way_stream,
    check_two_way_stream,
)
from ._memory_streams import (
    MemoryReceiveStream,
    MemorySendStream,
    lockstep_stream_one_way_pair,
    lockstep_stream_pair,
    memory_stream_one_way_pair,
    memory_stream_pair,
    memory_stream_pump,
)

__all__ = [
    "MemoryReceiveStream",
    "MemorySendStream",
    "MockClock",
    "active_thread_count",
    "check_half_closeable_stream",
    "check_one_way_stream",
    "check_two_way_stream",
    "lockstep_stream_one_way_pair",
    "lockstep_stream_pair",
    "memory_stream_one_way_pair",
    "memory_stream_pair",
    "memory_stream_pump",
    "wait_all_tasks_blocked",
    "wait_all_threads_completed",
]
