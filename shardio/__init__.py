"""shardio: Seastar's shard-per-core architecture, with Trio's structured concurrency.

This module only re-exports the public names; see the docs for each.
"""

from . import abc as abc
from . import lowlevel as lowlevel
from ._channel import (
    MemoryChannelStatistics,
    MemoryReceiveChannel,
    MemorySendChannel,
    open_memory_channel,
)
from ._core import (
    TASK_STATUS_IGNORED,
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    CancelScope,
    ClosedResourceError,
    EndOfChannel,
    Nursery,
    RunFinishedError,
    ShardioInternalError,
    TaskStatus,
    TooSlowError,
    WouldBlock,
    current_effective_deadline,
    current_time,
    open_nursery,
)
from ._core import run as run
from ._sync import (
    CapacityLimiter,
    CapacityLimiterStatistics,
    Condition,
    ConditionStatistics,
    Event,
    EventStatistics,
    Lock,
    LockStatistics,
    Semaphore,
    StrictFIFOLock,
)
from ._timeouts import (
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    sleep,
    sleep_forever,
    sleep_until,
)

__all__ = [
    "TASK_STATUS_IGNORED",
    "BrokenResourceError",
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "ClosedResourceError",
    "Condition",
    "ConditionStatistics",
    "EndOfChannel",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "MemoryChannelStatistics",
    "MemoryReceiveChannel",
    "MemorySendChannel",
    "Nursery",
    "RunFinishedError",
    "Semaphore",
    "ShardioInternalError",
    "StrictFIFOLock",
    "TaskStatus",
    "TooSlowError",
    "WouldBlock",
    "current_effective_deadline",
    "current_time",
    "fail_after",
    "fail_at",
    "move_on_after",
    "move_on_at",
    "open_memory_channel",
    "open_nursery",
    "run",
    "sleep",
    "sleep_forever",
    "sleep_until",
]
