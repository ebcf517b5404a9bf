"""Shards: one pinned process per core, started before any scheduler runs.

``shardio.run(main, shards=N)`` maps the shared area (the rings and doorbells
of ``_ring.py``), forks ``N - 1`` children, pins every process to its CPU, and
starts one scheduler per process. Shard 0 -- the calling process -- runs
``main``; the others serve what is sent to them. Nothing else is shared: each
shard has its own tasks, its own module globals, its own garbage.

Lifetime
--------
* A child asks the kernel to SIGKILL it when its parent dies
  (``PR_SET_PDEATHSIG``), so killing shard 0 leaves no orphans.
* Shard 0 watches each child through a pidfd. A child that dies while the
  run is live is a crash: calls waiting on it fail with :class:`ShardCrashed`,
  the other shards are told, ``main`` is cancelled, and ``run()`` raises
  :class:`ShardCrashed` once everything has unwound.
* When ``main`` returns or raises, shard 0 posts *stop* to every child, whose
  main task then ends (its remote tasks are cancelled, their callers told),
  and waits until each has exited and been reaped. Only then does ``run()``
  return: no process, fd or mapping outlives it.
* Ctrl-C (SIGINT to the process group) is ignored by the children and turned
  by shard 0 into an orderly cancellation; the cancellation reaches remote
  work as cancel messages. SIGTERM to shard 0 does the same, and ``run()``
  then raises ``SystemExit(143)``. Shard 0 takes both signals over before
  the first fork and blocks them while it forks, so a Ctrl-C at any moment
  of start-up stops the run (it would otherwise interrupt whatever runs at
  that moment: an at-fork hook, leaving its lock held).
* If shard 0's scheduler itself fails (an exception escapes it), the
  children are still told, as if shard 0 had crashed: they fail their calls
  to shard 0 and stop; any still there after :data:`CHILD_EXIT_TIMEOUT`
  seconds is killed. ``run()`` never waits on a child that was not told.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._cancel import CancelReason, CancelScope
from ._exceptions import ShardCrashed
from ._fdpass import FdPassing
from ._io_epoll import wait_readable
from ._ki import StopSignals, enable_ki_protection
from ._messenger import Messenger, message_handler
from ._parking_lot import ParkingLot
from ._ring import SharedArea, set_parent_death_signal
from ._run import Clock, add_poller, check_not_in_run, only_cancelled
from ._run import run as run_one_shard
from ._state import current_runner
from ._traps import Abort, wait_task_rescheduled

if TYPE_CHECKING:
    from ._instrumentation import Instrument
    from ._nursery import Nursery
    from ._remote import OutgoingCall
    from ._xchannel import ChannelId, ChannelSide

#: A remote call that arrived before the service nursery opened:
#: (function, arguments, task name).
EarlyCall = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], str]

T = TypeVar("T")

DEFAULT_IDLE_POLL_US = 200.0

#: Seconds shard 0 waits, after its own scheduler failed, for the children
#: it told to stop before it kills them.
CHILD_EXIT_TIMEOUT = 5.0

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class ShardState:
    """What a shard knows about the run: its index, its peers, its calls."""

    def __init__(
        self,
        index: int,
        count: int,
        area: SharedArea | None,
        fd_passing: FdPassing | None = None,
    ) -> None:
        self.index = index
        self.count = count
        self.area = area
        #: The sockets that carry file descriptors between shards (``_fdpass.py``).
        self.fd_passing = fd_passing
        self.local_fds: dict[tuple[int, int], int] = {}
        self.local_fd_ids = itertools.count()
        self.messenger = Messenger(area, index) if area is not None else None
        #: Calls this shard made and still waits for: call id -> call.
        self.calls_out: dict[int, OutgoingCall] = {}
        #: Remote calls running here: (caller shard, call id) -> their scope.
        self.calls_in: dict[tuple[int, int], CancelScope] = {}
        self._ids = itertools.count()
        #: Cross-shard channels this shard takes part in: id -> its side (the
        #: home, the way to the home, or a former home forwarding to the new one).
        self.channels: dict[ChannelId, ChannelSide] = {}
        self._channel_ids = itertools.count()
        #: Shards known to have crashed.
        self.dead: dict[int, ShardCrashed] = {}
        #: The first crash seen (on shard 0: what run() will raise).
        self.crash: ShardCrashed | None = None
        self.service_nursery: Nursery | None = None
        # Calls that arrived before the service nursery was up.
        self.early_calls: list[EarlyCall] = []
        self.stopping = False
        self._stop_lot = ParkingLot()
        # Shard 0 only: the children and who waits for them to exit.
        self.children: dict[int, int] = {}  # shard -> pid
        self._exited_lot = ParkingLot()

    def close_fds(self) -> None:
        """The run is over: close the fds sent here that nobody received."""
        for fd in self.local_fds.values():
            os.close(fd)
        self.local_fds.clear()
        if self.fd_passing is not None:
            self.fd_passing.close()

    def start_messaging(self) -> None:
        """Register the messenger with this shard's scheduler, as a poller
        woken by the shard's doorbell: the first thing a shard's services do."""
        if self.messenger is not None:
            add_poller(self.messenger, self.messenger.doorbell, self.messenger.drain_doorbell)

    def crashed(self, shard: int) -> ShardCrashed:
        """A new :class:`ShardCrashed` for dead ``shard``, to raise in one task.

        Each waiter gets its own object: one exception raised in two tasks
        would collect both tracebacks, one after the other.
        """
        crash = self.dead[shard]
        return ShardCrashed(crash.shard, crash.exitcode, crash.signal)

    def next_call_id(self) -> int:
        return next(self._ids)

    def next_channel_id(self) -> tuple[int, int]:
        return (self.index, next(self._channel_ids))

    def post(self, dst: int, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` to run on shard ``dst`` (see ``_messenger.py``).

        Posting to this very shard queues it for the next scheduling pass,
        in order with the posts that arrive from elsewhere. Posts to a shard
        known to be dead are dropped.
        """
        if dst == self.index:
            current_runner().entry_queue.append((fn, args))
            return
        if dst in self.dead:
            # Whatever waits for an answer from it was failed with
            # ShardCrashed when the crash was noticed; nothing to send.
            return
        assert self.messenger is not None
        self.messenger.post(dst, fn, args)

    # -- serving remote calls ----------------------------------------------------

    async def host_service_nursery(self) -> None:
        """System task: the nursery remote calls to this shard run in."""
        from ._nursery import open_nursery

        async with open_nursery() as nursery:
            self.service_nursery = nursery
            for fn, args, name in self.early_calls:
                nursery.start_soon(fn, *args, name=name)
            self.early_calls.clear()
            await wait_task_rescheduled(lambda _: Abort.SUCCEEDED)

    # -- stopping ----------------------------------------------------------------

    async def wait_for_stop(self) -> None:
        """A child's main task: serve until shard 0 says stop."""
        if not self.stopping:
            await self._stop_lot.park()

    def handle_stop(self) -> None:
        self.stopping = True
        self._stop_lot.unpark_all()

    # -- crashes -----------------------------------------------------------------

    def peer_crashed(self, crash: ShardCrashed) -> None:
        """Shard ``crash.shard`` is gone: fail what waits on it."""
        if crash.shard in self.dead:
            return
        self.dead[crash.shard] = crash
        if self.crash is None:
            self.crash = crash
        runner = current_runner()
        for call_id, call in list(self.calls_out.items()):
            if call.dst == crash.shard:
                del self.calls_out[call_id]
                call.fail(self.crashed(crash.shard))
        for (src, _), scope in list(self.calls_in.items()):
            if src == crash.shard:
                scope._cancel(CancelReason("remote", f"the caller's shard {src} crashed"))
        if self.messenger is not None:
            self.messenger.forget(crash.shard)
        from ._xchannel import peer_crashed as fail_channels

        fail_channels(self, crash)
        if self.index == 0 and runner.user_nursery is not None:
            runner.user_nursery.cancel_scope._cancel(
                CancelReason("shutdown", f"shard {crash.shard} crashed")
            )
        elif self.index != 0:
            self.handle_stop()

    # -- shard 0: the children -----------------------------------------------------

    async def supervise(self, shard: int, pid: int) -> None:
        """System task on shard 0: reap child ``shard``; a death before stop is a crash."""
        pidfd = os.pidfd_open(pid)
        try:
            with CancelScope(shield=True):
                await wait_readable(pidfd)
        finally:
            os.close(pidfd)
        # The pidfd said the child exited: this returns at once. (Had the
        # wait been abandoned -- this scheduler failing -- the child would
        # still be in self.children for run() to stop and reap.)
        _, status = os.waitpid(pid, 0)  # noqa: ASYNC222
        del self.children[shard]
        self._exited_lot.unpark_all()
        if os.WIFSIGNALED(status):
            crash = ShardCrashed(shard, None, os.WTERMSIG(status))
        elif os.WEXITSTATUS(status) != 0 or not self.stopping:
            crash = ShardCrashed(shard, os.WEXITSTATUS(status), None)
        else:
            return
        self.peer_crashed(crash)
        for other in range(1, self.count):
            if other != shard and other not in self.dead:
                self.post(other, _handle_peer_crash, shard, crash.exitcode, crash.signal)

    async def stop_children(self) -> None:
        """Shard 0, when main is done: tell every child to stop, wait until all exited."""
        self.stopping = True
        for shard in list(self.children):
            if shard not in self.dead:
                self.post(shard, _handle_stop)
        while self.children:
            await self._exited_lot.park()


# -- message handlers (module level: they travel by reference) ------------------------


def current_state() -> ShardState:
    state: ShardState | None = current_runner().shard_state
    assert state is not None
    return state


@message_handler
def _handle_stop() -> None:
    current_state().handle_stop()


@message_handler
def _handle_peer_crash(shard: int, exitcode: int | None, signum: int | None) -> None:
    current_state().peer_crashed(ShardCrashed(shard, exitcode, signum))


# -- public queries ----------------------------------------------------------------


def current_shard() -> int:
    """The index of the shard running this code (0 in a single-shard run)."""
    state = current_runner().shard_state
    return 0 if state is None else state.index


def shard_count() -> int:
    """How many shards this run has."""
    state = current_runner().shard_state
    return 1 if state is None else state.count


# -- starting a run ----------------------------------------------------------------


def _parse_cpu_list(text: str) -> set[int]:
    """``"0-3,6"`` (the kernel's CPU list format) -> ``{0, 1, 2, 3, 6}``."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _cgroup_cpuset() -> set[int] | None:
    """The CPUs this process's cgroup allows, if its cpuset can be read."""
    try:
        with open("/proc/self/cgroup") as lines:
            entries = [line.rstrip("\n").split(":", 2) for line in lines]
    except OSError:
        return None
    candidates = []
    for _, controllers, path in entries:
        if controllers == "":  # cgroup v2
            candidates.append(f"/sys/fs/cgroup{path.rstrip('/')}/cpuset.cpus.effective")
        elif "cpuset" in controllers.split(","):  # cgroup v1
            base = f"/sys/fs/cgroup/cpuset{path.rstrip('/')}"
            candidates += [f"{base}/cpuset.effective_cpus", f"{base}/cpuset.cpus"]
    for candidate in candidates:
        try:
            with open(candidate) as file:
                text = file.read()
        except OSError:
            continue
        if text.strip():
            return _parse_cpu_list(text)
    return None


def allowed_cpus() -> list[int]:
    """The CPUs a shard may be pinned to: those online that the process's
    cgroup allows. Wider than the current affinity mask when the process
    was narrowed (by ``taskset``, say): a shard may widen it again."""
    try:
        with open("/sys/devices/system/cpu/online") as file:
            online = _parse_cpu_list(file.read())
    except (OSError, ValueError):
        return sorted(os.sched_getaffinity(0))
    try:
        cgroup = _cgroup_cpuset()
    except ValueError:
        cgroup = None
    allowed = online if cgroup is None else online & cgroup
    return sorted(allowed or os.sched_getaffinity(0))


def _resolve_cpus(shards: int, cpus: Sequence[int] | bool | None) -> list[int] | None:
    """The CPU of each shard, checked before anything is forked."""
    if cpus is False:
        return None
    if cpus is None or cpus is True:
        available = sorted(os.sched_getaffinity(0))
        if shards > len(available):
            raise ValueError(
                f"shards={shards} but this process may run on only {len(available)} CPUs "
                f"({available}); use fewer shards, or cpus=False to run them unpinned"
            )
        return available[:shards]
    if isinstance(cpus, (str, bytes)) or not isinstance(cpus, Sequence):
        raise TypeError(
            f"cpus must be a sequence of CPU numbers, True, False or None, not {cpus!r}"
        )
    chosen = list(cpus)
    if len(chosen) < shards:
        raise ValueError(f"shards={shards} needs {shards} CPUs, but cpus={chosen} lists fewer")
    chosen = chosen[:shards]
    available = allowed_cpus()
    seen: set[int] = set()
    for cpu in chosen:
        if not isinstance(cpu, int) or isinstance(cpu, bool):
            raise TypeError(f"cpus={chosen}: {cpu!r} is not a CPU number (an int)")
        if cpu not in available:
            raise ValueError(
                f"cpus={chosen}: CPU {cpu} is not one this process may run on; "
                f"the allowed CPUs are {available}"
            )
        if cpu in seen:
            raise ValueError(
                f"cpus={chosen}: CPU {cpu} is listed twice; each shard needs a CPU of its own "
                f"(the allowed CPUs are {available}), or pass cpus=False to run them unpinned"
            )
        seen.add(cpu)
    return chosen


@enable_ki_protection
def run(
    async_fn: Callable[..., Awaitable[T]],
    *args: Any,
    shards: int | None = 1,
    cpus: Sequence[int] | bool | None = None,
    clock: Clock | None = None,
    instruments: Sequence[Instrument] = (),
    stall_threshold: float | None = None,
    idle_poll_us: float | None = None,
) -> T:
    """Run ``async_fn(*args)`` and return its result: on this process alone
    (``shards=1``), or on ``shards`` pinned processes.

    ``shards=None`` means one per CPU of ``cpus`` (default: the process's
    affinity mask). ``cpus=False`` leaves the processes unpinned. Shard 0 --
    this process -- runs ``async_fn``; the others serve work sent to them.
    ``clock`` (a :class:`MockClock`, say) works with one shard only.
    ``instruments`` are installed on every shard. ``stall_threshold``
    (seconds) logs, on the ``shardio.stall`` logger, every shard whose
    scheduler is stuck in one task for longer, with that task's stack.
    ``idle_poll_us`` is how long an idle shard keeps polling its rings
    (and io_uring) before it sleeps: cross-shard latency for CPU time. By
    default :data:`DEFAULT_IDLE_POLL_US` with several shards, 0 with one: a
    single shard has no ring to wait on, and sleeps at once unless asked.
    """
    check_not_in_run()
    if shards is None:
        shards = len(cpus) if isinstance(cpus, Sequence) else len(os.sched_getaffinity(0))
    if not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be a positive int or None, not {shards!r}")
    if idle_poll_us is None:
        idle_poll_us = DEFAULT_IDLE_POLL_US if shards > 1 else 0.0
    elif idle_poll_us < 0:
        raise ValueError(f"idle_poll_us must be >= 0, not {idle_poll_us}")
    if stall_threshold is not None and not stall_threshold > 0:
        raise ValueError(f"stall_threshold must be > 0 seconds (or None), not {stall_threshold}")
    if shards > 1 and clock is not None:
        raise ValueError(
            "a custom clock works with one shard only: every shard must read the "
            "same CLOCK_MONOTONIC for deadlines to travel between them"
        )
    # One shard stays where it is unless asked.
    cpu_list = None if shards == 1 and cpus is None else _resolve_cpus(shards, cpus)
    stop_signals = StopSignals()
    stop_signals.install()
    try:
        if shards == 1:
            return _run_single(
                async_fn,
                args,
                cpu_list,
                clock,
                instruments,
                stall_threshold,
                idle_poll_us,
                stop_signals,
            )
        return _run_sharded(
            async_fn,
            args,
            shards,
            cpu_list,
            instruments,
            stall_threshold,
            idle_poll_us,
            stop_signals,
        )
    finally:
        stop_signals.restore()


def _run_single(
    async_fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    cpu_list: list[int] | None,
    clock: Clock | None,
    instruments: Sequence[Instrument],
    stall_threshold: float | None,
    idle_poll_us: float,
    stop_signals: StopSignals,
) -> T:
    single = ShardState(0, 1, None)
    try:
        return _pinned(  # type: ignore[no-any-return]
            None if cpu_list is None else cpu_list[0],
            run_one_shard,
            async_fn,
            *args,
            clock=clock,
            instruments=instruments,
            shard_state=single,
            stall_threshold=stall_threshold,
            idle_poll=idle_poll_us / 1e6,
            stop_signals=stop_signals,
        )
    finally:
        single.close_fds()


def _run_sharded(
    async_fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    shards: int,
    cpu_list: list[int] | None,
    instruments: Sequence[Instrument],
    stall_threshold: float | None,
    idle_poll_us: float,
    stop_signals: StopSignals,
) -> T:
    area = SharedArea(shards)
    fd_passing = FdPassing(shards)
    parent = os.getpid()
    # Children not reaped yet: each supervisor removes its own when it reaps
    # it, so the clean-up below never signals a pid that may be reused.
    children: dict[int, int] = {}
    state: ShardState | None = None
    try:
        # Blocked while forking: a stop signal waits, and then reaches the
        # stop handler, instead of interrupting a fork or an at-fork hook.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            for shard in range(1, shards):
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child_main(
                        shard,
                        shards,
                        area,
                        fd_passing,
                        parent,
                        cpu_list,
                        idle_poll_us,
                        instruments,
                        stall_threshold,
                    )
                children[shard] = pid
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        state = ShardState(0, shards, area, fd_passing)
        state.children = children
        try:
            result = _pinned(
                None if cpu_list is None else cpu_list[0],
                run_one_shard,
                async_fn,
                *args,
                clock=None,
                instruments=instruments,
                shard_state=state,
                idle_poll=idle_poll_us / 1e6,
                services=_shard0_services,
                stall_threshold=stall_threshold,
                stop_signals=stop_signals,
            )
        except BaseException as exc:
            crash = state.crash
            if crash is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if not only_cancelled(exc):
                crash.__context__ = exc
            raise crash from None
        if state.crash is not None:
            raise state.crash
        return result  # type: ignore[no-any-return]
    finally:
        if children:
            # Normally every child was reaped by its supervisor (and is not
            # in this dict any more); this is for a failure before or during
            # start-up, or of this scheduler.
            _stop_children_after_failure(children, state)
        area.close()
        if state is not None:
            state.close_fds()
        else:
            fd_passing.close()


def _stop_children_after_failure(children: dict[int, int], state: ShardState | None) -> None:
    """Shard 0 failed with children still running: tell them, wait, reap.

    They are told that shard 0 crashed, so whatever waits on shard 0 fails
    at once and they stop; a child that has not exited after
    :data:`CHILD_EXIT_TIMEOUT` seconds (or could not be told) is killed.
    """
    pidfds: dict[int, int] = {}
    for shard, pid in children.items():
        with contextlib.suppress(OSError):
            pidfds[shard] = os.pidfd_open(pid)
    messenger = None if state is None else state.messenger
    try:
        if messenger is not None:
            with contextlib.suppress(Exception):
                for shard in children:
                    messenger.post(shard, _handle_peer_crash, (0, 1, None))
            poller = select.poll()
            for fd in pidfds.values():
                poller.register(fd, select.POLLIN)
            end = time.monotonic() + CHILD_EXIT_TIMEOUT
            waiting = set(pidfds.values())
            while waiting and time.monotonic() < end:
                with contextlib.suppress(Exception):
                    messenger.flush()
                for fd, _ in poller.poll(10):
                    waiting.discard(fd)
                    poller.unregister(fd)
    finally:
        for fd in pidfds.values():
            os.close(fd)
        for pid in children.values():
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        children.clear()


def _pinned(cpu: int | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    if cpu is None:
        return fn(*args, **kwargs)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return fn(*args, **kwargs)
    finally:
        os.sched_setaffinity(0, old)


def _spawn_service(fn: Callable[..., Awaitable[Any]], *args: Any, name: str) -> None:
    """Start a shard service in the user tier: it ends with the user's tasks,
    before the system tier (see ``Runner.init``)."""
    runner = current_runner()
    runner.spawn_impl(fn, args, runner.user_nursery, name, system_task=True)


async def _shard0_services(state: ShardState) -> None:
    """Shard 0's infrastructure, started before main: the service nursery,
    a supervisor per child, and the stop sequence once main has exited."""
    state.start_messaging()
    assert state.fd_passing is not None
    state.fd_passing.attach(0)
    _spawn_service(state.host_service_nursery, name="<shard 0 service nursery>")
    for shard, pid in state.children.items():
        _spawn_service(state.supervise, shard, pid, name=f"<supervisor of shard {shard}>")
    main_done = ParkingLot()
    current_runner().on_main_exit.append(main_done.unpark_all)
    # Shielded: main exiting cancels the user tier, and this task must run
    # the stop sequence exactly then.
    with CancelScope(shield=True):
        await main_done.park()
        await state.stop_children()


async def _child_serve(state: ShardState) -> None:
    state.start_messaging()
    assert state.fd_passing is not None
    state.fd_passing.attach(state.index)
    _spawn_service(state.host_service_nursery, name=f"<shard {state.index} service nursery>")
    await state.wait_for_stop()


@enable_ki_protection
def _child_main(
    shard: int,
    count: int,
    area: SharedArea,
    fd_passing: FdPassing,
    parent: int,
    cpus: list[int] | None,
    idle_poll_us: float,
    instruments: Sequence[Instrument],
    stall_threshold: float | None,
) -> None:
    """The body of a forked shard. Never returns: the process exits here."""
    code = 0
    try:
        # Shard 0 turns Ctrl-C and SIGTERM (both often sent to the whole
        # process group) into an orderly stop of every shard. They are
        # blocked since before the fork: ignore them, then unblock.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before we asked
            os._exit(1)
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[shard]})
        state = ShardState(shard, count, area, fd_passing)
        run_one_shard(
            _child_serve,
            state,
            shard_state=state,
            idle_poll=idle_poll_us / 1e6,
            main_name=f"<shard {shard} main>",
            instruments=instruments,
            stall_threshold=stall_threshold,
        )
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
