"""The epoll I/O manager: ``wait_readable``, ``wait_writable``, ``notify_closing``.

Facts about epoll this code relies on
-------------------------------------
* epoll watches *open file descriptions*, not fd numbers: closing an fd removes
  it from the interest list only when no duplicate remains. A stale entry can
  thus keep reporting events for a number we no longer track, and a reused fd
  number may still be "registered" from the kernel's point of view. So every
  (re)arming first tries ``EPOLL_CTL_MOD`` and falls back to ``EPOLL_CTL_ADD``,
  and events for fds we no longer track are ignored.
* We register with ``EPOLLONESHOT``: after one event the fd is disarmed until
  re-armed. A waiter is woken once per wait, so one-shot matches the API and
  means an fd nobody waits on stops generating wakeups, without an
  ``EPOLL_CTL_DEL`` per wait. The cost is one ``EPOLL_CTL_MOD`` per wait.
* ``EPOLLERR`` and ``EPOLLHUP`` are always reported, and we wake both the reader
  and the writer on them: the I/O call they retry surfaces the real error.
* At most one task may wait for each direction of each fd: two readers of one
  socket would see interleaved data, so the second gets ``BusyResourceError``.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import outcome

from ._exceptions import BusyResourceError, ClosedResourceError
from ._ki import enable_ki_protection
from ._state import current_runner, current_task
from ._traps import Abort, RaiseCancelT, wait_task_rescheduled
from ._wakeup import WakeupSocketpair

if TYPE_CHECKING:
    from ._run import Runner, Task


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FdLike = int | _HasFileno

_READ_FLAGS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_WRITE_FLAGS = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP


class _Waiters:
    __slots__ = ("armed", "read_task", "write_task")

    def __init__(self) -> None:
        self.read_task: Task | None = None
        self.write_task: Task | None = None
        self.armed = 0  # the flags the kernel currently has for this fd


class EpollIOManager:
    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._epoll = select.epoll()
        self._registered: dict[int, _Waiters] = {}
        self.wakeup = WakeupSocketpair()
        # fds that only wake the loop: fd -> what drains them.
        self._wakeup_fds: dict[int, Callable[[], None]] = {}
        self.add_wakeup_fd(self.wakeup.wakeup_sock.fileno(), self.wakeup.drain)

    def add_wakeup_fd(self, fd: int, drain: Callable[[], None]) -> None:
        """Watch ``fd`` (level-triggered) only to wake the loop; ``drain``
        empties it when it fires. For doorbells and completion eventfds."""
        self._wakeup_fds[fd] = drain
        self._epoll.register(fd, select.EPOLLIN)

    def remove_wakeup_fd(self, fd: int) -> None:
        del self._wakeup_fds[fd]
        self._epoll.unregister(fd)

    def close(self) -> None:
        self._epoll.close()
        self.wakeup.close()

    @property
    def waiting_fds(self) -> int:
        return len(self._registered)

    # -- the run loop's side --------------------------------------------------

    def get_events(self, timeout: float) -> list[tuple[int, int]]:
        # maxevents: enough to drain a busy server in a few calls; more would
        # only delay the tasks already runnable.
        return self._epoll.poll(timeout, 1024)

    def process_events(self, events: list[tuple[int, int]]) -> None:
        reschedule = self._runner.reschedule
        wakeup_fds = self._wakeup_fds
        for fd, flags in events:
            if fd in wakeup_fds:
                wakeup_fds[fd]()
                continue
            waiters = self._registered.get(fd)
            if waiters is None:
                continue
            waiters.armed = 0  # one-shot: the kernel disarmed it
            if flags & _READ_FLAGS and waiters.read_task is not None:
                reschedule(waiters.read_task)
                waiters.read_task = None
            if flags & _WRITE_FLAGS and waiters.write_task is not None:
                reschedule(waiters.write_task)
                waiters.write_task = None
            self._update_registration(fd)

    # -- registration ------------------------------------------------------------

    def _update_registration(self, fd: int, *, raise_errors: bool = False) -> None:
        waiters = self._registered[fd]
        wanted = 0
        if waiters.read_task is not None:
            wanted |= select.EPOLLIN
        if waiters.write_task is not None:
            wanted |= select.EPOLLOUT
        if wanted != waiters.armed:
            try:
                try:
                    self._epoll.modify(fd, wanted | select.EPOLLONESHOT)
                except FileNotFoundError:
                    self._epoll.register(fd, wanted | select.EPOLLONESHOT)
                waiters.armed = wanted
            except OSError as exc:
                # Most likely the fd was closed behind our back (or is one
                # epoll cannot watch, like a regular file). Forget it and hand
                # the error to whoever was waiting.
                del self._registered[fd]
                if raise_errors:
                    raise
                for task in (waiters.read_task, waiters.write_task):
                    if task is not None:
                        self._runner.reschedule(task, outcome.Error(exc))
                return
        if not wanted:
            del self._registered[fd]

    async def _wait(self, fd: FdLike, attr: str) -> None:
        if not isinstance(fd, int):
            fd = fd.fileno()
        waiters = self._registered.get(fd)
        if waiters is None:
            waiters = self._registered[fd] = _Waiters()
        if getattr(waiters, attr) is not None:
            what = "reading from" if attr == "read_task" else "writing to"
            raise BusyResourceError(
                f"another task is already {what} fd {fd}; only one task at a time "
                "may wait in each direction"
            )
        task = current_task()
        setattr(waiters, attr, task)
        try:
            self._update_registration(fd, raise_errors=True)
        except OSError:
            # The fd cannot be watched: the caller gets the error itself. A
            # task already waiting in the other direction is told too.
            other = waiters.write_task if attr == "read_task" else waiters.read_task
            if other is not None:
                self._runner.reschedule(
                    other, outcome.Error(OSError(f"fd {fd} can no longer be watched"))
                )
            raise

        def abort(_: RaiseCancelT) -> Abort:
            setattr(waiters, attr, None)
            if self._registered.get(fd) is waiters:
                self._update_registration(fd)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def notify_closing(self, fd: FdLike) -> None:
        if not isinstance(fd, int):
            fd = fd.fileno()
        waiters = self._registered.pop(fd, None)
        if waiters is None:
            return
        for task in (waiters.read_task, waiters.write_task):
            if task is not None:
                self._runner.reschedule(
                    task,
                    outcome.Error(
                        ClosedResourceError("another task closed this fd while it waited")
                    ),
                )
        if waiters.armed:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass


@enable_ki_protection
async def wait_readable(fd: FdLike) -> None:
    """Block until ``fd`` (an int, or an object with ``fileno()``) is readable.

    A checkpoint. Wakes also on error or hang-up, so the following read
    reports it. Raises :class:`BusyResourceError` if another task already
    waits to read the same fd, :class:`ClosedResourceError` if
    :func:`notify_closing` is called meanwhile.
    """
    await current_runner().io_manager._wait(fd, "read_task")


@enable_ki_protection
async def wait_writable(fd: FdLike) -> None:
    """Block until ``fd`` is writable; otherwise as :func:`wait_readable`."""
    await current_runner().io_manager._wait(fd, "write_task")


@enable_ki_protection
def notify_closing(fd: FdLike) -> None:
    """Tell the scheduler that ``fd`` is about to be closed.

    Tasks waiting on it are woken with :class:`ClosedResourceError`. Call it
    *before* closing the fd, so its number cannot be reused meanwhile.
    """
    current_runner().io_manager.notify_closing(fd)
