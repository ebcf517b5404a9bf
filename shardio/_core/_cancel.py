"""Cancel scopes, the cancel-status tree, and the deadline heap.

How cancellation reaches a task
-------------------------------
Every entered :class:`CancelScope` owns a :class:`CancelStatus` node. The nodes
form a tree that mirrors how scopes nest: a task always points at exactly one
node (the innermost scope it is inside), and a new task starts at the node of
its nursery's scope. ``effectively_cancelled`` on a node is the one bit the hot
path reads: it is true when the node's own scope was cancelled, or when the
parent node is effectively cancelled and this scope is not shielded.

The bit is computed when something changes (``cancel()``, a shield toggled, a
node re-parented), never at checkpoints: :meth:`CancelStatus.recalculate` walks
the subtree below the change, and for each node that *becomes* cancelled it
offers the cancellation to every task parked there. A checkpoint is then just
"is my node's bit set?".

Deadlines sit in a binary heap of ``(deadline, seq, scope)`` entries kept by
the runner. Moving a deadline pushes a new entry and leaves the old one in
place; an entry is live only while it matches the scope's registered deadline,
so stale ones are skipped when they surface and the heap is rebuilt when they
outnumber the live ones. (A sorted container would pay on every change; the
heap pays only O(log n) pushes.)

Misnesting
----------
Scopes are supposed to be exited in the reverse order of entry, by the task
that entered them. When user code breaks that rule (a generator holding a
scope across yields, a scope handed to another task), exiting raises a
``RuntimeError`` that says what happened, and the abandoned inner nodes stay
cancelled so their tasks still unwind.
"""

from __future__ import annotations

import heapq
import itertools
from math import inf, isnan
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn

from ._exceptions import Cancelled, CancelSource
from ._ki import enable_ki_protection
from ._pickling import ShardLocal
from ._state import GLOBAL_RUN_CONTEXT, current_runner, current_task

if TYPE_CHECKING:
    from ._run import Task

MISNESTING_ADVICE = """
Cancel scopes and nurseries must be exited in the reverse order they were
entered, by the task that entered them. Common causes: a `with` block around a
`yield` in a (async) generator, or passing a scope to another task. From here
on, shardio does its best to unwind, but makes no promises."""


class CancelReason:
    """Why a scope was cancelled; copied into each :class:`Cancelled` it raises."""

    __slots__ = ("reason", "source", "source_task")

    def __init__(
        self, source: CancelSource, reason: str | None = None, source_task: str | None = None
    ) -> None:
        self.source = source
        self.reason = reason
        self.source_task = source_task


_DEADLINE_REASON = CancelReason("deadline")


class CancelStatus:
    """A node of the cancel-status tree (see the module docstring)."""

    __slots__ = (
        "_parent",
        "abandoned_by_misnesting",
        "children",
        "effectively_cancelled",
        "scope",
        "tasks",
    )

    def __init__(self, scope: CancelScope, parent: CancelStatus | None) -> None:
        self.scope = scope
        self._parent: CancelStatus | None = None
        # dicts used as insertion-ordered sets: cancellation reaches tasks in
        # the order they arrived, which keeps runs reproducible.
        self.children: dict[CancelStatus, None] = {}
        self.tasks: dict[Task, None] = {}
        self.effectively_cancelled = False
        self.abandoned_by_misnesting = False
        self.parent = parent

    @property
    def parent(self) -> CancelStatus | None:
        return self._parent

    @parent.setter
    def parent(self, parent: CancelStatus | None) -> None:
        if self._parent is not None:
            del self._parent.children[self]
        self._parent = parent
        if parent is not None:
            parent.children[self] = None
            self.recalculate()

    def encloses(self, other: CancelStatus | None) -> bool:
        """Is ``other`` this node or one of its descendants?"""
        while other is not None:
            if other is self:
                return True
            other = other._parent
        return False

    @property
    def parent_cancellation_is_visible_to_us(self) -> bool:
        parent = self._parent
        return parent is not None and not self.scope._shield and parent.effectively_cancelled

    def recalculate(self) -> None:
        """Bring ``effectively_cancelled`` up to date here and below.

        Depth-first with an explicit stack; stops descending where nothing
        changed. Tasks parked under a node that becomes cancelled are offered
        the cancellation at once.
        """
        todo = [self]
        while todo:
            node = todo.pop()
            scope = node.scope
            inherited = node.parent_cancellation_is_visible_to_us
            cancelled = scope._cancel_called or inherited
            if cancelled == node.effectively_cancelled:
                continue
            if cancelled and scope._cancel_reason is None and inherited:
                assert node._parent is not None
                scope._cancel_reason = node._parent.scope._cancel_reason
            node.effectively_cancelled = cancelled
            if cancelled:
                for task in list(node.tasks):
                    task._attempt_delivery_of_any_pending_cancel()
            # Reversed onto the stack, so children are visited in the order
            # they were created: cancellation reaches older work first.
            todo.extend(reversed(node.children))

    def _mark_abandoned(self) -> None:
        todo = [self]
        while todo:
            node = todo.pop()
            node.abandoned_by_misnesting = True
            todo.extend(node.children)

    def close(self) -> None:
        self.parent = None
        if self.tasks or self.children:
            # Misnesting left tasks or scopes under this node. Keep them
            # cancelled (and detached) so they unwind; CancelScope._close or
            # Runner.task_exited reports the error.
            self._mark_abandoned()
            self.effectively_cancelled = True
            for task in list(self.tasks):
                task._attempt_delivery_of_any_pending_cancel()
            for child in list(self.children):
                child.recalculate()

    def effective_deadline(self) -> float:
        deadline = inf
        node: CancelStatus | None = self
        while node is not None:
            if node.effectively_cancelled:
                return -inf
            deadline = min(deadline, node.scope._deadline)
            if node.scope._shield:
                break
            node = node._parent
        return deadline

    def make_cancelled(self) -> Cancelled:
        reason = self.scope._cancel_reason
        if reason is None:
            exc: Cancelled = Cancelled._create(source="unknown", reason="misnesting")
        else:
            exc = Cancelled._create(
                source=reason.source, reason=reason.reason, source_task=reason.source_task
            )
        return exc

    def raise_cancelled(self) -> NoReturn:
        raise self.make_cancelled()


class Deadlines:
    """The runner's heap of scope deadlines (see the module docstring)."""

    __slots__ = ("_active", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, CancelScope]] = []
        self._active = 0
        self._seq = itertools.count()

    def add(self, deadline: float, scope: CancelScope) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), scope))
        self._active += 1

    def remove(self) -> None:
        self._active -= 1

    def next_deadline(self) -> float:
        heap = self._heap
        while heap:
            deadline, _, scope = heap[0]
            if deadline == scope._registered_deadline:
                return deadline
            heapq.heappop(heap)
        return inf

    def _prune(self) -> None:
        # Rebuild when stale entries dominate, so a program that keeps moving
        # one deadline does not grow the heap without bound.
        if self._active * 2 + 1000 < len(self._heap):
            self._heap = [e for e in self._heap if e[0] == e[2]._registered_deadline]
            heapq.heapify(self._heap)

    def expire(self, now: float) -> bool:
        """Cancel every scope whose deadline is ``<= now``; say if any was."""
        heap = self._heap
        did_something = False
        while heap and heap[0][0] <= now:
            deadline, _, scope = heapq.heappop(heap)
            if deadline == scope._registered_deadline:
                did_something = True
                # _cancel() unregisters the deadline (sets it to inf).
                scope._cancel(_DEADLINE_REASON)
        self._prune()
        return did_something


class CancelScope(ShardLocal):
    """A region of code that can be cancelled, explicitly or by a deadline.

    ``with CancelScope(deadline=..., shield=...) as scope:`` -- Trio's cancel
    scope. :meth:`cancel` (or reaching ``deadline``, on the run's clock) makes
    every checkpoint inside raise :class:`Cancelled`, which the scope catches
    when it exits (``cancelled_caught`` then says so). A ``shield`` scope
    hides cancellation of enclosing scopes from the code inside it.

    A scope may be entered once. The deadline and shield may be changed at any
    time, also from other tasks.
    """

    __slots__ = (
        "_cancel_called",
        "_cancel_reason",
        "_deadline",
        "_entered",
        "_registered_deadline",
        "_relative_deadline",
        "_shield",
        "_status",
        "cancelled_caught",
    )

    def __init__(
        self, *, deadline: float = inf, relative_deadline: float = inf, shield: bool = False
    ) -> None:
        if isnan(deadline):
            raise ValueError("deadline must not be NaN")
        if isnan(relative_deadline):
            raise ValueError("relative_deadline must not be NaN")
        if relative_deadline < 0:
            raise ValueError(f"relative_deadline must be >= 0, not {relative_deadline}")
        if relative_deadline != inf and deadline != inf:
            raise ValueError("give a CancelScope a deadline or a relative_deadline, not both")
        self._deadline = float(deadline)
        self._relative_deadline = float(relative_deadline)
        self._shield = bool(shield)
        self._status: CancelStatus | None = None
        self._entered = False
        self._registered_deadline = inf
        self._cancel_called = False
        self._cancel_reason: CancelReason | None = None
        #: True if this scope caught a :class:`Cancelled` on exit.
        self.cancelled_caught = False

    # -- entering and leaving ------------------------------------------------

    @enable_ki_protection
    def __enter__(self) -> CancelScope:
        task = current_task()
        if self._entered:
            raise RuntimeError(
                "this CancelScope was already entered; a scope can be used for one "
                "'with' block only: create a new CancelScope for each block"
            )
        self._entered = True
        now = task._runner.clock.current_time()
        if self._relative_deadline != inf:
            self._deadline = now + self._relative_deadline
            self._relative_deadline = inf
        if self._deadline <= now:
            self._cancel(_DEADLINE_REASON)
        self._status = CancelStatus(self, task._cancel_status)
        self._update_registered_deadline()
        task._activate_cancel_status(self._status)
        return self

    @enable_ki_protection
    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        remaining = self._close(exc)
        if remaining is None:
            return True
        if remaining is exc:
            return False
        # A new exception (a misnesting error, or a group with the Cancelled
        # taken out): raise it in place of the original, keeping its context.
        context = remaining.__context__
        try:
            raise remaining
        finally:
            remaining.__context__ = context
            del remaining, exc, context

    def _close(self, exc: BaseException | None) -> BaseException | None:
        """Leave the scope; return what should keep propagating (or None)."""
        status = self._status
        if status is None:
            err = RuntimeError(f"{self!r} was exited twice; each scope is exited once")
            err.__context__ = exc
            return err
        task = current_task()
        if task._cancel_status is not status:
            if status.abandoned_by_misnesting:
                # An outer scope was already closed over us and reported the
                # error; another one would only confuse the traceback.
                pass
            elif not status.encloses(task._cancel_status):
                err = RuntimeError(
                    f"cancel scope misnesting: {task!r} exited {self!r}, which it is "
                    f"not inside (it was entered by another task?){MISNESTING_ADVICE}"
                )
                err.__context__ = exc
                return err
            else:
                err = RuntimeError(
                    f"cancel scope misnesting: {task!r} exited {self!r} while still "
                    f"inside an inner scope {task._cancel_status.scope!r} that it "
                    f"entered later{MISNESTING_ADVICE}"
                )
                err.__context__ = exc
                exc = err
                task._activate_cancel_status(status.parent)
        else:
            task._activate_cancel_status(status.parent)
        catches = (
            exc is not None
            and status.effectively_cancelled
            and not status.parent_cancellation_is_visible_to_us
        ) or (task._cancel_status is not status and status.abandoned_by_misnesting)
        if catches:
            if isinstance(exc, Cancelled):
                self.cancelled_caught = True
                exc = None
            elif isinstance(exc, BaseExceptionGroup):
                matched, exc = exc.split(Cancelled)
                if matched:
                    self.cancelled_caught = True
        status.close()
        self._status = None
        self._update_registered_deadline()
        return exc

    # -- cancelling ------------------------------------------------------------

    @enable_ki_protection
    def cancel(self, reason: str | None = None) -> None:
        """Cancel this scope, now or (if not yet entered) as soon as it is.

        Idempotent. ``reason`` is carried by the :class:`Cancelled` exceptions
        this raises, for debugging.
        """
        if self._cancel_called:
            return
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        task = None if runner is None else runner.current_task
        self._cancel(CancelReason("explicit", reason, None if task is None else repr(task)))

    def _cancel(self, reason: CancelReason) -> None:
        if self._cancel_called:
            return
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._cancel_called = True
        if self._status is not None:
            self._status.recalculate()
        self._update_registered_deadline()

    @property
    def cancel_called(self) -> bool:
        """True once :meth:`cancel` was called or the deadline has passed."""
        if (
            not self._cancel_called
            and (self._status is not None or not self._entered)
            and self._deadline != inf
            and self._deadline <= current_runner().clock.current_time()
        ):
            self._cancel(_DEADLINE_REASON)
        return self._cancel_called

    # -- deadline and shield ----------------------------------------------------

    @property
    def deadline(self) -> float:
        """The absolute time (on :func:`current_time`'s clock) at which this
        scope cancels itself; ``inf`` for none. Writable.

        An unentered scope with a relative deadline (``move_on_after``) has no
        absolute one yet: reading or writing this raises ``RuntimeError``.
        """
        self._refuse_if_relative()
        return self._deadline

    @deadline.setter
    @enable_ki_protection
    def deadline(self, new_deadline: float) -> None:
        if isnan(new_deadline):
            raise ValueError("deadline must not be NaN")
        self._refuse_if_relative()
        self._deadline = float(new_deadline)
        self._update_registered_deadline()

    def _refuse_if_relative(self) -> None:
        if self._relative_deadline != inf:
            raise RuntimeError(
                "this unentered CancelScope has a relative deadline; its absolute deadline "
                "is fixed when it is entered. Use .relative_deadline until then"
            )

    @property
    def relative_deadline(self) -> float:
        """The deadline as seconds from now (before entry: from entry). Writable.

        Reading or writing it on an unentered scope that has an absolute
        deadline raises ``RuntimeError``.
        """
        if self._entered:
            return self._deadline - current_runner().clock.current_time()
        if self._deadline != inf:
            raise RuntimeError(
                "this unentered CancelScope has an absolute deadline, not a relative one"
            )
        return self._relative_deadline

    @relative_deadline.setter
    @enable_ki_protection
    def relative_deadline(self, new_value: float) -> None:
        if isnan(new_value):
            raise ValueError("relative_deadline must not be NaN")
        if new_value < 0:
            raise ValueError(f"relative_deadline must be >= 0, not {new_value}")
        if self._entered:
            self._deadline = current_runner().clock.current_time() + float(new_value)
            self._update_registered_deadline()
        elif self._deadline != inf:
            raise RuntimeError(
                "this unentered CancelScope has an absolute deadline, not a relative one"
            )
        else:
            self._relative_deadline = float(new_value)

    @property
    def is_relative(self) -> bool | None:
        """Before entry: whether the deadline is relative. After entry: ``None``."""
        if self._entered:
            return None
        return self._relative_deadline != inf

    @property
    def shield(self) -> bool:
        """While true, cancellation of enclosing scopes does not reach inside.
        Writable, also while the scope is active."""
        return self._shield

    @shield.setter
    @enable_ki_protection
    def shield(self, new_value: bool) -> None:
        if not isinstance(new_value, bool):
            raise TypeError(f"shield must be a bool, not {type(new_value).__name__}")
        self._shield = new_value
        if self._status is not None:
            self._status.recalculate()

    def _update_registered_deadline(self) -> None:
        old = self._registered_deadline
        new = inf if (self._status is None or self._cancel_called) else self._deadline
        if old != new:
            self._registered_deadline = new
            runner = current_runner()
            deadlines = runner.deadlines
            if old != inf:
                deadlines.remove()
            if new != inf:
                deadlines.add(new, self)
                if runner.guest_waiting:
                    runner.wake_guest()  # the wait may have to end sooner now

    def __repr__(self) -> str:
        if self._status is not None:
            binding = "active"
        elif self._entered:
            binding = "exited"
        else:
            binding = "unbound"
        state = ""
        if self._cancel_called:
            state = ", cancelled"
        elif self._deadline != inf:
            runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
            if runner is not None:
                delta = self._deadline - runner.clock.current_time()
                when = "from now" if delta >= 0 else "ago"
                state = f", deadline is {abs(delta):.2f} seconds {when}"
        return f"<shardio.CancelScope at {id(self):#x}, {binding}{state}>"


def current_effective_deadline() -> float:
    """The earliest deadline that applies to the current task right now.

    ``-inf`` if the task is already cancelled, ``inf`` if no deadline applies.
    Shielded scopes hide the deadlines outside them.
    """
    return current_task()._cancel_status.effective_deadline()
