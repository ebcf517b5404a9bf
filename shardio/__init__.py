"""shardio: Seastar's shard-per-core architecture, with Trio's structured concurrency.

This module only re-exports the public names; see the docs for each.
"""

from . import abc as abc
from . import from_thread as from_thread
from . import lowlevel as lowlevel
from . import to_thread as to_thread
from ._anyio import install_finder as _install_anyio_finder
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
    ChannelStatistics,
    ClosedResourceError,
    EndOfChannel,
    Nursery,
    RemoteError,
    RemoteTraceback,
    RunFinishedError,
    ShardCrashed,
    ShardioInternalError,
    ShardReceiveChannel,
    ShardSendChannel,
    TaskStatus,
    TooSlowError,
    WouldBlock,
    current_effective_deadline,
    current_shard,
    current_time,
    open_channel,
    open_nursery,
    run_on,
    shard_count,
)
from ._core import run as run
from ._highlevel_generic import StapledStream, aclose_forcefully
from ._sharded import Sharded, sharded
from ._signals import open_signal_receiver
from ._subprocess import Process, run_process
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
    "ChannelStatistics",
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
    "Process",
    "RemoteError",
    "RemoteTraceback",
    "RunFinishedError",
    "Semaphore",
    "ShardCrashed",
    "ShardReceiveChannel",
    "ShardSendChannel",
    "Sharded",
    "ShardioInternalError",
    "StapledStream",
    "StrictFIFOLock",
    "TaskStatus",
    "TooSlowError",
    "WouldBlock",
    "aclose_forcefully",
    "current_effective_deadline",
    "current_shard",
    "current_time",
    "fail_after",
    "fail_at",
    "move_on_after",
    "move_on_at",
    "open_channel",
    "open_memory_channel",
    "open_nursery",
    "open_signal_receiver",
    "run",
    "run_on",
    "run_process",
    "shard_count",
    "sharded",
    "sleep",
    "sleep_forever",
    "sleep_until",
]

# AnyIO finds its "shardio" backend through this import hook; it imports
# nothing until AnyIO asks for it (see shardio._anyio).
_install_anyio_finder()

# Public exceptions print as shardio.X in tracebacks, not by their private module.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and issubclass(_value, BaseException):
        _value.__module__ = __name__
del _name, _value
