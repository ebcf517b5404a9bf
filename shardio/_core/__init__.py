"""The self-contained core of shardio: the scheduler of one shard.

Nothing in here imports from the rest of shardio. Everything else (sync
primitives, channels, shards, net, disk) is built on the names exported here.
"""

from ._cancel import CancelScope, current_effective_deadline
from ._closing import SyncCloseable
from ._exceptions import (
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    ClosedResourceError,
    EndOfChannel,
    RemoteError,
    RemoteTraceback,
    RunFinishedError,
    ShardCrashed,
    ShardioInternalError,
    TooSlowError,
    WouldBlock,
)
from ._fdpass import receive_fd, send_fd
from ._guest import start_guest_run
from ._instrumentation import Instrument
from ._io_epoll import notify_closing, wait_readable, wait_writable
from ._ki import currently_ki_protected, disable_ki_protection, enable_ki_protection
from ._local import RunVar, RunVarToken
from ._mock_clock import MockClock
from ._nursery import TASK_STATUS_IGNORED, Nursery, TaskStatus, open_nursery
from ._parking_lot import (
    ParkingLot,
    ParkingLotStatistics,
    add_parking_lot_breaker,
    remove_parking_lot_breaker,
)
from ._pickling import ShardLocal
from ._remote import run_on
from ._run import (
    Clock,
    Poller,
    RunStatistics,
    Task,
    Token,
    add_instrument,
    add_poller,
    checkpoint_if_cancelled,
    current_clock,
    current_root_task,
    current_statistics,
    current_time,
    current_token,
    remove_instrument,
    remove_poller,
    reschedule,
    spawn_system_task,
    wait_all_tasks_blocked,
)
from ._shards import current_shard, run, shard_count
from ._state import current_task
from ._traps import (
    Abort,
    RaiseCancelT,
    cancel_shielded_checkpoint,
    checkpoint,
    wait_task_rescheduled,
)
from ._xchannel import ChannelStatistics, ShardReceiveChannel, ShardSendChannel, open_channel

__all__ = [
    "TASK_STATUS_IGNORED",
    "Abort",
    "BrokenResourceError",
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
    "ChannelStatistics",
    "Clock",
    "ClosedResourceError",
    "EndOfChannel",
    "Instrument",
    "MockClock",
    "Nursery",
    "ParkingLot",
    "ParkingLotStatistics",
    "Poller",
    "RaiseCancelT",
    "RemoteError",
    "RemoteTraceback",
    "RunFinishedError",
    "RunStatistics",
    "RunVar",
    "RunVarToken",
    "ShardCrashed",
    "ShardLocal",
    "ShardReceiveChannel",
    "ShardSendChannel",
    "ShardioInternalError",
    "SyncCloseable",
    "Task",
    "TaskStatus",
    "Token",
    "TooSlowError",
    "WouldBlock",
    "add_instrument",
    "add_parking_lot_breaker",
    "add_poller",
    "cancel_shielded_checkpoint",
    "checkpoint",
    "checkpoint_if_cancelled",
    "current_clock",
    "current_effective_deadline",
    "current_root_task",
    "current_shard",
    "current_statistics",
    "current_task",
    "current_time",
    "current_token",
    "currently_ki_protected",
    "disable_ki_protection",
    "enable_ki_protection",
    "notify_closing",
    "open_channel",
    "open_nursery",
    "receive_fd",
    "remove_instrument",
    "remove_parking_lot_breaker",
    "remove_poller",
    "reschedule",
    "run",
    "run_on",
    "send_fd",
    "shard_count",
    "spawn_system_task",
    "start_guest_run",
    "wait_all_tasks_blocked",
    "wait_readable",
    "wait_task_rescheduled",
    "wait_writable",
]
