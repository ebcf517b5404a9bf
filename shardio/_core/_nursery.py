"""Nurseries: the only way to start a task, and the guarantee that it ends.

A nursery is opened by a task (its *parent*) with ``async with
open_nursery()``. The parent's body counts as a child (the "nested child"),
and the block does not exit until every child, nested or spawned, has
finished. A child that raises cancels the nursery's scope, so its siblings
unwind too; every exception that escaped a child is then raised out of the
block as one :class:`BaseExceptionGroup` (Trio's strict mode: always a
group, even for one exception).

``start()`` runs a child *inside* the call at first -- in a private, inner
nursery -- so that errors before ``task_status.started()`` come out of
``start()`` itself; ``started()`` then moves the task, and the cancel-status
nodes under it, into the real nursery.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from types import CoroutineType, FunctionType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from ._cancel import CancelReason, CancelScope, CancelStatus
from ._exceptions import Cancelled, ShardioInternalError
from ._ki import enable_ki_protection
from ._pickling import ShardLocal
from ._run import check_coroutine, explain_uncallable
from ._state import GLOBAL_RUN_CONTEXT, current_task
from ._traps import Abort, RaiseCancelT, cancel_shielded_checkpoint, wait_task_rescheduled

if TYPE_CHECKING:
    from ._run import Task

StatusT = TypeVar("StatusT")

_DEFERRABLE_MASK = inspect.CO_COROUTINE | inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


class _NoStatus:
    def __repr__(self) -> str:
        return "<no status>"


_NO_STATUS: Any = _NoStatus()


class TaskStatus(ShardLocal, Generic[StatusT]):
    """Passed as ``task_status`` to a function started with ``nursery.start()``.

    Call :meth:`started` once the task is ready; ``start()`` then returns the
    value passed to it and the task moves into the nursery.
    """

    __slots__ = ("_new_nursery", "_old_nursery", "_value")

    def __init__(self, old_nursery: Nursery, new_nursery: Nursery) -> None:
        self._old_nursery = old_nursery
        self._new_nursery = new_nursery
        self._value: Any = _NO_STATUS

    def __repr__(self) -> str:
        return f"<TaskStatus for {self._new_nursery!r}, value={self._value!r}>"

    @enable_ki_protection
    def started(self, value: StatusT | None = None) -> None:
        """Report that the task is ready; ``start()`` returns ``value``."""
        if self._value is not _NO_STATUS:
            raise RuntimeError("task_status.started() was called twice; call it once")
        self._value = value
        old, new = self._old_nursery, self._new_nursery
        # If start() itself was cancelled, the task stays where it is: it is
        # about to unwind, and its Cancelled must meet the scope that was
        # cancelled, not land in a nursery that is not.
        if old._cancel_status.effectively_cancelled:
            return
        if new._closed:
            raise ShardioInternalError("start() let its target nursery close early")
        children = old._children
        old._children = {}
        for task in children:
            task._parent_nursery = new
            task._eventual_parent_nursery = None
            new._children[task] = None
        # Detach everything under the old nursery's cancel status first, then
        # attach it under the new one: attaching may run abort functions, and
        # those must not see a half-moved tree.
        old_status = old._cancel_status
        statuses = list(old_status.children)
        tasks = [t for t in old_status.tasks if t is not old._parent_task]
        for status in statuses:
            status.parent = None
        for task in tasks:
            task._activate_cancel_status(None)
        for status in statuses:
            status.parent = new._cancel_status
        for task in tasks:
            task._activate_cancel_status(new._cancel_status)
        old._check_nursery_closed()


class _IgnoredTaskStatus(TaskStatus[Any]):
    __slots__ = ()

    def __init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return "TASK_STATUS_IGNORED"

    def __reduce__(self) -> str:
        # The singleton, by name: default arguments of functions sent to
        # other shards are it.
        return "TASK_STATUS_IGNORED"

    def started(self, value: Any = None) -> None:
        pass


#: The default for a ``task_status`` parameter, so that a function written for
#: ``nursery.start()`` can also be awaited directly.
TASK_STATUS_IGNORED: TaskStatus[Any] = _IgnoredTaskStatus()


class Nursery(ShardLocal):
    """A set of child tasks whose lifetime is bounded by an ``async with`` block.

    Created by :func:`open_nursery`. ``cancel_scope`` cancels the block and
    every child.
    """

    def __init__(self, parent_task: Task, cancel_scope: CancelScope) -> None:
        self._parent_task = parent_task
        self._runner = parent_task._runner
        if parent_task._child_nurseries:
            parent_task._child_nurseries.append(self)
        else:
            parent_task._child_nurseries = [self]
        #: The scope around the nursery block and all its children.
        self.cancel_scope = cancel_scope
        assert cancel_scope._status is not None
        self._cancel_status: CancelStatus = cancel_scope._status
        self._children: dict[Task, None] = {}
        self._pending_excs: list[BaseException] = []
        self._nested_child_running = True
        self._parent_waiting_in_aexit = False
        self._pending_starts = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<shardio.Nursery at {id(self):#x}, {len(self._children)} children>"

    @property
    def child_tasks(self) -> frozenset[Task]:
        """The tasks currently running in this nursery."""
        return frozenset(self._children)

    @property
    def parent_task(self) -> Task:
        """The task that opened this nursery."""
        return self._parent_task

    def _add_exc(self, exc: BaseException, reason: CancelReason) -> None:
        self._pending_excs.append(exc)
        self.cancel_scope._cancel(reason)

    def _check_nursery_closed(self) -> None:
        if not (self._nested_child_running or self._children or self._pending_starts):
            self._closed = True
            if self._parent_waiting_in_aexit:
                self._parent_waiting_in_aexit = False
                GLOBAL_RUN_CONTEXT.runner.reschedule(self._parent_task)

    def _child_finished(self, task: Task, exc: BaseException | None) -> None:
        # Hot path: called once for every task that ends.
        children = self._children
        del children[task]
        if exc is not None:
            self._add_exc(
                exc,
                CancelReason("nursery", f"child task raised {exc!r}", repr(task)),
            )
        if not children:
            self._check_nursery_closed()

    async def _nested_child_finished(
        self, nested_child_exc: BaseException | None
    ) -> BaseExceptionGroup[BaseException] | None:
        if nested_child_exc is not None:
            self._add_exc(
                nested_child_exc,
                CancelReason(
                    "nursery",
                    f"the nursery block raised {nested_child_exc!r}",
                    repr(self._parent_task),
                ),
            )
        self._nested_child_running = False
        self._check_nursery_closed()
        if not self._closed:
            # Wait for the children. A cancellation arriving now is not an
            # error of this nursery (the children see it through the status
            # tree); anything else thrown at us (KeyboardInterrupt) is kept.
            def aborted(raise_cancel: RaiseCancelT) -> Abort:
                try:
                    raise_cancel()
                except Cancelled:
                    pass
                except BaseException as exc:
                    self._add_exc(exc, CancelReason("KeyboardInterrupt"))
                return Abort.FAILED

            self._parent_waiting_in_aexit = True
            await wait_task_rescheduled(aborted)
        else:
            # Nothing to wait for; still a schedule point (not a cancel
            # point), like the branch above.
            await cancel_shielded_checkpoint()
        popped = self._parent_task._child_nurseries.pop()
        assert popped is self
        if self._pending_excs:
            try:
                return BaseExceptionGroup("Exceptions from shardio nursery", self._pending_excs)
            finally:
                del self._pending_excs
        return None

    # -- starting tasks -----------------------------------------------------------

    @enable_ki_protection
    def start_soon(
        self,
        async_fn: Callable[..., Awaitable[Any]],
        *args: Any,
        name: object = None,
        shard: int | None = None,
    ) -> None:
        """Start ``async_fn(*args)`` as a child task of this nursery.

        Returns at once; the task first runs at the next scheduling batch.
        ``name`` (default: the function's qualified name) shows in reprs and
        tracebacks.

        ``shard=k`` runs it on shard ``k``, still as a child of this nursery:
        the nursery waits for it, its exception propagates here (with its
        own type), and it is cancelled with the nursery. Its function and
        arguments are pickled now (a ``TypeError`` names what cannot be).
        """
        if shard is not None:
            from ._remote import prepare_call, remote_child

            prepared = prepare_call(shard, async_fn, args, child=True)
            if prepared is not None:
                proxy_name = name if name is not None else _remote_name(async_fn, shard)
                self.start_soon(remote_child, shard, prepared, async_fn, name=proxy_name)
                return
        # Hot path. A plain async def function whose arguments bind for sure
        # (exactly its positional parameters, no *args/**kwargs/keyword-only)
        # gets its coroutine made at the first step: see _run.py's docstring.
        if type(async_fn) is FunctionType:
            code = async_fn.__code__
            if (
                code.co_flags & _DEFERRABLE_MASK == inspect.CO_COROUTINE
                and code.co_argcount == len(args)
                and not code.co_kwonlyargcount
            ):
                self._runner.spawn_coro(
                    None,
                    self,
                    async_fn if name is None else name,
                    deferred_fn=async_fn,
                    deferred_args=args,
                )
                return
        # The fast case of coroutine_or_error() inlined.
        try:
            coro = async_fn(*args)
        except TypeError:
            explain_uncallable(async_fn, "start_soon")
            raise
        else:
            if type(coro) is not CoroutineType:
                coro = check_coroutine(coro, async_fn, "start_soon")
        self._runner.spawn_coro(coro, self, async_fn if name is None else name)

    @enable_ki_protection
    async def start(
        self,
        async_fn: Callable[..., Awaitable[Any]],
        *args: Any,
        name: object = None,
        shard: int | None = None,
    ) -> Any:
        """Start a child task and wait until it reports that it is ready.

        ``async_fn`` must accept a ``task_status`` keyword argument and call
        ``task_status.started(value)``; ``start()`` returns ``value``. Until
        then the child runs "inside" this call: if it raises, the exception
        comes out of ``start()`` (not out of the nursery), and cancelling
        ``start()`` cancels it. After ``started()``, it is an ordinary child
        of this nursery.

        ``shard=k`` starts it on shard ``k``: the remote function gets a
        ``task_status`` whose ``started(value)`` makes this call return
        ``value`` (pickled back); otherwise as above.
        """
        if shard is not None:
            from ._remote import prepare_call, remote_start

            prepared = prepare_call(shard, async_fn, args, child=True)
            if prepared is not None:
                proxy_name = name if name is not None else _remote_name(async_fn, shard)
                return await self.start(remote_start, shard, prepared, async_fn, name=proxy_name)
        if self._closed:
            raise RuntimeError(
                "this nursery is closed to new tasks: its 'async with' block has ended "
                "and all its children have exited"
            )
        self._pending_starts += 1
        try:
            try:
                async with open_nursery() as old_nursery:
                    task_status: TaskStatus[Any] = TaskStatus(old_nursery, self)
                    thunk = functools.partial(async_fn, task_status=task_status)
                    task = GLOBAL_RUN_CONTEXT.runner.spawn_impl(
                        thunk, args, old_nursery, name, what="start"
                    )
                    task._eventual_parent_nursery = self
            except BaseExceptionGroup as group:
                # The private nursery holds only this child: unwrap its error,
                # so start() raises what the child raised.
                if len(group.exceptions) == 1:
                    _raise_keeping_context(group.exceptions[0])
                raise ShardioInternalError(
                    "the private nursery of start() ended with several errors"
                ) from group
            if task_status._value is _NO_STATUS:
                raise RuntimeError(
                    f"{task!r} exited without calling task_status.started(); a function "
                    "given to nursery.start() must call it once it is ready"
                )
            return task_status._value
        finally:
            self._pending_starts -= 1
            self._check_nursery_closed()


def _remote_name(async_fn: object, shard: int) -> str:
    from ._run import _name_of

    return f"{_name_of(async_fn)} (on shard {shard})"


def _raise_keeping_context(exc: BaseException) -> NoReturn:
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


class NurseryManager:
    """The async context manager returned by :func:`open_nursery`."""

    __slots__ = ("_nursery", "_scope")

    @enable_ki_protection
    async def __aenter__(self) -> Nursery:
        self._scope = CancelScope()
        self._scope.__enter__()
        self._nursery = Nursery(current_task(), self._scope)
        return self._nursery

    @enable_ki_protection
    async def __aexit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        new_exc = await self._nursery._nested_child_finished(exc)
        combined = self._scope._close(new_exc)
        if combined is None:
            return True
        context = combined.__context__
        try:
            raise combined
        finally:
            combined.__context__ = context
            del combined, context, new_exc

    def __enter__(self) -> NoReturn:
        raise RuntimeError("a nursery is an async context manager: use 'async with open_nursery()'")

    def __exit__(self, *args: object) -> NoReturn:  # pragma: no cover - __enter__ raised
        raise AssertionError("unreachable")


def open_nursery() -> NurseryManager:
    """Open a nursery: ``async with shardio.open_nursery() as nursery: ...``.

    The block waits for every task started in the nursery. If any of them
    (or the block) raises, the others are cancelled and the exceptions come
    out together as a :class:`BaseExceptionGroup`.
    """
    return NurseryManager()
