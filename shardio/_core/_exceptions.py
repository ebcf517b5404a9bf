"""The exceptions raised by the core runtime.

They keep Trio's names and meanings, so that code written against Trio's
error handling reads the same under shardio.
"""

from __future__ import annotations

from typing import Any, Literal, NoReturn, TypeAlias

CancelSource: TypeAlias = Literal[
    "KeyboardInterrupt", "deadline", "explicit", "nursery", "shutdown", "remote", "unknown"
]


class ShardioInternalError(Exception):
    """The runtime found its own state inconsistent.

    Raised by :func:`shardio.run` when a bug in shardio, or a misuse of the
    :mod:`shardio.lowlevel` API, broke an invariant the scheduler relies on.
    After this, no guarantee holds; please report it with the traceback.
    """


class RunFinishedError(RuntimeError):
    """The :func:`shardio.run` this call was meant for has already returned."""


class WouldBlock(Exception):
    """Raised by a ``*_nowait`` function when the blocking version would block."""


class _NoPublicConstructor(type):
    """Metaclass for classes that only the runtime may instantiate."""

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor; "
            "to cancel work, call cancel() on a CancelScope (or use move_on_after/fail_after)"
        )

    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


class Cancelled(BaseException, metaclass=_NoPublicConstructor):
    """Raised by a checkpoint when an enclosing cancel scope is cancelled.

    Let it propagate: the cancel scope that was cancelled catches it. It derives
    from :class:`BaseException` so that ``except Exception`` does not swallow it.
    You cannot raise it yourself; call :meth:`CancelScope.cancel` instead.

    ``source`` says why the scope was cancelled (``"deadline"``, ``"explicit"``,
    ``"nursery"`` when a sibling task failed, ``"KeyboardInterrupt"``,
    ``"remote"`` when the cancellation came from another shard, ...), ``reason``
    is the optional text passed to :meth:`CancelScope.cancel`.
    """

    source: CancelSource
    reason: str | None
    source_task: str | None

    def __init__(
        self,
        *,
        source: CancelSource = "unknown",
        reason: str | None = None,
        source_task: str | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.reason = reason
        self.source_task = source_task

    def __str__(self) -> str:
        text = f"cancelled due to {self.source}"
        if self.reason is not None:
            text += f" with reason {self.reason!r}"
        if self.source_task is not None:
            text += f" from task {self.source_task}"
        return text

    def __reduce__(self) -> Any:
        return (_rebuild_cancelled, (self.source, self.reason, self.source_task))


def _rebuild_cancelled(
    source: CancelSource, reason: str | None, source_task: str | None
) -> Cancelled:
    exc: Cancelled = Cancelled._create(source=source, reason=reason, source_task=source_task)
    return exc


class TooSlowError(Exception):
    """Raised by :func:`fail_after` and :func:`fail_at` when the deadline passes."""


class BusyResourceError(Exception):
    """Two tasks tried to use a resource that only one may use at a time.

    For example, two tasks receiving from the same stream at once.
    """


class ClosedResourceError(Exception):
    """The resource was used after *your* code closed it."""


class BrokenResourceError(Exception):
    """The resource failed because of something outside your code.

    For example, the peer reset the connection, or the other end of a channel
    was closed. ``__cause__`` often carries the underlying error.
    """


class EndOfChannel(Exception):
    """Every sending end of the channel is closed and the buffer is drained."""


class ShardCrashed(BrokenResourceError):
    """A shard's process died.

    ``shard`` is its index; ``exitcode`` the code it exited with, or ``None``
    if a signal killed it, in which case ``signal`` is that signal's number.
    A crash fails the whole run: :func:`shardio.run` cancels everything and
    raises this.
    """

    def __init__(self, shard: int, exitcode: int | None, signal: int | None) -> None:
        self.shard = shard
        self.exitcode = exitcode
        self.signal = signal
        if signal is not None:
            import signal as signal_module

            how = f"was killed by {signal_module.Signals(signal).name}"
        else:
            how = f"exited with code {exitcode}"
        super().__init__(f"shard {shard} {how}")

    def __reduce__(self) -> Any:
        return (ShardCrashed, (self.shard, self.exitcode, self.signal))


class RemoteTraceback(Exception):
    """The traceback of an exception raised on another shard.

    Attached as the ``__cause__`` of the exception that crossed shards, so
    the printed traceback shows both where it was raised and where it arrived.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RemoteError(Exception):
    """An exception from another shard that could not be sent as itself.

    Its type could not be pickled (or rebuilt here), so it arrives as this,
    with ``type_name``, ``message``, the remote ``traceback_text`` and the
    ``shard`` it came from.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str, shard: int) -> None:
        super().__init__(f"{type_name}: {message} (raised on shard {shard})")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.shard = shard

    def __reduce__(self) -> Any:
        return (RemoteError, (self.type_name, self.message, self.traceback_text, self.shard))
