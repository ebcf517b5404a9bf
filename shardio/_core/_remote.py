"""Calls to other shards: ``run_on``, and nursery children on other shards.

The cancel protocol
-------------------
A call from shard A to shard B is three kinds of message, all posted through
the messenger (so A->B messages arrive in order, as do B->A ones):

1. A posts *call* (call id, the pickled function and arguments, A's effective
   deadline) and parks the calling task.
2. B calls the function. A sync function runs right there, in B's scheduler;
   an async one becomes a task in B's service nursery, inside a cancel scope
   with A's deadline -- so it is cancelled at the same instant on both sides,
   the clock being the machine's CLOCK_MONOTONIC in every shard.
3. When it ends, B posts *result*: a value, an exception (with its traceback
   text), or "cancelled".

If the caller is cancelled while parked, its abort function posts *cancel*
(once) and answers ``Abort.FAILED``: the caller keeps waiting. B cancels the
task's scope; the task unwinds and B posts its result like any other. Only
then does the caller wake, so remote work never outlives the call. It then
raises its own ``Cancelled`` -- unless B had finished first, in which case the
result wins, as with any Trio operation that completed before it could be
cancelled. A shielded caller is never offered the cancellation, so it sends
none.

Because cancel follows call on the same ring, B never sees a cancel for a call
it has not received. Because B always drains its rings (every pass, whatever
its tasks wait on), calls in both directions at once cannot deadlock.

Nursery children on another shard are a local *proxy* task that makes such a
call: the proxy belongs to the nursery, so the nursery waits for it, its
exception propagates, and a failing sibling cancels it -- which cancels the
remote task through the protocol above. ``nursery.start(fn, shard=k)`` hands
the remote function a task status whose ``started(value)`` posts *started*
back, and the proxy calls its own ``task_status.started(value)``.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

import outcome

from ._cancel import CancelReason, CancelScope, current_effective_deadline
from ._exceptions import BrokenResourceError, RunFinishedError, TooSlowError
from ._ki import disable_ki_protection, enable_ki_protection
from ._messenger import message_handler
from ._nursery import TASK_STATUS_IGNORED, TaskStatus
from ._pickling import (
    describe_unpicklable,
    dumps,
    function_spec,
    loads,
    pack_exception,
    resolve_function,
    unpack_exception,
)
from ._run import Task, _name_of, explain_uncallable, only_cancelled
from ._shards import ShardState, current_state
from ._state import current_runner, current_task
from ._traps import Abort, RaiseCancelT, checkpoint, wait_task_rescheduled

T = TypeVar("T")

_VALUE, _ERROR, _CANCELLED, _STARTED, _FAILED = range(5)


class OutgoingCall:
    """A call this shard made, waiting for its result."""

    __slots__ = ("cancel_sent", "dst", "error", "on_started", "task")

    def __init__(self, task: Task, dst: int, on_started: TaskStatus[Any] | None) -> None:
        self.task = task
        self.dst = dst
        self.on_started = on_started
        self.cancel_sent = False
        # Raised instead of the result: the call failed on this side (its
        # started() value could not be rebuilt here).
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        current_runner().reschedule(self.task, outcome.Error(error))


@overload
async def run_on(shard: int, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...


@overload
async def run_on(shard: int, fn: Callable[..., T], *args: Any) -> T: ...


async def run_on(shard: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on shard ``shard`` and return its result.

    ``fn`` may be sync or async. Arguments, result and exceptions are
    pickled: importable functions travel by reference, lambdas and closures
    by value. The remote work runs under this task's effective deadline; if
    this task is cancelled while waiting, the remote work is cancelled and
    this call returns only after it has finished. A remote exception is
    raised here with its own type, its remote traceback as ``__cause__``.

    On this shard's own index, ``fn`` runs here, without pickling.
    """
    return await _call(shard, fn, args, None)


def prepare_call(
    shard: int, fn: Callable[..., Any], args: tuple[Any, ...], *, child: bool = False
) -> tuple[str | bytes, bytes | None] | None:
    """Check ``shard`` and pickle the call for it; None if it runs here.

    Raises ``ValueError`` for a bad shard index and a ``TypeError`` naming
    what cannot be pickled -- at the call site, before anything is sent.
    """
    state: ShardState | None = current_runner().shard_state
    count = 1 if state is None else state.count
    if not isinstance(shard, int) or not 0 <= shard < count:
        raise ValueError(f"shard must be an int in range({count}), not {shard!r}")
    if child:
        explain_uncallable(fn, "start_soon")
    else:
        explain_uncallable(fn, "run_on", "shard, ")
    if state is None or shard == state.index:
        return None
    if shard in state.dead:
        raise state.crashed(shard)
    if child and isinstance(fn, types.FunctionType) and not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"a nursery child must be an async function, but {_name_of(fn)} is synchronous; "
            "define it with 'async def', or call it with run_on"
        )
    try:
        return function_spec(fn), (dumps(args) if args else None)
    except Exception:
        for i, arg in enumerate(args):
            if isinstance(arg, Coroutine):
                arg.close()
                raise TypeError(
                    f"argument {i} of {_name_of(fn)} is a coroutine object ({arg!r}), which "
                    f"cannot be sent to shard {shard}: a coroutine runs where it was made. "
                    "Pass the async function and its arguments instead, and call it on the "
                    "other shard"
                ) from None
        described = {f"the function {_name_of(fn)}": fn}
        described.update({f"argument {i} of {_name_of(fn)}": a for i, a in enumerate(args)})
        error = describe_unpicklable(described, shard)
        if error is None:
            raise
        raise error from None


async def _call(
    shard: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    task_status: TaskStatus[Any] | None,
) -> Any:
    prepared = prepare_call(shard, fn, args)
    if prepared is None:
        return await _call_here(fn, args, task_status)
    return await perform_call(shard, prepared, fn, task_status)


@enable_ki_protection
async def perform_call(
    shard: int,
    prepared: tuple[str | bytes, bytes | None],
    fn: Callable[..., Any],
    task_status: TaskStatus[Any] | None,
    *,
    cancel_point: bool = True,
) -> Any:
    """Send a call prepared by :func:`prepare_call` and wait for its result.

    ``run_on`` is a cancel point: a caller already cancelled sends nothing.
    A nursery child on another shard (``cancel_point=False``) is sent
    anyway and runs until its first checkpoint, as a local child does.
    """
    state = current_state()
    task = current_task()
    status = task._cancel_status
    if cancel_point and status.effectively_cancelled:
        status.raise_cancelled()
    if shard in state.dead:
        raise state.crashed(shard)
    call_id = state.next_call_id()
    call = OutgoingCall(task, shard, task_status)
    state.calls_out[call_id] = call
    deadline = current_effective_deadline()
    fn_spec, args_blob = prepared
    state.post(
        shard,
        _handle_call,
        state.index,
        call_id,
        fn_spec,
        args_blob,
        deadline,
        task_status is not None,
        not cancel_point,
    )

    def abort(_: RaiseCancelT) -> Abort:
        if not call.cancel_sent and shard not in state.dead:
            call.cancel_sent = True
            state.post(shard, _handle_cancel, state.index, call_id)
        return Abort.FAILED

    kind, payload = await wait_task_rescheduled(abort)
    if call.error is not None:
        raise call.error
    if kind == _VALUE:
        if payload is None:
            return None
        try:
            return loads(payload)
        except BaseException as exc:  # whatever user rebuilding code raises
            raise TypeError(
                f"the result of {_name_of(fn)} on shard {shard} could not be unpickled "
                f"on shard {state.index}: {exc}"
            ) from exc
    if kind == _ERROR:
        raise unpack_exception(payload, shard)
    if kind == _FAILED:
        raise TypeError(payload)
    assert kind == _CANCELLED
    return await _after_remote_cancel(shard, call.cancel_sent, state)


async def _after_remote_cancel(shard: int, we_asked: bool, state: ShardState) -> Any:
    # The remote work ended in Cancelled. If we asked for that, or our own
    # deadline (the one it ran under) has passed, we are cancelled too: the
    # checkpoint raises our own Cancelled.
    await checkpoint()
    if state.stopping or shard in state.dead:
        raise RunFinishedError(f"shard {shard} stopped before the call finished")
    if we_asked:
        raise BrokenResourceError(
            f"the call on shard {shard} was cancelled at our request, but this task "
            "is no longer cancelled (its scope was shielded meanwhile)"
        )
    raise TooSlowError(
        f"the call on shard {shard} reached the deadline it was given when it was "
        "made; this task's deadline was moved later after the call started"
    )


async def _call_here(fn: Callable[..., Any], args: tuple[Any, ...], task_status: Any) -> Any:
    await checkpoint()
    kwargs = {} if task_status is None else {"task_status": task_status}
    result = fn(*args, **kwargs)
    if isinstance(result, Awaitable):
        return await result
    return result


# -- the callee's side ----------------------------------------------------------------


class _RemoteTaskStatus(TaskStatus[Any]):
    """The ``task_status`` a function started with ``nursery.start(..., shard=k)``
    receives on shard ``k``: ``started(value)`` reports back to the caller."""

    __slots__ = ("_call_id", "_called", "_src")

    def __init__(self, src: int, call_id: int) -> None:
        self._src = src
        self._call_id = call_id
        self._called = False

    def __repr__(self) -> str:
        return f"<TaskStatus of a task started from shard {self._src}>"

    def started(self, value: Any = None) -> None:
        if self._called:
            raise RuntimeError("task_status.started() was called twice; call it once")
        try:
            blob = dumps(value)
        except Exception as exc:
            raise TypeError(
                f"task_status.started() got a value that cannot be sent to shard {self._src}: {exc}"
            ) from exc
        self._called = True
        current_state().post(self._src, _handle_result, self._call_id, _STARTED, blob)


@message_handler
def _handle_call(
    src: int,
    call_id: int,
    fn_spec: str | bytes,
    args_blob: bytes | None,
    deadline: float,
    with_status: bool,
    child: bool,
) -> None:
    state = current_state()
    try:
        fn = resolve_function(fn_spec)
        args = () if args_blob is None else loads(args_blob)
    except BaseException as exc:  # whatever user rebuilding code raises: this call fails
        state.post(
            src,
            _handle_result,
            call_id,
            _FAILED,
            f"the call could not be unpickled on shard {state.index}: {exc!r}",
        )
        return
    try:
        if with_status:
            result = _call_user_with_status(fn, args, _RemoteTaskStatus(src, call_id))
        else:
            result = _call_user(fn, args)
    except BaseException as exc:
        state.post(src, _handle_result, call_id, _ERROR, pack_exception(exc))
        return
    if not isinstance(result, Awaitable):
        if child:
            state.post(
                src,
                _handle_result,
                call_id,
                _FAILED,
                f"{_name_of(fn)} is synchronous, but a nursery child must be an async function "
                "(define it with 'async def', or call it with run_on)",
            )
            return
        _post_value(state, src, call_id, result, fn)
        return
    if state.stopping:
        if hasattr(result, "close"):
            result.close()
        state.post(src, _handle_result, call_id, _CANCELLED, None)
        return
    # The scope exists (and is findable by a cancel) from now on, even if the
    # task that enters it has not run yet: a cancel that arrives right after
    # the call still reaches it, at its first checkpoint.
    scope = CancelScope(deadline=deadline)
    state.calls_in[src, call_id] = scope
    args = (state, src, call_id, result, scope, fn)
    name = f"{_name_of(fn)} (from shard {src})"
    nursery = state.service_nursery
    if nursery is None:
        # The shard has just started; its service nursery opens this pass.
        state.early_calls.append((_serve_call, args, name))
    else:
        nursery.start_soon(_serve_call, *args, name=name)


def _post_value(state: ShardState, src: int, call_id: int, value: Any, fn: Any) -> None:
    if value is None:
        state.post(src, _handle_result, call_id, _VALUE, None)
        return
    try:
        blob = dumps(value)
    except Exception as exc:
        state.post(
            src,
            _handle_result,
            call_id,
            _FAILED,
            f"the result of {_name_of(fn)} on shard {state.index} ({type(value).__name__}) "
            f"cannot be sent back to shard {src}: {exc}",
        )
        return
    state.post(src, _handle_result, call_id, _VALUE, blob)


@enable_ki_protection
async def _serve_call(
    state: ShardState,
    src: int,
    call_id: int,
    awaitable: Awaitable[Any],
    scope: CancelScope,
    fn: Any,
) -> None:
    # Exactly one result goes back, however the task ends. A group that
    # mixes errors with Cancelled goes back whole: the caller's scope takes
    # the Cancelled out, as it would had the work run there.
    reply: tuple[int, Any] | None = (_CANCELLED, None)
    value: Any = None
    try:
        with scope:
            try:
                value = await _await_user(awaitable)
            except BaseException as exc:
                if only_cancelled(exc):
                    raise  # our scope's own cancellation stops at the scope
                reply = (_ERROR, pack_exception(exc))
                return
            reply = None
    finally:
        del state.calls_in[src, call_id]
        if reply is None:
            _post_value(state, src, call_id, value, fn)
        else:
            state.post(src, _handle_result, call_id, *reply)


@disable_ki_protection
def _call_user(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    # The boundary into user code: a second Ctrl-C may interrupt it (_ki.py).
    return fn(*args)


@disable_ki_protection
def _call_user_with_status(
    fn: Callable[..., Any], args: tuple[Any, ...], task_status: TaskStatus[Any]
) -> Any:
    # The same boundary, for a nursery child started with start().
    return fn(*args, task_status=task_status)


@disable_ki_protection
async def _await_user(awaitable: Awaitable[Any]) -> Any:
    # The boundary into user code: a second Ctrl-C may interrupt it (_ki.py).
    return await awaitable


@message_handler
def _handle_cancel(src: int, call_id: int) -> None:
    scope = current_state().calls_in.get((src, call_id))
    if scope is not None:
        scope._cancel(CancelReason("remote", f"the caller on shard {src} was cancelled"))


@message_handler
def _handle_result(call_id: int, kind: int, payload: Any) -> None:
    state = current_state()
    if kind == _STARTED:
        call = state.calls_out.get(call_id)
        if call is None or call.on_started is None or call.error is not None:
            return
        try:
            value = loads(payload)
        except BaseException as exc:  # whatever user rebuilding code raises
            # The start fails here; the remote task is cancelled, and the
            # caller raises this once it has finished.
            call.error = TypeError(
                f"the value the task on shard {call.dst} passed to task_status.started() "
                f"could not be rebuilt on shard {state.index}: {exc!r}"
            )
            call.error.__cause__ = exc
            if not call.cancel_sent:
                call.cancel_sent = True
                state.post(call.dst, _handle_cancel, state.index, call_id)
            return
        call.on_started.started(value)
        return
    call = state.calls_out.pop(call_id, None)
    if call is not None:
        current_runner().reschedule(call.task, outcome.Value((kind, payload)))


# -- nursery children on other shards ---------------------------------------------------


async def remote_child(
    shard: int, prepared: tuple[str | bytes, bytes | None], fn: Callable[..., Any]
) -> None:
    """Proxy task for ``nursery.start_soon(fn, *args, shard=shard)``."""
    await perform_call(shard, prepared, fn, None, cancel_point=False)


async def remote_start(
    shard: int,
    prepared: tuple[str | bytes, bytes | None],
    fn: Callable[..., Any],
    task_status: TaskStatus[Any] = TASK_STATUS_IGNORED,
) -> None:
    """Proxy task for ``await nursery.start(fn, *args, shard=shard)``."""
    await perform_call(shard, prepared, fn, task_status, cancel_point=False)
