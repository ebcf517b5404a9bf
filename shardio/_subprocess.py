"""Child processes: ``run_process``, ``lowlevel.open_process``, ``Process``.

Trio's API and semantics (``trio/_subprocess.py``), on Linux's pidfds, with
one promise Trio does not make: no child outlives the run that started it.

Waiting without SIGCHLD
-----------------------
A pidfd (``os.pidfd_open``, Linux 5.3) refers to one process and becomes
readable when it exits. ``Process.wait`` waits for that with
:func:`~shardio.lowlevel.wait_readable`, then reaps the child with
``waitpid`` on its pid (through :class:`subprocess.Popen`, which keeps the
exit status). No signal handler, no thread per child, and it works the same
on every shard: each shard waits for the children it started. Until it is
reaped, a child's pid cannot be reused, so signalling it by pid is safe;
once it is reaped, ``Popen`` no longer signals it.

Spawning
--------
``subprocess.Popen`` forks, and then waits until the child has exec'd (or
failed to) -- the child's own work, which takes milliseconds on a busy
machine. As in Trio, that wait happens in a thread, not in the shard's
scheduler; only the ``fork`` itself still pauses the shard (it holds the
GIL: a fraction of a millisecond, more for a large address space). It is a
``fork``, not the cheaper ``vfork``, because a ``preexec_fn`` runs in the
child (see below). The thread is not a worker of ``to_thread``: each run
(each shard) has one *spawner thread*, started with its first process and
stopped once its last child is gone, because the kernel ties the
parent-death signal below to the thread that forked, and worker threads end
when idle. The calling task waits for the spawn (not cancellable: a fork
cannot be undone, as in Trio), and the new process is registered in the
scheduler's thread, in the callback that wakes the task.

No child outlives its run
-------------------------
* **The run ends.** Each run keeps a registry of the processes it started
  and has not reaped. A system task, started with the first process, waits
  for the end of the run: the system tier is cancelled only once every user
  task has finished (``Runner.init``), so a ``run_process`` being cancelled
  has already delivered its cancellation (``deliver_cancel``) and waited.
  Whatever is still registered then -- processes from ``open_process``
  nobody waited for -- is killed with ``SIGKILL`` and reaped before ``run()``
  returns; a spawn still in flight is killed as it lands, and later ones
  are refused. Processes that exited are dropped from the registry when
  reaped, and at every spawn (as ``subprocess`` reaps its own stragglers),
  so a long-lived shard does not accumulate them.
* **The shard dies.** The child asks the kernel, between ``fork`` and
  ``exec``, to send it ``SIGKILL`` when its parent dies
  (``PR_SET_PDEATHSIG``), whatever kills the shard, ``SIGKILL`` included; it
  then checks that its parent is still the shard, for a shard that died
  before the request. "Parent" means the thread that forked: the spawner
  thread, which lives as long as the run's children.

  Limits, as the kernel sets them: the request is dropped when the child
  execs a set-user-ID, set-group-ID or file-capability program (``sudo``), and
  it concerns the child only, not the processes the child starts itself.
"""

from __future__ import annotations

import ctypes
import functools
import os
import queue
import signal
import subprocess
import threading
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack, suppress
from typing import Any, Final, Protocol, TypeAlias, final

import attrs
import outcome

# _sync (Lock) imports shardio.lowlevel, which imports this module: bound as
# a module, and used only once everything is loaded.
from . import _sync
from ._core import (
    TASK_STATUS_IGNORED,
    Abort,
    BrokenResourceError,
    CancelScope,
    ClosedResourceError,
    RunFinishedError,
    RunVar,
    ShardLocal,
    Task,
    TaskStatus,
    Token,
    checkpoint_if_cancelled,
    current_task,
    current_token,
    enable_ki_protection,
    notify_closing,
    open_nursery,
    reschedule,
    spawn_system_task,
    wait_readable,
    wait_task_rescheduled,
)
from ._fd_stream import FdStream
from ._highlevel_generic import StapledStream
from ._timeouts import sleep, sleep_forever
from .abc import ReceiveStream, SendStream

__all__ = ["Process", "open_process", "run_process"]

StrOrBytesPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]

_PR_SET_PDEATHSIG = 1


class HasFileno(Protocol):
    """Anything with a ``fileno()``: a file, a socket."""

    def fileno(self) -> int: ...


@final
class Process(ShardLocal):
    """A child process, like :class:`subprocess.Popen` but async.

    Made by :func:`shardio.lowlevel.open_process`, or passed to
    ``task_status.started`` by :func:`shardio.run_process` under
    ``nursery.start``. It belongs to the shard that started it: it cannot be
    sent to another shard, and the process is killed when that shard's run
    ends, if it has not exited (see the module docs).

    ``args`` is the command as given, ``pid`` the child's process id.
    ``stdin`` (a :class:`~shardio.abc.SendStream`), ``stdout`` and ``stderr``
    (:class:`~shardio.abc.ReceiveStream`) are :class:`~shardio.lowlevel.FdStream`
    over pipes, present for the streams opened with ``subprocess.PIPE``, else
    ``None``; ``stdio`` staples ``stdin`` and ``stdout`` when both are present.
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_pidfd",
        "_popen",
        "_wait_lock",
        "args",
        "pid",
        "stderr",
        "stdin",
        "stdio",
        "stdout",
    )

    # Always binary, unbuffered streams, as in Trio.
    universal_newlines: Final = False
    encoding: Final = None
    errors: Final = None

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        pidfd: int,
        stdin: SendStream | None,
        stdout: ReceiveStream | None,
        stderr: ReceiveStream | None,
        children: _Children,
    ) -> None:
        self._popen = popen
        self._pidfd: int | None = pidfd
        self.args: StrOrBytesPath | Sequence[StrOrBytesPath] = popen.args
        self.pid: int = popen.pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.stdio: StapledStream[SendStream, ReceiveStream] | None = (
            None if stdin is None or stdout is None else StapledStream(stdin, stdout)
        )
        self._wait_lock = _sync.Lock()
        self._children = children

    def __repr__(self) -> str:
        code = self.returncode
        if code is None:
            status = f"running with PID {self.pid}"
        elif code < 0:
            status = f"exited with signal {-code}"
        else:
            status = f"exited with status {code}"
        return f"<shardio.Process {self.args!r}: {status}>"

    @property
    def returncode(self) -> int | None:
        """The exit status, or ``None`` while the process runs.

        Negative for a process killed by a signal (-9 for ``SIGKILL``). Always
        up to date: reading it reaps the process if it has exited, as
        :meth:`poll` does.
        """
        code = self._popen.poll()
        if code is not None:
            self._reaped()
        return code

    def poll(self) -> int | None:
        """The same as :attr:`returncode` (for code ported from ``subprocess``)."""
        return self.returncode

    async def wait(self) -> int:
        """Wait until the process exits and return its :attr:`returncode`.

        A checkpoint; cancellable (the process goes on running). Several
        tasks may wait at once.
        """
        async with self._wait_lock:
            if self.poll() is None:
                pidfd = self._pidfd
                assert pidfd is not None  # closed only once reaped
                # A poll() elsewhere may reap it and close the pidfd meanwhile.
                with suppress(ClosedResourceError):
                    await wait_readable(pidfd)
                # The pidfd said it exited: this waitpid does not block.
                self._popen.wait()
                self._reaped()
        code = self._popen.returncode
        assert code is not None
        return code

    @enable_ki_protection
    def _reaped(self) -> None:
        pidfd = self._pidfd
        if pidfd is not None:
            self._pidfd = None
            self._children.live.pop(self, None)
            with suppress(RuntimeError):  # read after the run: nobody waits on it
                notify_closing(pidfd)
            os.close(pidfd)

    def send_signal(self, sig: signal.Signals | int) -> None:
        """Send signal ``sig`` to the process (nothing, once it has been reaped)."""
        self._popen.send_signal(sig)

    def terminate(self) -> None:
        """Ask the process to exit: ``send_signal(signal.SIGTERM)``."""
        self._popen.terminate()

    def kill(self) -> None:
        """Kill the process: ``send_signal(signal.SIGKILL)``. Use :meth:`wait`
        to know when it is gone."""
        self._popen.kill()


# ---------------------------------------------------------------------------
# The registry of a run's children
# ---------------------------------------------------------------------------


#: A job for the spawner thread; None stops it.
_Job: TypeAlias = "Callable[[], None] | None"


@attrs.define(eq=False, slots=True)
class _Children:
    """The processes this run started and has not reaped (an ordered set),
    and the spawner thread that starts them (see the module docs)."""

    token: Token
    live: dict[Process, None] = attrs.field(factory=dict)
    #: Set once the run ends: no more spawns.
    closed: bool = False
    _jobs: queue.SimpleQueue[_Job] = attrs.field(factory=queue.SimpleQueue)

    def __attrs_post_init__(self) -> None:
        threading.Thread(target=self._serve, name="shardio spawner", daemon=True).start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def sweep(self) -> None:
        """Reap (and forget) the ones that exited."""
        for process in list(self.live):
            process.poll()

    async def spawn(
        self,
        command: StrOrBytesPath | Sequence[StrOrBytesPath],
        options: dict[str, Any],
        streams: tuple[SendStream | None, ReceiveStream | None, ReceiveStream | None],
    ) -> Process:
        """Start the child in the spawner thread; wait (uncancellably) for it."""
        task = current_task()

        def fork() -> None:
            # In the spawner thread.
            try:
                popen: subprocess.Popen[bytes] = subprocess.Popen(command, **options)
            except BaseException as exc:
                self._deliver(task, outcome.Error(exc))
                return
            try:
                pidfd = os.pidfd_open(popen.pid)
            except OSError as exc:
                popen.kill()
                popen.wait()
                self._deliver(task, outcome.Error(exc))
                return
            if not self._deliver(task, outcome.Value((popen, pidfd)), streams):
                # The run is over (its scheduler failed): nobody will reap it.
                popen.kill()
                popen.wait()
                os.close(pidfd)

        self._jobs.put(fork)
        return await wait_task_rescheduled(lambda _: Abort.FAILED)  # type: ignore[no-any-return]

    def _deliver(
        self,
        task: Task,
        result: outcome.Outcome[tuple[subprocess.Popen[bytes], int]],
        streams: tuple[SendStream | None, ReceiveStream | None, ReceiveStream | None] = (
            None,
            None,
            None,
        ),
    ) -> bool:
        """From the spawner thread: hand ``result`` to the scheduler; False if
        the run is over."""
        try:
            self.token.run_sync_soon(self._started, task, result, streams)
        except RunFinishedError:
            return False
        return True

    def _started(
        self,
        task: Task,
        result: outcome.Outcome[tuple[subprocess.Popen[bytes], int]],
        streams: tuple[SendStream | None, ReceiveStream | None, ReceiveStream | None],
    ) -> None:
        # In the scheduler's thread (protected): register, then wake the task.
        if isinstance(result, outcome.Value):
            popen, pidfd = result.value
            if self.closed:
                popen.kill()
                popen.wait()
                os.close(pidfd)
                result = outcome.Error(_run_ending())
            else:
                process = Process(popen, pidfd, *streams, self)
                self.live[process] = None
                reschedule(task, outcome.Value(process))
                return
        reschedule(task, result)

    async def kill_at_the_end(self) -> None:
        """A system task: when the run ends, kill and reap what is left."""
        try:
            await sleep_forever()
        except GeneratorExit:
            # The scheduler failed and is closing its tasks: this frame may
            # not wait any more, so reap synchronously. After SIGKILL that is
            # quick (a process in uninterruptible sleep dies when it wakes).
            for process in self._close():
                process._popen.wait()
                process._reaped()
            self._jobs.put(None)
            raise
        except BaseException:
            with CancelScope(shield=True):
                for process in self._close():
                    await process.wait()
            self._jobs.put(None)
            raise

    def _close(self) -> list[Process]:
        """Refuse new spawns and kill what lives; return it, to be reaped."""
        self.closed = True
        left = list(self.live)
        for process in left:
            with suppress(OSError):
                process.kill()
        return left


def _run_ending() -> RuntimeError:
    return RuntimeError("this run is ending: it starts no more processes")


_children: RunVar[_Children] = RunVar("shardio children")


def _current_children() -> _Children:
    try:
        children = _children.get()
    except LookupError:
        children = _Children(current_token())
        # RuntimeError once the run has closed its system tier: too late to start a process.
        spawn_system_task(children.kill_at_the_end, name="<shardio: kill children at run end>")
        _children.set(children)
    if children.closed:
        raise _run_ending()
    return children


@functools.cache
def _prctl() -> Any:
    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent(parent: int, then: Callable[[], object] | None) -> Callable[[], None]:
    """A ``preexec_fn``: SIGKILL this child when ``parent`` dies, then ``then()``."""
    prctl = _prctl()  # looked up in the parent: nothing to load between fork and exec

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            raise RuntimeError("the shard that started this process has already died")
        if then is not None:
            then()

    return preexec


_TEXT_OPTIONS = ("universal_newlines", "text", "encoding", "errors", "bufsize")


@enable_ki_protection
async def open_process(
    command: StrOrBytesPath | Sequence[StrOrBytesPath],
    *,
    stdin: int | HasFileno | None = None,
    stdout: int | HasFileno | None = None,
    stderr: int | HasFileno | None = None,
    **options: Any,
) -> Process:
    """Start ``command`` in a child process and return its :class:`Process`.

    As Trio's ``trio.lowlevel.open_process``: ``stdin``, ``stdout`` and
    ``stderr`` take what :class:`subprocess.Popen` takes (``subprocess.PIPE``
    makes the corresponding stream of the :class:`Process`;
    ``stderr=subprocess.STDOUT`` merges it into stdout), and ``**options`` are
    ``Popen``'s other options (``cwd``, ``env``, ``shell``, ``pass_fds``,
    ``start_new_session``, ``preexec_fn``, ...). ``command`` is a sequence,
    or a string with ``shell=True``. The text options (``text``,
    ``encoding``, ``errors``, ``universal_newlines``, ``bufsize``) are a
    ``TypeError``: the streams are unbuffered bytes.

    Nothing waits for the process, kills it on cancellation or checks its
    status: that is :func:`shardio.run_process`'s job. It is killed
    (``SIGKILL``) and reaped when this shard's run ends if it has not exited,
    and killed by the kernel if the shard dies (see the module docs). A
    checkpoint; once the spawn has begun it is not cancellable. ``OSError``
    if the program cannot be started.
    """
    for key in _TEXT_OPTIONS:
        if options.get(key):
            raise TypeError(
                f"shardio processes communicate over unbuffered byte streams; the {key!r} "
                "option is not supported"
            )
    if isinstance(command, str | bytes) and not options.get("shell"):
        raise TypeError(
            "command must be a sequence (not a string or bytes) without shell=True; "
            f"pass [program, arg1, ...] or shell=True, not {command!r}"
        )
    if not isinstance(command, str | bytes) and options.get("shell"):
        raise TypeError(
            f"command must be a string or bytes (not a sequence) with shell=True, not {command!r}"
        )
    await checkpoint_if_cancelled()
    children = _current_children()
    children.sweep()
    options["preexec_fn"] = _die_with_parent(os.getpid(), options.get("preexec_fn"))
    ours_stdin: FdStream | None = None
    ours_stdout: FdStream | None = None
    ours_stderr: FdStream | None = None
    # The child's ends of the pipes are closed here once it has its copies;
    # ours are closed only if the spawn fails.
    with ExitStack() as always, ExitStack() as on_failure:
        if stdin == subprocess.PIPE:
            read_end, write_end = os.pipe()
            ours_stdin, stdin = FdStream(write_end), read_end
            always.callback(os.close, read_end)
            on_failure.callback(ours_stdin.close)
        if stdout == subprocess.PIPE:
            read_end, write_end = os.pipe()
            ours_stdout, stdout = FdStream(read_end), write_end
            always.callback(os.close, write_end)
            on_failure.callback(ours_stdout.close)
        if stderr == subprocess.STDOUT:
            # Into whatever stdout goes to; with stdout=None, Popen's own
            # STDOUT handling duplicates our stdout.
            if stdout is not None:
                stderr = stdout
        elif stderr == subprocess.PIPE:
            read_end, write_end = os.pipe()
            ours_stderr, stderr = FdStream(read_end), write_end
            always.callback(os.close, write_end)
            on_failure.callback(ours_stderr.close)
        process = await children.spawn(
            command,
            dict(options, stdin=stdin, stdout=stdout, stderr=stderr),
            (ours_stdin, ours_stdout, ours_stderr),
        )
        on_failure.pop_all()
    return process


async def _deliver_cancel_default(process: Process) -> None:
    # Trio's: SIGTERM, and SIGKILL if the process is still there 5 s later.
    try:
        process.terminate()
        await sleep(5)
        warnings.warn(
            RuntimeWarning(
                f"process {process!r} ignored SIGTERM for 5 seconds (maybe you should pass "
                "a custom deliver_cancel?); trying SIGKILL"
            ),
            stacklevel=1,
        )
        process.kill()
    except OSError as exc:
        warnings.warn(
            RuntimeWarning(f"tried to kill process {process!r}, but failed with: {exc!r}"),
            stacklevel=1,
        )


async def run_process(
    command: StrOrBytesPath | Sequence[StrOrBytesPath],
    *,
    stdin: bytes | bytearray | memoryview | int | HasFileno | None = b"",
    capture_stdout: bool = False,
    capture_stderr: bool = False,
    check: bool = True,
    deliver_cancel: Callable[[Process], Awaitable[object]] | None = None,
    task_status: TaskStatus[Process] = TASK_STATUS_IGNORED,
    **options: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` in a child process and wait for it to exit.

    Trio's ``trio.run_process``. Awaited directly, it returns a
    :class:`subprocess.CompletedProcess`; under ``await
    nursery.start(run_process, ...)`` it passes the :class:`Process` to
    ``start`` first, and goes on supervising it as a task.

    * ``stdin``: bytes to feed the child (then end of file; default ``b""``),
      or what :func:`~shardio.lowlevel.open_process` takes (``None``: the
      parent's stdin; ``subprocess.PIPE`` only under ``nursery.start``).
    * ``capture_stdout`` / ``capture_stderr``: collect the output into the
      result's ``stdout`` / ``stderr`` (else ``None``); not together with
      ``stdout=`` / ``stderr=`` options.
    * ``check`` (default true): a non-zero exit status raises
      :class:`subprocess.CalledProcessError`, with the captured output.
    * Cancellation, or any error here, calls ``deliver_cancel(process)``
      (default: ``SIGTERM``, then ``SIGKILL`` and a ``RuntimeWarning`` if the
      process is still there 5 seconds later), and ``run_process`` returns
      (raises) only once the process has exited; ``deliver_cancel`` is
      cancelled as soon as it has.

    ``**options`` go to :func:`~shardio.lowlevel.open_process`. The
    :class:`Process` belongs to this shard: to run a process on another
    shard, run ``run_process`` there (``run_on``, or ``start_soon(...,
    shard=)``); its ``CompletedProcess`` travels back.
    """
    if isinstance(stdin, str):
        raise UnicodeError("process stdin must be bytes, not str")
    if task_status is TASK_STATUS_IGNORED:
        for name, value in (
            ("stdin", stdin),
            ("stdout", options.get("stdout")),
            ("stderr", options.get("stderr")),
        ):
            if value is subprocess.PIPE:
                raise ValueError(
                    f"{name}=subprocess.PIPE is only valid with nursery.start, which gives "
                    "the Process whose stream is the pipe; use nursery.start"
                    + ("" if name != "stdin" else ", or pass the bytes to send as stdin")
                )
    if isinstance(stdin, bytes | bytearray | memoryview):
        input_data: bytes | bytearray | memoryview | None = stdin
        options["stdin"] = subprocess.PIPE
    else:
        input_data = None
        options["stdin"] = stdin
    if capture_stdout:
        if "stdout" in options:
            raise ValueError("can't specify both stdout and capture_stdout")
        options["stdout"] = subprocess.PIPE
    if capture_stderr:
        if "stderr" in options:
            raise ValueError("can't specify both stderr and capture_stderr")
        options["stderr"] = subprocess.PIPE
    if deliver_cancel is None:
        deliver_cancel = _deliver_cancel_default

    stdout_chunks: list[bytes | bytearray] = []
    stderr_chunks: list[bytes | bytearray] = []

    async def feed_input(stream: SendStream) -> None:
        async with stream:
            assert input_data is not None
            with suppress(BrokenResourceError):  # the child did not read it all
                await stream.send_all(input_data)

    async def read_output(stream: ReceiveStream, chunks: list[bytes | bytearray]) -> None:
        async with stream:
            async for chunk in stream:
                chunks.append(chunk)

    # Outside the nursery: a failure to start is raised as itself.
    process = await open_process(command, **options)
    async with open_nursery() as nursery:
        try:
            if input_data is not None:
                assert process.stdin is not None
                nursery.start_soon(feed_input, process.stdin)
                process.stdin = None
                process.stdio = None
            if capture_stdout:
                assert process.stdout is not None
                nursery.start_soon(read_output, process.stdout, stdout_chunks)
                process.stdout = None
                process.stdio = None
            if capture_stderr:
                assert process.stderr is not None
                nursery.start_soon(read_output, process.stderr, stderr_chunks)
                process.stderr = None
            task_status.started(process)
            await process.wait()
        except BaseException:
            with CancelScope(shield=True):
                killer_scope = CancelScope(shield=True)

                async def killer() -> None:
                    with killer_scope:
                        await deliver_cancel(process)

                nursery.start_soon(killer)
                await process.wait()
                killer_scope.cancel("the process exited")
                raise

    stdout = b"".join(stdout_chunks) if capture_stdout else None
    stderr = b"".join(stderr_chunks) if capture_stderr else None
    code = process.returncode
    assert code is not None
    if code and check:
        raise subprocess.CalledProcessError(code, process.args, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(process.args, code, stdout, stderr)
