"""The messenger: how one shard posts work to another.

``post(shard, fn, *args)`` asks shard ``shard`` to call ``fn(*args)`` soon, in
its scheduler, outside any task (as :meth:`Token.run_sync_soon` does within a
shard). It is one-way and ordered: two posts from shard A to shard B run on B
in the order A made them. Everything that crosses shards -- calls, results,
cancellations, channel traffic -- is built on it.

A post costs a list append. The messenger is a :class:`Poller`: at the end of
each scheduling pass it pickles each destination's posts of that pass as one
record, pushes it into the ring to that shard, and rings the destination's
doorbell only if that shard announced it sleeps (see ``_ring.py``). At the
start of each pass it drains the rings into this shard and runs what arrived.
So a busy pair of shards exchanges batches, one pickle and no syscall per
pass, however many messages they carry.

``fn`` must be a *message handler*: a module-level function registered with
:func:`message_handler`. A record names handlers by a short string key, not by
pickle's global references (which cost a module lookup and an identity check
per message, each way), and ``args`` must be plain data: the record is pickled
with the fast standard pickler and must load in any shard. User objects travel
inside as ``bytes`` pickled by ``_pickling.dumps``, so a user object that fails
to pickle or to load fails only its own call or item, never a whole batch.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import ShardioInternalError
from ._ki import enable_ki_protection
from ._ring import FRAGMENT, SharedArea
from ._ring_c import ffi, lib
from ._run import Poller

if TYPE_CHECKING:
    from ._ring import Ring

logger = logging.getLogger("shardio.shards")

#: Message handlers by key, and keys by handler.
HANDLERS: dict[str, Callable[..., Any]] = {}
_KEYS: dict[Callable[..., Any], str] = {}

F = TypeVar("F", bound=Callable[..., Any])


def message_handler(fn: F) -> F:
    """Register ``fn`` (a module-level function) as a handler that other
    shards can post to (with ``ShardState.post`` in ``_shards.py``)."""
    key = f"{fn.__module__}:{fn.__qualname__}"
    if "<locals>" in key:
        raise ValueError(f"a message handler must be a module-level function, not {key}")
    HANDLERS[key] = fn
    _KEYS[fn] = key
    return fn


def _resolve_handler(key: str) -> Callable[..., Any]:
    # A handler whose module this shard has not imported yet (it was
    # imported after the fork on the sending shard): import it now.
    module_name = key.partition(":")[0]
    importlib.import_module(module_name)
    try:
        return HANDLERS[key]
    except KeyError:
        raise ShardioInternalError(
            f"a message for {key} arrived, but importing {module_name} registered no such handler"
        ) from None


# Records read from one ring per poll: enough to keep up with a busy peer,
# few enough that a flood from one shard does not starve this shard's tasks.
_RECORDS_PER_POLL = 32


class Messenger(Poller):
    """This shard's end of every ring; one per shard, registered as a poller."""

    def __init__(self, area: SharedArea, shard: int) -> None:
        self.area = area
        self.shard = shard
        n = area.nshards
        self._outboxes: list[list[tuple[str, tuple[Any, ...]]]] = [[] for _ in range(n)]
        self._dirty: list[int] = []
        # Payloads pickled but not yet (fully) in their ring: [payload, offset].
        self._unsent: list[deque[list[Any]]] = [deque() for _ in range(n)]
        self._blocked: set[int] = set()
        self._out_rings: list[Ring | None] = [
            area.ring(shard, dst) if dst != shard else None for dst in range(n)
        ]
        self._dst_flags = [area.sleeping_flag(dst) for dst in range(n)]
        self._in_array, self._in_rings = area.inbound_array(shard)
        self._in_count = len(self._in_rings)
        self._partial: dict[int, bytearray] = {}
        self._flag = area.sleeping_flag(shard)
        self.doorbell = area.doorbells[shard]
        # Called once at the next flush, before the outboxes are pickled:
        # for senders that batch their own items per pass (channels).
        self.before_flush: list[Callable[[], None]] = []
        self._peek_data = ffi.new("const char **")
        self._peek_flags = ffi.new("uint32_t *")

    # -- sending -----------------------------------------------------------------

    def forget(self, dst: int) -> None:
        """Shard ``dst`` is dead: drop what was queued for it."""
        self._outboxes[dst].clear()
        if dst in self._dirty:
            self._dirty.remove(dst)
        self._unsent[dst].clear()
        self._blocked.discard(dst)

    @enable_ki_protection
    def post(self, dst: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue ``fn(*args)`` for shard ``dst``. Hot path: one append."""
        box = self._outboxes[dst]
        if not box:
            self._dirty.append(dst)
        try:
            box.append((_KEYS[fn], args))
        except KeyError:
            raise TypeError(
                f"{fn!r} is not a message handler; decorate it with @message_handler"
            ) from None

    def flush(self) -> None:
        if self.before_flush:
            callbacks = self.before_flush
            self.before_flush = []
            for callback in callbacks:
                callback()
        if self._dirty:
            for dst in self._dirty:
                box = self._outboxes[dst]
                self._unsent[dst].append([pickle.dumps(box, 5), 0])
                box.clear()
                self._blocked.add(dst)
            self._dirty.clear()
        if self._blocked:
            self._push_blocked()

    def _push_blocked(self) -> None:
        take_doorbell = lib.shard_take_doorbell
        for dst in list(self._blocked):
            ring = self._out_rings[dst]
            assert ring is not None
            queue = self._unsent[dst]
            pushed = False
            while queue:
                entry = queue[0]
                payload, offset = entry
                new_offset = ring.push_from(payload, offset)
                if new_offset != offset:
                    pushed = True
                if new_offset < len(payload):
                    entry[1] = new_offset
                    break
                queue.popleft()
            if pushed and take_doorbell(self._dst_flags[dst]):
                self.area.ring_doorbell(dst)
            if not queue:
                self._blocked.discard(dst)

    # -- receiving ---------------------------------------------------------------

    def poll(self) -> bool:
        if lib.rings_pending(self._in_array, self._in_count) < 0:
            return False
        peek = lib.ring_peek
        pop = lib.ring_pop
        data = self._peek_data
        flags = self._peek_flags
        for ring in self._in_rings:
            ptr = ring.ptr
            for _ in range(_RECORDS_PER_POLL):
                length = peek(ptr, data, flags)
                if length < 0:
                    break
                view = ffi.buffer(data[0], length)
                partial = self._partial.get(ring.src)
                if flags[0] & FRAGMENT:
                    if partial is None:
                        partial = self._partial[ring.src] = bytearray()
                    partial += view
                    entries = None
                elif partial is not None:
                    partial += view
                    del self._partial[ring.src]
                    entries = pickle.loads(partial)
                else:
                    entries = pickle.loads(view)
                del view
                if pop(ptr, length):
                    self.area.ring_doorbell(ring.src)
                if entries is not None:
                    self._dispatch(entries)
        if self._blocked:
            # The consumer may have rung us because it freed space.
            self._push_blocked()
        return True

    def _dispatch(self, entries: list[tuple[str, tuple[Any, ...]]]) -> None:
        handlers = HANDLERS
        for key, args in entries:
            fn = handlers.get(key) or _resolve_handler(key)
            try:
                fn(*args)
            except Exception as exc:
                raise ShardioInternalError(
                    f"shard {self.shard} failed to handle a message for {key}"
                ) from exc

    # -- sleeping ----------------------------------------------------------------

    def prepare_to_sleep(self) -> bool:
        if self._blocked:
            # A ring is full: sleep only once its consumer promised a doorbell.
            for dst in self._blocked:
                ring = self._out_rings[dst]
                assert ring is not None
                entry = self._unsent[dst][0]
                remaining = min(len(entry[0]) - entry[1], ring.fragment_size)
                if ring.want_space(remaining):
                    return False
        return not lib.shard_prepare_sleep(self._flag, self._in_array, self._in_count)

    def after_sleep(self) -> None:
        lib.shard_end_sleep(self._flag)

    def drain_doorbell(self) -> None:
        try:
            os.eventfd_read(self.doorbell)
        except BlockingIOError:
            pass

    @property
    def idle(self) -> bool:
        """Nothing queued to send, nothing half-sent."""
        return not self._dirty and not self._blocked and not self.before_flush
